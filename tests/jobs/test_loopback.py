import functools
import socket

import pytest
from tensorflowonspark import TFSparkNode, reservation, util

from workers.jobs import loopback


@pytest.fixture
def clean(monkeypatch):
    """Undo every patch: these are module globals shared with the rest of the session."""
    monkeypatch.setattr(util, "get_ip_address", util.get_ip_address)
    monkeypatch.setattr(reservation.Server, "start_listening_socket", reservation.Server.start_listening_socket)
    for name in ("run", "train", "inference", "shutdown"):
        monkeypatch.setattr(TFSparkNode, name, getattr(TFSparkNode, name))
    monkeypatch.delenv(loopback.ENV, raising=False)
    monkeypatch.delenv("TFOS_SERVER_HOST", raising=False)
    return monkeypatch


def test_off_without_bind_host(clean):
    original = util.get_ip_address
    assert loopback.apply() is None
    assert util.get_ip_address is original


def test_executor_patch_returns_the_bind_host(clean):
    clean.setenv(loopback.ENV, "127.0.0.1")
    assert loopback.apply() == "127.0.0.1"
    assert util.get_ip_address() == "127.0.0.1"
    patched = util.get_ip_address
    loopback.apply()
    assert util.get_ip_address is patched  # idempotent


def test_importing_the_map_function_module_applies_it(clean):
    # Executors import workers.jobs.train while unpickling the TFoS task: same call at import.
    import importlib

    import workers.jobs.train as train

    clean.setenv(loopback.ENV, "127.0.0.1")
    importlib.reload(train)
    assert util.get_ip_address() == "127.0.0.1"


def test_driver_side(clean):
    clean.setenv("TFOS_SERVER_HOST", "")
    loopback.configure_driver("127.0.0.1")
    import os

    assert os.environ["TFOS_SERVER_HOST"] == "127.0.0.1"
    assert os.environ[loopback.ENV] == "127.0.0.1"
    server = reservation.Server(1)
    host, port = server.start()
    try:
        assert host == "127.0.0.1"
        # bound on loopback only, not on every interface
        listening = [s for s in _sockets_listening_on(port)]
        assert listening == ["127.0.0.1"]
    finally:
        server.stop()


def _sockets_listening_on(port):
    out = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr_hex, port_hex = local.split(":")
            if int(port_hex, 16) == port and state == "0A":  # LISTEN
                out.append(socket.inet_ntoa(bytes.fromhex(addr_hex)[::-1]))
    return out


def test_tfos_tasks_apply_the_patch_in_a_fresh_worker(clean):
    # Spark may run TFoS's feed/shutdown tasks in a Python worker that never imported our code:
    # each task function is wrapped so the executor patches first.
    loopback.configure_driver("127.0.0.1")
    task = TFSparkNode.shutdown([], 0, ["input"])
    assert isinstance(task, functools.partial) and task.func is loopback.call_bound
    clean.setattr(util, "get_ip_address", lambda: "10.1.2.3")  # a fresh worker: unpatched
    seen = []
    fn = functools.partial(loopback.call_bound, lambda it: seen.append(util.get_ip_address()))
    fn(iter([]))
    assert seen == ["127.0.0.1"]
    loopback.configure_driver("127.0.0.1")  # idempotent: not wrapped twice
    again = TFSparkNode.shutdown([], 0, ["input"])
    assert again.func is loopback.call_bound and not isinstance(again.args[0], functools.partial)
