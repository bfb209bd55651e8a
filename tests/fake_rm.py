"""A recorded YARN ResourceManager on 127.0.0.1: replays tests/workers/yarn_recordings/cluster_nodes*.json
and cluster_metrics.json (hand-written after the Hadoop 3 ResourceManager REST API). Tests change
``routes`` to answer something else; the ``rm`` fixture (tests/conftest.py) starts and stops one."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECORDINGS = Path(__file__).parent / "workers" / "yarn_recordings"


class FakeRM:
    """Serves {path: (status, body)}; recordings by default, anything else 404."""

    def __init__(self, nodes="cluster_nodes.json"):
        self.routes = {
            "/ws/v1/cluster/nodes": (200, (RECORDINGS / nodes).read_text()),
            "/ws/v1/cluster/metrics": (200, (RECORDINGS / "cluster_metrics.json").read_text()),
        }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                code, body = fake.routes.get(self.path.split("?")[0], (404, "{}"))
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
