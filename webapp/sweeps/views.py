from django.contrib import messages
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.accounts.services import can_submit, current_team
from webapp.catalog.registry import TEMPLATES
from webapp.datasets.models import Dataset
from webapp.runs.errors import RunRequestError
from webapp.statemachine import IllegalTransition, StaleStatus

from . import services
from . import space as search_space
from .forms import SweepForm
from .models import Sweep

PER_PAGE = 50


def _team_sweep(request, pk):
    """The sweep if the user is in its team, else 404 (another team's sweep does not exist for them)."""
    return get_object_or_404(Sweep.objects.for_user(request.user).select_related("dataset", "cluster"), pk=pk)


@require_GET
def sweep_list(request):
    team = current_team(request)
    sweeps = Sweep.objects.for_user(request.user).filter(team=team).select_related("dataset")
    page = Paginator(sweeps.prefetch_related("trials"), PER_PAGE).get_page(request.GET.get("page"))
    rows = [(sweep, services.progress(sweep, list(sweep.trials.all()))) for sweep in page]
    ctx = {"team": team, "page": page, "rows": rows, "can_submit": can_submit(request.user, team)}
    return render(request, "sweeps/list.html", ctx)


@require_http_methods(["GET", "POST"])
def sweep_new(request):
    team = current_team(request)
    datasets = Dataset.objects.for_user(request.user).filter(team=team)
    form = SweepForm(
        request.POST or None, datasets=datasets, team=team, initial={"dataset": request.GET.get("dataset")}
    )
    status = 200
    if request.method == "POST":
        status = 400
        if not can_submit(request.user, team):
            messages.error(request, "Viewers cannot start sweeps.")
        elif form.is_valid():
            d = form.cleaned_data
            try:
                sweep = services.create_sweep(
                    team=team,
                    user=request.user,
                    name=d["name"],
                    dataset=d["dataset"],
                    template=d["template"],
                    space=d["space"],
                    strategy=d["strategy"],
                    objective=d["objective"],
                    pruner=d["pruner"],
                    pruner_startup_trials=d["pruner_startup_trials"],
                    pruner_warmup_epochs=d["pruner_warmup_epochs"],
                    pruner_reduction_factor=d["pruner_reduction_factor"],
                    max_trials=d["max_trials"],
                    parallel=d["parallel"],
                    seed=d["seed"],
                    hyperparameters=form.raw_hyperparameters(),
                    cluster=d["cluster"],
                    num_executors=d["num_executors"],
                    executor_cores=d["executor_cores"],
                    executor_memory_mb=d["executor_memory_mb"],
                    gpus_per_executor=d["gpus_per_executor"] or 0,
                    input_mode=d["input_mode"],
                )
            except services.SweepRequestError as exc:
                form.add_request_errors(exc.errors)
            else:
                return redirect(sweep)
    ctx = {
        "mode": "sweep",  # the new-run page in sweep mode (its sweep fields: templatetags/sweep_fields.py)
        "inline_errors": True,  # create_sweep's errors beside the fields they name
        "form": form,
        "team": team,
        "templates": TEMPLATES,
        "cluster_hints": form.cluster_hints(team),
    }
    return render(request, "runs/new.html", ctx, status=status)


@require_GET
def sweep_limit(request):
    """How many trials may run at once for the form's cluster and resources (services.parallel_limit)."""
    from webapp.clusters.models import Cluster

    answer = services.parallel_limit_query(current_team(request), Cluster.objects.enabled(), request.GET)
    return JsonResponse(answer, status=400 if "error" in answer else 200)


@require_GET
def sweep_detail(request, pk):
    sweep = _team_sweep(request, pk)
    ctx = {
        "sweep": sweep,
        "summary": services.summary(sweep),
        "space": [(name, entry["type"], search_space.describe(entry)) for name, entry in sweep.space.items()],
        "template": TEMPLATES.get(sweep.template),
        "can_submit": can_submit(request.user, sweep.team),
    }
    return render(request, "sweeps/detail.html", ctx)


@require_GET
def sweep_live(request, pk):
    """What the sweep page polls while the sweep runs (services.summary)."""
    return JsonResponse(services.summary(_team_sweep(request, pk)))


@require_POST
def sweep_cancel(request, pk):
    sweep = _team_sweep(request, pk)
    if not can_submit(request.user, sweep.team):
        messages.error(request, "Viewers cannot cancel sweeps.")
    elif sweep.is_terminal:
        messages.info(request, f"The sweep already ended ({sweep.status}).")
    else:
        try:
            services.cancel(sweep, by=request.user.username)
        except (StaleStatus, IllegalTransition):
            sweep.refresh_from_db()
            messages.info(request, f"The sweep is now {sweep.status}.")
    return redirect(sweep)


@require_POST
def sweep_rerun_best(request, pk):
    sweep = _team_sweep(request, pk)
    if not can_submit(request.user, sweep.team):
        messages.error(request, "Viewers cannot submit runs.")
        return redirect(sweep)
    try:
        run = services.rerun_best(sweep, request.user)
    except RunRequestError as exc:  # no finished trial yet, or the run is refused (quota, cluster)
        messages.error(request, f"Could not rerun the best trial: {exc}")
        return redirect(sweep)
    return redirect(run)
