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
            hyperparameters=hp,
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
