from django.contrib import messages
from django.http import FileResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from webapp.accounts.services import can_submit, current_team

from .forms import UploadForm
from .ingest import DatasetError, preview
from .models import Dataset
from .services import create_dataset


def dataset_list(request):
    team = current_team(request)
    datasets = Dataset.objects.for_user(request.user).filter(team=team)
    return render(request, "datasets/list.html", {"datasets": datasets, "team": team, "form": UploadForm()})


@require_http_methods(["GET", "POST"])
def dataset_upload(request):
    team = current_team(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    wants_json = request.headers.get("x-requested-with") == "XMLHttpRequest"
    if request.method == "POST":
        error = None
        if not can_submit(request.user, team):
            error = "Viewers cannot upload datasets."
        elif form.is_valid():
            try:
                ds = create_dataset(
                    team=team,
                    user=request.user,
                    name=form.cleaned_data["name"],
                    upload=form.cleaned_data["file"],
                    label_column=form.cleaned_data["label_column"] or "label",
                    layout=form.cleaned_data["layout"],
                    shape_text=form.cleaned_data["shape"],
                )
            except DatasetError as exc:
                error = str(exc)
            else:
                if wants_json:
                    return JsonResponse({"url": ds.get_absolute_url()})
                messages.success(request, f"Dataset {ds.name} is ready.")
                return redirect("dataset_detail", pk=ds.pk)
        else:
            error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        if wants_json:
            return JsonResponse({"error": error}, status=400)
        messages.error(request, error)
    return render(request, "datasets/upload.html", {"form": form, "team": team})


SKETCHES_PER_CLASS = 3
SKETCH_CLASSES = 8


def _sketches(samples) -> list[tuple[str, list]]:
    """Sequence datasets: (class name, up to SKETCHES_PER_CLASS preview rows) per class seen in the preview."""
    by_class: dict[int, list] = {}
    for row in samples:
        rows = by_class.setdefault(row.label_index, [])
        if len(rows) < SKETCHES_PER_CLASS:
            rows.append(row)
    return [(rows[0].label, rows) for _, rows in sorted(by_class.items())][:SKETCH_CLASSES]


def dataset_detail(request, pk):
    ds = get_object_or_404(Dataset.objects.for_user(request.user), pk=pk)
    samples = preview(ds.storage_dir, n=24)
    sketches = _sketches(samples) if ds.is_sequence else []
    runs = ds.runs.order_by("-created_at")[:20]
    return render(request, "datasets/detail.html", {"ds": ds, "samples": samples, "sketches": sketches, "runs": runs})


def dataset_download(request, pk):
    ds = get_object_or_404(Dataset.objects.for_user(request.user), pk=pk)
    return FileResponse(open(ds.original_path(), "rb"), as_attachment=True, filename=ds.original_name)
