"""Downloads never follow a symlink planted in a run's, dataset's or model file's folder (webapp/safefiles.py).

Each case first serves a real file through the URL (so the URL is the one that reads that file), then
replaces it by a link to a file outside the folder: the answer is a 404 (or an empty log), never the
file behind the link.
"""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from webapp import safefiles
from webapp.datasets.models import Dataset
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db

SECRET = b"root:x:0:0:SECRET-OUTSIDE-THE-RUN-DIR\n"
REAL = b"REAL-FILE-IN-THE-RUN-DIR\n"


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "outside" / "passwd"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def run(make_run):
    r = make_run(status=Run.Status.SUCCEEDED)
    r.run_dir.mkdir(parents=True)
    return r


@pytest.fixture
def api_a(alice):
    c = APIClient()
    c.force_authenticate(alice[0])
    return c


def plant(path, target=None, content=REAL):
    """A real file at `path`, or (with `target`) a symlink to `target`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if target is None:
        path.write_bytes(content)
    else:
        path.symlink_to(target)


def body(resp) -> bytes:
    return b"".join(resp.streaming_content) if resp.streaming else resp.content


# (file in the run dir, URL name, extra URL args, query)
FILE_URLS = [
    ("driver.log", "run_log_driver", ["driver"], {}),
    ("driver.log", "run_log_driver", ["driver"], {"download": "1"}),
    ("executors/1/stderr", "run_log", ["1", "stderr"], {}),
    ("predictions/predictions.csv", "run_predictions_csv", [], {}),
    ("model/model.keras", "run_model", [], {}),
    ("model/model.zip", "run_model", [], {}),
    ("driver.log", "api:run-log-driver", ["driver"], {}),
    ("executors/1/stdout", "api:run-log", ["1", "stdout"], {}),
    ("model/model.keras", "api:run-model", [], {}),
    ("predictions/predictions.csv", "api:run-predictions-csv", [], {}),
]


@pytest.mark.parametrize("rel,name,args,query", FILE_URLS)
def test_a_planted_link_is_not_followed(client_a, api_a, run, outside, rel, name, args, query):
    client = api_a if name.startswith("api:") else client_a
    url = reverse(name, args=[run.pk, *args])
    plant(run.run_dir / rel)
    resp = client.get(url, query)
    assert resp.status_code == 200 and REAL.strip() in body(resp)

    plant(run.run_dir / rel, target=outside)
    resp = client.get(url, query)
    assert resp.status_code == 404, body(resp)[:200]
    assert SECRET.strip() not in body(resp)


def test_a_linked_folder_is_not_followed(client_a, api_a, run, outside):
    """executors/ itself a link to a folder outside: its logs are neither listed nor served."""
    (outside.parent / "1").mkdir()
    (outside.parent / "1" / "stderr").write_bytes(SECRET)
    (run.run_dir / "executors").symlink_to(outside.parent, target_is_directory=True)
    assert client_a.get(reverse("run_log", args=[run.pk, "1", "stderr"])).status_code == 404
    assert api_a.get(reverse("api:run-log", args=[run.pk, "1", "stderr"])).status_code == 404
    listed = api_a.get(reverse("api:run-logs", args=[run.pk])).json()
    assert all(entry["source"] != "1" for entry in listed)


def test_live_log_and_log_search_do_not_follow_a_link(client_a, run, outside):
    plant(run.run_dir / "driver.log", target=outside)
    live = client_a.get(reverse("run_live", args=[run.pk]), {"log": "driver", "off:driver": "0"}).json()
    assert live["logs"]["driver"] == {"text": "", "offset": 0, "size": 0}
    search = client_a.get(reverse("run_log_search", args=[run.pk]), {"log": "driver:stdout", "q": "root"})
    assert search.status_code == 404 and SECRET.strip() not in search.content
    plant(run.run_dir / "driver.log", content=b"root is here\n")  # the real file is searched
    search = client_a.get(reverse("run_log_search", args=[run.pk]), {"log": "driver:stdout", "q": "root"})
    assert search.status_code == 200 and search.json()["count"] == 1


def test_artifact_listing_leaves_out_links(api_a, run, outside):
    plant(run.run_dir / "model" / "model.keras")
    plant(run.run_dir / "predictions" / "predictions.csv", target=outside)
    data = api_a.get(reverse("api:run-artifacts", args=[run.pk])).json()
    assert data["model"]["size"] == len(REAL) and data["predictions_csv"] is None
    plant(run.run_dir / "driver.log", target=outside)
    assert all(entry["source"] != "driver" for entry in api_a.get(reverse("api:run-logs", args=[run.pk])).json())


def test_predictions_parquet_linked_to_another_run_is_not_read(client_a, api_a, run, make_run, bob):
    """A link to another team's predictions: the table stays empty instead of showing their rows."""
    theirs = make_run(name="theirs", team=bob[1], created_by=bob[0], status=Run.Status.SUCCEEDED)
    other = theirs.run_dir / "predictions" / "predictions.parquet"
    other.parent.mkdir(parents=True)
    table = pa.table({"row_id": [987654], "label": [1], "prediction": [1], "confidence": [0.5]})
    pq.write_table(table, other)
    ours = run.run_dir / "predictions" / "predictions.parquet"
    plant(ours, target=other)
    api_page = api_a.get(reverse("api:run-predictions", args=[run.pk]))
    assert "987654" not in api_page.content.decode()
    web_page = client_a.get(reverse("run_predictions", args=[run.pk]))
    assert web_page.status_code == 200 and "987654" not in web_page.content.decode()
    ours.unlink()
    pq.write_table(table, ours)  # the same file for real: shown
    assert "987654" in api_a.get(reverse("api:run-predictions", args=[run.pk])).content.decode()


def test_dataset_original_download_does_not_follow_a_link(client_a, alice, outside):
    user, team = alice
    ds = Dataset.objects.create(
        team=team, created_by=user, name="d", status="READY", source_format="csv", original_name="d.csv"
    )
    url = reverse("dataset_download", args=[ds.pk])
    plant(ds.upload_dir / "original.csv")
    assert body(client_a.get(url)) == REAL
    plant(ds.upload_dir / "original.csv", target=outside)
    resp = client_a.get(url)
    assert resp.status_code == 404 and SECRET.strip() not in body(resp)


# ---- the helper itself ---------------------------------------------------------------------------


def test_open_under_refuses_links_escapes_and_non_files(tmp_path, outside):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_bytes(REAL)
    with safefiles.open_under(root, root / "sub" / "f") as fh:
        assert fh.read() == REAL
    with safefiles.open_under(root, "sub/f") as fh:
        assert fh.read() == REAL
    (root / "link").symlink_to(outside)
    (root / "dirlink").symlink_to(outside.parent, target_is_directory=True)
    os.mkfifo(root / "fifo")
    for bad in ("link", "dirlink/passwd", "sub/../link", "../outside/passwd", str(outside), "sub", "fifo"):
        with pytest.raises(safefiles.Refused):
            safefiles.open_under(root, bad)
    with pytest.raises(FileNotFoundError):
        safefiles.open_under(root, "sub/missing")
    assert safefiles.stat_under(root, "link") is None and safefiles.stat_under(root, "sub/f").st_size == len(REAL)
    # The root itself may be a link (an operator's volume): it is followed.
    (tmp_path / "root-link").symlink_to(root, target_is_directory=True)
    assert safefiles.is_file_under(tmp_path / "root-link", "sub/f")
