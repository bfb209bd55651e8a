"""Sweeps: validate and save, ask Optuna for trials as earlier ones end, decide early stopping.

Optuna's study is rebuilt from our own rows (Trial, TrialEpoch) each time it is needed, into an
in-memory study, instead of Optuna's RDB storage: one source of truth in our database, in our
migrations, and nothing to keep in step with it (docs/sweeps.md says what that costs). Samplers are
made afresh for each ask with seed + trial number, so a rebuilt sampler never repeats a draw.
"""

from __future__ import annotations

import logging
import math

import optuna
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Prefetch, Q
from optuna.trial import TrialState as OptunaState
from optuna.trial import create_trial

from webapp.catalog.registry import get_template
from webapp.datasets.models import Dataset
from webapp.runs import lifecycle as run_lifecycle
from webapp.runs import preflight
from webapp.runs import services as run_services
from webapp.runs.errors import RunRequestError
from webapp.runs.models import MetricPoint, Run
from webapp.runs.states import TERMINAL as RUN_TERMINAL
from webapp.runs.states import Status as RunStatus
from webapp.statemachine import IllegalTransition, StaleStatus

from . import space as search_space
from .models import Sweep, Trial, TrialEpoch
from .states import SweepStatus, TrialState

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

OPTUNA_STATE = {
    TrialState.RUNNING: OptunaState.RUNNING,
    TrialState.COMPLETE: OptunaState.COMPLETE,
    TrialState.PRUNED: OptunaState.PRUNED,
    TrialState.FAIL: OptunaState.FAIL,
}
MIN_REDUCTION_FACTOR, MAX_REDUCTION_FACTOR = 2, 8  # ASHA keeps 1 in 2 at most, 1 in 8 at least


class SweepRequestError(RunRequestError):
    """A sweep request that cannot be accepted; `errors` maps field → message."""


# --- creating ---------------------------------------------------------------------------------


def _int_field(raw, name: str, low: int, high: int, errors: dict) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, int):
        if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() and len(raw.strip()) < 10:
            raw = int(raw.strip())
        else:
            errors[name] = f"must be a whole number from {low} to {high}"
            return None
    if not low <= raw <= high:
        errors[name] = f"must be from {low} to {high}"
        return None
    return raw


def parallel_limit(team, cluster, ask: preflight.Ask) -> preflight.Parallel:
    """The most trials of `ask` a sweep may run at once on `cluster`: the team's quota and the cluster's
    idle capacity (asked live). The form shows it; create_sweep refuses more."""
    from webapp.clusters import capacity as cluster_capacity

    return preflight.max_parallel(cluster, team, ask, cluster_capacity.live_capacity(cluster))


def parallel_limit_query(team, clusters, params) -> dict:
    """parallel_limit for the form's current values (`params`: the form's fields as strings):
    {"most": N or 0 (no limit known), "why": text} or {"error": text} for values the form would refuse."""
    errors: dict = {}
    cluster_id = _int_field(params.get("cluster"), "cluster", 1, 2**31 - 1, errors)
    fields = [
        _int_field(params.get(name), name, low, 10**6, errors)
        for name, low in (("num_executors", 1), ("executor_cores", 1), ("executor_memory_mb", 1))
    ]
    gpus = _int_field(params.get("gpus_per_executor") or "0", "gpus_per_executor", 0, 1024, errors)
    if errors:
        return {"error": "; ".join(f"{k}: {v}" for k, v in errors.items())}
    cluster = clusters.filter(pk=cluster_id).first()
    if cluster is None:
        return {"error": "cluster: no such cluster"}
    limit = parallel_limit(team, cluster, preflight.Ask(*fields, gpus))
    return {"most": limit.most, "why": limit.why}


def budget(sweep_or_space, strategy: str, max_trials: int) -> int:
    """Trials the sweep makes: max_trials, or a smaller grid's size."""
    space = sweep_or_space.space if isinstance(sweep_or_space, Sweep) else sweep_or_space
    return min(max_trials, search_space.grid_size(space)) if strategy == "grid" else max_trials


def create_sweep(
    *,
    team,
    user,
    dataset,
    template: str,
    space: dict,
    cluster,
    strategy: str = "random",
    objective: str = "val_accuracy",
    pruner: str = "none",
    max_trials=10,
    parallel=2,
    seed=42,
    hyperparameters: dict | None = None,
    num_executors: int = 2,
    executor_cores: int = 1,
    executor_memory_mb: int = 2048,
    gpus_per_executor: int = 0,
    input_mode: str = Run.InputMode.TENSORFLOW,
    name: str = "",
    pruner_startup_trials=2,
    pruner_warmup_epochs=1,
    pruner_reduction_factor=3,
) -> Sweep:
    """Validate everything a trial run would be checked for, and the sweep's own fields, then save the
    sweep RUNNING and make its first trials once the transaction commits."""
    errors: dict = {}
    try:
        tmpl = get_template(template)
    except ValueError as exc:
        raise SweepRequestError({"template": str(exc)}) from None
    try:
        clean_space = search_space.clean(tmpl, space, strategy)
    except search_space.SpaceError as exc:
        errors.update({k if k in ("strategy", "space") else f"space.{k}": v for k, v in exc.errors.items()})
        clean_space = {}
    if objective not in Sweep.Objective.values:
        errors["objective"] = f"choose one of {', '.join(Sweep.Objective.values)}"
    if pruner not in Sweep.Pruner.values:
        errors["pruner"] = f"choose one of {', '.join(Sweep.Pruner.values)}"
    max_trials = _int_field(max_trials, "max_trials", 1, search_space.MAX_TRIALS, errors)
    parallel = _int_field(parallel, "parallel", 1, search_space.MAX_TRIALS, errors)
    seed = _int_field(seed, "seed", 0, 2**31 - 1, errors)
    startup = _int_field(pruner_startup_trials, "pruner_startup_trials", 0, search_space.MAX_TRIALS, errors)
    warmup = _int_field(pruner_warmup_epochs, "pruner_warmup_epochs", 0, 500, errors)
    reduction = _int_field(
        pruner_reduction_factor, "pruner_reduction_factor", MIN_REDUCTION_FACTOR, MAX_REDUCTION_FACTOR, errors
    )

    raw_hp = dict(hyperparameters or {})
    for key, value in search_space.fixed_values(clean_space).items():
        raw_hp[key] = value
    # The varied ones are validated entry by entry above; the base takes each one's default here.
    base, hp_errors = tmpl.validate({k: v for k, v in raw_hp.items() if k not in search_space.varied(clean_space)})
    errors.update({f"hyperparameters.{k}": v for k, v in hp_errors.items()})
    swept = search_space.varied(clean_space).get("validation_split")
    if swept is not None:
        no_validation = min(swept.get("values") or [swept.get("low", 0)]) <= 0
    else:
        no_validation = float(base.get("validation_split", 0) or 0) <= 0
    if not hp_errors and no_validation:
        errors["hyperparameters.validation_split"] = (
            "a sweep selects trials on the validation split: set validation_split above 0"
        )
    if dataset.team_id != team.pk:
        errors["dataset"] = "No such dataset."
    elif dataset.status != Dataset.Status.READY:
        errors["dataset"] = f"Dataset {dataset.name} is not ready."
    else:
        errors.update(run_services.check_template_fits(tmpl, dataset, team, base))
    if input_mode not in Run.InputMode.values:
        errors["input_mode"] = f"choose one of {', '.join(Run.InputMode.values)}"
    ask = preflight.Ask(num_executors, executor_cores, executor_memory_mb, gpus_per_executor)
    errors.update(preflight.check(cluster, team, ask, live=False))
    if not errors:
        errors.update(preflight.fits_cluster(cluster, ask))
    if not errors and parallel is not None:
        limit = parallel_limit(team, cluster, ask)
        if limit.most and parallel > limit.most:
            errors["parallel"] = f"at most {limit.most} trial(s) at once: {limit.why}."
    if errors:
        raise SweepRequestError(errors)

    with transaction.atomic():
        sweep = Sweep.objects.create(
            team=team,
            created_by=user,
            name=name or f"{tmpl.label} sweep on {dataset.name}",
            dataset=dataset,
            template=tmpl.key,
            base_hyperparameters=base,
            space=clean_space,
            strategy=strategy,
            objective=objective,
            pruner=pruner,
            pruner_startup_trials=startup,
            pruner_warmup_epochs=warmup,
            pruner_reduction_factor=reduction,
            max_trials=max_trials,
            parallel=parallel,
            seed=seed,
            cluster=cluster,
            num_executors=num_executors,
            executor_cores=executor_cores,
            executor_memory_mb=executor_memory_mb,
            gpus_per_executor=gpus_per_executor,
            input_mode=input_mode,
        )
        from .tasks import advance_sweep

        transaction.on_commit(lambda: advance_sweep.delay(sweep.pk))
    return sweep


# --- the study, rebuilt ------------------------------------------------------------------------


def _sampler(sweep: Sweep, number: int):
    seed = (sweep.seed + number) % 2**32
    if sweep.strategy == Sweep.Strategy.GRID:
        return optuna.samplers.GridSampler(search_space.grid(sweep.space), seed=sweep.seed)
    if sweep.strategy == Sweep.Strategy.TPE:
        # constant_liar: trials still running count as bad guesses, so parallel asks spread out.
        startup = min(10, sweep.max_trials // 3 or 1)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(sweep: Sweep):
    if sweep.pruner == Sweep.Pruner.MEDIAN:
        # Our steps are 1-based epochs: W warm-up epochs are never judged, the first decision is at W + 1.
        return optuna.pruners.MedianPruner(
            n_startup_trials=sweep.pruner_startup_trials, n_warmup_steps=sweep.pruner_warmup_epochs + 1
        )
    if sweep.pruner == Sweep.Pruner.ASHA:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=max(1, sweep.pruner_warmup_epochs), reduction_factor=sweep.pruner_reduction_factor
        )
    return optuna.pruners.NopPruner()


def study(sweep: Sweep, number: int = 0, trials=None, extra: dict | None = None) -> optuna.Study:
    """An in-memory Optuna study holding every trial of the sweep as our rows record it (`extra`:
    trial id → {epoch: value} not stored yet)."""
    st = optuna.create_study(
        direction="maximize" if sweep.maximize else "minimize", sampler=_sampler(sweep, number), pruner=_pruner(sweep)
    )
    dists = search_space.distributions(sweep.space, sweep.strategy)
    rows = list(trials if trials is not None else sweep.trials.all())
    epochs = _epoch_values([t.pk for t in rows])
    for trial_id, values in (extra or {}).items():
        epochs[trial_id] = {**epochs.get(trial_id, {}), **values}
    for t in rows:
        state = OPTUNA_STATE[t.status]
        value = t.value if state == OptunaState.COMPLETE else None
        if state == OptunaState.COMPLETE and (value is None or not math.isfinite(value)):
            state = OptunaState.FAIL
        params = {k: v for k, v in t.params.items() if k in dists}
        if set(params) != set(dists):
            continue  # cannot happen: a trial's params are the space's
        st.add_trial(
            create_trial(
                state=state,
                value=value,
                params=params,
                distributions=dists,
                intermediate_values=epochs.get(t.pk, {}),
                system_attrs=t.system_attrs or {},
            )
        )
    return st


def _epoch_values(trial_ids: list[int]) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {}
    for trial_id, epoch, value in TrialEpoch.objects.filter(trial_id__in=trial_ids).values_list(
        "trial_id", "epoch", "value"
    ):
        if math.isfinite(value):
            out.setdefault(trial_id, {})[epoch] = value
    return out


def ask_params(sweep: Sweep, number: int) -> tuple[dict, dict]:
    """Optuna's choice for trial `number`: (params, system_attrs)."""
    st = study(sweep, number)
    trial = st.ask(search_space.distributions(sweep.space, sweep.strategy))
    frozen = st.trials[trial.number]
    return dict(trial.params), dict(frozen.system_attrs)


# --- advancing ---------------------------------------------------------------------------------


def advance(sweep_id: int) -> list[int]:
    """Bring a running sweep up to date: end trials whose runs ended, make new trials while fewer than
    `parallel` run and the budget is not spent, and end the sweep once every trial has. Safe to call
    from any number of workers at once (the sweep row is locked); returns the new trials' run ids."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().filter(pk=sweep_id).first()
        if sweep is None or sweep.status != SweepStatus.RUNNING:
            return []
        for trial in sweep.trials.filter(status=TrialState.RUNNING).select_related("run"):
            sync_trial(sweep, trial)
        trials = list(sweep.trials.all())
        running = sum(t.status == TrialState.RUNNING for t in trials)
        total = budget(sweep, sweep.strategy, sweep.max_trials)
        made: list[int] = []
        waiting = ""
        while running < sweep.parallel and len(trials) < total:
            number = len(trials)
            try:
                run = _make_trial_run(sweep, number)
            except RunRequestError as exc:
                waiting = f"Waiting to make trial {number}: {exc}"[:500]
                break
            trials.append(run.sweep_trial)
            running += 1
            made.append(run.pk)
        if waiting != sweep.waiting_reason:
            Sweep.objects.filter(pk=sweep.pk).update(waiting_reason=waiting)
        if running == 0 and len(trials) >= total:
            _finish(sweep, trials)
        return made


def _run_request(sweep: Sweep, params: dict) -> dict:
    """create_run's arguments for a run of the sweep's template, dataset and resources with `params`
    over the base hyperparameters: a trial, or the best trial run again."""
    return dict(
        team=sweep.team,
        dataset=sweep.dataset,
        template=sweep.template,
        hyperparameters={**sweep.base_hyperparameters, **params},
        cluster=sweep.cluster,
        num_executors=sweep.num_executors,
        executor_cores=sweep.executor_cores,
        executor_memory_mb=sweep.executor_memory_mb,
        gpus_per_executor=sweep.gpus_per_executor,
        input_mode=sweep.input_mode,
    )


def _make_trial_run(sweep: Sweep, number: int) -> Run:
    params, system_attrs = ask_params(sweep, number)
    run = run_services.create_run(
        **_run_request(sweep, params),
        user=sweep.created_by,
        name=f"{sweep.name} · trial {number}",
        early_stop={"objective": sweep.objective} if sweep.pruner != Sweep.Pruner.NONE else None,
        live=False,  # the queue waits for capacity; an unreachable cluster makes the run wait, not fail
    )
    run.sweep_trial = Trial.objects.create(
        sweep=sweep, number=number, run=run, params=params, system_attrs=system_attrs
    )
    return run


def objective_value(sweep: Sweep, run: Run) -> float | None:
    """The objective at the run's last validation: the last point of val_accuracy / val_loss (the
    chief's, or the driver's for an MLlib head); never the test split."""
    point = MetricPoint.objects.filter(run=run, name=sweep.objective).order_by("-step", "executor").first()
    if point is None or not math.isfinite(point.value):
        return None
    return point.value


def sync_trial(sweep: Sweep, trial: Trial) -> None:
    """End a running trial whose run has ended: PRUNED (the executors stopped at the pruner's word),
    COMPLETE with its objective, or FAIL."""
    run = trial.run
    if run is not None and run.status not in RUN_TERMINAL:
        return
    fields: dict = {}
    if run is None:
        target, reason = TrialState.FAIL, "its run was deleted"
    elif run.status == RunStatus.SUCCEEDED:
        result = run.result if isinstance(run.result, dict) else {}
        fields["epochs_run"] = _count(result.get("epochs_run"))
        fields["value"] = objective_value(sweep, run)
        pruned = _count(result.get("pruned_at_epoch"))
        if pruned:
            target, reason = TrialState.PRUNED, f"pruned after epoch {pruned}"
            fields["pruned_at_epoch"] = pruned
        elif fields["value"] is None:
            target, reason = TrialState.FAIL, f"the run reported no {sweep.objective}"
        else:
            target, reason = TrialState.COMPLETE, ""
    else:
        target, reason = TrialState.FAIL, f"its run {run.status.lower()}: {run.status_reason}"[:2000]
    try:
        trial.transition(target, reason=reason, **fields)
    except (StaleStatus, IllegalTransition):
        pass


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _finish(sweep: Sweep, trials: list[Trial]) -> None:
    ok = [t for t in trials if t.status in (TrialState.COMPLETE, TrialState.PRUNED)]
    try:
        if ok:
            sweep.transition(SweepStatus.SUCCEEDED, waiting_reason="")
        else:
            sweep.transition(SweepStatus.FAILED, reason="No trial finished.", waiting_reason="")
    except StaleStatus:
        pass


def advance_all() -> int:
    """Advance every running sweep (the periodic tick; a missed finish signal is caught here)."""
    count = 0
    for sweep_id in Sweep.objects.filter(status=SweepStatus.RUNNING).values_list("pk", flat=True):
        try:
            advance(sweep_id)
        except Exception:  # noqa: BLE001 - one broken sweep must not stop the others
            log.exception("advancing sweep %s failed", sweep_id)
        count += 1
    return count


# --- early stopping ----------------------------------------------------------------------------


class EpochReportError(ValueError):
    pass


def report_epoch(run: Run, epoch, value) -> str:
    """A trial's TF node finished `epoch` with objective `value`: the pruner's decision, "continue" or
    "stop", made once per (trial, epoch) and the same for every node that asks."""
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= 100_000:
        raise EpochReportError("epoch must be a whole number from 1 to 100000")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EpochReportError("value must be a number")
    trial = Trial.objects.filter(run=run).select_related("sweep").first()
    if trial is None:
        raise EpochReportError("this run is not a sweep's trial")
    done = TrialEpoch.objects.filter(trial=trial, epoch=epoch).values_list("decision", flat=True).first()
    if done:
        return done
    decision = _decide(trial, epoch, float(value))
    try:
        with transaction.atomic():
            TrialEpoch.objects.create(
                trial=trial, epoch=epoch, value=_finite(float(value), trial.sweep.maximize), decision=decision
            )
    except IntegrityError:  # another node's answer was stored first: it is everyone's answer
        return TrialEpoch.objects.get(trial=trial, epoch=epoch).decision
    return decision


def _finite(value: float, maximize: bool) -> float:
    # A diverged trial's loss is inf or NaN: store the worst finite value, not a number SQL refuses.
    return value if math.isfinite(value) else (-1e300 if maximize else 1e300)


def _decide(trial: Trial, epoch: int, value: float) -> str:
    sweep = trial.sweep
    if sweep.pruner == Sweep.Pruner.NONE or sweep.status != SweepStatus.RUNNING:
        return TrialEpoch.Decision.CONTINUE
    if not math.isfinite(value):
        return TrialEpoch.Decision.STOP  # diverged: no later epoch recovers a NaN
    # The new epoch's value joins the trial's earlier ones, as Trial.report() records it before should_prune().
    st = study(sweep, extra={trial.pk: {epoch: value}})
    frozen = next((t for t in st.trials if t.number == trial.number), None)
    if frozen is None or frozen.state != OptunaState.RUNNING:
        return TrialEpoch.Decision.CONTINUE
    stop = st.pruner.prune(st, frozen)
    # Successive halving records each trial's rung values as system attrs while it decides; keep them
    # with the trial, so the next rebuild compares against them.
    attrs = st.trials[frozen.number].system_attrs
    if attrs != (trial.system_attrs or {}):
        Trial.objects.filter(pk=trial.pk).update(system_attrs={**(trial.system_attrs or {}), **attrs})
    return TrialEpoch.Decision.STOP if stop else TrialEpoch.Decision.CONTINUE


# --- cancelling, summaries --------------------------------------------------------------------


def cancel(sweep: Sweep, by: str = "") -> None:
    """CANCELLED first (no new trial is made after this), then every trial's active run is cancelled."""
    sweep.transition(SweepStatus.CANCELLED, reason=f"Cancelled by {by}." if by else "Cancelled.")
    for run in Run.objects.filter(sweep_trial__sweep=sweep, status__in=[s for s in RunStatus if s not in RUN_TERMINAL]):
        try:
            run_lifecycle.cancel(run, by=by)
        except (StaleStatus, IllegalTransition):
            pass
    for trial in sweep.trials.filter(status=TrialState.RUNNING).select_related("run"):
        sync_trial(sweep, trial)  # a trial whose run was still queued ends FAIL (cancelled) now


def ranked(sweep: Sweep, trials=None) -> list[Trial]:
    """The finished trials, best objective first (pruned trials never count: they stopped early)."""
    done = [t for t in (trials if trials is not None else sweep.trials.all()) if t.status == TrialState.COMPLETE]
    # Ties go to the earlier trial.
    sign = -1 if sweep.maximize else 1
    return sorted((t for t in done if t.value is not None), key=lambda t: (sign * t.value, t.number))


def best_trial(sweep: Sweep, trials=None) -> Trial | None:
    """The finished trial with the best objective."""
    return next(iter(ranked(sweep, trials)), None)


def importance(sweep: Sweep, trials=None) -> dict[str, float]:
    """Optuna's parameter importance (fANOVA) over the finished trials; {} until two have finished
    with different values."""
    rows = [t for t in (trials if trials is not None else sweep.trials.all()) if t.status == TrialState.COMPLETE]
    if len(rows) < 2 or len({t.value for t in rows}) < 2 or len(search_space.varied(sweep.space)) < 1:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study(sweep, trials=rows)))
    except (ValueError, RuntimeError):  # e.g. every finished trial had the same parameters
        return {}


def rerun_best(sweep: Sweep, user) -> Run:
    """A normal run (no sweep, no pruning) with the best trial's hyperparameters, checked like any run."""
    best = best_trial(sweep)
    if best is None:
        raise SweepRequestError({"best": "no trial has finished yet"})
    return run_services.create_run(
        **_run_request(sweep, best.params), user=user, name=f"{sweep.name} · best (trial {best.number})"[:200]
    )


TOP_TO_COMPARE = 5  # the sweep page's "compare the top trials" link


def _display(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plottable(value: float | None) -> float | None:
    # A diverged epoch is stored as ±1e300 (see _finite): a gap in a chart, not a point that squashes it.
    return value if value is not None and math.isfinite(value) and abs(value) < 1e300 else None


def _curves(sweep: Sweep, trials: list[Trial]) -> dict[int, list[list]]:
    """Trial id → [[epoch, value], …]: the pruner's TrialEpoch rows, or for a sweep without a pruner
    (its nodes report no epochs) the run's per-epoch validation points of the objective."""
    out: dict[int, dict[int, float | None]] = {}
    for trial_id, epoch, value in TrialEpoch.objects.filter(trial__in=trials).values_list("trial_id", "epoch", "value"):
        out.setdefault(trial_id, {})[epoch] = _plottable(value)
    by_run = {t.run_id: t.pk for t in trials if t.run_id and t.pk not in out}
    points = MetricPoint.objects.filter(run_id__in=by_run, name=sweep.objective, epoch__isnull=False)
    for run_id, epoch, value in points.order_by("step", "executor").values_list("run_id", "epoch", "value"):
        out.setdefault(by_run[run_id], {})[epoch] = _plottable(value)  # the last point of an epoch wins
    return {trial_id: sorted([e, v] for e, v in epochs.items()) for trial_id, epochs in out.items()}


def progress(sweep: Sweep, trials: list[Trial]) -> dict:
    """Trials finished and running of the budget, trials per state, and the best so far: the list and
    the sweep page."""
    counts = {state: sum(t.status == state for t in trials) for state in TrialState.values}
    return {
        "budget": budget(sweep, sweep.strategy, sweep.max_trials),
        "finished": len(trials) - counts[TrialState.RUNNING],
        "running": counts[TrialState.RUNNING],
        "counts": counts,
        "best": best_trial(sweep, trials),
    }


def summary(sweep: Sweep) -> dict:
    """The sweep page's data, as JSON: status, progress, the best trial, each trial with its per-epoch
    objective, and the parameters' importance."""
    trials = list(sweep.trials.select_related("run"))
    done = progress(sweep, trials)
    best = done.pop("best")
    curves = _curves(sweep, trials)
    varied = search_space.varied(sweep.space)
    return {
        "id": sweep.pk,
        "status": sweep.status,
        "status_reason": sweep.status_reason,
        "waiting_reason": sweep.waiting_reason,
        "terminal": sweep.is_terminal,
        "objective": sweep.objective,
        "maximize": sweep.maximize,
        "space": varied,  # the parallel-coordinates chart's axes
        **done,
        "best": None
        if best is None
        else {
            "number": best.number,
            "value": best.value,
            "run_id": best.run_id,
            "test_accuracy": best.run.test_accuracy if best.run else None,
        },
        "importance": importance(sweep, trials),
        "top_run_ids": [t.run_id for t in ranked(sweep, trials) if t.run_id][:TOP_TO_COMPARE],
        "trials": [
            {
                "number": t.number,
                "status": t.status,
                "status_reason": t.status_reason,
                "params": t.params,
                "params_text": ", ".join(f"{k}={_display(v)}" for k, v in t.params.items()),
                "param_cells": [_display(t.params[k]) if k in t.params else "—" for k in varied],
                "value": _plottable(t.value),
                "epochs_run": t.epochs_run,
                "pruned_at_epoch": t.pruned_at_epoch,
                "duration_s": t.run.duration_s if t.run else None,
                "run_id": t.run_id,
                "run_url": t.run.get_absolute_url() if t.run else "",
                "best": best is not None and t.pk == best.pk,
                "epochs": curves.get(t.pk, []),
            }
            for t in trials
        ],
    }


def with_trial_counts(queryset):
    """Sweeps annotated with their trials per state (count_running, count_complete, ...), in the same
    query: a list of sweeps shows them without one query per sweep."""
    return queryset.annotate(
        **{
            f"count_{state.lower()}": Count("trials", filter=Q(trials__status=state), distinct=True)
            for state in TrialState.values
        }
    )


def trial_counts(sweep: Sweep) -> dict[str, int]:
    """{state: trials} for every trial state (annotated by with_trial_counts, else counted now)."""
    if all(hasattr(sweep, f"count_{state.lower()}") for state in TrialState.values):
        return {state: getattr(sweep, f"count_{state.lower()}") for state in TrialState.values}
    found = dict(sweep.trials.values_list("status").annotate(n=Count("pk")).order_by())
    return {state: found.get(state, 0) for state in TrialState.values}


def best_finished_trial(sweep: Sweep) -> Trial | None:
    """best_trial, reading only the finished trials (with their runs) from the database."""
    done = sweep.trials.filter(status=TrialState.COMPLETE, value__isnull=False).select_related("run")
    return best_trial(sweep, done)


def trials_with_epochs(sweep: Sweep):
    """The sweep's trials by number, each with its run's status (run_status) and its epochs in order:
    two queries for a page of them, however long it is."""
    epochs = Prefetch("epochs", queryset=TrialEpoch.objects.order_by("epoch"))
    return sweep.trials.annotate(run_status=F("run__status")).prefetch_related(epochs).order_by("number")
