"""The run page's resource charts, TensorBoard download and log search (routed in webapp/urls.py).

Every view looks the run up through ``Run.objects.for_user``: another team's run is a 404.
"""

from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from webapp.params import int_param
from webapp.runs import artifacts
from webapp.runs.models import Run

from . import logsearch, services, tensorboard


def _team_run(request, pk) -> Run:
    return get_object_or_404(Run.objects.for_user(request.user), pk=pk)


@require_GET
def run_resources(request, pk):
    """Per-executor samples for the Resources charts, and the progress/ETA."""
    run = _team_run(request, pk)
    return JsonResponse(
        {
            "status": run.status,
            "terminal": run.is_terminal,
            **services.series(run),
            "progress": services.eta(run),
            "has_tensorboard": tensorboard.tensorboard_dir(run) is not None,
        }
    )


@require_GET
def run_tensorboard(request, pk):
    run = _team_run(request, pk)
    if tensorboard.tensorboard_dir(run) is None:
        raise Http404("no TensorBoard event files")
    return FileResponse(
        tensorboard.archive(run),
        as_attachment=True,
        filename=f"run{run.pk}-tensorboard.tar.gz",
        content_type="application/gzip",
    )


@require_GET
def run_log_search(request, pk):
    """?log=driver:stdout | <executor>:stderr|stdout &q=text [&case=1] [&max=200]: matching lines
    of the whole stored log with line numbers (docs/monitoring.md)."""
    run = _team_run(request, pk)
    source, _, stream = (request.GET.get("log") or "driver:stdout").partition(":")
    path = artifacts.log_path(run, source, stream or "stderr")
    if path is None:
        return JsonResponse({"error": "log must be driver:stdout or <executor id>:stdout|stderr"}, status=400)
    max_matches = int_param(
        request.GET, "max", min_value=1, max_value=logsearch.MAX_MATCHES, default=logsearch.DEFAULT_MATCHES
    )
    try:
        query = logsearch.clean_query(request.GET.get("q"))
    except logsearch.QueryError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    try:
        fh = artifacts.open_file(run, path)  # a link planted in the run dir is not followed
    except OSError:
        raise Http404("no such log (yet)") from None
    result = logsearch.search(fh, query, case_sensitive=request.GET.get("case") == "1", max_matches=max_matches)
    return JsonResponse({"log": f"{source}:{stream or 'stderr'}", **result.as_json()})
