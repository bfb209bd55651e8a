"""Fixtures for the workers/jobs tests: no Django, no Spark (except test_cluster.py, opt-in)."""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.jobs.digits import write_digits_parquet  # noqa: E402


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The digits dataset in the architecture.md Parquet layout (meta + absolute paths)."""
    return write_digits_parquet(tmp_path_factory.mktemp("digits"))


class _Sink:
    def __init__(self, server):
        self.server = server
        self.requests = []  # (path, headers dict, parsed JSON body)
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}/ingest/runs/1/metrics"

    def points(self, executor=None):
        return [p for _, _, b in self.requests if executor in (None, b["executor"]) for p in b["points"]]


@pytest.fixture
def sink():
    """A tiny metrics endpoint on 127.0.0.1 that records every POST."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            box.requests.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box = _Sink(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()
