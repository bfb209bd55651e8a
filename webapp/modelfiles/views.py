from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from webapp import safefiles
from webapp.accounts.services import can_submit, current_team
from webapp.datasets.uploads import limited_upload
from workers.jobs.modelfile import ModelFileError

from .forms import ModelUploadForm
from .models import ModelFile
from .services import create_model_file


def _runs_using(mf, limit: int = 20):
    """The team's runs that use this model file: a hyperparameter "file:<pk>" (a template's model
    reference) or, should the Run model get one, a foreign key to ModelFile. Newest first."""
    from webapp.runs.models import Run

    ref = f"file:{mf.pk}"
    runs = Run.objects.filter(team=mf.team).order_by("-created_at")
    for rel in ModelFile._meta.related_objects:
        if rel.related_model is Run:
            return list(runs.filter(**{rel.field.name: mf})[:limit])
    found = []
    for run in runs.only("pk", "name", "status", "hyperparameters", "created_at")[:1000]:
        if isinstance(run.hyperparameters, dict) and ref in map(str, run.hyperparameters.values()):
            found.append(run)
            if len(found) == limit:
                break
    return found


@require_GET
def model_list(request):
    team = current_team(request)
    model_files = ModelFile.objects.for_user(request.user).filter(team=team)
    return render(
        request,
        "modelfiles/list.html",
        {"model_files": model_files, "team": team, "can_upload": can_submit(request.user, team)},
    )


def _too_large(request, message):
    if request.headers.get("x-requested-with") == "XMLHttpRequest":
        return JsonResponse({"error": message}, status=413)
    messages.error(request, message)
    return redirect("modelfile_upload")  # nothing of the body was read: a fresh form


@require_http_methods(["GET", "POST"])
@limited_upload(_too_large)
def model_upload(request):
    team = current_team(request)
    allowed = can_submit(request.user, team)
    form = ModelUploadForm(request.POST or None, request.FILES or None)
    if request.method == "GET":
        return render(request, "modelfiles/upload.html", _upload_context(form, team, allowed))
    wants_json = request.headers.get("x-requested-with") == "XMLHttpRequest"
    status = 400
    if not allowed:
        error, status = "Viewers cannot upload models; ask a team owner for the member role.", 403
    elif form.is_valid():
        try:
            mf = create_model_file(
                team=team, user=request.user, name=form.cleaned_data["name"], upload=form.cleaned_data["file"]
            )
        except ModelFileError as exc:
            error = str(exc)
        else:
            if wants_json:
                return JsonResponse({"url": mf.get_absolute_url(), "status": mf.status})
            messages.success(request, f"Model {mf.name} is stored; it is being checked.")
            return redirect(mf)
    else:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    if wants_json:
        return JsonResponse({"error": error}, status=status)
    messages.error(request, error)
    return render(request, "modelfiles/upload.html", _upload_context(form, team, allowed), status=status)


def _upload_context(form, team, allowed):
    return {"form": form, "team": team, "can_upload": allowed, "max_upload_bytes": settings.MAX_UPLOAD_BYTES}


@require_GET
def model_detail(request, pk):
    mf = get_object_or_404(ModelFile.objects.for_user(request.user), pk=pk)
    return render(request, "modelfiles/detail.html", {"mf": mf, "runs": _runs_using(mf)})


@require_GET
def model_download(request, pk):
    mf = get_object_or_404(ModelFile.objects.for_user(request.user), pk=pk)
    try:
        fh = safefiles.open_under(mf.storage_path.parent, mf.storage_path)  # no link planted in its folder
    except OSError:
        raise Http404("The model file is missing from storage.") from None
    return FileResponse(fh, as_attachment=True, filename=mf.original_name, content_type="application/octet-stream")
