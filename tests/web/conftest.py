"""Fixtures of the web tests: run rows (the history pages' many, one submitted run with a real dataset)."""

import pytest

from webapp.datasets.models import Dataset
from webapp.runs.models import Run


@pytest.fixture
def make_run(alice, cluster):
    """make(name, dataset=<name>, team, created_by, created_at, tags, epochs/batch_size/learning_rate,
    any Run field): a run row (no job behind it); datasets by name are created once per team."""
    user, team = alice
    datasets = {}

    def make(name="run", dataset="digits", team=team, created_by=user, created_at=None, tags="", **fields):
        key = (team.pk, dataset)
        if key not in datasets:
            datasets[key] = Dataset.objects.create(
                team=team, name=dataset, status="READY", shape=[8, 8, 1], num_classes=10
            )
        hp = {k: fields.pop(k) for k in ("epochs", "batch_size", "learning_rate") if k in fields}
        run = Run.objects.create(
            team=team,
            created_by=created_by,
            name=name,
            dataset=datasets[key],
            cluster=cluster,
            template=fields.pop("template", "cnn"),
            hyperparameters={**fields.pop("hyperparameters", {}), **hp},
            **fields,
        )
        if tags:
            run.set_tags(tags)
        if created_at:
            Run.objects.filter(pk=run.pk).update(created_at=created_at)
            run.created_at = created_at
        return run

    return make


@pytest.fixture
def submitted_run(alice, cluster, digits_dataset):
    """Alice's CNN run on the stored digits dataset, SUBMITTED (no job behind it)."""
    user, team = alice
    r = Run.objects.create(team=team, created_by=user, dataset=digits_dataset, template="cnn", cluster=cluster)
    r.transition(Run.Status.SUBMITTED)
    return r


@pytest.fixture
def make_sweep(alice, cluster, make_run):
    """make(space=..., trials=[{"params", "status", "value", "run_status", "epochs": {1: 0.5}}], team,
    any Sweep field): a sweep row with trial rows and their run rows (no job, no Celery behind them)."""
    from webapp.sweeps.models import Sweep, Trial, TrialEpoch

    user, team = alice
    default_space = {"learning_rate": {"type": "range", "low": 0.0001, "high": 0.1, "log": True}}

    def make(trials=(), team=team, created_by=user, space=None, **fields):
        dataset = make_run("seed-run", team=team, created_by=created_by).dataset
        sweep = Sweep.objects.create(
            team=team,
            created_by=created_by,
            name=fields.pop("name", "a sweep"),
            dataset=dataset,
            cluster=cluster,
            template=fields.pop("template", "cnn"),
            space=space or default_space,
            base_hyperparameters=fields.pop("base_hyperparameters", {"epochs": 3, "validation_split": 0.1}),
            **fields,
        )
        for number, t in enumerate(trials):
            params = t.get("params", {"learning_rate": 0.001 * (number + 1)})
            run = make_run(
                f"{sweep.name} · trial {number}",
                team=team,
                created_by=created_by,
                status=t.get("run_status", "SUCCEEDED"),
                hyperparameters={**sweep.base_hyperparameters, **params},
                result=t.get("result", {}),
            )
            trial = Trial.objects.create(
                sweep=sweep,
                number=number,
                run=run,
                params=params,
                status=t.get("status", "COMPLETE"),
                value=t.get("value"),
                pruned_at_epoch=t.get("pruned_at_epoch"),
                epochs_run=t.get("epochs_run"),
            )
            for epoch, value in (t.get("epochs") or {}).items():
                TrialEpoch.objects.create(trial=trial, epoch=epoch, value=value, decision=t.get("decision", "continue"))
        return sweep

    return make


def write_model_files(run, files=None):
    """Files in the run's `model/` folder as a finished run leaves them (default: model/model.keras)."""
    files = files or {"model.keras": b"keras-archive-bytes"}
    for rel, content in files.items():
        path = run.run_dir / "model" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return run


@pytest.fixture
def model_run(make_run):
    """model_run(name="trained", files={...}, **Run fields): a SUCCEEDED run with model files, a held-out
    accuracy and validation points (what the registry copies and records)."""
    from webapp.runs.models import MetricPoint

    def make(name="trained", files=None, **fields):
        fields.setdefault("status", "SUCCEEDED")
        fields.setdefault("test_accuracy", 0.91)
        fields.setdefault("test_loss", 0.3)
        fields.setdefault("test_rows", 360)
        fields.setdefault("hyperparameters", {"epochs": 3, "learning_rate": 0.001})
        run = make_run(name, **fields)
        MetricPoint.objects.bulk_create(
            MetricPoint(run=run, name=n, executor="0", step=s, epoch=s, value=v, wall_time=1.7e9 + s)
            for s, (n, v) in enumerate(
                [("val_accuracy", 0.8), ("val_accuracy", 0.88), ("val_loss", 0.5), ("val_loss", 0.4)]
            )
        )
        return write_model_files(run, files)

    return make
