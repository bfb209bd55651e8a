"""The run page marks an executor log whose copy is incomplete, with the copier's reason."""

import json
import socket

import pytest

from workers.backends.executor_logs import LogCopier

APP = "app-20260101000000-0003"


@pytest.fixture
def run(submitted_run):
    return submitted_run


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
def test_incomplete_log_is_marked_with_its_reason(client_a, run):
    out = run.run_dir / "executors"
    (out / "0").mkdir(parents=True)
    (out / "0" / "stderr").write_bytes(b"first half\n")
    port = closed_port()  # the executor's worker is gone when the final copy is made
    (out / "sources.json").write_text(json.dumps({"0": {"ui": f"http://127.0.0.1:{port}", "app_id": APP}}))
    LogCopier(run.run_dir, APP, timeout=1).collect(final=True)
    reason = f"worker 127.0.0.1:{port} not reachable (ConnectionError)"

    page = client_a.get(f"/runs/{run.pk}/").content.decode()
    assert f'<option value="0:stderr" data-incomplete="{reason}">executor 0 stderr (incomplete)</option>' in page
    assert f'<option value="0:stdout" data-incomplete="{reason}">executor 0 stdout (incomplete)</option>' in page
    assert 'id="log-incomplete"' in page
    live = client_a.get(f"/runs/{run.pk}/live.json").json()
    assert live["incomplete_logs"] == {"0:stderr": reason, "0:stdout": reason}


@pytest.mark.django_db
def test_a_whole_copy_or_one_merely_behind_is_not_marked(client_a, run):
    out = run.run_dir / "executors"
    (out / "0").mkdir(parents=True)
    (out / "status.json").write_text(
        json.dumps(
            {
                "0/stderr": {"complete": True, "copied": 5, "total": 5, "reason": "", "final": True},
                "0/stdout": {"complete": False, "copied": 5, "total": 9, "reason": "", "final": False},
                "../x": {"complete": False, "reason": "not a log of this run"},
            }
        )
    )
    page = client_a.get(f"/runs/{run.pk}/").content.decode()
    assert '<option value="0:stderr">executor 0 stderr</option>' in page
    assert '<option value="0:stdout">executor 0 stdout</option>' in page
    assert client_a.get(f"/runs/{run.pk}/live.json").json()["incomplete_logs"] == {}
