"""Accepting a run request: validate everything first, save, then dispatch on commit."""

import math

from django.db import transaction

from webapp.catalog.registry import get_template
from webapp.datasets.models import Dataset
from workers.jobs import templates as job_templates

from . import bases, preflight
from .errors import RunRequestError
from .models import Run
from .tasks import submit_run


def check_template_fits(tmpl, dataset, team, values: dict) -> dict:
    """The template can train on this dataset, and every model it builds on exists and fits."""
    layout = getattr(dataset, "layout", "image")
    if layout not in tmpl.layouts:
        kinds = " or ".join(f"{k} datasets" for k in tmpl.layouts)
        message = f"{tmpl.label} trains on {kinds}; {dataset.name} holds {layout} data."
        if layout == "table":
            message += " Use the MLP template for tables, or upload with an image shape to train a CNN."
        return {"dataset": message}
    try:
        job_templates.check(tmpl.key, dataset.shape)
    except ValueError as exc:
        return {"dataset": f"{dataset.name}: {exc}"}
    errors = {}
    for p in tmpl.ref_params:
        if p.name not in values:
            continue  # already reported by the schema
        try:
            base = bases.resolve(team, values[p.name])
        except bases.BaseRefError as exc:
            errors[p.name] = str(exc)
            continue
        if tmpl.key == "imported":
            problem = _imported_fits(base, dataset)
            if problem:
                errors[p.name] = problem
        elif base.input_shape is not None and len(base.input_shape) != 3:
            errors[p.name] = f"{base.name} takes inputs shaped {list(base.input_shape)}; a base must take images."
    return errors


def _imported_fits(base, dataset) -> str:
    shape, need = tuple(base.input_shape), tuple(dataset.shape)
    if math.prod(shape) != math.prod(need):
        return f"{base.name} takes inputs shaped {list(shape)}; {dataset.name}'s rows are {list(need)}."
    if base.num_outputs != dataset.num_classes:
        return f"{base.name} has {base.num_outputs} outputs; {dataset.name} has {dataset.num_classes} classes."
    return ""


def create_run(
    *,
    team,
    user,
    dataset,
    template: str,
    hyperparameters: dict,
    cluster,
    num_executors: int,
    executor_cores: int,
    executor_memory_mb: int,
    gpus_per_executor: int = 0,
    input_mode: str = Run.InputMode.TENSORFLOW,
    name: str = "",
    early_stop: dict | None = None,
    live: bool = True,
) -> Run:
    """Validate everything (schema, dataset, template fit, pre-flight resource checks incl. the live
    cluster), save the run QUEUED, and hand it to the queue once the transaction commits."""
    errors = {}
    try:
        tmpl = get_template(template)
    except ValueError as exc:
        raise RunRequestError({"template": str(exc)}) from None
    values, hp_errors = tmpl.validate(hyperparameters)
    errors.update(hp_errors)
    if dataset.team_id != team.pk:
        errors["dataset"] = "No such dataset."
    elif dataset.status != Dataset.Status.READY:
        errors["dataset"] = f"Dataset {dataset.name} is not ready."
    else:
        errors.update(check_template_fits(tmpl, dataset, team, values))
    if input_mode not in Run.InputMode.values:
        errors["input_mode"] = f"choose one of {', '.join(Run.InputMode.values)}"
    ask = preflight.Ask(num_executors, executor_cores, executor_memory_mb, gpus_per_executor)
    # The live cluster check (an HTTP call) only when everything else is fine.
    errors.update(preflight.check(cluster, team, ask, live=live and not errors))
    if errors:
        raise RunRequestError(errors)

    with transaction.atomic():
        run = Run.objects.create(
            team=team,
            created_by=user,
            name=name or f"{tmpl.label} on {dataset.name}",
            dataset=dataset,
            template=tmpl.key,
            hyperparameters=values,
            input_mode=input_mode,
            cluster=cluster,
            num_executors=num_executors,
            executor_cores=executor_cores,
            executor_memory_mb=executor_memory_mb,
            gpus_per_executor=gpus_per_executor,
            early_stop=early_stop or {},
        )
        transaction.on_commit(lambda: submit_run.delay(run.pk))
    return run
