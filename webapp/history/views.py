"""The run table (the team's home page) and run editing: name, tags, notes, star, archive."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.accounts.services import can_edit_run, current_team
from webapp.runs.models import Run

from . import filters, services


def _team_run(request, pk) -> Run:
    """A run of one of the user's teams (another team's run: 404, as if it did not exist)."""
    return get_object_or_404(Run.objects.for_user(request.user).select_related("team"), pk=pk)


def _back(request, run):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(run)


def _wants_json(request) -> bool:
    return request.headers.get("accept", "").startswith("application/json")


def _flag(raw) -> bool:
    return str(raw).strip().lower() in ("1", "true", "yes", "on")


@require_GET
def run_table(request):
    team = current_team(request)
    view = services.table_view(request.user, team, request.GET)
    ctx = {"team": team, "view": view, "expr_help": filters.EXPR_HELP}
    return render(request, "history/table.html", ctx, status=view.status)


@require_http_methods(["GET", "POST"])
def run_edit(request, pk):
    run = _team_run(request, pk)
    if not can_edit_run(request.user, run):
        raise PermissionDenied("You can edit only your own runs (owners and admins: any run of the team).")
    error, status = "", 200
    if request.method == "POST":
        try:
            services.update_run(
                request.user,
                run,
                name=request.POST.get("name", run.name),
                tags=request.POST.get("tags", run.tags),
                notes=request.POST.get("notes", run.notes),
            )
        except services.EditError as exc:
            error, status = str(exc), 400
        else:
            messages.success(request, f"Saved run {run.pk}.")
            return _back(request, run)
    ctx = {
        "run": run,
        "team": run.team,
        "error": error,
        "form": request.POST if error else None,
        "next": request.POST.get("next") or request.GET.get("next") or "",
    }
    return render(request, "history/edit.html", ctx, status=status)


@require_POST
def run_star(request, pk):
    run = _team_run(request, pk)
    services.set_starred(request.user, run, _flag(request.POST.get("starred", "1")))
    if _wants_json(request):
        return JsonResponse({"id": run.pk, "starred": run.starred})
    return _back(request, run)


@require_POST
def run_archive(request, pk):
    run = _team_run(request, pk)
    try:
        services.set_archived(request.user, run, _flag(request.POST.get("archived", "1")))
    except services.EditError as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=400)
        messages.error(request, str(exc))
    else:
        if _wants_json(request):
            return JsonResponse({"id": run.pk, "archived": run.archived})
        messages.success(request, f"Run {run.pk} {'archived' if run.archived else 'restored'}.")
    return _back(request, run)
