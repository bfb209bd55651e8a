"""Compare 2–10 runs side by side.

`/runs/compare/?ids=1,2,3` renders the tables server-side: hyperparameters and resources with the
differing rows highlighted, dataset, final metrics (best value marked), durations and status.
`/runs/compare/data.json?ids=1,2,3&x=step|epoch|wall` is what static/js/compare.js charts: one
dataset per run per metric, each at most MAX_POINTS points, never all raw points (a run can hold a
million). `ids` may also repeat (`?ids=1&ids=2`), as a GET form of checkboxes sends it.

Runs are looked up through `Run.objects.for_user`: an id the user's teams cannot see answers 404
with the same message as an id that does not exist, so another team's runs stay invisible.
"""

import math
import re
from dataclasses import dataclass, field

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.accounts.services import current_team
from webapp.catalog.registry import TEMPLATES
from webapp.params import BadParam, parse_id
from webapp.runs import metrics as run_metrics
from webapp.runs.models import Run

MIN_RUNS, MAX_RUNS = 2, 10
MAX_POINTS = 1000  # per run per metric in the chart data
X_AXES = {"step": "step", "epoch": "epoch", "wall": "seconds since the run's first point"}
METRIC_ORDER = ("loss", "accuracy", "epoch_loss", "epoch_accuracy", "val_loss", "val_accuracy")
HIDDEN_METRICS = ("steps_per_epoch",)  # a constant, not a curve
PICKER_RUNS = 30
MISSING = object()


class CompareError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# ---------------------------------------------------------------- selection


def parse_ids(values: list[str]) -> list[int]:
    """Run ids from `?ids=1,2,3` and/or repeated `?ids=`; distinct, in the order given."""
    ids: list[int] = []
    for raw in values:
        for part in re.split(r"[\s,]+", raw.strip()):
            if not part:
                continue
            try:
                pk = parse_id(part, "ids")
            except BadParam:
                raise CompareError(
                    f"{part[:20]!r} is not a run id; use ?ids=1,2,3 with {MIN_RUNS} to {MAX_RUNS} ids."
                ) from None
            if pk not in ids:
                ids.append(pk)
    if len(ids) < MIN_RUNS:
        got = "no run" if not ids else f"only run {ids[0]}"
        raise CompareError(f"Pick at least {MIN_RUNS} runs to compare ({got} given).")
    if len(ids) > MAX_RUNS:
        raise CompareError(f"Compare at most {MAX_RUNS} runs at a time ({len(ids)} given).")
    return ids


def load_runs(user, ids: list[int]) -> list[Run]:
    """The runs, in the order asked; CompareError(404) if any is unknown or not the user's teams'."""
    qs = Run.objects.for_user(user).select_related("dataset", "cluster", "created_by", "team")
    found = {r.pk: r for r in qs.filter(pk__in=ids)}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        noun = "Run" if len(missing) == 1 else "Runs"
        raise CompareError(f"{noun} {', '.join(missing)} not found.", status=404)
    return [found[i] for i in ids]


def selection(request) -> list[Run]:
    return load_runs(request.user, parse_ids(request.GET.getlist("ids")))


# ---------------------------------------------------------------- tables


@dataclass
class Row:
    key: str
    label: str
    cells: list  # display text per run
    differs: bool = False
    best: set = field(default_factory=set)  # indexes of the best value(s), results only
    links: list | None = None  # url per cell, or None

    @property
    def columns(self) -> list[dict]:
        """What the template iterates: text, url and whether it is the best value, per run."""
        links = self.links or [""] * len(self.cells)
        return [
            {"text": t, "url": u, "best": i in self.best}
            for i, (t, u) in enumerate(zip(self.cells, links, strict=True))
        ]


@dataclass
class Section:
    key: str
    title: str
    rows: list
    highlight: str = "diff"  # "diff": differing rows; "best": best cells


def _same(values) -> bool:
    return all(v == values[0] for v in values[1:])


def _row(key, label, raw, text=None, links=None) -> Row:
    cells = [("—" if v is MISSING or v is None or v == "" else str(v)) for v in raw] if text is None else text
    return Row(key=key, label=label, cells=cells, differs=not _same(raw), links=links)


def _hp_keys(runs) -> list[str]:
    """Every hyperparameter any run has: the template's declaration order first, then the rest."""
    keys: list[str] = []
    for run in runs:
        template = TEMPLATES.get(run.template)
        declared = [p.name for p in template.params] if template else []
        for k in declared + sorted(run.hyperparameters):
            if k in run.hyperparameters and k not in keys:
                keys.append(k)
    return keys


def hyperparameter_rows(runs) -> list[Row]:
    rows = [_row("hp:template", "Template", [r.template for r in runs], [_template_label(r) for r in runs])]
    rows.append(_row("hp:input_mode", "Input mode", [r.input_mode for r in runs]))
    for k in _hp_keys(runs):
        if k == "epochs":  # a run with an MLlib head trains for iterations instead (Run.training_length)
            lengths = [r.training_length for r in runs]
            label = "epochs" if all(n.unit == "epochs" for n in lengths) else "epochs / iterations"
            rows.append(_row("hp:epochs", label, [(n.count, n.unit) for n in lengths], [n.short for n in lengths]))
            continue
        rows.append(_row(f"hp:{k}", k, [r.hyperparameters.get(k, MISSING) for r in runs]))
    return rows


def _template_label(run) -> str:
    t = TEMPLATES.get(run.template)
    return t.label if t else run.template


def resource_rows(runs) -> list[Row]:
    return [
        _row("res:cluster", "Cluster", [r.cluster.name for r in runs]),
        _row("res:executors", "Executors", [r.num_executors for r in runs]),
        _row("res:cores", "Cores per executor", [r.executor_cores for r in runs]),
        _row("res:memory", "Memory per executor (MB)", [r.executor_memory_mb for r in runs]),
        _row("res:gpus", "GPUs per executor", [r.gpus_per_executor for r in runs]),
        _row("res:total_cores", "Total cores", [r.total_cores for r in runs]),
        _row("res:total_gpus", "Total GPUs", [r.total_gpus for r in runs]),
    ]


def dataset_rows(runs) -> list[Row]:
    ds = [r.dataset for r in runs]
    links = [d.get_absolute_url() for d in ds]
    return [
        _row("ds:dataset", "Dataset", [d.pk for d in ds], [d.name for d in ds], links=links),
        _row("ds:layout", "Layout", [d.layout for d in ds]),
        _row("ds:shape", "Shape", [list(d.shape) for d in ds], [d.shape_text for d in ds]),
        _row("ds:classes", "Classes", [d.num_classes for d in ds]),
        _row("ds:rows", "Train / test rows", [(d.train_rows, d.test_rows) for d in ds], [_rows(d) for d in ds]),
        _row("ds:split", "Split", [d.split_text for d in ds]),
    ]


def _rows(dataset) -> str:
    return f"{dataset.train_rows} / {dataset.test_rows}"


# Final-metric columns: (attribute, label, higher is better). Columns another change may add are
# shown only where the model has them (hasattr), so this works before and after that migration.
FINAL_COLUMNS = (
    ("test_accuracy", "Held-out accuracy", True),
    ("test_loss", "Held-out loss", False),
    ("final_loss", "Final training loss (last epoch)", False),
    ("best_accuracy", "Best training accuracy (epoch end)", True),
)


def _number_row(key, label, values, higher_better, fmt="{:.4f}") -> Row:
    nums = [v if isinstance(v, int | float) and math.isfinite(v) else None for v in values]
    present = [v for v in nums if v is not None]
    best = set()
    if len(present) >= 2 and min(present) != max(present):
        target = max(present) if higher_better else min(present)
        best = {i for i, v in enumerate(nums) if v == target}
    cells = ["—" if v is None else fmt.format(v) for v in nums]
    return Row(key=key, label=label, cells=cells, differs=len(set(present)) > 1, best=best)


def result_rows(runs) -> list[Row]:
    rows = [_row("res:status", "Status", [r.status for r in runs])]
    for attr, label, higher in FINAL_COLUMNS:
        if hasattr(Run, attr):
            rows.append(_number_row(f"final:{attr}", label, [getattr(r, attr, None) for r in runs], higher))
    rows.append(_row("final:test_rows", "Held-out rows", [r.test_rows for r in runs]))
    return rows


def _seconds(td):
    return None if td is None else td.total_seconds()


def _fmt_seconds(s) -> str:
    if s is None:
        return "—"
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def duration_rows(runs) -> list[Row]:
    waits = [(r.submitted_at - r.created_at).total_seconds() if r.submitted_at else None for r in runs]
    totals = [_seconds(r.duration) for r in runs]
    train = [(r.result or {}).get("train_seconds") for r in runs]
    rows = [
        _row("time:created", "Created", [r.created_at for r in runs], [f"{r.created_at:%Y-%m-%d %H:%M}" for r in runs]),
        _number_row("time:queued", "Waited in queue", waits, False),
        _number_row("time:duration", "Run duration", totals, False),
        _number_row("time:train", "Training (fit) time", train, False),
    ]
    for row, values in zip(rows[1:], (waits, totals, train), strict=True):
        row.cells = [_fmt_seconds(v) if isinstance(v, int | float) else "—" for v in values]
    return rows


def sections(runs) -> list[Section]:
    return [
        Section("hyperparameters", "Hyperparameters", hyperparameter_rows(runs)),
        Section("resources", "Resources", resource_rows(runs)),
        Section("dataset", "Dataset", dataset_rows(runs)),
        Section("results", "Status and final metrics", result_rows(runs), highlight="best"),
        Section("durations", "Durations", duration_rows(runs), highlight="best"),
    ]


# ---------------------------------------------------------------- chart data


def _metric_sort(name):
    return (METRIC_ORDER.index(name), name) if name in METRIC_ORDER else (len(METRIC_ORDER), name)


def _round(v, digits=6):
    """Fewer digits in the JSON: 6 significant figures."""
    if v is None or not math.isfinite(v) or v == 0:
        return v
    return round(v, max(0, digits - 1 - int(math.floor(math.log10(abs(v))))))


def run_series(run, x: str = "step", max_points: int = MAX_POINTS) -> dict[str, list[list[float]]]:
    """{metric: [[x, y], ...]} for one run, at most `max_points` points per metric.

    webapp.runs.metrics.series() downsamples in the database (cached per run's last point) and gives
    one series per executor; a comparison wants one curve per run, so the executors' points are
    merged here: points at the same x averaged, then, if still more than `max_points`, averaged in
    `max_points` equal-width x buckets. A downsampled series carries each bucket's lowest and
    highest value, so a merged point there is their midrange rather than the exact mean."""
    # All names, as the run page asks: a finished run's answer is then the file warm_series stored.
    data = run_metrics.series(run, max_points=max_points, x=x)
    per_name: dict[str, list] = {}
    for s in data["series"]:
        if s["name"] not in HIDDEN_METRICS:
            per_name.setdefault(s["name"], []).append(s["points"])
    return {name: merge_points(parts, max_points) for name, parts in per_name.items()}


def merge_points(parts: list[list[list[float]]], max_points: int = MAX_POINTS) -> list[list[float]]:
    """One curve from several executors' [[x, y], ...]: mean y per x, then mean x and y per bucket."""
    sums: dict[float, list[float]] = {}
    for points in parts:
        for px, py in points:
            acc = sums.setdefault(px, [0.0, 0])
            acc[0] += py
            acc[1] += 1
    xs = sorted(sums)
    merged = [(px, sums[px][0], sums[px][1]) for px in xs]  # x, sum of y, count
    if len(merged) > max_points:
        lo, hi = xs[0], xs[-1]
        scale = max_points / ((hi - lo) * (1 + 1e-9) or 1.0)
        buckets: dict[int, list[float]] = {}
        for px, sy, n in merged:
            b = buckets.setdefault(int((px - lo) * scale), [0.0, 0.0, 0])
            b[0] += px * n
            b[1] += sy
            b[2] += n
        merged = [(bx / n, sy, n) for bx, sy, n in (buckets[k] for k in sorted(buckets))]
    return [[_round(px, 9), _round(sy / n)] for px, sy, n in merged]


def chart_data(runs, x: str = "step", max_points: int = MAX_POINTS) -> dict:
    per_run = {run.pk: run_series(run, x, max_points) for run in runs}
    names = sorted({n for s in per_run.values() for n in s if n not in HIDDEN_METRICS}, key=_metric_sort)
    return {
        "x": x,
        "x_label": X_AXES[x],
        "max_points": max_points,
        "runs": [{"id": r.pk, "label": run_label(r), "url": r.get_absolute_url(), "status": r.status} for r in runs],
        "metrics": [
            {
                "name": name,
                "datasets": [{"run": r.pk, "label": run_label(r), "points": per_run[r.pk].get(name, [])} for r in runs],
            }
            for name in names
        ],
    }


def run_label(run) -> str:
    return f"#{run.pk} {run.name}" if run.name else f"#{run.pk}"


# ---------------------------------------------------------------- views


def _picker(request, checked) -> list[Run]:
    """Recent runs of the current team for the 'pick runs' form (checked ones first)."""
    qs = Run.objects.for_user(request.user).select_related("dataset")
    mine = qs.filter(team=current_team(request))
    if hasattr(Run, "archived"):
        mine = mine.filter(archived=False)
    recent = list(mine[:PICKER_RUNS])
    extra = [r for r in qs.filter(pk__in=checked) if r not in recent]
    return extra + recent


def _checked(request) -> list[int]:
    raw = request.GET.getlist("ids") + request.GET.getlist("with")
    out = []
    for part in (p for v in raw for p in re.split(r"[\s,]+", v) if p):
        try:
            out.append(parse_id(part, "ids"))
        except BadParam:
            pass  # only pre-checks the picker's boxes: a bad id is left unchecked
    return out


@require_GET
def compare(request):
    """The comparison page; without `ids` (e.g. from the run page's "Compare with…"), a run picker."""
    x = request.GET.get("x") if request.GET.get("x") in X_AXES else "step"
    ctx = {"x_axes": X_AXES, "x": x, "min_runs": MIN_RUNS, "max_runs": MAX_RUNS}
    status = 200
    if "ids" in request.GET:
        try:
            runs = selection(request)
        except CompareError as exc:
            ctx["error"], status = exc.message, exc.status
        else:
            ctx.update(runs=runs, sections=sections(runs), ids=[r.pk for r in runs])
            return render(request, "history/compare.html", ctx)
    checked = _checked(request)
    ctx.update(picker=_picker(request, checked), checked=checked)
    return render(request, "history/compare.html", ctx, status=status)


@require_GET
def compare_data(request):
    """Chart data: {"x", "x_label", "max_points", "runs": [...], "metrics": [{"name", "datasets": [...]}]}."""
    x = request.GET.get("x", "step")
    if x not in X_AXES:
        return JsonResponse({"error": f"x must be one of {', '.join(X_AXES)}"}, status=400)
    try:
        runs = selection(request)
    except CompareError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    return JsonResponse(chart_data(runs, x))
