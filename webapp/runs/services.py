"""Accepting a run request: validate everything first, save, then dispatch on commit."""

from django.db import transaction

from webapp.catalog.registry import get_template
from webapp.datasets.models import Dataset
from workers.tasks import submit_run

from .errors import RunRequestError
from .models import Run


def validate_resources(cluster, num_executors, executor_cores, executor_memory_mb) -> dict:
    errors = {}
    if not cluster.enabled:
        errors["cluster"] = f"Cluster {cluster.name} is disabled; pick another."
    if num_executors > cluster.max_executors:
        errors["num_executors"] = f"{cluster.name} allows at most {cluster.max_executors} executors."
    if executor_cores > cluster.max_executor_cores:
        errors["executor_cores"] = f"{cluster.name} allows at most {cluster.max_executor_cores} cores per executor."
    if executor_memory_mb > cluster.max_executor_memory_mb:
        errors["executor_memory_mb"] = (
            f"{cluster.name} allows at most {cluster.max_executor_memory_mb} MB per executor."
        )
    return errors


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
    input_mode: str = Run.InputMode.TENSORFLOW,
    name: str = "",
) -> Run:
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
    elif tmpl.needs_image and len(dataset.shape) != 3:
        errors["dataset"] = f"{tmpl.label} needs image data; {dataset.name} has shape {dataset.shape}."
    if input_mode not in Run.InputMode.values:
        errors["input_mode"] = f"choose one of {', '.join(Run.InputMode.values)}"
    errors.update(validate_resources(cluster, num_executors, executor_cores, executor_memory_mb))
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
        )
        transaction.on_commit(lambda: submit_run.delay(run.pk))
    return run
