from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp import params
from webapp.accounts.services import can_edit_run, can_submit, current_team
from webapp.catalog.registry import REF, TEMPLATES
from webapp.datasets.models import Dataset
from webapp.params import int_param, parse_float, parse_int

from . import analysis, artifacts, lifecycle, metrics, watchdog
from .errors import RunRequestError
from .forms import RunForm
from .models import Run
from .services import create_run
from .states import IllegalTransition, StaleStatus

X_LIMIT = 1e15  # the chart range's bounds (steps, epochs, wall seconds): far past any run's


def _team_run(request, pk):
    return get_object_or_404(Run.objects.for_user(request.user).select_related("dataset", "cluster"), pk=pk)


def dashboard(request):
    team = current_team(request)
    runs = Run.objects.for_user(request.user).filter(team=team).select_related("dataset", "cluster", "created_by")
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "runs/dashboard.html", {"team": team, "page": page})


@require_http_methods(["GET", "POST"])
def run_new(request):
    if request.method == "GET" and request.GET.get("mode") == "sweep":  # the page's sweep mode has its own URL
        query = request.GET.copy()
        del query["mode"]
        return redirect(reverse("sweep_new") + (f"?{query.urlencode()}" if query else ""))
    team = current_team(request)
    datasets = Dataset.objects.for_user(request.user).filter(team=team)
    initial = {"dataset": request.GET.get("dataset")}
    source = None
    if request.GET.get("from"):  # rerun with changes: only a run the user's team can see
        source = _team_run(request, int_param(request.GET, "from", min_value=1))
        initial = RunForm.initial_from(source)
    form = RunForm(request.POST or None, datasets=datasets, team=team, initial=initial)
    field_errors = {}
    if request.method == "POST":
        if not can_submit(request.user, team):
            messages.error(request, "Viewers cannot submit runs.")
        elif form.is_valid():
            d = form.cleaned_data
            try:
                run = create_run(
                    team=team,
                    user=request.user,
                    name=d["name"],
                    dataset=d["dataset"],
                    template=d["template"],
                    hyperparameters=form.raw_hyperparameters(),
                    input_mode=d["input_mode"],
                    cluster=d["cluster"],
                    num_executors=d["num_executors"],
                    executor_cores=d["executor_cores"],
                    executor_memory_mb=d["executor_memory_mb"],
                    gpus_per_executor=d["gpus_per_executor"] or 0,
                )
            except RunRequestError as exc:
                field_errors = exc.errors
            else:
                return redirect(run)
        status = 400
    else:
        status = 200
    ctx = {
        "mode": "run",  # the page's switch offers sweep mode (the sweep fields: sweeps' sweep_fields tag)
        "form": form,
        "team": team,
        "templates": TEMPLATES,
        "field_errors": field_errors,
        "source": source,
        "cluster_hints": form.cluster_hints(team),
    }
    return render(request, "runs/new.html", ctx, status=status if request.method == "POST" else 200)


def run_detail(request, pk):
    run = _team_run(request, pk)
    ctx = {
        "run": run,
        "queue_position": run.queue_position(),
        "executors": artifacts.executors(run),
        "log_options": artifacts.log_options(run),
        "template": TEMPLATES.get(run.template),
        "base_links": _base_links(run),
        "can_edit": can_edit_run(request.user, run),
        "epochs_done": metrics.epochs_done(run),
    }
    return render(request, "runs/detail.html", ctx)


def _base_links(run):
    """Hyperparameters that reference another run or a model file, as (name, label, url)."""
    links = []
    for key, value in run.hyperparameters.items():
        m = REF.match(str(value))
        if not m:
            continue
        kind, ident = m.groups()
        if kind == "run" and ident.isdigit():
            links.append((key, f"run {ident}", reverse("run_detail", args=[int(ident)])))
        elif kind == "file" and ident.isdigit():
            links.append((key, f"model file {ident}", reverse("modelfile_detail", args=[int(ident)])))
        elif kind == "app":
            links.append((key, f"{ident} (ImageNet weights)", ""))
    return links


def _when(value) -> str:
    """A time as the run page's template prints it (local time zone, the locale's format); '' for None."""
    return formats.localize(timezone.template_localtime(value)) if value else ""


@require_GET
def run_live(request, pk):
    """Everything the run page polls: status, new metric points, log chunks from given offsets."""
    run = _team_run(request, pk)
    since = int_param(request.GET, "since", default=0)
    logs = {}
    for key in request.GET.getlist("log"):
        source, _, stream = key.partition(":")
        path = artifacts.log_path(run, source, stream or "stderr")
        if path is None:
            continue
        lifecycle.follow_log(run, source, stream or "stderr")
        # -1 (or none): the log's tail
        offset = int_param(request.GET, f"off:{key}", min_value=-1, default=-1)
        if offset < 0:
            offset = artifacts.tail_offset(run, path)
        text, nxt, size = artifacts.read_chunk(run, path, offset)
        logs[key] = {"text": text, "offset": nxt, "size": size}
    length = run.training_length
    return JsonResponse(
        {
            "status": run.status,
            "reason": run.status_reason,
            "detail": run.status_detail,
            "terminal": run.is_terminal,
            "app_id": run.spark_app_id,
            **_ui_fields(run),
            "master_app_url": run.spark_master_app_url,
            "submitted_at": _when(run.submitted_at),
            "finished_at": _when(run.finished_at),
            "test_accuracy": run.test_accuracy,
            "test_loss": run.test_loss,
            "test_rows": run.test_rows,
            "queue_position": run.queue_position(),
            "queue_reason": run.queue_reason if run.status == Run.Status.QUEUED else "",
            "epochs": run.hyperparameters.get("epochs") if length.unit == "epochs" else None,
            "length": length.as_json(),
            "executors": artifacts.executors(run),
            "incomplete_logs": artifacts.incomplete_logs(run),
            "points": metrics.points_since(run, since),
            "logs": logs,
            "has_predictions": artifacts.file_stat(run, artifacts.predictions_path(run)) is not None,
            "has_model": artifacts.file_stat(run, artifacts.model_path(run)) is not None,
            "diagnosis": watchdog.banner(run),
        }
    )


def _ui_fields(run) -> dict:
    """live.json's Spark UI link: the same rule as the page (Run.spark_ui_link)."""
    ui = run.spark_ui_link()
    return {"ui_url": ui.url if ui else "", "ui_kind": ui.kind if ui else "", "ui_label": ui.label if ui else ""}


def run_log(request, pk, source, stream="stderr"):
    run = _team_run(request, pk)
    path = artifacts.log_path(run, source, stream)
    fh = _open_artifact(run, path, "no such log")
    name = f"run{run.pk}-{source}-{stream}.log" if source != "driver" else f"run{run.pk}-driver.log"
    resp = FileResponse(fh, content_type="text/plain; charset=utf-8", filename=name)
    if request.GET.get("download"):
        resp["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@require_GET
def run_predictions(request, pk):
    """The prediction table: paged, filtered by true/predicted class, errors only, confidence range."""
    run = _team_run(request, pk)
    classes = analysis.classes(run)
    filters, problems = analysis.Filters.from_query(request.GET, len(classes))
    page = analysis.prediction_page(run, filters, int_param(request.GET, "page", min_value=1, default=1))
    ctx = {
        "run": run,
        "page": page,
        "rows": analysis.named_rows(page.rows, run.dataset.class_names),
        "filters": filters,
        "query": filters.query(),
        "problems": problems,
        "classes": classes,
        "has_predictions": analysis.has_predictions(run),
    }
    return render(request, "runs/predictions.html", ctx)


@require_GET
def run_analysis(request, pk):
    """Confusion matrix, per-class precision/recall/F1, accuracy, misclassified gallery."""
    run = _team_run(request, pk)
    return render(request, "runs/analysis.html", {"run": run, **analysis.page_context(run)})


@require_GET
def run_analysis_json(request, pk):
    run = _team_run(request, pk)
    data = analysis.as_json(run)
    if data is None:
        raise Http404("no predictions yet")
    return JsonResponse(data)


@require_GET
def run_series(request, pk):
    """Downsampled metric series for the chart: ?names=loss,accuracy&x=step&start=&end=&max_points=."""
    run = _team_run(request, pk)
    raw_names = ",".join(request.GET.getlist("names"))
    names = [n for n in raw_names.split(",") if n] or None
    try:
        data = metrics.series(
            run,
            names=names,
            start=parse_float(request.GET.get("start"), "start", min_value=-X_LIMIT, max_value=X_LIMIT, default=None),
            end=parse_float(request.GET.get("end"), "end", min_value=-X_LIMIT, max_value=X_LIMIT, default=None),
            max_points=parse_int(
                request.GET.get("max_points"),
                "max_points",
                min_value=4,
                max_value=metrics.MAX_MAX_POINTS,
                default=metrics.DEFAULT_MAX_POINTS,
            ),
            x=request.GET.get("x") or "step",
        )
    except metrics.SeriesError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({**data, "status": run.status, "terminal": run.is_terminal})


def run_predictions_csv(request, pk):
    run = _team_run(request, pk)
    fh = _open_artifact(run, artifacts.predictions_csv(run), "no predictions yet")
    return FileResponse(fh, as_attachment=True, filename=f"run{run.pk}-predictions.csv")


def run_model(request, pk):
    run = _team_run(request, pk)
    path = artifacts.model_path(run)
    fh = _open_artifact(run, path, "no exported model")
    return FileResponse(fh, as_attachment=True, filename=f"run{run.pk}-{path.name}")


def _open_artifact(run, path, missing: str):
    """The run's file opened without following links (a planted link answers 404 like a missing file)."""
    if path is None:
        raise Http404(missing)
    try:
        return artifacts.open_file(run, path)
    except OSError:
        raise Http404(missing) from None


@require_POST
def run_cancel(request, pk):
    run = _team_run(request, pk)
    if not can_submit(request.user, run.team):
        messages.error(request, "Viewers cannot cancel runs.")
    elif run.is_terminal:
        messages.info(request, f"Run {run.pk} already ended ({run.status}).")
    else:
        try:
            lifecycle.cancel(run, by=request.user.username)
        except (StaleStatus, IllegalTransition):
            run.refresh_from_db()
            messages.info(request, f"Run {run.pk} is now {run.status}.")
    return redirect(run)


def token_json(request, pk):
    """(run, the JSON body) of an executor's POST authenticated by the run's bearer token, or
    (None, the error response to send): the metrics ingest and the sweeps' epoch reports."""
    run = Run.objects.filter(pk=pk).first()
    if run is None or not metrics.token_ok(run, request.headers.get("authorization", "")):
        return None, JsonResponse({"error": "unknown run or bad token"}, status=403)
    try:
        body = request.body
    except RequestDataTooBig:
        return None, JsonResponse({"error": f"body over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"}, status=413)
    try:
        return run, params.load_json(body)
    except params.JSONTooDeep:
        return None, JsonResponse({"error": "JSON nested too deeply"}, status=400)
    except ValueError as exc:
        return None, JsonResponse({"error": f"body is not JSON: {exc}"}, status=400)


@csrf_exempt  # authenticated by the run's bearer token, not a session
@require_POST
def ingest_metrics(request, pk):
    run, payload = token_json(request, pk)
    if run is None:
        return payload
    try:
        stored = metrics.ingest(run, payload)
    except metrics.IngestError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"stored": stored})
