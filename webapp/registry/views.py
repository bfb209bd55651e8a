from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp import params, safefiles
from webapp.accounts.services import current_team
from webapp.catalog.registry import TEMPLATES
from webapp.modelfiles.models import ModelFile
from webapp.runs.models import Run

from . import services
from .forms import RegisterForm
from .models import RegisteredModel
from .services import NO_CHECK, RegistryError

PER_PAGE = 50
SUGGESTED_ALIASES = ("production", "candidate", "staging")


def _model(request, name) -> RegisteredModel:
    """The model `name` of the team the user works in, else of another of their teams (a run page
    links any of them); 404 when none of their teams has one."""
    found = list(
        RegisteredModel.objects.for_user(request.user).filter(name=name).select_related("team").order_by("team__name")
    )
    if not found:
        raise Http404("No such model.")
    team = current_team(request)
    return next((m for m in found if m.team_id == team.pk), found[0])


def _version(request, name, number):
    model = _model(request, name)
    version = model.versions.select_related("source_run", "source_modelfile", "dataset", "created_by").filter(
        version=number
    )
    version = get_object_or_404(version)
    version.model = model
    return version


def _message(exc: RegistryError) -> str:
    return " ".join(str(v) for v in exc.errors.values())


def _expected(request):
    """The form's idea of where the alias points now: absent (no check), "" (not set) or a number."""
    raw = request.POST.get("expected")
    if raw is None:
        return NO_CHECK
    return params.parse_int(raw, "expected", min_value=1, max_value=params.MAX_INT32, default=None)


@require_GET
def model_list(request):
    team = current_team(request)
    models = services.models_with_summary(RegisteredModel.objects.filter(team=team).order_by("-updated_at", "name"))
    page = Paginator(models, PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "registry/list.html", {"team": team, "page": page})


def _source(request):
    """The run (?run=<id>) or uploaded model file (?file=<id>) to register; 404 if not the user's teams'."""
    run_id = params.parse_id(request.GET.get("run"), "run", default=None)
    file_id = params.parse_id(request.GET.get("file"), "file", default=None)
    if (run_id is None) == (file_id is None):
        raise params.BadParam("run", "name what to register: ?run=<run id> or ?file=<model file id>")
    if run_id is not None:
        return get_object_or_404(Run.objects.for_user(request.user).select_related("team", "dataset"), pk=run_id)
    return get_object_or_404(ModelFile.objects.for_user(request.user).select_related("team"), pk=file_id)


@require_http_methods(["GET", "POST"])
def register(request):
    source = _source(request)
    is_run = isinstance(source, Run)
    allowed = services.can_change(request.user, source.team)
    form = RegisterForm(request.POST or None)
    try:
        services.check_run(source) if is_run else services.check_modelfile(source)
        problem = ""
    except RegistryError as exc:
        problem = _message(exc)
    status = 200
    if request.method == "POST":
        status = 400
        if not allowed:
            messages.error(request, "Viewers cannot register models; ask a team owner or admin for the member role.")
            status = 403
        elif form.is_valid():
            d = form.cleaned_data
            register = services.register_run if is_run else services.register_modelfile
            try:
                version = register(source, d["name"], d["description"], request.user, d["model_description"])
            except RegistryError as exc:
                for field, message in exc.errors.items():
                    form.add_error(field if field in form.fields else None, message)
            except PermissionDenied as exc:
                messages.error(request, str(exc))
                status = 403
            else:
                messages.success(request, f"Registered {version}.")
                return redirect(version)
    ctx = {
        "form": form,
        "source": source,
        "is_run": is_run,
        "team": source.team,
        "allowed": allowed,
        "problem": problem,
        "names": services.team_model_names(source.team),
    }
    return render(request, "registry/register.html", ctx, status=status)


@require_GET
def model_detail(request, name):
    model = _model(request, name)
    versions = model.versions.select_related("source_run", "dataset", "created_by").prefetch_related("aliases")
    page = Paginator(versions, PER_PAGE).get_page(request.GET.get("page"))
    aliases = list(model.aliases.select_related("version", "updated_by"))
    ctx = {
        "model": model,
        "team": model.team,
        "page": page,
        "aliases": aliases,
        "history": services.alias_history(model, 50),
        "can_change": services.can_change(request.user, model.team),
        "live_versions": list(model.versions.filter(archived=False).values_list("version", flat=True)[:500]),
        "suggested_aliases": [a for a in SUGGESTED_ALIASES if a not in {x.name for x in aliases}],
    }
    return render(request, "registry/model.html", ctx)


@require_POST
def alias_set(request, name):
    model = _model(request, name)
    alias = request.POST.get("alias", "").strip()
    found = _change(
        request,
        lambda: services.set_alias(
            model, alias, request.POST.get("version", ""), request.user, expected=_expected(request)
        ),
    )
    if found is not REFUSED:
        messages.success(request, f"{model.name}@{found.name} → version {found.version.version}.")
    return redirect(model)


REFUSED = object()  # _change: the change was refused (and the message says why)


def _change(request, action):
    """Do a registry change for a form post: its result, or REFUSED with the refusal as a message."""
    try:
        return action()
    except RegistryError as exc:
        messages.error(request, _message(exc))
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return REFUSED


@require_POST
def alias_remove(request, name, alias):
    model = _model(request, name)
    removed = _change(request, lambda: services.remove_alias(model, alias, request.user, expected=_expected(request)))
    if removed is not REFUSED:
        messages.success(request, f"Removed the alias {alias} of {model.name}.")
    return redirect(model)


@require_GET
def version_detail(request, name, version):
    v = _version(request, name, version)
    ctx = {
        "model": v.model,
        "team": v.model.team,
        "v": v,
        "aliases": sorted(v.aliases.values_list("name", flat=True)),
        "template": TEMPLATES.get(v.template),
        "can_change": services.can_change(request.user, v.model.team),
        "has_files": safefiles.is_file_under(v.storage_dir, v.entry_path),
    }
    return render(request, "registry/version.html", ctx)


@require_POST
def version_archive(request, name, version):
    v = _version(request, name, version)
    if _change(request, lambda: services.archive(v, request.user)) is not REFUSED:
        messages.success(request, f"Archived {v}.")
    return redirect(v)


@require_GET
def version_download(request, name, version):
    v = _version(request, name, version)
    try:
        fh = safefiles.open_under(v.storage_dir, v.entry_path)
    except OSError:
        raise Http404("The version's files are missing from storage.") from None
    filename = f"{v.model.name}-v{v.version}-{v.entry_path.name}"
    return FileResponse(fh, as_attachment=True, filename=filename, content_type="application/octet-stream")
