"""A real HTTP endpoint on 127.0.0.1 that can stop listening and come back on the same port
(a web server killed and restarted), for the metrics poster's tests on both sides."""

import threading
from http.server import ThreadingHTTPServer

from tests.fake_http import QuietHandler


class OutageServer:
    """``respond(path, headers, body) -> (status, body bytes)``, or ``None`` to drop the connection
    without an answer (the server died after reading the request)."""

    def __init__(self, respond, path="/ingest/runs/1/metrics"):
        self.respond = respond
        self.path = path
        self.port = 0
        self.hits = 0  # requests that reached the handler
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def up(self) -> bool:
        return self._server is not None

    def start(self) -> "OutageServer":
        box = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                box.hits += 1
                answer = box.respond(self.path, dict(self.headers), body)
                if answer is None:
                    self.close_connection = True
                    return
                status, out = answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # reuse_address: same port again
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
