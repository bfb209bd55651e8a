"""The web server as the stack starts it (workers.commands.web_argv → webapp/gunicorn.conf.py): its
resolved settings, strictly parsed overrides, kept-alive connections that outlive clients' idle pauses,
a control socket of its own under the stack's var dir, and PostgreSQL connections kept across requests.
Real gunicorn processes."""

import http.client
import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from workers.commands import BIN, WEB_CONFIG, web_argv
from workers.localcluster import free_port

REPO = Path(__file__).resolve().parents[2]


def env_for(var_dir: Path, **extra) -> dict:
    return {**os.environ, "DJANGO_SECRET_KEY": "test-only-secret", "SPARKDECK_VAR_DIR": str(var_dir), **extra}


def resolved(argv, env) -> dict:
    """gunicorn's own view of its settings (--print-config: every setting as `name = value`)."""
    proc = subprocess.run([*argv, "--print-config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pairs = (line.split(" = ", 1) for line in proc.stdout.splitlines() if " = " in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_web_argv_takes_every_setting_from_the_config(tmp_path):
    cfg = resolved(web_argv(8123), env_for(tmp_path))
    assert cfg["bind"] == "['127.0.0.1:8123']"
    assert (cfg["workers"], cfg["threads"], cfg["worker_class"]) == ("2", "4", "gthread")
    assert (cfg["keepalive"], cfg["timeout"], cfg["graceful_timeout"]) == ("75", "60", "30")
    assert (cfg["backlog"], cfg["max_requests"], cfg["worker_connections"]) == ("2048", "0", "1000")


def test_workers_and_threads_from_the_environment_and_the_argument(tmp_path):
    cfg = resolved(web_argv(8123), env_for(tmp_path, SPARKDECK_WEB_WORKERS="3", SPARKDECK_WEB_THREADS=" 8 "))
    assert (cfg["workers"], cfg["threads"]) == ("3", "8")
    cfg = resolved(web_argv(8123, workers=1), env_for(tmp_path, SPARKDECK_WEB_WORKERS="3"))
    assert cfg["workers"] == "1"  # the caller's count wins (the benches' single process)


@pytest.mark.parametrize("name", ["SPARKDECK_WEB_WORKERS", "SPARKDECK_WEB_THREADS"])
@pytest.mark.parametrize("value", ["abc", "0", "1.5", "", "-2"])
def test_a_bad_count_stops_the_server_from_starting(tmp_path, name, value):
    proc = subprocess.run(
        [*web_argv(free_port()), "--check-config"],
        cwd=REPO,
        env=env_for(tmp_path, **{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "ImproperlyConfigured" in proc.stderr and name in proc.stderr


def start_server(tmp_path, **extra_env):
    """gunicorn as web_argv starts it, answering /healthz; its var dir is tmp_path/var unless given."""
    port = free_port()
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen(
        web_argv(port), cwd=REPO, env={**env_for(tmp_path / "var"), **extra_env}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().read() == b"ok":
                conn.close()
                break
        except OSError:
            pass
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "web.log").read_text()
        time.sleep(0.3)
    proc.port, proc.var_dir, proc.log_path = port, tmp_path / "var", tmp_path / "web.log"
    return proc


def stop_server(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


@pytest.fixture
def server(tmp_path):
    proc = start_server(tmp_path)
    yield proc
    stop_server(proc)


def test_a_connection_idle_longer_than_gunicorns_default_keep_alive_is_still_served(server):
    """gunicorn's default keep-alive (2 s) closed connections that clients pausing 1–3 s between
    requests still reused; a request sent as the server closed was reset."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.auto_open = 0  # a closed connection raises instead of being reopened silently
    conn.connect()
    local = conn.sock.getsockname()
    for pause in (0, 4, 6):
        time.sleep(pause)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"ok")
        assert resp.getheader("Connection", "").lower() != "close"
        assert conn.sock is not None and conn.sock.getsockname() == local
    conn.close()


def test_the_control_socket_is_the_servers_own_under_the_var_dir(server):
    path = server.var_dir / "run" / f"web-{server.port}.ctl"
    deadline = time.time() + 30
    while not path.exists():
        assert time.time() < deadline, server.log_path.read_text()
        time.sleep(0.2)
    assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o600
    proc = subprocess.run(
        [str(BIN / "gunicornc"), "-s", str(path), "-c", "show workers", "-j"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["workers"]) == 2
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)
    assert not path.exists()  # a stopped server leaves no stale socket


def test_compose_runs_the_web_with_the_same_config():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = " ".join(compose["services"]["web"]["command"])
    assert f"gunicorn -c {WEB_CONFIG.relative_to(REPO)} webapp.wsgi" in command
    for flag in ("--workers", "--threads", "--keep-alive", "--timeout", "-w ", "-k "):
        assert flag not in command  # one place for the server's settings


SERVER_APP_NAME = "sparkdeck-test-web"


def server_backends(cursor) -> int:
    """The test server's connections (named by it: the e2e stack may hold connections of its own)."""
    cursor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
        [SERVER_APP_NAME],
    )
    return cursor.fetchone()[0]


@pytest.mark.parametrize("url_suffix,kept", [("", True), ("?conn_max_age=0", False)])
def test_database_connections_are_kept_across_requests(transactional_db, alice, tmp_path, url_suffix, kept):
    """A page's PostgreSQL connection outlives its request (one per web thread), unless DATABASE_URL
    says conn_max_age=0, as Django's default did: a connection opened and closed per request."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    url += f"?application_name={SERVER_APP_NAME}" + url_suffix.replace("?", "&")
    client = Client()
    client.force_login(alice[0])
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    proc = start_server(tmp_path, DATABASE_URL=url)
    try:
        with connection.cursor() as cursor:
            assert server_backends(cursor) == 0
            conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
            for _ in range(12):
                conn.request("GET", "/datasets/", headers={"Cookie": cookie})
                resp = conn.getresponse()
                assert (resp.status, resp.read().count(b"Datasets") > 0) == (200, True)
            conn.close()
            time.sleep(0.5)
            held = server_backends(cursor)
        threads = 2 * 4  # web workers × threads (the config's defaults)
        assert (1 <= held <= threads) if kept else held == 0, held
    finally:
        stop_server(proc)


def test_a_var_dir_it_cannot_write_costs_the_control_socket_only(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    # (a broker URL: the embedded broker's folders would need the var dir too; nothing connects to it)
    env = {"SPARKDECK_VAR_DIR": str(tmp_path / "file" / "var"), "CELERY_BROKER_URL": "redis://127.0.0.1:9/0"}
    proc = start_server(tmp_path, **env)  # serves /healthz
    try:
        time.sleep(1)  # the control server starts after the workers
        log = proc.log_path.read_text()
        # Not gunicorn's default path either, shared by every gunicorn of the user.
        assert "no control socket" in log and "Control socket listening" not in log, log
    finally:
        stop_server(proc)
