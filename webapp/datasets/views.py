from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp import safefiles
from webapp.accounts.services import can_submit, current_team

from .forms import UploadForm
from .ingest import DatasetError, column_summary, preview
from .models import Dataset
from .services import archive_dataset, delete_dataset, delete_failed_datasets
from .thumbs import image_samples
from .uploads import limited_upload


def _team_dataset(request, pk):
    """The dataset if it belongs to one of the user's teams, else 404 (never 403: ids do not leak)."""
    return get_object_or_404(Dataset.objects.for_user(request.user).select_related("created_by"), pk=pk)


def dataset_list(request):
    team = current_team(request)
    show_archived = request.GET.get("archived") == "1"
    datasets = Dataset.objects.for_user(request.user).filter(team=team).select_related("created_by")
    archived = datasets.filter(status=Dataset.Status.ARCHIVED).count()
    failed = datasets.filter(status=Dataset.Status.FAILED).count()
    if not show_archived:
        datasets = datasets.exclude(status=Dataset.Status.ARCHIVED)
    ctx = {
        "datasets": datasets,
        "team": team,
        "show_archived": show_archived,
        "archived_count": archived,
        "failed_count": failed,
        "can_edit": can_submit(request.user, team),
    }
    return render(request, "datasets/list.html", ctx)


@require_POST
def dataset_clear_failed(request):
    """Delete the current team's FAILED datasets in one go (the same role rule as deleting one)."""
    team = current_team(request)
    if not can_submit(request.user, team):
        messages.error(request, "Viewers cannot delete datasets.")
        return redirect("dataset_list")
    count = delete_failed_datasets(team)
    messages.success(request, f"Deleted {count} failed dataset{'s' if count != 1 else ''} of {team.name}.")
    return redirect("dataset_list")


def _too_large(request, message):
    return _refuse(request, request.headers.get("x-requested-with") == "XMLHttpRequest", message, status=413)


@require_http_methods(["GET", "POST"])
@limited_upload(_too_large)
def dataset_upload(request):
    team = current_team(request)
    wants_json = request.headers.get("x-requested-with") == "XMLHttpRequest"
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        error = None
        if not can_submit(request.user, team):
            error = "Viewers cannot upload datasets."
        elif form.is_valid():
            try:
                ds = form.create(team=team, user=request.user)
            except DatasetError as exc:
                error = str(exc)
            else:
                if wants_json:
                    return JsonResponse({"url": ds.get_absolute_url(), "status": ds.status})
                messages.success(request, f"Dataset {ds.name} is uploaded; it is being converted.")
                return redirect(ds)
        else:
            error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return _refuse(request, wants_json, error, status=400, form=form, team=team)
    return render(request, "datasets/upload.html", _upload_context(form, team))


def _upload_context(form, team):
    return {"form": form, "team": team, "max_upload_bytes": settings.MAX_UPLOAD_BYTES}


def _refuse(request, wants_json, error, status, form=None, team=None):
    if wants_json:
        return JsonResponse({"error": error}, status=status)
    messages.error(request, error)
    if form is None:  # nothing of the body was read: a fresh form
        return redirect("dataset_upload")
    return render(request, "datasets/upload.html", _upload_context(form, team), status=status)


SKETCHES_PER_CLASS = 3
SKETCH_CLASSES = 8
PREVIEW_ROWS = 24
# Rows read for the per-class image grid (usually all in the first Parquet row group).
SAMPLE_ROWS = 256
SUMMARY_COLUMNS = 1000  # a table's column statistics shown on its page (the first ones)


def _sketches(samples) -> list[tuple[str, list]]:
    """Sequence datasets: (class name, up to SKETCHES_PER_CLASS preview rows) per class seen in the preview."""
    by_class: dict[int, list] = {}
    for row in samples:
        rows = by_class.setdefault(row.label_index, [])
        if len(rows) < SKETCHES_PER_CLASS:
            rows.append(row)
    return [(rows[0].label, rows) for _, rows in sorted(by_class.items())][:SKETCH_CLASSES]


def _previews(ds):
    """(table rows, sequence sketches, image grid) for a dataset whose converted files exist."""
    if not ds.has_files:
        return [], [], []
    try:
        samples = preview(ds.storage_dir, n=SAMPLE_ROWS)
    except (OSError, DatasetError, KeyError, ValueError):
        return [], [], []  # files gone or unreadable: the page still shows what the row knows
    if ds.is_sequence:
        return samples[:PREVIEW_ROWS], _sketches(samples), []
    if ds.is_table:
        return samples[:PREVIEW_ROWS], [], []
    grid = image_samples(samples)
    return ([] if grid else samples[:PREVIEW_ROWS]), [], grid


def _columns(ds) -> tuple[list, int]:
    """A table dataset's column statistics (the first SUMMARY_COLUMNS) and its column count."""
    if not (ds.is_table and ds.has_files):
        return [], 0
    try:
        return column_summary(ds.storage_dir, limit=SUMMARY_COLUMNS)
    except (OSError, KeyError, ValueError, IndexError, TypeError):
        return [], 0  # meta.json gone or unreadable: the page still shows what the row knows


def dataset_detail(request, pk):
    ds = _team_dataset(request, pk)
    table, sketches, grid = _previews(ds)
    columns, column_count = _columns(ds)
    runs = ds.runs.order_by("-created_at")
    counts = [{"name": name, "count": count} for name, count in zip(ds.class_names, ds.class_counts, strict=False)]
    return render(
        request,
        "datasets/detail.html",
        {
            "ds": ds,
            "samples": table,
            "sketches": sketches,
            "image_grid": grid,
            "columns": columns,
            "column_count": column_count,
            "runs": runs[:50],
            "run_count": runs.count(),
            "class_counts": counts,
            "can_edit": can_submit(request.user, ds.team),
            "status_url": reverse("dataset_status", args=[ds.pk]),
        },
    )


@require_GET
def dataset_status(request, pk):
    ds = _team_dataset(request, pk)
    return JsonResponse(
        {
            "id": ds.pk,
            "status": ds.status,
            "label": ds.get_status_display(),
            "reason": ds.status_reason,
            "active": ds.is_active,
            "url": ds.get_absolute_url(),
        }
    )


def dataset_download(request, pk):
    ds = _team_dataset(request, pk)
    try:  # a link planted in the dataset's folder is refused like a missing file
        fh = safefiles.open_under(ds.storage_dir, ds.original_path())
    except OSError:
        raise Http404("The uploaded file is no longer stored.") from None
    return FileResponse(fh, as_attachment=True, filename=ds.original_name)


@require_POST
def dataset_delete(request, pk):
    ds = _team_dataset(request, pk)
    if not can_submit(request.user, ds.team):
        messages.error(request, "Viewers cannot delete datasets.")
        return redirect(ds)
    try:
        delete_dataset(ds)
    except DatasetError as exc:  # DatasetInUse: the page offers archiving instead
        messages.error(request, str(exc))
        return redirect(ds)
    messages.success(request, f"Dataset {ds.name} and its files were deleted.")
    return redirect("dataset_list")


@require_POST
def dataset_archive(request, pk):
    ds = _team_dataset(request, pk)
    if not can_submit(request.user, ds.team):
        messages.error(request, "Viewers cannot archive datasets.")
        return redirect(ds)
    try:
        archive_dataset(ds)
    except DatasetError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Dataset {ds.name} is archived: hidden from new runs, its files kept.")
    return redirect(ds)
