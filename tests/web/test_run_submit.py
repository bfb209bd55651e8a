import pytest
from django.urls import reverse

from webapp.runs.lifecycle import build_spec
from webapp.runs.models import Run


def form(dataset, cluster, **over):
    data = {
        "name": "",
        "dataset": dataset.pk,
        "template": "cnn",
        "input_mode": "tensorflow",
        "cluster": cluster.pk,
        "num_executors": 2,
        "executor_cores": 1,
        "executor_memory_mb": 2048,
        "hp_cnn_epochs": "4",
        "hp_cnn_batch_size": "32",
        "hp_cnn_learning_rate": "0.002",
    }
    data.update(over)
    return data


@pytest.mark.django_db
def test_valid_run_is_saved_queued_and_dispatched_on_commit(
    client_a, digits_dataset, cluster, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = client_a.post(reverse("run_new"), form(digits_dataset, cluster))
    run = Run.objects.get()
    assert resp.status_code == 302 and resp["Location"] == run.get_absolute_url()
    assert run.status == Run.Status.QUEUED
    assert run.hyperparameters == {
        "epochs": 4,
        "batch_size": 32,
        "learning_rate": 0.002,
        "validation_split": 0.1,
        "dense_units": 1024,
        "dropout": 0.4,
        "filters": 32,
        "kernel_size": 5,
        "optimizer": "adam",
        "steps_per_epoch": 0,
    }
    assert len(callbacks) == 1  # submit_run.delay, only after the row is committed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "over,field,message",
    [
        ({"hp_cnn_epochs": "0"}, "epochs", "between"),
        ({"hp_cnn_epochs": "abc"}, "epochs", "integer"),
        ({"hp_cnn_learning_rate": "5"}, "learning_rate", "between"),
        ({"hp_cnn_dropout": "0.95"}, "dropout", "between"),
        ({"num_executors": 3}, "num_executors", "at most 2 executors"),
        ({"executor_cores": 4}, "executor_cores", "at most 1 cores"),
        ({"executor_memory_mb": 999999}, "executor_memory_mb", "at most 3072 MB"),
    ],
)
def test_wrong_values_get_a_message_per_field_and_store_nothing(
    client_a, digits_dataset, cluster, over, field, message
):
    resp = client_a.post(reverse("run_new"), form(digits_dataset, cluster, **over))
    assert resp.status_code == 400
    errors = resp.context["field_errors"]
    assert message in errors[field]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_viewer_cannot_submit(make_member, digits_dataset, cluster, client):
    viewer, _ = make_member("vera", "Team A", role="viewer")
    client.force_login(viewer)
    resp = client.post(reverse("run_new"), form(digits_dataset, cluster))
    assert resp.status_code == 400 and not Run.objects.exists()


@pytest.mark.django_db
def test_another_teams_dataset_cannot_be_picked(client_b, digits_dataset, cluster):
    resp = client_b.post(reverse("run_new"), form(digits_dataset, cluster))
    assert resp.status_code == 400 and "dataset" in resp.context["form"].errors
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_spec_carries_dataset_resources_token_and_timeouts(alice, digits_dataset, cluster, settings):
    run = Run.objects.create(
        team=alice[1],
        dataset=digits_dataset,
        template="cnn",
        cluster=cluster,
        hyperparameters={"epochs": 2},
        num_executors=2,
    )
    spec = build_spec(run)
    assert spec["cluster_size"] == 2
    assert spec["dataset"]["shape"] == [8, 8, 1] and spec["dataset"]["num_classes"] == 10
    assert spec["dataset"]["train"].endswith("train.parquet")
    assert spec["metrics"]["token"] == run.ingest_token
    assert spec["metrics"]["url"] == f"{settings.PUBLIC_URL}/ingest/runs/{run.pk}/metrics"
    assert spec["timeouts"] == {"reservation": 120, "feed": 120, "shutdown": 60}
    assert spec["bind_host"] == "127.0.0.1"


@pytest.mark.django_db
def test_cancel_a_queued_run_at_once_and_not_another_teams(client_a, client_b, alice, digits_dataset, cluster):
    run = Run.objects.create(team=alice[1], dataset=digits_dataset, template="cnn", cluster=cluster)
    assert client_b.post(reverse("run_cancel", args=[run.pk])).status_code == 404
    assert Run.objects.get(pk=run.pk).status == Run.Status.QUEUED
    client_a.post(reverse("run_cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and "alice" in run.status_reason


@pytest.mark.django_db
def test_submit_task_is_idempotent(alice, digits_dataset, cluster):
    from webapp.runs import lifecycle

    lifecycle.submit(987654321)  # a run deleted before its task ran: nothing to do, no error
    run = Run.objects.create(team=alice[1], dataset=digits_dataset, template="cnn", cluster=cluster)
    run.transition(Run.Status.CANCELLED)
    lifecycle.submit(run.pk)  # terminal: left alone, nothing launched
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.backend_handle == {}
    assert not run.run_dir.exists()


@pytest.mark.django_db
def test_the_only_enabled_cluster_is_preselected(client_a, digits_dataset, cluster):
    from webapp.clusters.models import Cluster

    def selected():
        page = client_a.get(reverse("run_new")).content.decode()
        return [c.pk for c in Cluster.objects.all() if f'<option value="{c.pk}" selected>' in page]

    assert selected() == [cluster.pk]
    Cluster.objects.create(
        name="off", master_url="spark://127.0.0.1:7078", rest_url="http://127.0.0.1:8081", enabled=False
    )
    assert selected() == [cluster.pk]  # a disabled one is no choice
    Cluster.objects.create(name="second", master_url="spark://127.0.0.1:7079", rest_url="http://127.0.0.1:8082")
    assert selected() == []  # two to choose from: the user picks
