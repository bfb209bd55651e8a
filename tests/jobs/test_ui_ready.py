"""The driver prints its UI's address only once the UI's REST API answered (driver.announce_ui),
against a slow real HTTP server standing in for Spark's cold REST API."""

import time

from tests.fake_http import QuietHandler, serve
from workers.jobs import driver

APP = "app-20261202183118-0000"


def slow_ui(delay: float, code: int = 200):
    """A UI whose REST API answers after `delay` s; `.served` lists the paths asked."""
    served = []

    class Handler(QuietHandler):
        def do_GET(self):
            served.append(self.path)
            time.sleep(delay)
            self._send("[]", code=code)

    server, url = serve(Handler)
    server.served = served
    return server, url


def marker_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("SPARKDECK_UI_URL=")]


def test_the_ui_is_announced_only_after_its_slow_first_answer_which_is_awaited(capsys):
    server, url = slow_ui(1.5)
    try:
        t0 = time.time()
        thread = driver.announce_ui(url, APP)
        assert time.time() - t0 < 0.5, "the driver must not wait for its UI"
        time.sleep(1.0)
        assert marker_lines(capsys) == [], "announced before the REST API answered"
        thread.join(10)
        assert not thread.is_alive()
        assert time.time() - t0 >= 1.5
        out = capsys.readouterr().out
        assert f"SPARKDECK_UI_URL={url}" in out.splitlines()
        assert "Spark UI REST API answered after 1." in out
        assert server.served == [f"/api/v1/applications/{APP}/allexecutors"]
    finally:
        server.shutdown()


def test_an_error_status_is_an_answer(capsys):
    server, url = slow_ui(0.2, code=500)
    try:
        driver.announce_ui(url + "/", APP).join(10)
        assert marker_lines(capsys) == [f"SPARKDECK_UI_URL={url}/"]
        assert len(server.served) == 1
    finally:
        server.shutdown()


def test_a_ui_that_never_answers_is_announced_after_the_timeout(capsys):
    server, url = slow_ui(3.0)
    try:
        t0 = time.time()
        driver.announce_ui(url, APP, timeout=0.5).join(10)
        assert 0.5 <= time.time() - t0 < 2.5
        out = capsys.readouterr().out
        assert f"SPARKDECK_UI_URL={url}" in out.splitlines()
        assert "Spark UI REST API did not answer (TimeoutError) after 0." in out
    finally:
        server.shutdown()


def test_a_refused_ui_is_announced_at_once(capsys):
    from tests.fake_http import ThreadingHTTPServer

    probe = ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    url = f"http://127.0.0.1:{probe.server_port}"
    probe.server_close()  # nothing listens there now
    driver.announce_ui(url, APP).join(10)
    assert marker_lines(capsys) == [f"SPARKDECK_UI_URL={url}"]


def test_no_ui_is_said_at_once_without_a_thread(capsys):
    assert driver.announce_ui(None, APP) is None
    assert marker_lines(capsys) == ["SPARKDECK_UI_URL=None"]
