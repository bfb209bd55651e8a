"""Which Spark UI a run links to (Run.spark_ui_link): the driver's live UI only while the driver runs,
then the application's page on the cluster's History Server, else nothing; the run page, live.json and
the API say the same. The cluster admin checks the event log directory and the History Server address."""

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.web.test_clusters_admin import ADD_URL, form_data
from webapp.clusters.models import Cluster
from webapp.runs.models import Run

LIVE = "http://127.0.0.1:4040"
HISTORY = "http://127.0.0.1:18080"
APP = "app-20261202183000-0001"


@pytest.fixture
def with_history(cluster):
    Cluster.objects.filter(pk=cluster.pk).update(history_url=HISTORY, event_log_dir="/var/spark-events")
    cluster.refresh_from_db()
    return cluster


def link(run):
    ui = Run.objects.select_related("cluster").get(pk=run.pk).spark_ui_link()
    return (ui.kind, ui.url) if ui else None


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Run.Status.SUBMITTED, Run.Status.RUNNING])
def test_an_active_run_links_to_the_drivers_live_ui(make_run, with_history, status):
    run = make_run(status=status, spark_app_id=APP, spark_ui_url=LIVE)
    assert link(run) == ("live", LIVE)
    # No UI recorded yet (the driver has not made its SparkContext): nothing, not the History Server.
    assert link(make_run(status=status, spark_app_id=APP)) is None
    assert link(make_run(status=Run.Status.QUEUED, spark_ui_url=LIVE)) is None


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELLED])
def test_a_finished_run_links_to_its_application_on_the_history_server(make_run, with_history, status):
    run = make_run(status=status, spark_app_id=APP, spark_ui_url=LIVE)
    assert link(run) == ("history", f"{HISTORY}/history/{APP}/")
    # Never the dead driver's port (another run's UI may hold it now), and none without an app id.
    assert link(make_run(status=status, spark_ui_url=LIVE)) is None


@pytest.mark.django_db
def test_a_finished_run_on_a_cluster_without_history_server_links_to_nothing(make_run, cluster):
    assert cluster.history_url == ""
    run = make_run(status=Run.Status.SUCCEEDED, spark_app_id=APP, spark_ui_url=LIVE)
    assert link(run) is None
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
    assert link(run) == ("live", LIVE)


@pytest.mark.django_db
def test_page_live_json_and_api_follow_the_rule(client_a, alice, make_run, with_history):
    run = make_run(status=Run.Status.RUNNING, spark_app_id=APP, spark_ui_url=LIVE)
    api = APIClient()
    api.force_authenticate(alice[0])

    def shown():
        page = client_a.get(reverse("run_detail", args=[run.pk])).content.decode()
        live = client_a.get(reverse("run_live", args=[run.pk])).json()
        body = api.get(f"/api/runs/{run.pk}/").json()
        return page, live, body

    page, live, body = shown()
    assert f'href="{LIVE}"' in page and "live, while the run is active" in page
    assert (live["ui_url"], live["ui_kind"]) == (LIVE, "live")
    assert (body["spark_ui_link"], body["spark_ui_kind"], body["spark_ui_url"]) == (LIVE, "live", LIVE)

    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    page, live, body = shown()
    url = f"{HISTORY}/history/{APP}/"
    assert f'href="{url}"' in page and "History Server" in page and f'href="{LIVE}"' not in page
    assert (live["ui_url"], live["ui_kind"], live["ui_label"]) == (url, "history", "History Server")
    assert (body["spark_ui_link"], body["spark_ui_kind"]) == (url, "history")

    Cluster.objects.filter(pk=with_history.pk).update(history_url="")
    page, live, body = shown()
    assert f'href="{LIVE}"' not in page and "History Server" not in page
    assert live["ui_url"] == "" and body["spark_ui_link"] is None and body["spark_ui_kind"] is None


# -- admin -----------------------------------------------------------------------------------------


def field_errors(resp, name):
    return resp.context["adminform"].form.errors.get(name, []) if resp.context else []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value", ["/var/spark-events", "file:/var/spark-events", "file:///var/spark-events", "hdfs://nn:8020/spark-logs",
              "hdfs:///spark-logs"],
)  # fmt: skip
def test_admin_accepts_event_log_locations(admin_client, value):
    resp = admin_client.post(ADD_URL, form_data(event_log_dir=value, history_url="https://history.example.org:18080"))
    assert resp.status_code == 302, field_errors(resp, "event_log_dir")
    cluster = Cluster.objects.get(name="lab")
    assert (cluster.event_log_dir, cluster.history_url) == (value, "https://history.example.org:18080")
    page = admin_client.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "Spark History Server" in page and value in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value", ["spark-events", "./events", "file://host/events", "//events", "/var/spark events", "/x;rm -rf /",
              "s3a://bucket/events", "http://nn/events"],
)  # fmt: skip
def test_admin_refuses_a_bad_event_log_location(admin_client, value):
    resp = admin_client.post(ADD_URL, form_data(event_log_dir=value))
    assert resp.status_code == 200
    assert any("absolute path" in e for e in field_errors(resp, "event_log_dir")), resp.content.decode()[:500]
    assert not Cluster.objects.filter(name="lab").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value", ["history:18080", "ftp://history:18080", "http://history:18080/x?y=1", "javascript:x"]
)
def test_admin_refuses_a_bad_history_address(admin_client, value):
    resp = admin_client.post(ADD_URL, form_data(history_url=value))
    assert resp.status_code == 200 and field_errors(resp, "history_url")
    assert not Cluster.objects.filter(name="lab").exists()


@pytest.mark.django_db
def test_admin_refuses_event_log_settings_twice(admin_client):
    conf = json.dumps({"spark.eventLog.dir": "/elsewhere", "spark.eventLog.enabled": True})
    resp = admin_client.post(ADD_URL, form_data(event_log_dir="/var/spark-events", extra_conf=conf))
    assert resp.status_code == 200
    assert any("set by the event log directory" in e for e in field_errors(resp, "extra_conf"))
    # Without the field, the extra settings alone are still allowed.
    resp = admin_client.post(ADD_URL, form_data(extra_conf=conf))
    assert resp.status_code == 302
