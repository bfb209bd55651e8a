"""Pre-flight: requests that could not run are refused before anything is stored or sent."""

import pytest
from django.urls import reverse

from tests.conftest import idle_workers
from webapp.clusters.models import Cluster, TeamQuota
from webapp.runs import preflight
from webapp.runs.errors import RunRequestError
from webapp.runs.models import Run
from webapp.runs.services import create_run
from workers.backends.standalone import StandaloneBackend

pytestmark = pytest.mark.django_db


def submit(alice, dataset, cluster, **over):
    user, team = alice
    args = dict(
        team=team,
        user=user,
        dataset=dataset,
        template="cnn",
        hyperparameters={"epochs": 1},
        cluster=cluster,
        num_executors=2,
        executor_cores=1,
        executor_memory_mb=1024,
    )
    args.update(over)
    return create_run(**args)


def refused(alice, dataset, cluster, **over) -> dict:
    with pytest.raises(RunRequestError) as exc:
        submit(alice, dataset, cluster, **over)
    assert Run.objects.count() == 0  # nothing half-stored
    return exc.value.errors


def test_a_request_that_fits_is_accepted_queued(alice, digits_dataset, cluster):
    run = submit(alice, digits_dataset, cluster)
    assert run.status == Run.Status.QUEUED and run.gpus_per_executor == 0


@pytest.mark.parametrize(
    "over,field,text",
    [
        ({"num_executors": 3}, "num_executors", "at most 2 executors"),
        ({"executor_cores": 2}, "executor_cores", "at most 1 cores per executor"),
        ({"executor_memory_mb": 4096}, "executor_memory_mb", "at most 3072 MB"),
        ({"gpus_per_executor": 1}, "gpus_per_executor", "has no GPUs"),
    ],
)
def test_cluster_limits(alice, digits_dataset, cluster, over, field, text):
    assert text in refused(alice, digits_dataset, cluster, **over)[field]


def test_disabled_cluster_is_refused(alice, digits_dataset, cluster):
    Cluster.objects.filter(pk=cluster.pk).update(enabled=False)
    cluster.refresh_from_db()
    assert "disabled" in refused(alice, digits_dataset, cluster)["cluster"]


def test_more_gpus_than_the_limit(alice, digits_dataset, cluster, fake_capacity):
    Cluster.objects.filter(pk=cluster.pk).update(gpus_per_worker=1, max_gpus_per_executor=1, gpu_discovery_script="/x")
    cluster.refresh_from_db()
    errors = refused(alice, digits_dataset, cluster, gpus_per_executor=2)
    assert "at most 1 GPU(s) per executor" in errors["gpus_per_executor"]


def test_gpus_asked_but_workers_report_none(alice, digits_dataset, cluster, fake_capacity):
    Cluster.objects.filter(pk=cluster.pk).update(gpus_per_worker=1, max_gpus_per_executor=1, gpu_discovery_script="/x")
    cluster.refresh_from_db()
    errors = refused(alice, digits_dataset, cluster, gpus_per_executor=1)
    assert "report no GPUs" in errors["gpus_per_executor"]
    fake_capacity.workers = idle_workers(gpus=1)
    run = submit(alice, digits_dataset, cluster, gpus_per_executor=1)
    assert run.total_gpus == 2


def test_more_executors_than_the_live_cluster_can_ever_host(alice, digits_dataset, cluster, fake_capacity):
    Cluster.objects.filter(pk=cluster.pk).update(max_executors=8)
    cluster.refresh_from_db()
    errors = refused(alice, digits_dataset, cluster, num_executors=3)
    assert "can host at most 2 executor(s)" in errors["num_executors"]
    assert "2 live worker(s)" in errors["num_executors"]


def test_memory_no_worker_has_is_refused(alice, digits_dataset, cluster, fake_capacity):
    fake_capacity.workers = idle_workers(memory_mb=512)
    errors = refused(alice, digits_dataset, cluster, executor_memory_mb=1024)
    assert "can host at most 0 executor(s)" in errors["num_executors"]


def test_unreachable_cluster_is_refused_with_the_reason(alice, digits_dataset, cluster, fake_capacity):
    fake_capacity.reachable = False
    fake_capacity.error = "connection refused at http://127.0.0.1:8080"
    errors = refused(alice, digits_dataset, cluster)
    assert "not reachable: connection refused" in errors["cluster"]


def test_busy_cluster_is_not_a_refusal(alice, digits_dataset, cluster, fake_capacity):
    for w in fake_capacity.workers:
        w.cores_free = 0  # everything taken by other runs: this one waits in the queue
    assert submit(alice, digits_dataset, cluster).status == Run.Status.QUEUED


def test_a_run_bigger_than_the_team_quota_is_refused_other_teams_unaffected(alice, bob, digits_dataset, cluster):
    TeamQuota.objects.create(cluster=cluster, team=alice[1], max_total_cores=1)
    errors = refused(alice, digits_dataset, cluster)
    assert "more than your team's quota" in errors["executor_cores"]
    assert preflight.within_quota(cluster, bob[1], preflight.Ask(2, 1, 1024)) == {}


def test_conf_that_would_make_tfos_hang_is_caught(alice, digits_dataset, cluster, monkeypatch):
    real = StandaloneBackend.build_argv

    def dynamic(self, req):
        argv = real(self, req)
        on = "spark.dynamicAllocation.enabled=true"
        return [a.replace("spark.dynamicAllocation.enabled=false", on) for a in argv]

    monkeypatch.setattr(StandaloneBackend, "build_argv", dynamic)
    errors = refused(alice, digits_dataset, cluster)
    assert "spark.dynamicAllocation.enabled='true' (needs false)" in errors["cluster"]


def test_task_cpus_must_equal_executor_cores(cluster):
    Cluster.objects.filter(pk=cluster.pk).update(max_executor_cores=2)
    cluster.refresh_from_db()
    conf = preflight.conf_string(
        ["spark-submit", "--conf", "spark.task.cpus=2", "--conf", "spark.executor.instances=2", "--num-executors", "2"]
    )
    assert conf == {"spark.task.cpus": "2", "spark.executor.instances": "2", "--num-executors": "2"}
    assert preflight.tfos_settings(cluster, preflight.Ask(2, 2, 1024)) == {}


def test_yarn_gpu_run_without_discovery_script_is_refused(cluster, monkeypatch):
    monkeypatch.delenv("SPARKDECK_YARN_GPU_DISCOVERY_SCRIPT", raising=False)
    yarn = Cluster.objects.create(
        name="yarn",
        kind="yarn",
        master_url="",
        rest_url="http://rm.example:8088",
        max_executors=4,
        max_executor_cores=2,
        max_gpus_per_executor=1,
        gpus_per_worker=1,
    )
    errors = preflight.tfos_settings(yarn, preflight.Ask(2, 1, 1024, 1))
    assert "discovery script" in errors["cluster"]


def test_form_shows_limits_and_quota_and_refuses_with_400(client_a, alice, digits_dataset, cluster):
    TeamQuota.objects.create(cluster=cluster, team=alice[1], max_concurrent_runs=1, max_total_gpus=0)
    page = client_a.get(reverse("run_new")).content.decode()
    assert "up to 2 executors × 1 cores, 3072 MB each" in page
    assert "team quota: 1 runs at once" in page
    data = {
        "dataset": digits_dataset.pk,
        "template": "cnn",
        "input_mode": "tensorflow",
        "cluster": cluster.pk,
        "num_executors": 2,
        "executor_cores": 1,
        "executor_memory_mb": 1024,
        "gpus_per_executor": 1,
        "hp_cnn_epochs": "1",
    }
    resp = client_a.post(reverse("run_new"), data)
    assert resp.status_code == 400
    assert "has no GPUs for Sparkdeck runs" in resp.content.decode()
    assert Run.objects.count() == 0


def test_extra_conf_and_env_reach_spark_submit(alice, digits_dataset, cluster, settings):
    from webapp.runs.lifecycle import backend_for, submit_request

    Cluster.objects.filter(pk=cluster.pk).update(
        extra_conf={"spark.network.timeout": "300s", "spark.eventLog.enabled": True},
        executor_env={"OMP_NUM_THREADS": 1},
        executor_python="/opt/py/bin/python",
    )
    cluster.refresh_from_db()
    run = submit(alice, digits_dataset, cluster)
    req = submit_request(run, settings.VAR_DIR / "spec.json", settings.VAR_DIR / "jobs.zip")
    argv = backend_for(cluster).build_argv(req)
    conf = preflight.conf_string(argv)
    assert conf["spark.network.timeout"] == "300s"
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.executorEnv.OMP_NUM_THREADS"] == "1"
    assert conf["spark.pyspark.python"] == "/opt/py/bin/python"


def test_class_archives_are_asked_for_on_standalone_clusters_only(alice, digits_dataset, cluster, settings, tmp_path):
    """workers/jvm_cds.py: the driver runs here always; executors only where the master is loopback."""
    from webapp.runs.lifecycle import submit_request

    run = submit(alice, digits_dataset, cluster)

    def java_opts(var_dir, **cluster_fields):
        settings.VAR_DIR = tmp_path / var_dir  # a fresh install: nothing learned, nothing claimed
        Cluster.objects.filter(pk=cluster.pk).update(**cluster_fields)
        run.cluster.refresh_from_db()
        return submit_request(run, tmp_path / "spec.json", tmp_path / "jobs.zip").java_opts

    here = java_opts("a")
    assert "-XX:ArchiveClassesAtExit=" in here["driver"] and "{{EXECUTOR_ID}}" in here["executor"]
    assert set(java_opts("b", master_url="spark://10.1.2.3:7077")) == {"driver"}
    assert java_opts("c", kind=Cluster.Kind.YARN, master_url="yarn") == {}
    both = {"driver", "executor"}
    assert set(java_opts("e", kind=Cluster.Kind.STANDALONE, master_url="spark://127.0.1.1:7077")) == both
    assert set(java_opts("f", master_url="spark://localhost:7077")) == both
    assert set(java_opts("g", master_url="spark://spark-master:7077")) == {"driver"}  # compose's service name
    settings.JVM_CLASS_ARCHIVES = False
    assert java_opts("d", kind=Cluster.Kind.STANDALONE, master_url="spark://127.0.0.1:7077") == {}
