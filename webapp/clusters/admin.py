from concurrent.futures import ThreadPoolExecutor

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from . import capacity
from .forms import ClusterAdminForm
from .models import Cluster, TeamQuota


class TeamQuotaInline(admin.TabularInline):
    model = TeamQuota
    extra = 0
    fields = ["team", "max_concurrent_runs", "max_total_cores", "max_total_gpus"]
    verbose_name_plural = "Team quotas (0 = no limit on that measure)"


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterAdminForm
    inlines = [TeamQuotaInline]
    list_display = ["name", "kind", "enabled", "address", "limits", "gpus_per_worker", "quota_count", "capacity_link"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "master_url", "rest_url"]
    actions = ["test_connection"]
    fieldsets = [
        ("Connection", {"fields": ["name", "kind", "enabled", "master_url", "rest_url", "yarn_queue", "deploy_mode"]}),
        (
            "Python & Spark",
            {"fields": ["spark_home", "executor_python", "python_archive", "extra_conf", "executor_env", "bind_host"]},
        ),
        ("Logs", {"fields": ["collect_executor_logs", "log_fetch_timeout_s", "yarn_logs_timeout_s"]}),
        (
            "Spark History Server",
            {
                "fields": ["event_log_dir", "history_url"],
                "description": "A finished run's Spark UI: the History Server shows the applications whose "
                "event logs are in the directory it reads (spark.history.fs.logDirectory).",
            },
        ),
        (
            "Limits",
            {
                "fields": ["max_executors", "max_executor_cores", "max_executor_memory_mb", "max_gpus_per_executor"],
                "description": "A run asking more than these is refused before it is submitted.",
            },
        ),
        ("GPUs", {"fields": ["gpus_per_worker", "gpu_discovery_script"]}),
        ("TFoS timeouts", {"fields": ["reservation_timeout_s", "feed_timeout_s", "shutdown_timeout_s"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("quotas")

    @admin.display(description="address")
    def address(self, obj):
        return obj.master_url or obj.rest_url

    @admin.display(description="limits")
    def limits(self, obj):
        return obj.limits_text()

    @admin.display(description="team quotas")
    def quota_count(self, obj):
        return len(obj.quotas.all())

    @admin.display(description="capacity")
    def capacity_link(self, obj):
        return format_html('<a href="{}">live capacity</a>', self._capacity_url(obj))

    def _capacity_url(self, obj):
        return reverse(f"{self.admin_site.name}:clusters_cluster_capacity", args=[obj.pk])

    # -- live capacity -------------------------------------------------------------------------

    def get_urls(self):
        # Before the stock URLs: their "<path:object_id>/" pattern would swallow ".../capacity/".
        view = self.admin_site.admin_view(self.capacity_view)
        return [path("<int:object_id>/capacity/", view, name="clusters_cluster_capacity"), *super().get_urls()]

    def capacity_view(self, request, object_id):
        cluster = self.get_object(request, str(object_id))
        if cluster is None:
            raise Http404("No such cluster.")
        if not self.has_view_permission(request, cluster):
            raise PermissionDenied
        return self._render_capacity(request, [cluster], title=f"Live capacity of {cluster}")

    @admin.action(description="Test connection (show live capacity)", permissions=["view"])
    def test_connection(self, request, queryset):
        return self._render_capacity(request, list(queryset.order_by("name")), title="Test connection")

    def _render_capacity(self, request, clusters, title):
        # One HTTP round trip per cluster, each bounded by its own timeout: ask them all at once.
        with ThreadPoolExecutor(max_workers=min(8, len(clusters)) or 1) as pool:
            capacities = list(pool.map(capacity.live_capacity, clusters))  # via the module: tests patch it
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "entries": [_entry(c, cap, self._capacity_url(c)) for c, cap in zip(clusters, capacities, strict=True)],
        }
        return TemplateResponse(request, "admin/clusters/cluster/capacity.html", context)


def _entry(cluster, cap, url):
    """What the page shows for one cluster, including how many executors of the largest allowed size fit."""
    size = (cluster.max_executor_cores, cluster.max_executor_memory_mb, cluster.max_gpus_per_executor)
    fits_now = cap.slots(*size) if cap.reachable and all(size[:2]) else None
    fits_idle = cap.slots(*size, free=False) if cap.reachable and all(size[:2]) else None
    return {
        "cluster": cluster,
        "capacity": cap,
        "url": url,
        "fits_now": fits_now,
        "fits_idle": fits_idle,
        # TFoS needs all its executors at once: a run at the limit would wait forever.
        "too_small": fits_idle is not None and fits_idle < cluster.max_executors,
    }
