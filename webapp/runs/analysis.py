"""A run's prediction analysis and its prediction table, read without loading the files whole.

The job writes ``predictions/analysis.json`` and ``predictions/by_class.parquet`` right after the
predictions (``workers/jobs/analysis.py``, which documents both); for a run finished before that,
the first request that needs them computes them with the same streaming function and stores them.

The table:
- unfiltered, it pages through predictions.parquet (sorted by row_id) reading only the row groups
  a page covers;
- filtered (true class, predicted class, misclassified only, confidence min/max), it pages through
  by_class.parquet, where every confusion-matrix cell is a contiguous range of rows (its offset is
  the sum of the cells before it) sorted by confidence, highest first. A class filter is a set of
  ranges from the matrix alone; a confidence bound is found in each range from row-group statistics
  plus at most a few row groups' confidence column. Only with a confidence filter over more than
  ``MAX_SEARCHED_CELLS`` cells (very many classes) does a request scan, row group by row group.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pyarrow.parquet as pq

from webapp import safefiles
from webapp.datasets import thumbs
from workers.jobs import analysis as job_analysis

from .models import Run

_to_numpy = job_analysis.to_numpy

PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_SEARCHED_CELLS = 4096
GALLERY_SIZE = 32
MATRIX_MAX_CLASSES = 40  # a bigger matrix is summarized as its largest confusions
TOP_CONFUSIONS = 20
GALLERY_FILE = "gallery.json"
_CACHE: OrderedDict = OrderedDict()  # parsed analysis.json by (path, mtime, size); a few runs at most
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def pred_dir(run: Run) -> Path:
    return run.run_dir / "predictions"


def has_predictions(run: Run) -> bool:
    # Through safefiles: a link planted in the run dir (e.g. to another run's predictions) is no file.
    return safefiles.is_file_under(run.run_dir, pred_dir(run) / job_analysis.PREDICTIONS_FILE)


@dataclass
class Analysis:
    """analysis.json, with the matrix as numpy and the classes padded to the dataset's count."""

    data: dict
    directory: Path
    confusion: np.ndarray  # [true, predicted] counts
    offsets: np.ndarray = field(init=False)  # row where each cell (row-major) starts in by_class.parquet

    def __post_init__(self):
        flat = self.confusion.ravel()
        self.offsets = np.concatenate([[0], np.cumsum(flat)[:-1]]).astype(np.int64)

    @property
    def k(self) -> int:
        return self.confusion.shape[0]

    @property
    def sorted_path(self) -> Path | None:
        path = self.directory / job_analysis.SORTED_FILE
        return path if "sorted" in self.data and safefiles.is_file_under(self.directory, path) else None

    @property
    def nan_free(self) -> bool:
        return not self.data.get("confidence", {}).get("nan")


def load(run: Run, compute: bool = True) -> Analysis | None:
    """The run's analysis; computed and stored first when missing or stale (``compute``). None when
    the run has no predictions (or, with ``compute=False``, no current analysis)."""
    directory = pred_dir(run)
    num_classes = run.dataset.num_classes or None
    if not has_predictions(run):  # also: predictions/ is a real folder, not a link
        return None
    found = _read_cached(directory)
    if found is None:
        if not compute:
            return None
        try:
            data = job_analysis.ensure_analysis(str(directory), num_classes)
        except OSError:  # the run dir is read-only here: analyse in memory, filter by scanning
            data = job_analysis.analyze(str(directory / job_analysis.PREDICTIONS_FILE), num_classes)
        if data is None:
            return None
        found = data, _matrix(data)
    data, stored = found
    k = max(stored.shape[0], num_classes or 0)
    cm = stored
    if k > stored.shape[0]:  # the job saw fewer classes than the dataset has
        cm = np.zeros((k, k), np.int64)
        cm[: stored.shape[0], : stored.shape[0]] = stored
    return Analysis(data=data, directory=directory, confusion=cm)


def _matrix(data) -> np.ndarray:
    k = int(data["num_classes"])
    cm = np.asarray(data["confusion"], np.int64).reshape(k, k)
    cm.setflags(write=False)  # shared by the requests that read this file version
    return cm


def _read_cached(directory: Path) -> tuple[dict, np.ndarray] | None:
    """(analysis.json, its matrix) if current; parsed once per file version and process."""
    path = directory / job_analysis.ANALYSIS_FILE
    try:
        fh = safefiles.open_under(directory, path)
    except OSError:
        return None
    with fh:
        st = os.fstat(fh.fileno())
        key = (str(path), st.st_mtime_ns, st.st_size)
        with _CACHE_LOCK:
            found = _CACHE.get(key)
            if found is not None:
                _CACHE.move_to_end(key)
        if found is None:
            try:
                data = json.loads(fh.read().decode("utf-8"))
                found = data, _matrix(data)
            except (OSError, ValueError, KeyError, TypeError):
                return None
        with _CACHE_LOCK:
            _CACHE[key] = found
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return found if job_analysis.is_current(str(directory), found[0]) else None


# --- the analysis page ----------------------------------------------------------------------------


def classes(run: Run) -> list[tuple[int, str]]:
    """(index, name) of every class of the run's dataset, for the filters."""
    names = run.dataset.class_names or []
    return [(i, class_name(names, i)) for i in range(max(run.dataset.num_classes or 0, len(names)))]


def page_context(run: Run) -> dict:
    """What templates/runs/analysis.html shows; computes a missing analysis first (bounded memory)."""
    if not has_predictions(run):
        return {"an": None, "error": ""}
    try:
        an = load(run)
    except (OSError, ValueError) as exc:  # an unreadable predictions file (pyarrow's errors are these)
        return {"an": None, "error": f"The predictions could not be analysed: {exc}"}
    names = run.dataset.class_names
    return {
        "an": an,
        "data": an.data,
        "per_class": per_class(an, names),
        "matrix": matrix(an, names),
        "top_confusions": top_confusions(an, names),
        "gallery": gallery(run, an),
        "is_image": not run.dataset.is_sequence and thumbs.is_image_shape(run.dataset.shape),
        "error": "",
    }


def as_json(run: Run) -> dict | None:
    """The stored analysis with class names, padded to the dataset's classes (the API's view of it)."""
    an = load(run)
    if an is None:
        return None
    names = run.dataset.class_names
    keep = ("rows", "correct", "wrong", "accuracy", "macro", "weighted", "confidence", "misclassified_top")
    return {
        **{key: an.data.get(key) for key in keep},
        "num_classes": an.k,
        "class_names": [class_name(names, c) for c in range(an.k)],
        "confusion": an.confusion.tolist(),
        "per_class": per_class(an, names),
    }


def class_name(names, idx) -> str:
    try:
        return str(names[int(idx)])
    except (TypeError, ValueError, IndexError):
        return str(idx)


def per_class(an: Analysis, names) -> list[dict]:
    """Per-class precision/recall/F1 rows (every class of the dataset, also those never seen)."""
    stored = {row["class"]: row for row in an.data["per_class"]}
    empty = {"support": 0, "predicted": 0, "tp": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    return [{**empty, **stored.get(c, {}), "class": c, "name": class_name(names, c)} for c in range(an.k)]


def matrix(an: Analysis, names) -> dict | None:
    """The confusion matrix for the page: counts and shares of each true class (row-normalized),
    with the prediction table's filter for every cell; None when there are too many classes to draw."""
    if an.k > MATRIX_MAX_CLASSES:
        return None
    cm = an.confusion
    support = cm.sum(axis=1)
    rows = []
    for t in range(an.k):
        cells = []
        for p in range(an.k):
            n = int(cm[t, p])
            share = n / support[t] if support[t] else 0.0
            cells.append(
                {
                    "pred": p,
                    "count": n,
                    "share": share,
                    "percent": f"{100 * share:.1f}",
                    "alpha": f"{0.08 + 0.8 * share:.2f}" if n else "0",
                    "diagonal": t == p,
                    "query": urlencode({"true": t, "pred": p}),
                }
            )
        rows.append({"true": t, "name": class_name(names, t), "support": int(support[t]), "cells": cells})
    return {"names": [class_name(names, c) for c in range(an.k)], "rows": rows}


def top_confusions(an: Analysis, names, n: int = TOP_CONFUSIONS) -> list[dict]:
    """The largest off-diagonal cells, biggest first."""
    cm = an.confusion.copy()
    np.fill_diagonal(cm, 0)
    flat = cm.ravel()
    top = np.argsort(-flat, kind="stable")[:n]
    support = an.confusion.sum(axis=1)
    out = []
    for key in top:
        count = int(flat[key])
        if not count:
            break
        t, p = divmod(int(key), an.k)
        out.append(
            {
                "true": t,
                "pred": p,
                "true_name": class_name(names, t),
                "pred_name": class_name(names, p),
                "count": count,
                "share": count / support[t] if support[t] else 0.0,
                "query": urlencode({"true": t, "pred": p}),
            }
        )
    return out


def gallery(run: Run, an: Analysis, limit: int = GALLERY_SIZE) -> list[dict]:
    """The most confident misclassified test rows as thumbnails (image datasets only), with their
    true and predicted class; the pixels come from the dataset's test.parquet. Cached in
    ``predictions/gallery.json`` (the files behind it never change)."""
    ds = run.dataset
    if ds.is_sequence or not thumbs.is_image_shape(ds.shape):
        return []
    items = an.data.get("misclassified_top", [])[:limit]
    if not items:
        return []
    test = ds.storage_dir / "test.parquet"
    cache = an.directory / GALLERY_FILE
    key = [an.data["source"]["bytes"] if "source" in an.data else None, limit, _size(test)]
    try:
        with safefiles.open_under(an.directory, cache) as fh:
            cached = json.loads(fh.read().decode("utf-8"))
        if cached.get("key") == key:
            return _named(cached["items"], ds.class_names)
    except (OSError, ValueError, AttributeError):
        pass
    pixels = rows_by_id(test, [it["row_id"] for it in items], ds.shape)
    out = [{**it, "src": thumbs.data_uri(pixels[it["row_id"]])} for it in items if it["row_id"] in pixels]
    try:
        job_analysis._write_json(str(cache), {"key": key, "items": out})
    except OSError:
        pass  # read-only run dir: render again next time
    return _named(out, ds.class_names)


def _named(items, names) -> list[dict]:
    return [
        {**it, "label_name": class_name(names, it["label"]), "prediction_name": class_name(names, it["prediction"])}
        for it in items
    ]


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def rows_by_id(path: Path, row_ids, shape, batch_rows: int = 64) -> dict[int, np.ndarray]:
    """{row_id: features reshaped to ``shape``} for the wanted rows of a dataset Parquet file.

    Row groups whose row_id statistics cannot hold a wanted id are skipped; the others are read
    ``batch_rows`` rows at a time (images can be large), so memory stays bounded.
    """
    wanted = np.unique(np.asarray(row_ids, np.int64))
    found: dict[int, np.ndarray] = {}
    if not len(wanted) or not path.exists():
        return found
    pf = pq.ParquetFile(path)
    col = pf.schema_arrow.names.index("row_id")
    for rg in range(pf.num_row_groups):
        stats = pf.metadata.row_group(rg).column(col).statistics
        if stats is not None and stats.has_min_max:
            i = int(np.searchsorted(wanted, stats.min, side="left"))
            if i >= len(wanted) or wanted[i] > stats.max:
                continue  # no wanted id between this row group's smallest and largest
        ids = _to_numpy(pf.read_row_group(rg, columns=["row_id"]).column(0))
        hits = np.isin(ids, wanted)
        if not hits.any():
            continue
        need = int(hits.sum())
        for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[rg], columns=["row_id", "features"]):
            bids = _to_numpy(batch.column(0))
            sel = np.nonzero(np.isin(bids, wanted))[0]
            if len(sel):
                feats = _to_numpy(batch.column(1).take(sel).flatten())
                for i, values in zip(bids[sel], feats.reshape(len(sel), -1), strict=True):
                    found[int(i)] = values.reshape(shape)
                need -= len(sel)
            if need <= 0:
                break
        if len(found) == len(wanted):
            break
    return found


# --- the prediction table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    true: int | None = None
    pred: int | None = None
    conf_min: float | None = None
    conf_max: float | None = None
    errors: bool = False  # misclassified rows only

    @property
    def active(self) -> bool:
        return self != Filters()

    @property
    def by_class(self) -> bool:
        return self.true is not None or self.pred is not None or self.errors

    @property
    def by_confidence(self) -> bool:
        return self.conf_min is not None or self.conf_max is not None

    def params(self) -> dict:
        out = {}
        for name in ("true", "pred", "conf_min", "conf_max"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.errors:
            out["errors"] = 1
        return out

    def query(self) -> str:
        return urlencode(self.params())

    @classmethod
    def from_query(cls, params, num_classes: int) -> tuple[Filters, list[str]]:
        """Filters from a request's GET; out-of-range or malformed values are dropped with a message."""
        problems = []
        values = {}
        for name, label in (("true", "true class"), ("pred", "predicted class")):
            raw = (params.get(name) or "").strip()
            if not raw:
                continue
            try:
                value = int(raw)
            except ValueError:
                value = -1
            if 0 <= value < max(1, num_classes):
                values[name] = value
            else:
                problems.append(f"{label} must be a class index from 0 to {num_classes - 1}")
        for name in ("conf_min", "conf_max"):
            raw = (params.get(name) or "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if math.isfinite(value) and 0.0 <= value <= 1.0:
                values[name] = value
            else:
                problems.append(f"{name.replace('_', ' ')} must be a number from 0 to 1")
        if values.get("conf_min", 0.0) > values.get("conf_max", 1.0):
            problems.append("confidence min is above max")
            values.pop("conf_min")
            values.pop("conf_max")
        values["errors"] = (params.get("errors") or "") in ("1", "on", "true")
        return cls(**values), problems


@dataclass
class Page:
    rows: list[dict]
    total: int  # rows matching the filters
    page: int
    pages: int
    per_page: int
    ordered_by: str
    scanned: bool = False  # the request had to scan (no sorted copy, or too many cells)


ORDER_ROW_ID = "row id"
ORDER_BY_CLASS = "true class, predicted class, confidence (highest first), row id"


def prediction_page(run: Run, filters: Filters | None = None, page: int = 1, per_page: int = PER_PAGE) -> Page:
    """One page of the prediction table, filtered; reads only the row groups it needs (see module doc)."""
    filters = filters or Filters()
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    directory = pred_dir(run)
    main = directory / job_analysis.PREDICTIONS_FILE
    if not has_predictions(run):
        return Page([], 0, 1, 1, per_page, ORDER_ROW_ID)
    if not filters.active:
        rgs = _RowGroups(run, main)
        start = _clamp_start(page, per_page, rgs.total)
        rows = rgs.rows([(start, min(rgs.total, start + per_page))])
        return _page(rows, rgs.total, start, per_page, ORDER_ROW_ID)
    an = load(run)
    if an is None or an.sorted_path is None:
        return _scan_page(_RowGroups(run, main), filters, page, per_page, ORDER_ROW_ID)
    rgs = _RowGroups(run, an.sorted_path)
    spans = _class_spans(an, filters)
    if filters.by_confidence:
        if len(spans) > MAX_SEARCHED_CELLS:
            return _scan_page(rgs, filters, page, per_page, ORDER_BY_CLASS)
        spans = [s for s in (_narrow(rgs, lo, hi, filters, an.nan_free) for lo, hi in spans) if s[1] > s[0]]
    spans = _coalesce(spans)
    lengths = np.array([hi - lo for lo, hi in spans], np.int64)
    total = int(lengths.sum())
    start = _clamp_start(page, per_page, total)
    return _page(rgs.rows(_window(spans, lengths, start, per_page)), total, start, per_page, ORDER_BY_CLASS)


def _clamp_start(page: int, per_page: int, total: int) -> int:
    pages = max(1, -(-total // per_page))
    return (min(max(1, page), pages) - 1) * per_page


def _page(rows, total, start, per_page, order, scanned=False) -> Page:
    return Page(rows, total, start // per_page + 1, max(1, -(-total // per_page)), per_page, order, scanned)


def _class_spans(an: Analysis, filters: Filters) -> list[tuple[int, int]]:
    """(first row, end row) in by_class.parquet of each non-empty cell the class filters keep."""
    k = an.k
    trues = np.array([filters.true] if filters.true is not None else range(k), np.int64)
    preds = np.array([filters.pred] if filters.pred is not None else range(k), np.int64)
    keys = (trues[:, None] * k + preds[None, :]).ravel()
    if filters.errors:
        keys = keys[keys // k != keys % k]
    keys = np.sort(keys)
    counts = an.confusion.ravel()[keys]
    keys, counts = keys[counts > 0], counts[counts > 0]
    starts = an.offsets[keys]
    return list(zip(starts.tolist(), (starts + counts).tolist(), strict=True))


def _coalesce(spans):
    out = []
    for lo, hi in spans:
        if out and out[-1][1] == lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _window(spans, lengths, start: int, n: int) -> list[tuple[int, int]]:
    """The file ranges holding filtered rows start .. start + n."""
    out = []
    ends = np.cumsum(lengths)
    i = int(np.searchsorted(ends, start, side="right"))
    skip = start - (int(ends[i - 1]) if i else 0)
    while n > 0 and i < len(spans):
        lo, hi = spans[i]
        lo += skip
        take = min(n, hi - lo)
        out.append((lo, lo + take))
        n -= take
        skip = 0
        i += 1
    return out


def _narrow(rgs: _RowGroups, lo: int, hi: int, f: Filters, nan_free: bool) -> tuple[int, int]:
    """Within one cell (confidence descending, NaN last), the rows with conf_min <= confidence <= conf_max."""
    if f.conf_max is not None:
        lo = rgs.prefix_end(lo, hi, lambda v: v > f.conf_max, nan_free)
    if f.conf_min is not None:
        hi = rgs.prefix_end(lo, hi, lambda v: v >= f.conf_min, nan_free)
    elif not nan_free:
        hi = rgs.prefix_end(lo, hi, lambda v: ~np.isnan(v), nan_free)
    return lo, hi


def _scan_page(rgs: _RowGroups, f: Filters, page: int, per_page: int, order: str) -> Page:
    """Last resort: stream the file row group by row group, counting matches and keeping one page."""
    total, start, rows = 0, (max(1, page) - 1) * per_page, []
    for rg in range(rgs.num_row_groups):
        t = rgs.pf.read_row_group(rg, columns=["label", "prediction", "confidence"])
        label, pred, conf = _to_numpy(t.column(0)), _to_numpy(t.column(1)), _to_numpy(t.column(2))
        mask = np.ones(len(label), bool)
        if f.true is not None:
            mask &= label == f.true
        if f.pred is not None:
            mask &= pred == f.pred
        if f.errors:
            mask &= label != pred
        if f.conf_min is not None:
            mask &= conf >= f.conf_min
        if f.conf_max is not None:
            mask &= conf <= f.conf_max
        hits = np.nonzero(mask)[0]
        if len(rows) < per_page and total + len(hits) > start:
            take = hits[max(0, start - total) :][: per_page - len(rows)]
            rows.extend(rgs.pf.read_row_group(rg).take(take).to_pylist())
        total += len(hits)
    if start and start >= total:  # past the end: the last page, with a second pass
        return _scan_page(rgs, f, max(1, -(-total // per_page)), per_page, order)
    return _page(rows, total, start, per_page, order, True)


class _RowGroups:
    """Positions in one Parquet file by row group, with a small cache of what one request read."""

    def __init__(self, run: Run, path: Path):
        self.pf = pq.ParquetFile(safefiles.open_under(run.run_dir, path))
        md = self.pf.metadata
        self.num_row_groups = md.num_row_groups
        sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.total = int(self.starts[-1])
        self._conf_col = self.pf.schema_arrow.names.index("confidence")
        self._conf: OrderedDict = OrderedDict()

    def rg_of(self, pos: int) -> int:
        return int(np.searchsorted(self.starts, pos, side="right")) - 1

    def conf(self, rg: int) -> np.ndarray:
        if rg not in self._conf:
            col = self.pf.read_row_group(rg, columns=["confidence"]).column(0)
            self._conf[rg] = _to_numpy(col)
            while len(self._conf) > 8:
                self._conf.popitem(last=False)
        return self._conf[rg]

    def conf_range(self, rg: int) -> tuple[float, float] | None:
        stats = self.pf.metadata.row_group(rg).column(self._conf_col).statistics
        if stats is None or not stats.has_min_max:
            return None
        return float(stats.min), float(stats.max)

    def prefix_end(self, lo: int, hi: int, pred, use_stats: bool) -> int:
        """First position in [lo, hi) where ``pred`` (true on a prefix of the range) is false, else hi.

        A row group wholly inside the range is decided from its statistics when that settles it
        (all true: pred(min); none true: not pred(max)); otherwise its confidence column is read.
        """
        rg = self.rg_of(lo)
        pos = lo
        while pos < hi:
            s, e = int(self.starts[rg]), int(self.starts[rg + 1])
            a, b = pos, min(hi, e)
            stats = self.conf_range(rg) if use_stats and a == s and b == e else None
            if stats is not None and pred(np.float32(stats[0])):
                pos, rg = b, rg + 1
                continue
            if stats is not None and not pred(np.float32(stats[1])):
                return a
            m = pred(self.conf(rg)[a - s : b - s])
            if not m.all():
                return a + int(np.argmin(m))
            pos, rg = b, rg + 1
        return hi

    def rows(self, spans) -> list[dict]:
        """The rows at the given (first, end) position ranges, in order."""
        out: list[dict] = []
        for lo, hi in spans:
            pos = lo
            while pos < hi:
                rg = self.rg_of(pos)
                s, e = int(self.starts[rg]), int(self.starts[rg + 1])
                end = min(hi, e)
                out.extend(self._slice(rg, pos - s, end - s))
                pos = end
        return out

    def _slice(self, rg: int, a: int, b: int) -> list[dict]:
        size = int(self.starts[rg + 1] - self.starts[rg])
        if size <= 4 * job_analysis.BATCH_ROWS:
            return self.pf.read_row_group(rg).slice(a, b - a).to_pylist()
        out, seen = [], 0  # a huge row group (a file not written by the job): a batch at a time
        for batch in self.pf.iter_batches(batch_size=job_analysis.BATCH_ROWS, row_groups=[rg]):
            n = batch.num_rows
            if seen + n > a:
                out.extend(batch.slice(max(0, a - seen), b - max(a, seen)).to_pylist())
            seen += n
            if seen >= b:
                break
        return out


def named_rows(rows, names) -> list[dict]:
    for r in rows:
        r["label_name"] = class_name(names, r.get("label"))
        r["prediction_name"] = class_name(names, r.get("prediction"))
        r["correct"] = r.get("label") == r.get("prediction")
    return rows


def backfill(runs) -> list[tuple[int, str]]:
    """Compute the missing analyses of ``runs`` (manage.py backfill_analysis): [(run id, outcome)]."""
    out = []
    for run in runs:
        if not has_predictions(run):
            continue
        before = _read_cached(pred_dir(run))
        try:
            an = load(run)
        except (OSError, ValueError) as exc:
            out.append((run.pk, f"failed: {exc}"))
            continue
        out.append((run.pk, "current" if before else f"computed ({an.data['rows']} rows)"))
    return out
