"""A refused request must not break its keep-alive connection for the next one.

Django answers many requests without reading their body (a CSRF or login refusal, a 401, an upload
refused from its Content-Length). The bytes left unread on the socket then belong to no request:
gunicorn (27) drains at most 64 KiB of them after the response and otherwise closes the connection,
although its response already said `Connection: keep-alive` (it decides after the headers, and WSGI
lets no application send a `Connection` header of its own). The client's next request on that
connection is then lost.

Two parts, one rule (`drain_limit`: the largest body the server would accept anyway, the upload limit
plus the form's overhead):

- `DrainUnreadBody` (wraps the WSGI application in webapp/wsgi.py, any server): once the response has
  been sent, the unread rest of a body up to that size is read and discarded, so the connection is
  clean and stays usable.
- `pre_request` (a gunicorn server hook: `gunicorn -c python:webapp.keepalive`): a request that
  declares a larger body is never drained (refusing it unread is the point), so gunicorn is told to
  close that connection, and the response says `Connection: close`.
"""

from django.conf import settings

CHUNK = 64 * 1024


def drain_limit() -> int:
    from webapp.datasets.uploads import FORM_OVERHEAD_BYTES

    return settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


def declared_length(value) -> int | None:
    """A Content-Length header's value, or None when it is absent or malformed (the server refuses those)."""
    if value is None or not str(value).isascii() or not str(value).isdigit():
        return None
    return int(value)


def _may_have_body(environ) -> bool:
    length = declared_length(environ.get("CONTENT_LENGTH"))
    return bool(length) or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def drain(stream, limit: int) -> int:
    """Read and discard what is left of a request body, at most `limit` bytes; returns the bytes read."""
    total = 0
    while total < limit:
        data = stream.read(min(CHUNK, limit - total))
        if not data:
            break
        total += len(data)
    return total


class _ThenDrain:
    """The application's response iterable; closing it (after the response is sent) drains the body."""

    def __init__(self, result, environ):
        self.result = result
        self.environ = environ

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        finally:
            length = declared_length(self.environ.get("CONTENT_LENGTH"))
            limit = drain_limit()
            if length is None or length <= limit:
                try:
                    drain(self.environ["wsgi.input"], limit)
                except OSError:
                    pass  # the client went away: nothing left to keep clean


class DrainUnreadBody:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        result = self.app(environ, start_response)
        if not _may_have_body(environ):
            return result  # untouched: a file response keeps the server's sendfile path
        return _ThenDrain(result, environ)


def pre_request(worker, req):
    """gunicorn hook: a body larger than any the server drains means this connection closes; say so."""
    length = next((declared_length(v) for name, v in req.headers if name == "CONTENT-LENGTH"), None)
    if length is not None and length > drain_limit():
        req.force_close()
