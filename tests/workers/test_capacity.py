"""webapp.clusters.capacity: live capacity from a real standalone master and a recorded YARN ResourceManager.

The YARN side replays yarn_recordings/cluster_nodes*.json and cluster_metrics.json (hand-written after
the Hadoop 3 ResourceManager REST API: /ws/v1/cluster/nodes and /ws/v1/cluster/metrics).
"""

import os
import shutil
import socket
from types import SimpleNamespace

import pytest
from django.urls import reverse

from tests.fake_rm import FakeRM
from webapp.clusters.capacity import Capacity, WorkerCapacity, fetch_capacity, live_capacity
from workers.localcluster import LocalCluster, free_port, free_port_block

needs_java = pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java")


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- slots: packing per worker -------------------------------------------------------------------


def worker(name, cores, cores_free, mem, mem_free, gpus=0, gpus_free=0, state="ALIVE"):
    return WorkerCapacity(name, "h", state, cores, cores_free, mem, mem_free, gpus, gpus_free)


def test_slots_pack_per_worker_and_skip_dead_workers():
    cap = Capacity(
        reachable=True,
        error="",
        workers=[
            worker("a", 4, 1, 8192, 6144, gpus=2, gpus_free=1),
            worker("b", 2, 2, 4096, 4096),
            worker("dead", 64, 64, 65536, 65536, gpus=8, gpus_free=8, state="DEAD"),
        ],
    )
    assert [w.id for w in cap.alive] == ["a", "b"]
    assert (cap.cores, cap.cores_free, cap.memory_mb, cap.memory_free_mb, cap.gpus, cap.gpus_free) == (
        6,
        3,
        12288,
        10240,
        2,
        1,
    )
    assert cap.slots(1, 2048) == 1 + 2
    assert cap.slots(1, 2048, free=False) == 4 + 2
    assert cap.slots(2, 1024) == 0 + 1  # 3 free cores in all, but only b has 2 of them
    assert cap.slots(3, 1024, free=False) == 1  # b has only 2 cores: executors never span workers
    assert cap.slots(1, 1024, 1) == 1 and cap.slots(1, 1024, 1, free=False) == 2
    assert cap.slots(1, 1024, 3, free=False) == 0
    with pytest.raises(ValueError):
        cap.slots(0, 1024)


# -- recorded ResourceManager --------------------------------------------------------------------


def test_yarn_nodes_with_and_without_gpus(rm):
    cap = live_capacity(SimpleNamespace(kind="yarn", rest_url=rm.url + "/", log_fetch_timeout_s=2))
    assert cap.reachable and cap.error == ""
    by_host = {w.host: w for w in cap.workers}
    assert set(by_host) == {"gpu-1.example.org", "cpu-1.example.org", "gpu-2.example.org", "cpu-2.example.org"}
    g = by_host["gpu-1.example.org"]  # Hadoop 3.3: totalResource lists yarn.io/gpu
    assert (g.id, g.state, g.cores, g.cores_free, g.memory_mb, g.memory_free_mb, g.gpus, g.gpus_free) == (
        "gpu-1.example.org:45454",
        "RUNNING",
        8,
        6,
        32768,
        28672,
        2,
        1,
    )
    c = by_host["cpu-1.example.org"]  # no GPU resource type, no totalResource
    assert (c.cores, c.cores_free, c.memory_mb, c.gpus, c.gpus_free) == (4, 4, 16384, 0, 0)
    assert by_host["gpu-2.example.org"].gpus == 2 and by_host["cpu-2.example.org"].cores == 0
    # UNHEALTHY and LOST nodes take no containers: only the two RUNNING ones count.
    assert [w.host for w in cap.alive] == ["gpu-1.example.org", "cpu-1.example.org"]
    assert (cap.cores, cap.cores_free, cap.memory_mb, cap.memory_free_mb) == (12, 10, 49152, 45056)
    assert (cap.gpus, cap.gpus_free) == (2, 1)
    assert (cap.apps_running, cap.apps_waiting) == (1, 2)
    assert cap.slots(1, 4096, 1) == 1 and cap.slots(1, 4096, 1, free=False) == 2
    assert cap.slots(2, 8192) == 3 + 2


def test_yarn_single_node_without_resource_objects():
    rm = FakeRM("cluster_nodes_single_no_gpu.json")  # Hadoop 2 shape, one node as a bare object
    try:
        cap = fetch_capacity("yarn", rm.url, timeout=2)
        assert cap.reachable and len(cap.workers) == 1
        w = cap.workers[0]
        assert (w.host, w.cores, w.cores_free, w.memory_mb, w.memory_free_mb, w.gpus) == (
            "cpu-9.example.org",
            4,
            3,
            8192,
            7168,
            0,
        )
        rm.routes["/ws/v1/cluster/nodes"] = (200, '{"nodes": null}')  # what an RM with no nodes says
        cap = fetch_capacity("yarn", rm.url, timeout=2)
        assert cap.reachable and cap.workers == [] and cap.slots(1, 1024) == 0
    finally:
        rm.server.shutdown()
        rm.server.server_close()


def test_wrong_kind_or_address_is_explained(rm):
    cap = fetch_capacity("standalone", rm.url, timeout=2)  # an RM is no standalone master
    assert not cap.reachable and "answered HTTP 404" in cap.error and "/json/" in cap.error
    rm.routes["/ws/v1/cluster/nodes"] = (200, "<html>login</html>")
    cap = fetch_capacity("yarn", rm.url, timeout=2)
    assert not cap.reachable and "did not answer with JSON" in cap.error
    rm.routes["/ws/v1/cluster/nodes"] = (200, '{"clusterInfo": {}}')
    assert "does not look like a YARN ResourceManager" in fetch_capacity("yarn", rm.url, 2).error
    assert "No web address" in fetch_capacity("yarn", "", 2).error
    assert "Unknown cluster kind" in fetch_capacity("mesos", rm.url, 2).error


@pytest.mark.parametrize("kind", ["standalone", "yarn"])
def test_closed_port_is_unreachable(kind):
    url = f"http://127.0.0.1:{closed_port()}"
    cap = live_capacity(SimpleNamespace(kind=kind, rest_url=url, log_fetch_timeout_s=2))
    assert not cap.reachable and cap.workers == []
    assert "Cannot connect" in cap.error and url in cap.error and "connection refused" in cap.error
    assert "Traceback" not in cap.error and "HTTPConnectionPool" not in cap.error


def test_silent_server_times_out():
    with socket.socket() as s:  # accepts connections (kernel backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        cap = fetch_capacity("standalone", f"http://127.0.0.1:{s.getsockname()[1]}", timeout=0.5)
    assert not cap.reachable and "did not answer within 0.5 s" in cap.error


# -- a real standalone master (pyspark 4.3's own jars) -------------------------------------------


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("capacity")
    script = root / "gpus.sh"
    script.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
    script.chmod(0o755)
    c = LocalCluster(
        state_dir=root / "spark",
        master_port=free_port(),
        webui_port=free_port_block(3),
        workers=2,
        worker_cores=1,
        worker_memory="1g",
        gpus_per_worker=1,
        gpu_discovery_script=script,
    )
    c.start(timeout=90)
    yield c
    c.stop()


@pytest.mark.spark
@needs_java
def test_standalone_capacity(gpu_cluster):
    cap = fetch_capacity("standalone", gpu_cluster.rest_url, timeout=5)
    assert cap.reachable, cap.error
    assert len(cap.workers) == len(cap.alive) == 2
    assert all(w.host == "127.0.0.1" and w.state == "ALIVE" and w.id.startswith("worker-") for w in cap.workers)
    assert (cap.cores, cap.cores_free, cap.memory_mb, cap.memory_free_mb) == (2, 2, 2048, 2048)
    assert (cap.gpus, cap.gpus_free) == (2, 2)
    assert (cap.apps_running, cap.apps_waiting) == (0, 0)
    assert cap.slots(1, 512, 1) == 2
    assert cap.slots(2, 512) == 0  # 2 cores in all, but 1 per worker
    assert cap.slots(1, 512) == 2 and cap.slots(1, 2048, free=False) == 0


@pytest.mark.spark
@needs_java
@pytest.mark.django_db
def test_admin_capacity_page_on_the_live_cluster(gpu_cluster, admin_client):
    from webapp.clusters.models import Cluster

    row = Cluster.objects.create(
        name="live-gpus",
        master_url=gpu_cluster.master_url,
        rest_url=gpu_cluster.rest_url,
        bind_host="127.0.0.1",
        max_executors=2,
        max_executor_cores=1,
        max_executor_memory_mb=512,
        gpus_per_worker=1,
        max_gpus_per_executor=1,
        gpu_discovery_script="/opt/gpus.sh",
    )
    resp = admin_client.get(reverse("admin:clusters_cluster_capacity", args=[row.pk]))
    assert resp.status_code == 200
    (entry,) = resp.context["entries"]
    cap = entry["capacity"]
    assert cap.reachable and (cap.cores, cap.gpus) == (2, 2)
    assert (entry["fits_now"], entry["fits_idle"], entry["too_small"]) == (2, 2, False)
    html = " ".join(resp.content.decode().split())  # the template wraps its sentences
    assert "Reachable: 2 of 2 worker(s) alive" in html
    assert html.count("<td>1 / 1</td>") == 4  # cores and GPUs of each worker
    assert "<td>1024 / 1024</td>" in html
    assert "<th>2 / 2</th>" in html and "<th>2048 / 2048</th>" in html
    assert "that fit: 2 now, 2 on the idle cluster; the limit is 2." in html
