"""workers.jobs.reservation_poll: TFoS's reservation handshake with a 0.1 s poll, through TFoS's
real reservation server and clients on loopback sockets."""

import re
import threading
import time

import pytest
from tensorflowonspark import reservation

from workers.jobs import reservation_poll


class FakeSc:
    def __init__(self):
        self.cancelled = self.stopped = False

    def cancelAllJobs(self):  # noqa: N802 - SparkContext's name
        self.cancelled = True

    def stop(self):
        self.stopped = True


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(reservation.Server, "await_reservations", reservation.Server.await_reservations)
    monkeypatch.setattr(reservation.Client, "await_reservations", reservation.Client.await_reservations)
    monkeypatch.setenv("TFOS_SERVER_HOST", "127.0.0.1")
    reservation_poll.apply()
    assert reservation.Server.await_reservations is reservation_poll.server_await_reservations
    assert reservation.Client.await_reservations is reservation_poll.client_await_reservations


def test_all_nodes_see_the_cluster_within_a_fraction_of_a_second(patched, caplog):
    server = reservation.Server(2)
    addr = server.start()
    try:
        seen, ends = {}, {}

        def node(i, delay):
            time.sleep(delay)
            client = reservation.Client(addr)
            client.register({"executor_id": i})
            seen[i] = client.await_reservations()
            ends[i] = time.monotonic()
            client.close()

        threads = [threading.Thread(target=node, args=(i, 0.3 * i)) for i in range(2)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        with caplog.at_level("INFO", logger="tensorflowonspark.reservation"):
            info = server.await_reservations(FakeSc(), {}, timeout=10)
        driver_done = time.monotonic()
        for t in threads:
            t.join(5)
    finally:
        server.stop()
    assert sorted(r["executor_id"] for r in info) == [0, 1]
    assert all(sorted(r["executor_id"] for r in seen[i]) == [0, 1] for i in range(2))
    # TFoS's loops took >= 1 s here (a poll each second, and a second more after the answer)
    assert driver_done - t0 < 0.9 and max(ends.values()) - t0 < 0.9
    assert re.search(r"waiting for [12] reservations", caplog.text) and "all reservations completed" in caplog.text


def test_the_timeout_and_a_failed_node_still_end_the_wait(patched):
    server = reservation.Server(2)
    server.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(Exception, match="timed out waiting for reservations"):
            server.await_reservations(FakeSc(), {}, timeout=0.5)
        assert time.monotonic() - t0 < 2
        sc = FakeSc()
        with pytest.raises(SystemExit):
            server.await_reservations(sc, {"error": "boom"}, timeout=10)
        assert sc.cancelled and sc.stopped
    finally:
        server.stop()
