"""Cluster admin: staff only, field-level errors for extra conf / executor env, team quotas inline,
and the live-capacity page and "Test connection" action (a recorded YARN RM, a closed port)."""

import json
import socket

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from webapp.clusters.models import Cluster, TeamQuota

ADD_URL = "/admin/clusters/cluster/add/"
CHANGELIST = "/admin/clusters/cluster/"


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capacity_url(cluster):
    return reverse("admin:clusters_cluster_capacity", args=[cluster.pk])


def form_data(**overrides):
    """Everything the add form posts, with an empty team-quota inline."""
    data = {
        "name": "lab",
        "kind": "standalone",
        "enabled": "on",
        "master_url": "spark://lab-master.example.org:7077",
        "rest_url": "http://lab-master.example.org:8080",
        "yarn_queue": "default",
        "deploy_mode": "client",
        "spark_home": "",
        "executor_python": "",
        "python_archive": "",
        "extra_conf": "{}",
        "executor_env": "{}",
        "bind_host": "",
        "collect_executor_logs": "on",
        "log_fetch_timeout_s": "5",
        "yarn_logs_timeout_s": "120",
        "max_executors": "4",
        "max_executor_cores": "2",
        "max_executor_memory_mb": "4096",
        "max_gpus_per_executor": "0",
        "gpus_per_worker": "0",
        "gpu_discovery_script": "",
        "reservation_timeout_s": "120",
        "feed_timeout_s": "120",
        "shutdown_timeout_s": "60",
        "quotas-TOTAL_FORMS": "0",
        "quotas-INITIAL_FORMS": "0",
        "quotas-MIN_NUM_FORMS": "0",
        "quotas-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


@pytest.fixture
def unreachable(db):
    return Cluster.objects.create(
        name="gone", master_url="spark://127.0.0.1:7077", rest_url=f"http://127.0.0.1:{closed_port()}"
    )


@pytest.fixture
def staff_client(db):
    """Staff, but with no permission on clusters."""
    user = get_user_model().objects.create_user("carol", password="x", is_staff=True)
    c = Client()
    c.force_login(user)
    return c, user


# -- access --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_non_staff_are_sent_to_the_admin_login(client, client_a, unreachable):
    urls = [CHANGELIST, ADD_URL, f"{CHANGELIST}{unreachable.pk}/change/", capacity_url(unreachable)]
    for c in (client, client_a):  # anonymous, and a team member without is_staff
        for url in urls:
            resp = c.get(url)
            assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/"), url
        resp = c.post(CHANGELIST, {"action": "test_connection", "_selected_action": [unreachable.pk]})
        assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_staff_without_cluster_permission_get_403(staff_client, unreachable):
    c, user = staff_client
    assert c.get(CHANGELIST).status_code == 403
    assert c.get(capacity_url(unreachable)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_cluster"))
    c.force_login(get_user_model().objects.get(pk=user.pk))  # drop the cached permissions
    assert c.get(capacity_url(unreachable)).status_code == 200


@pytest.mark.django_db
def test_capacity_page_of_a_missing_cluster_is_404(admin_client):
    assert admin_client.get(reverse("admin:clusters_cluster_capacity", args=[999999])).status_code == 404


# -- add / change --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_adds_a_cluster_with_a_team_quota(admin_client, alice):
    _, team = alice
    conf = {"spark.network.timeout": "300s", "spark.task.maxFailures": 2, "spark.eventLog.enabled": True}
    data = form_data(
        extra_conf=json.dumps(conf),
        executor_env=json.dumps({"NCCL_DEBUG": "INFO"}),
        **{
            "quotas-TOTAL_FORMS": "1",
            "quotas-0-team": str(team.pk),
            "quotas-0-max_concurrent_runs": "2",
            "quotas-0-max_total_cores": "8",
            "quotas-0-max_total_gpus": "0",
        },
    )
    resp = admin_client.post(ADD_URL, data)
    assert resp.status_code == 302, resp.context["adminform"].form.errors if resp.context else resp
    cluster = Cluster.objects.get(name="lab")
    assert cluster.extra_conf == conf and cluster.executor_env == {"NCCL_DEBUG": "INFO"}
    assert (cluster.max_executors, cluster.max_executor_cores) == (4, 2)
    quota = TeamQuota.objects.get(cluster=cluster)
    assert (quota.team, quota.max_concurrent_runs, quota.max_total_cores, quota.max_total_gpus) == (team, 2, 8, 0)

    # the change form links to the live capacity page, and the list shows kind and limits
    page = admin_client.get(f"{CHANGELIST}{cluster.pk}/change/").content.decode()
    assert f'href="{capacity_url(cluster)}"' in page and "Live capacity" in page
    for legend in ("Connection", "Python &amp; Spark", "Logs", "Limits", "GPUs", "TFoS timeouts"):
        assert f">{legend}</h2>" in page, legend
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "up to 4 executors × 2 cores, 4096 MB each" in listing and "Spark standalone" in listing


@pytest.mark.django_db
def test_emptied_json_fields_save_as_empty_objects(admin_client):
    assert admin_client.post(ADD_URL, form_data(extra_conf="", executor_env="")).status_code == 302
    cluster = Cluster.objects.get(name="lab")
    assert cluster.extra_conf == {} and cluster.executor_env == {}


@pytest.mark.django_db
def test_single_label_host_names_are_accepted(admin_client):
    data = form_data(master_url="spark://spark-master:7077", rest_url="http://spark-master:8080")
    resp = admin_client.post(ADD_URL, data)
    assert resp.status_code == 302, resp.context["adminform"].form.errors


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["spark-master:8080", "ftp://x:21", "http://host name:8080", "http://x:8080/?a=$(id)"])
def test_web_address_must_be_http(admin_client, bad):
    resp = admin_client.post(ADD_URL, form_data(rest_url=bad))
    assert resp.status_code == 200
    assert "Enter a web address such as http://spark-master:8080." in resp.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("extra_conf", {"spark.jars": "/tmp/evil.jar"}, "spark.jars is not an allowed extra setting"),
        ("extra_conf", {"spark.executor.instances": 9}, "spark.executor.instances is not an allowed extra setting"),
        (
            "extra_conf",
            {"spark.network.timeout": "soon"},
            "spark.network.timeout must be a duration such as 120s or 5min, not 'soon'.",
        ),
        ("extra_conf", {"spark.task.maxFailures": [4]}, "spark.task.maxFailures must be a whole number ≥ 1."),
        ("extra_conf", {"spark.eventLog.enabled": "yes"}, "spark.eventLog.enabled must be true or false"),
        ("extra_conf", [1, 2], "Extra Spark settings must be a JSON object"),
        ("extra_conf", "{not json", "Enter a valid JSON."),
        (
            "executor_env",
            {"CUDA_VISIBLE_DEVICES": "0"},
            "CUDA_VISIBLE_DEVICES is set by Sparkdeck and cannot be overridden.",
        ),
        ("executor_env", {"TF_USE_LEGACY_KERAS": "0"}, "TF_USE_LEGACY_KERAS is set by Sparkdeck"),
        ("executor_env", {"lower-case": "1"}, "is not an environment variable name"),
    ],
)
def test_bad_json_settings_are_refused_on_their_field(admin_client, field, value, message):
    raw = value if isinstance(value, str) else json.dumps(value)
    resp = admin_client.post(ADD_URL, form_data(**{field: raw}))
    assert resp.status_code == 200
    form = resp.context["adminform"].form
    assert set(form.errors) == {field}, form.errors
    assert any(message in e for e in form.errors[field]), form.errors[field]
    assert not Cluster.objects.exists()
    # shown next to the field, and what the admin typed is kept in the text area
    html = resp.content.decode()
    assert f'class="form-row errors field-{field}' in html
    assert raw.replace('"', "&quot;") in html


@pytest.mark.django_db
def test_several_problems_are_all_listed(admin_client):
    conf = {"spark.jars": "x", "spark.local.dir": "has space"}
    resp = admin_client.post(ADD_URL, form_data(extra_conf=json.dumps(conf)))
    errors = resp.context["adminform"].form.errors["extra_conf"]
    assert len(errors) == 2 and "spark.local.dir must be a path or URL without spaces" in errors[1]


# -- live capacity -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unreachable_cluster_page_still_renders(admin_client, unreachable):
    resp = admin_client.get(capacity_url(unreachable))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "Not reachable: Cannot connect to the Spark master web UI at" in html
    assert "connection refused" in html and unreachable.rest_url in html


@pytest.mark.django_db
def test_test_connection_action_shows_every_selected_cluster(admin_client, unreachable, rm):
    yarn = Cluster.objects.create(
        name="hadoop",
        kind="yarn",
        master_url="",
        rest_url=rm.url,
        max_executors=4,
        max_executor_cores=2,
        max_executor_memory_mb=8192,
    )
    resp = admin_client.post(CHANGELIST, {"action": "test_connection", "_selected_action": [unreachable.pk, yarn.pk]})
    assert resp.status_code == 200
    entries = {e["cluster"].name: e for e in resp.context["entries"]}
    assert set(entries) == {"gone", "hadoop"}
    assert not entries["gone"]["capacity"].reachable
    cap = entries["hadoop"]["capacity"]
    assert cap.reachable and (cap.cores, cap.gpus, cap.apps_running, cap.apps_waiting) == (12, 2, 1, 2)
    # 2 cores × 8192 MB: gpu-1 holds 3, cpu-1 holds 2 now; 4 + 2 on the idle cluster
    assert (entries["hadoop"]["fits_now"], entries["hadoop"]["fits_idle"]) == (5, 6)
    html = " ".join(resp.content.decode().split())  # the template wraps its sentences
    assert "Not reachable: Cannot connect" in html
    assert "Reachable: 2 of 4 worker(s) alive, 1 application(s) running, 2 waiting." in html
    assert "gpu-1.example.org" in html and "<td>1 / 2</td>" in html  # its GPUs free / total
    assert "LOST" in html and "UNHEALTHY" in html


@pytest.mark.django_db
def test_page_warns_when_the_limits_cannot_fit(admin_client, rm):
    big = Cluster.objects.create(
        name="tight", kind="yarn", rest_url=rm.url, max_executors=8, max_executor_cores=4, max_executor_memory_mb=4096
    )
    resp = admin_client.get(capacity_url(big))
    entry = resp.context["entries"][0]
    assert (entry["fits_idle"], entry["too_small"]) == (3, True)  # gpu-1: 8 cores = 2, cpu-1: 4 cores = 1
    assert "such a run would wait forever" in " ".join(resp.content.decode().split())
