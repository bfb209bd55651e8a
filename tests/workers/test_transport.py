"""The embedded broker: messages written atomically, so a polling consumer never reads a partial one."""

import os
import threading
import uuid

from kombu import Connection

from workers import transport


def options(tmp_path):
    q = tmp_path / "q"
    q.mkdir()
    (tmp_path / "control").mkdir()  # kombu does not create it; without it bindings are lost
    # control_folder too: kombu's default is ./control, i.e. wherever the tests run.
    return {"data_folder_in": str(q), "data_folder_out": str(q), "store_processed": False,
            "control_folder": str(tmp_path / "control")}  # fmt: skip


def fresh_queue_name():
    # kombu caches declared exchanges per process (class-level state): a name reused with a
    # new control folder would never get its binding written there.
    return f"t-{uuid.uuid4().hex[:8]}"


def test_no_visible_message_file_before_it_is_complete(tmp_path, monkeypatch):
    transport.install()
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        # At the moment of the rename the payload is complete and nothing else is visible.
        seen.append(sorted(p for p in os.listdir(tmp_path / "q") if p.endswith(".msg")))
        assert os.path.getsize(src) > 0
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    with Connection("filesystem://", transport_options=options(tmp_path)) as conn:
        assert isinstance(conn.transport, transport.AtomicFilesystemTransport)
        q = conn.SimpleQueue(fresh_queue_name())
        q.put({"n": 1})
        q.close()
    assert seen == [[]]


def test_concurrent_producer_and_polling_consumer_lose_and_break_nothing(tmp_path):
    transport.install()
    opts = options(tmp_path)
    n = 300
    name = fresh_queue_name()

    def produce():
        with Connection("filesystem://", transport_options=opts) as conn:
            q = conn.SimpleQueue(name)
            for i in range(n):
                q.put({"i": i, "pad": "x" * 5000})
            q.close()

    producer = threading.Thread(target=produce)
    got = []
    with Connection("filesystem://", transport_options=opts) as conn:
        q = conn.SimpleQueue(name)
        producer.start()
        while len(got) < n:
            msg = q.get(timeout=10)  # raises on a malformed message, as the worker would
            got.append(msg.payload["i"])
            msg.ack()
        q.close()
    producer.join()
    assert sorted(got) == list(range(n))
