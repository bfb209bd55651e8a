"""A refused request never breaks its keep-alive connection for the next one (webapp/keepalive.py),
against a real gunicorn started as `make run` starts it (workers.commands.web_argv, webapp/gunicorn.conf.py).

Raw sockets, one connection per try: a POST whose body the application does not read (refused on its
Origin, refused without credentials), then a GET on the same connection must get its answer; a POST
refused from a Content-Length past the upload limit is answered `Connection: close`."""

import os
import socket
import subprocess
import time

import pytest
from django.db import connection

from webapp.api import tokens
from workers.commands import web_argv

TRIES = 8
BODY = 1 << 20  # far past the 64 KiB gunicorn drains by itself
UPLOAD_LIMIT = 200_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    db = connection.settings_dict
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SECRET_KEY": "test-only-secret",
        "SPARKDECK_VAR_DIR": str(tmp_path / "var"),
        "SPARKDECK_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    }
    argv = web_argv(port, workers=1)  # as `make run` starts it: its config has the hook
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "web.log", "wb"))
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "web.log").read_text()) from None
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def _read_response(sock) -> tuple[str, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return "CLOSED", {}
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return lines[0], headers


def _multipart(size: int) -> tuple[bytes, str]:
    head = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
    return head + b"x" * size + b"\r\n--zz--\r\n", "multipart/form-data; boundary=zz"


def _refused_then_next(port, path, headers, size=BODY, declared=None):
    """(first response's status line and headers, the second request's status line or why it failed)."""
    body, ctype = _multipart(size)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Type: {ctype}"]
    lines += [f"Content-Length: {declared or len(body)}", *headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        first = _read_response(sock)
        try:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            second = _read_response(sock)[0]
        except OSError as exc:
            second = f"ERROR {exc!r}"
    return first, second


@pytest.mark.parametrize(
    "path, headers, status",
    [
        ("/accounts/login/", ["Origin: http://evil.example"], "403"),  # CSRF: refused on its Origin
        ("/datasets/upload/", [], "302"),  # not logged in: to the login page
        ("/api/datasets/", [], "401"),  # no credentials
    ],
)
def test_next_request_after_a_refused_body_is_answered(gunicorn, path, headers, status):
    answered = []
    for _ in range(TRIES):
        (first, first_headers), second = _refused_then_next(gunicorn, path, headers)
        assert first.split()[1] == status, first
        assert first_headers.get("connection") == "keep-alive"
        answered.append(second)
    assert answered == ["HTTP/1.1 200 OK"] * TRIES


def test_upload_refused_from_its_length_says_connection_close(gunicorn, alice):
    key = tokens.issue(alice[0])
    for _ in range(TRIES):
        (first, headers), _second = _refused_then_next(
            gunicorn, "/api/datasets/", [f"Authorization: Token {key}"], size=2 * BODY
        )
        assert first.split()[1] == "413", first
        assert headers.get("connection") == "close"  # so no client sends another request on it
    # and a small refused body keeps its connection on the same server
    (first, headers), second = _refused_then_next(gunicorn, "/api/datasets/", [f"Authorization: Token {key}"], 1000)
    assert first.split()[1] == "400" and headers.get("connection") == "keep-alive" and second == "HTTP/1.1 200 OK"
