"""Cells of the run table, rendered in Python: 50 rows × up to 17 columns through `{% include %}`
and `{% if %}` chains were the page's largest cost (docs/bench-history.md); a row's cells are joined
directly, each value escaped once (format_html_join per row cost six times as much)."""

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from webapp.runs.models import training_length

register = template.Library()
DASH = "—"


@register.filter
def seconds(value) -> str:
    """92.4 → "1m 32s"; 4000 → "1h 06m"; None → "—"."""
    if value is None:
        return DASH
    s = int(round(float(value)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


@register.filter
def metric(value, digits=4) -> str:
    """A float for a table cell: 4 decimals (significant digits below 0.001), "—" for None."""
    if value is None:
        return DASH
    value = float(value)
    return f"{value:.{int(digits)}g}" if 0 < abs(value) < 1e-3 else f"{value:.{int(digits)}f}"


def _plain(value) -> str:
    return DASH if value is None else str(value)


def _name(run):
    notes = format_html(' <span class="hint" title="{}">✎</span>', run.notes[:300]) if run.notes else ""
    return format_html('<a href="{}">{}</a>{}', run.get_absolute_url(), run.name or "(unnamed)", notes)


def _resources(run):
    gpus = f", {run.gpus_per_executor} GPU" if run.gpus_per_executor else ""
    return f"{run.num_executors} × {run.executor_cores} core, {run.executor_memory_mb} MB{gpus}"


def _length(run) -> str:
    """Epochs, or an MLlib head's iterations, from the JSON keys team_runs annotates (the JSON
    fields themselves are deferred)."""
    hp = {k: v for k, v in (("head", run.hp_head), ("max_iter", run.hp_max_iter)) if v is not None}
    return training_length(run.template, hp, {"iterations": run.result_iterations}, run.epochs).short


def _tags(run):
    return format_html_join(" ", '<a class="tag" href="?{}">{}</a>', ((urlencode({"tag": t}), t) for t in run.tag_list))


CELLS = {
    "name": _name,
    "status": lambda r: format_html(
        '<span class="st"><span class="status s-{}">{}</span></span>', r.status.lower(), r.status
    ),
    "template": lambda r: r.template,
    "dataset": lambda r: format_html(
        '<a href="{}">{}</a>', reverse("dataset_detail", args=[r.dataset_id]), r.dataset.name
    ),
    "epochs": lambda r: _length(r),
    "batch_size": lambda r: _plain(r.batch_size),
    "learning_rate": lambda r: metric(r.learning_rate),
    "test_accuracy": lambda r: metric(r.test_accuracy),
    "test_loss": lambda r: metric(r.test_loss),
    "best_accuracy": lambda r: metric(r.best_accuracy),
    "final_loss": lambda r: metric(r.final_loss),
    "duration": lambda r: seconds(r.duration_s),
    "cluster": lambda r: r.cluster.name,
    "resources": _resources,
    "submitter": lambda r: r.created_by.username if r.created_by_id else DASH,
    "tags": _tags,
    "created": lambda r: format_html(
        '<time datetime="{}">{}</time>', r.created_at.isoformat(), r.created_at.strftime("%Y-%m-%d %H:%M")
    ),
}


@register.simple_tag
def cells(run, columns):
    """The row's <td>s for `columns` (webapp/history/table.py COLUMNS; keys are identifiers)."""
    return mark_safe(
        "".join(
            f'<td class="c-{c.key}{" num" if c.numeric else ""}">{conditional_escape(CELLS[c.key](run))}</td>'
            for c in columns
        )
    )
