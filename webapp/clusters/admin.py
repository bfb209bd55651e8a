from django.contrib import admin

from .models import Cluster


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "master_url", "enabled", "max_executors"]
    list_filter = ["kind", "enabled"]
