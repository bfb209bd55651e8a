"""The command-line client's own parts: config, argument parsing, error messages, the streamed
upload body and the log follower, against small fake HTTP servers (tests/e2e/test_cli.py runs it
against the live stack)."""

import json
import stat
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from sparkdeck_cli import config
from sparkdeck_cli.client import Api, ApiError, MultipartBody, describe
from sparkdeck_cli.main import cli, parse_sets
from tests.fake_http import QuietHandler, serve
from webapp.runs.artifacts import whole_chars
from workers.localcluster import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(config.URL_ENV, raising=False)
    monkeypatch.delenv(config.TOKEN_ENV, raising=False)
    return tmp_path


def run_cli(*args, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    return result


# ---------------------------------------------------------------- config


def test_save_is_private_and_env_overrides_each_value(env, monkeypatch):
    path = config.save("http://h:8000", "sdk_file")
    assert path == env / "config" / "sparkdeck" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = config.load()
    assert (loaded.url, loaded.token) == ("http://h:8000", "sdk_file")
    monkeypatch.setenv(config.TOKEN_ENV, "sdk_env")
    loaded = config.load()
    assert (loaded.url, loaded.token) == ("http://h:8000", "sdk_env")
    monkeypatch.setenv(config.URL_ENV, "https://other/")
    assert config.load().url == "https://other"


def test_a_file_made_readable_by_others_is_made_private_again(env):
    path = config.save("http://h", "sdk_1")
    path.chmod(0o644)
    config.save("http://h", "sdk_2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and json.loads(path.read_text())["token"] == "sdk_2"


@pytest.mark.parametrize(
    "url, expected",
    [("127.0.0.1:8000", "http://127.0.0.1:8000"), ("https://s.example/sd/", "https://s.example/sd")],
)
def test_normalize_url(url, expected):
    assert config.normalize_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h", "http://", "http://h/?a=1"])
def test_bad_urls_are_refused(url):
    with pytest.raises(config.ConfigError):
        config.normalize_url(url)


def test_unreadable_config_and_no_login_are_messages_not_tracebacks(env):
    result = run_cli("runs", "list")
    assert result.exit_code == 1 and "not logged in: run `sparkdeck login`" in result.output
    path = env / "config" / "sparkdeck" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    result = run_cli("runs", "list")
    assert result.exit_code == 1 and f"Cannot read {path}" in result.output


# ---------------------------------------------------------------- parsing


def test_parse_sets_keeps_values_as_text_for_the_server():
    assert parse_sets(("epochs=5", " learning_rate = 0.01", "name=a=b")) == {
        "epochs": "5",
        "learning_rate": "0.01",
        "name": "a=b",
    }


@pytest.mark.parametrize("bad", [("epochs",), ("=5",), ("epochs=1", "epochs=2")])
def test_parse_sets_refuses(bad, env, monkeypatch):
    monkeypatch.setenv(config.URL_ENV, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(config.TOKEN_ENV, "sdk_x")
    args = [a for item in bad for a in ("--set", item)]
    result = run_cli("runs", "submit", "--dataset", 1, "--template", "cnn", "--cluster", 1, *args)
    assert result.exit_code == 2 and "--set" in result.output


def test_describe_the_api_error_bodies():
    assert describe({"detail": "Not found."}) == "Not found."
    assert describe({"epochs": ["must be between 1 and 500"], "non_field_errors": ["x"]}) == (
        "epochs: must be between 1 and 500; x"
    )


def test_the_client_imports_neither_webapp_nor_workers():
    code = (
        "import sys, sparkdeck_cli.main; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'webapp', 'workers', 'django'}); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = subprocess.run([sys.executable, "-m", "sparkdeck_cli", "--help"], cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0 and "runs" in shown.stdout


# ---------------------------------------------------------------- HTTP errors


class Canned(QuietHandler):
    """Answers each path from `routes`: (code, body or callable(handler) -> body)."""

    routes: dict = {}
    seen: list = []

    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # an upload's body
        self.seen.append((self.path, self.headers.get("Authorization")))
        code, body = self.routes.get(urlsplit(self.path).path, (404, {"detail": "Not found."}))
        if callable(body):
            body = body(self)
        if isinstance(body, bytes | str):
            self._send(body, "text/html", code)
        else:
            self._send(json.dumps(body), code=code)

    do_POST = do_GET


@pytest.fixture
def fake():
    handler = type("Handler", (Canned,), {"routes": {}, "seen": []})
    server, url = serve(handler)
    yield handler, url
    server.shutdown()


@pytest.mark.parametrize(
    "code, body, words",
    [
        (401, {"detail": "Invalid token."}, ["Invalid token", "run `sparkdeck login`"]),
        (403, {"detail": "Viewers cannot submit runs."}, ["forbidden: Viewers cannot submit runs."]),
        (404, {"detail": "Not found."}, ["not found: /api/runs/7/"]),
        (400, {"expr": ["unexpected end"]}, ["expr: unexpected end"]),
        (500, "<html>oops</html>", ["the server failed (HTTP 500)"]),
        (200, "<html>not an API</html>", ["did not answer JSON", "a Sparkdeck server?"]),
    ],
)
def test_http_errors_are_one_clear_line(fake, code, body, words):
    handler, url = fake
    handler.routes["/api/runs/7/"] = (code, body)
    result = run_cli("runs", "show", 7, env={config.URL_ENV: url, config.TOKEN_ENV: "sdk_t"})
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output
    assert handler.seen == [("/api/runs/7/", "Token sdk_t")]


def test_connection_refused_names_the_url(env):
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("runs", "list", env={config.URL_ENV: url, config.TOKEN_ENV: "sdk_t"})
    assert result.exit_code == 1 and f"cannot reach {url}" in result.output


def test_urls_the_api_answers_go_to_the_logged_in_server_only():
    api = Api("https://sd.example/base", "sdk_t")
    assert api.absolute("/api/runs/") == "https://sd.example/base/api/runs/"
    assert api.absolute("https://sd.example/base/api/runs/?cursor=a") == "https://sd.example/base/api/runs/?cursor=a"
    assert api.absolute("http://internal:8000/api/runs/3/artifacts/model/") == (
        "https://sd.example/api/runs/3/artifacts/model/"
    )


def test_list_follows_next_pages_up_to_the_limit(fake):
    handler, url = fake

    def page(h):
        query = parse_qs(urlsplit(h.path).query)
        n = int(query.get("cursor", ["0"])[0])
        nxt = f"{url}/api/runs/?cursor={n + 1}&expr=x" if n < 2 else None
        return {"results": [{"id": n * 10 + i} for i in range(2)], "next": nxt}

    handler.routes["/api/runs/"] = (200, page)
    env = {config.URL_ENV: url, config.TOKEN_ENV: "sdk_t"}
    result = run_cli("runs", "list", "--filter", "accuracy > 0.9", "--json", "--limit", 5, env=env)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)] == [0, 1, 10, 11, 20]
    first = parse_qs(urlsplit(handler.seen[0][0]).query)
    assert first["expr"] == ["accuracy > 0.9"] and first["size"] == ["5"]


# ---------------------------------------------------------------- logs --follow


def test_follow_reads_from_next_offset_until_the_run_has_ended(fake):
    """The log grows while the run goes on; each byte is printed once and the follower stops after the
    run is terminal (the bytes written before that, and the launcher's note just after, are still read)."""
    handler, url = fake
    log = bytearray(b"line 1\n")
    state = {"polls": 0}
    lock = threading.Lock()

    def run(h):
        with lock:
            state["polls"] += 1
            if state["polls"] == 2:
                log.extend("line 2 é\n".encode())
            if state["polls"] == 3:
                log.extend(b"last line\n")
                # As the driver's launcher does: its note of the exit comes just after the run ended.
                threading.Timer(0.3, lambda: log.extend(b"[launcher] exit code 0\n")).start()
                return {"id": 3, "status": "SUCCEEDED", "terminal": True, "executors": []}
        return {"id": 3, "status": "RUNNING", "terminal": False, "executors": []}

    def chunk(h):
        offset = int(parse_qs(urlsplit(h.path).query)["offset"][0])
        data = whole_chars(bytes(log[offset : offset + 4]))  # small chunks, several reads per poll, as the API
        nxt = offset + len(data)
        text = data.decode(errors="replace")
        return {"offset": offset, "next_offset": nxt, "size": len(log), "eof": nxt >= len(log), "text": text}

    handler.routes["/api/runs/3/"] = (200, run)
    handler.routes["/api/runs/3/logs/driver/"] = (200, chunk)
    env = {config.URL_ENV: url, config.TOKEN_ENV: "sdk_t"}
    result = run_cli("runs", "logs", 3, "--follow", "--interval", 0.1, env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == log.decode() == "line 1\nline 2 é\nlast line\n[launcher] exit code 0\n"


def test_logs_of_a_missing_executor_name_the_known_ones(fake):
    handler, url = fake
    handler.routes["/api/runs/3/"] = (200, {"id": 3, "status": "SUCCEEDED", "terminal": True, "executors": ["0", "1"]})
    env = {config.URL_ENV: url, config.TOKEN_ENV: "sdk_t"}
    result = run_cli("runs", "logs", 3, "--executor", 9, env=env)
    assert result.exit_code == 1 and "no executor 9's stderr (executors: 0, 1)" in result.output


# ---------------------------------------------------------------- upload body


def test_multipart_body_streams_what_it_declares(tmp_path, rf):
    from django.http.multipartparser import MultiPartParser

    data = tmp_path / 'we"ird name.npz'
    data.write_bytes(bytes(range(256)) * 4000)  # over one read chunk
    seen = []
    body = MultipartBody({"name": "digits ü", "test_fraction": "0.25"}, {"file": data}, seen.append)
    raw = b"".join(body)
    assert len(raw) == len(body) == sum(seen)
    request = rf.post("/", data=raw, content_type=body.content_type)
    fields, files = MultiPartParser(request.META, request, request.upload_handlers).parse()
    assert fields["name"] == "digits ü" and fields["test_fraction"] == "0.25"
    assert files["file"].read() == data.read_bytes()
    assert files["file"].name == "we%22ird name.npz"


def test_upload_failure_message_is_the_apis(fake, tmp_path):
    handler, url = fake
    handler.routes["/api/datasets/"] = (400, {"file": ["Unsupported file type."]})
    f = tmp_path / "x.txt"
    f.write_text("hello")
    result = run_cli("datasets", "upload", f, env={config.URL_ENV: url, config.TOKEN_ENV: "sdk_t"})
    assert result.exit_code == 1 and "file: Unsupported file type." in result.output


def test_api_error_keeps_the_status():
    err = ApiError("x", 404, {"detail": "Not found."})
    assert err.status == 404 and str(err) == "x"


def test_login_asks_for_the_token_checks_it_and_saves_it(fake, env):
    handler, url = fake
    handler.routes["/api/clusters/"] = (200, [{"id": 1, "name": "local"}])
    (env / "config" / "sparkdeck").mkdir(parents=True)
    (env / "config" / "sparkdeck" / "config.json").write_text("{not json")  # what the login replaces
    result = CliRunner().invoke(cli, ["login", "--url", url + "/"], input="sdk_typed\n")
    assert result.exit_code == 0, result.output
    assert f"Create a token at {url}/api/token/" in result.output and "sdk_typed" not in result.output
    assert handler.seen == [("/api/clusters/", "Token sdk_typed")]
    saved = json.loads((env / "config" / "sparkdeck" / "config.json").read_text())
    assert saved == {"url": url, "token": "sdk_typed"}

    handler.routes["/api/clusters/"] = (401, {"detail": "Invalid token."})
    result = run_cli("login", "--token", "sdk_old")  # the saved URL
    assert result.exit_code == 1 and f"{url} refused the token: make a new one at {url}/api/token/" in result.output
    assert json.loads((env / "config" / "sparkdeck" / "config.json").read_text())["token"] == "sdk_typed"
