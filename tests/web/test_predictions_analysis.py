"""The prediction analysis page, the filtered/paged prediction table and the lazy backfill."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.urls import reverse
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from webapp.runs import analysis
from webapp.runs.models import Run
from workers.jobs import analysis as job_analysis
from workers.jobs import inference

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_row_groups(monkeypatch):
    """Many row groups in the sorted copy, so cells span several and statistics are used."""
    monkeypatch.setattr(job_analysis, "SORTED_ROW_GROUP_ROWS", 16)
    monkeypatch.setattr(job_analysis, "BATCH_ROWS", 50)


@pytest.fixture
def run_a(alice, cluster, digits_dataset):
    user, team = alice
    return Run.objects.create(
        team=team, created_by=user, name="run-a", dataset=digits_dataset, template="cnn", cluster=cluster
    )


def digits_predictions(run, seed=0):
    """Predictions for the dataset's real test rows: ~15% wrong, some of them very confident."""
    test = pq.read_table(run.dataset.storage_dir / "test.parquet", columns=["row_id", "label"])
    row_id = test.column("row_id").to_numpy()
    label = test.column("label").to_numpy()
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(label)) < 0.15
    pred = np.where(wrong, (label + rng.integers(1, 10, len(label))) % 10, label)
    conf = np.round(rng.uniform(0.3, 1.0, len(label)), 3).astype(np.float32)
    return row_id, label, pred, conf


def write_raw(run, row_id, label, pred, conf, row_group_size=None):
    """predictions.parquet as a run finished before the analysis existed left it: no analysis.json."""
    d = run.run_dir / "predictions"
    d.mkdir(parents=True, exist_ok=True)
    table = pa.table({"row_id": row_id, "label": label, "prediction": pred, "confidence": pa.array(conf, pa.float32())})
    pq.write_table(table, d / "predictions.parquet", row_group_size=row_group_size)


def write_job(run, row_id, label, pred, conf):
    rows = list(zip(row_id.tolist(), label.tolist(), pred.tolist(), conf.tolist(), strict=True))
    inference.write_predictions(rows, str(run.run_dir / "predictions"), num_classes=10)


def expected_ids(arrays, f: analysis.Filters, by_class=True):
    row_id, label, pred, conf = arrays
    mask = np.ones(len(row_id), bool)
    if f.true is not None:
        mask &= label == f.true
    if f.pred is not None:
        mask &= pred == f.pred
    if f.errors:
        mask &= label != pred
    if f.conf_min is not None:
        mask &= conf >= np.float32(f.conf_min)
    if f.conf_max is not None:
        mask &= conf <= np.float32(f.conf_max)
    idx = np.nonzero(mask)[0]
    if not by_class:
        return row_id[idx][np.argsort(row_id[idx], kind="stable")].tolist()
    order = np.lexsort((row_id[idx], -np.nan_to_num(conf[idx], nan=-np.inf), pred[idx], label[idx]))
    return row_id[idx][order].tolist()


def all_pages(run, f, per_page):
    ids, page, pages = [], 1, None
    while pages is None or page <= pages:
        p = analysis.prediction_page(run, f, page, per_page)
        assert len(p.rows) <= per_page
        ids += [r["row_id"] for r in p.rows]
        pages, page = p.pages, page + 1
    return ids, p.total


FILTERS = [
    analysis.Filters(),
    analysis.Filters(true=3),
    analysis.Filters(pred=7),
    analysis.Filters(true=2, pred=5),
    analysis.Filters(errors=True),
    analysis.Filters(errors=True, pred=1),
    analysis.Filters(conf_min=0.5),
    analysis.Filters(conf_max=0.42),
    analysis.Filters(conf_min=0.25, conf_max=0.61),
    analysis.Filters(true=4, conf_min=0.7),
    analysis.Filters(errors=True, conf_min=0.9),
    analysis.Filters(true=0, pred=0, conf_min=0.2, conf_max=0.8),
    analysis.Filters(conf_min=0.999, conf_max=1.0),
]


def synthetic(n=3000, k=10, seed=3, nan_every=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.8, label, rng.integers(0, k, n))
    conf = np.round(rng.random(n), 2).astype(np.float32)
    if nan_every:
        conf[::nan_every] = np.nan
    return np.arange(n, dtype=np.int64) * 2 + 1, label.astype(np.int64), pred.astype(np.int64), conf


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: f.query() or "none")
def test_filters_and_paging_match_a_brute_force_scan(run_a, small_row_groups, f):
    arrays = synthetic()
    write_job(run_a, *arrays)
    ids, total = all_pages(run_a, f, per_page=37)
    want = expected_ids(arrays, f, by_class=f.active)
    assert total == len(want) and ids == want


def test_confidence_filters_with_nan_confidence(run_a, small_row_groups):
    arrays = synthetic(nan_every=13)
    write_job(run_a, *arrays)
    for f in (analysis.Filters(conf_max=0.5), analysis.Filters(true=1, conf_min=0.1), analysis.Filters(true=1)):
        ids, total = all_pages(run_a, f, per_page=50)
        assert ids == expected_ids(arrays, f) and total == len(ids)


def test_scanning_fallbacks_give_the_same_rows(run_a, small_row_groups, monkeypatch):
    arrays = synthetic()
    write_job(run_a, *arrays)
    f = analysis.Filters(errors=True, conf_min=0.3, conf_max=0.9)
    monkeypatch.setattr(analysis, "MAX_SEARCHED_CELLS", 0)  # too many cells to search: scan the sorted copy
    page = analysis.prediction_page(run_a, f, 2, 40)
    assert page.scanned and [r["row_id"] for r in page.rows] == expected_ids(arrays, f)[40:80]
    assert page.total == len(expected_ids(arrays, f))
    (run_a.run_dir / "predictions" / job_analysis.SORTED_FILE).unlink()  # no sorted copy: scan in row order
    monkeypatch.setattr(job_analysis, "ensure_analysis", lambda *a: (_ for _ in ()).throw(OSError("read-only")))
    page = analysis.prediction_page(run_a, f, 3, 40)
    assert page.scanned and [r["row_id"] for r in page.rows] == expected_ids(arrays, f, by_class=False)[80:120]
    last = analysis.prediction_page(run_a, f, 10**6, 40)  # past the end: the last page
    assert last.page == last.pages and last.rows


def test_unfiltered_paging_reads_a_foreign_file_with_one_huge_row_group(run_a, monkeypatch):
    monkeypatch.setattr(job_analysis, "BATCH_ROWS", 64)  # 3000 rows > 4 batches: read a batch at a time
    arrays = synthetic()
    write_raw(run_a, *arrays)
    page = analysis.prediction_page(run_a, analysis.Filters(), 30, 50)
    assert [r["row_id"] for r in page.rows] == arrays[0][29 * 50 : 30 * 50].tolist()
    assert page.total == 3000 and page.pages == 60
    assert not (run_a.run_dir / "predictions" / "analysis.json").exists()  # no filter: no analysis needed
    assert analysis.prediction_page(run_a, analysis.Filters(), 999, 50).page == 60  # clamped


def test_predictions_page_filters_and_pager_links(client_a, run_a):
    arrays = digits_predictions(run_a)
    write_job(run_a, *arrays)
    url = reverse("run_predictions", args=[run_a.pk])
    resp = client_a.get(url, {"true": 3, "errors": 1, "conf_min": "0.5"})
    assert resp.status_code == 200
    f = analysis.Filters(true=3, errors=True, conf_min=0.5)
    want = expected_ids(arrays, f)
    assert resp.context["page"].total == len(want) > 0
    assert [r["row_id"] for r in resp.context["rows"]] == want[:50]
    body = resp.content.decode()
    assert f"{len(want)} matching row" in body and 'class="miss"' in body
    all_rows = client_a.get(url, {"page": 2})
    assert 'href="?page=3"' in all_rows.content.decode() and all_rows.context["page"].total == len(arrays[0])
    resp = client_a.get(url, {"errors": 1, "page": 2})  # ~54 misclassified rows: two pages
    assert resp.context["page"].page == 2 and "?errors=1&amp;page=1" in resp.content.decode()


def test_bad_filter_values_are_dropped_with_a_message(client_a, run_a):
    write_job(run_a, *digits_predictions(run_a))
    resp = client_a.get(reverse("run_predictions", args=[run_a.pk]), {"true": "11", "conf_min": "x", "pred": "2"})
    assert resp.status_code == 200
    assert resp.context["filters"] == analysis.Filters(pred=2)
    body = resp.content.decode()
    assert "true class must be a class index from 0 to 9" in body and "conf min must be a number" in body
    resp = client_a.get(reverse("run_predictions", args=[run_a.pk]), {"conf_min": "0.9", "conf_max": "0.1"})
    assert resp.context["filters"] == analysis.Filters() and "above max" in resp.content.decode()


def test_analysis_page_numbers_match_sklearn(client_a, run_a):
    row_id, label, pred, conf = digits_predictions(run_a)
    write_job(run_a, row_id, label, pred, conf)
    resp = client_a.get(reverse("run_analysis", args=[run_a.pk]))
    assert resp.status_code == 200
    body = resp.content.decode()
    data = client_a.get(reverse("run_analysis_json", args=[run_a.pk])).json()
    assert np.array_equal(np.array(data["confusion"]), confusion_matrix(label, pred, labels=range(10)))
    assert data["accuracy"] == pytest.approx((label == pred).mean(), abs=1e-6)
    p, r, f, s = precision_recall_fscore_support(label, pred, labels=range(10), zero_division=0)
    assert [c["f1"] for c in data["per_class"]] == pytest.approx(f.tolist(), abs=1e-6)
    assert [c["precision"] for c in data["per_class"]] == pytest.approx(p.tolist(), abs=1e-6)
    assert data["class_names"] == run_a.dataset.class_names
    assert f"{data['accuracy']:.4f}" in body and 'id="confusion"' in body
    # a cell links to its filtered predictions; the matrix shows counts and row shares
    t, q = divmod(int(np.argmax(confusion_matrix(label, pred) - np.diag([10**6] * 10))), 10)
    assert f"?true={t}&amp;pred={q}" in body and 'class="share"' in body
    # the gallery: the most confident mistakes, as thumbnails from the dataset's test.parquet
    wrong = np.nonzero(label != pred)[0]
    best = wrong[np.lexsort((row_id[wrong], -conf[wrong]))][0]
    gallery = resp.context["gallery"]
    assert gallery[0]["row_id"] == row_id[best] and gallery[0]["src"].startswith("data:image/png;base64,")
    assert len(gallery) == min(analysis.GALLERY_SIZE, len(wrong))
    assert 'id="gallery"' in body and f"row {row_id[best]}" in body
    assert (run_a.run_dir / "predictions" / analysis.GALLERY_FILE).exists()  # cached for the next view
    assert client_a.get(reverse("run_analysis", args=[run_a.pk])).context["gallery"] == gallery


def test_rows_by_id_reads_only_what_it_needs(run_a):
    test = run_a.dataset.storage_dir / "test.parquet"
    ids = pq.read_table(test, columns=["row_id"]).column(0).to_pylist()
    want = [ids[0], ids[-1], ids[len(ids) // 2], 10**9]
    got = analysis.rows_by_id(test, want, run_a.dataset.shape, batch_rows=7)
    assert sorted(got) == sorted(want[:3]) and got[ids[0]].shape == tuple(run_a.dataset.shape)


def test_old_run_is_analysed_lazily_once(client_a, run_a):
    arrays = digits_predictions(run_a)
    write_raw(run_a, *arrays)
    pred_dir = run_a.run_dir / "predictions"
    assert not (pred_dir / "analysis.json").exists()
    resp = client_a.get(reverse("run_analysis", args=[run_a.pk]))
    assert resp.status_code == 200 and resp.context["an"] is not None
    stored = json.loads((pred_dir / "analysis.json").read_text())
    assert stored["rows"] == len(arrays[0]) and (pred_dir / "by_class.parquet").exists()
    mtime = (pred_dir / "analysis.json").stat().st_mtime_ns
    client_a.get(reverse("run_analysis", args=[run_a.pk]))
    client_a.get(reverse("run_predictions", args=[run_a.pk]), {"true": 1})
    assert (pred_dir / "analysis.json").stat().st_mtime_ns == mtime  # read, not recomputed
    # predictions rewritten (a different file): recomputed
    write_raw(run_a, *(a[:100] for a in arrays))
    assert client_a.get(reverse("run_analysis_json", args=[run_a.pk])).json()["rows"] == 100


def test_backfill_command(run_a, capsys):
    from django.core.management import call_command

    write_raw(run_a, *digits_predictions(run_a))
    call_command("backfill_analysis", str(run_a.pk))
    assert "computed (360 rows)" in capsys.readouterr().out
    call_command("backfill_analysis", str(run_a.pk))
    assert "current" in capsys.readouterr().out


def test_run_without_predictions(client_a, run_a):
    resp = client_a.get(reverse("run_analysis", args=[run_a.pk]))
    assert resp.status_code == 200 and 'id="no-analysis"' in resp.content.decode()
    assert client_a.get(reverse("run_analysis_json", args=[run_a.pk])).status_code == 404
    resp = client_a.get(reverse("run_predictions", args=[run_a.pk]), {"true": 1})
    assert resp.status_code == 200 and "No predictions." in resp.content.decode()


def test_unreadable_predictions_show_an_error(client_a, run_a):
    (run_a.run_dir / "predictions").mkdir(parents=True)
    (run_a.run_dir / "predictions" / "predictions.parquet").write_bytes(b"not parquet")
    resp = client_a.get(reverse("run_analysis", args=[run_a.pk]))
    assert resp.status_code == 200 and "could not be analysed" in resp.content.decode()


def new_urls(run):
    return [
        reverse("run_analysis", args=[run.pk]),
        reverse("run_analysis_json", args=[run.pk]),
        reverse("run_series", args=[run.pk]),
        reverse("run_predictions", args=[run.pk]) + "?true=1&conf_min=0.5",
    ]


def test_other_team_gets_404_on_every_new_url(client_a, client_b, run_a):
    write_job(run_a, *digits_predictions(run_a))
    for url in new_urls(run_a):
        assert client_a.get(url).status_code == 200, url
        assert client_b.get(url).status_code == 404, url


def test_login_required_on_every_new_url(client, run_a):
    write_job(run_a, *digits_predictions(run_a))
    for url in new_urls(run_a):
        resp = client.get(url)
        assert resp.status_code == 302 and "/accounts/login/" in resp["Location"], url
        assert client.get(url, HTTP_ACCEPT="application/json").status_code == 401, url
