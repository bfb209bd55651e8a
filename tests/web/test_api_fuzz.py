"""Schemathesis against the live server: cases generated from the API's OpenAPI schema for every
operation (valid and invalid ones, a few each), sent over HTTP with an API token, every built-in check on
(no server error; status codes, content types, headers and bodies as documented; invalid data refused;
valid data accepted; auth not ignored; ...). Bounded: a few examples per operation.

The schema is generated here at import (schemathesis parametrizes at collection, before the live server
exists); test_served_schema_is_the_one_fuzzed shows it is the document /api/schema/ serves."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from webapp.api import tokens
from webapp.datasets.models import Dataset
from webapp.runs.models import MetricPoint, Run
from webapp.sweeps.models import Sweep, Trial, TrialEpoch

# A few in the suite; a longer search sets FUZZ_EXAMPLES (e.g. 200).
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "6"))
# Schema-valid requests these operations refuse (400) for what no schema can say: a team, dataset or
# cluster id that is not among yours, a cursor made for another sort, an expression's grammar, a file's
# contents, a class index past the run's classes. Everywhere else valid data must be accepted.
STATEFUL_VALIDATION = [
    "runs_list",
    "datasets_list",
    "runs_submit",
    "datasets_upload",
    "runs_predictions",
    "sweeps_list",
    "sweeps_create",
    # The registry: a run or file id that is not yours, an archived version, one an alias holds, a
    # name two of your teams use (team), a team that is not yours.
    "models_list",
    "models_retrieve",
    "models_versions",
    "models_register",
    "models_version_retrieve",
    "models_version_archive",
    "models_alias_retrieve",
    "models_alias_set",
    "models_alias_set_post",
    "models_alias_delete",
]
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429"]
SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(
    SCHEMA,
    config=schemathesis.config.SchemathesisConfig.from_dict(
        {
            "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE_STATUSES}},
            "operations": [
                {
                    "include-operation-id": op,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "400"]}},
                }
                for op in STATEFUL_VALIDATION
            ],
        }
    ),
)


@pytest.fixture
def queued(monkeypatch):
    """Runs, datasets and sweeps accepted by the API are handed to Celery on commit: recorded here, not
    sent (no worker in this test; what is tested is the HTTP layer)."""
    from webapp.datasets.tasks import convert_dataset
    from webapp.runs.tasks import submit_run
    from webapp.sweeps.tasks import advance_sweep

    sent = []
    for task in (submit_run, convert_dataset, advance_sweep):
        monkeypatch.setattr(task, "delay", lambda *args, _name=task.name: sent.append((_name, args)))
    return sent


@pytest.fixture
def world(live_server, alice, bob, cluster, queued):
    """alice's API token and her team's objects: a READY dataset, a finished run with logs, metrics, a
    model and predictions, and a running sweep with a finished and a queued trial; bob's team exists too."""
    user, team = alice
    dataset = Dataset.objects.create(
        team=team, name="digits", status=Dataset.Status.READY, shape=[8, 8, 1], num_classes=10, source_format="npz"
    )
    run = Run.objects.create(
        team=team,
        created_by=user,
        dataset=dataset,
        cluster=cluster,
        name="fuzzed",
        template="cnn",
        status=Run.Status.SUCCEEDED,
        hyperparameters={"epochs": 2, "batch_size": 32, "learning_rate": 0.001},
    )
    _write_run_files(run.run_dir)
    MetricPoint.objects.bulk_create(
        MetricPoint(run=run, name="loss", executor="0", step=s, epoch=s // 5, value=1 / (s + 1), wall_time=1.7e9 + s)
        for s in range(20)
    )
    sweep = _sweep(user, team, dataset, cluster, run)
    _registered(user, run)
    return {"key": tokens.issue(user), "run": run.pk, "dataset": dataset.pk, "sweep": sweep.pk, "model": "fuzzed"}


def _registered(user, run):
    """Model "fuzzed": versions 1 (alias production) and 2, both copies of the finished run's model."""
    from webapp.registry import services

    first = services.register_run(run, "fuzzed", "", user)
    services.register_run(run, "fuzzed", "", user)
    services.set_alias(first.model, "production", first, user)


def _sweep(user, team, dataset, cluster, finished_run):
    """Trial 0 is the finished run (its epochs judged), trial 1 still queued: cancelling has a run to stop."""
    sweep = Sweep.objects.create(
        team=team,
        created_by=user,
        name="fuzzed sweep",
        dataset=dataset,
        cluster=cluster,
        template="cnn",
        space={"learning_rate": {"type": "range", "low": 0.0001, "high": 0.1, "log": True}},
        base_hyperparameters={"epochs": 2, "validation_split": 0.1},
        pruner="median",
    )
    done = Trial.objects.create(
        sweep=sweep, number=0, run=finished_run, params={"learning_rate": 0.001}, status="COMPLETE", value=0.9
    )
    TrialEpoch.objects.create(trial=done, epoch=1, value=0.9, decision="continue")
    queued = Run.objects.create(
        team=team, created_by=user, dataset=dataset, cluster=cluster, name="fuzzed trial 1", template="cnn"
    )
    Trial.objects.create(sweep=sweep, number=1, run=queued, params={"learning_rate": 0.01})
    return sweep


def _write_run_files(d):
    (d / "executors" / "0").mkdir(parents=True)
    (d / "driver.log").write_text("".join(f"driver line {i}\n" for i in range(50)))
    for stream in ("stdout", "stderr"):
        (d / "executors" / "0" / stream).write_text(f"executor 0 {stream}\n")
    (d / "model").mkdir()
    (d / "model" / "model.keras").write_bytes(b"model-bytes")
    (d / "predictions").mkdir()
    (d / "predictions" / "predictions.csv").write_text("row_id,label,prediction,confidence\n0,1,1,0.9\n")
    n = 60
    table = pa.table(
        {
            "row_id": pa.array(range(n), pa.int64()),
            "label": pa.array([i % 10 for i in range(n)], pa.int64()),
            "prediction": pa.array([(i * 3) % 10 for i in range(n)], pa.int64()),
            "confidence": pa.array([0.5 + i / 1000 for i in range(n)], pa.float32()),
        }
    )
    pq.write_table(table, d / "predictions" / "predictions.parquet", row_group_size=20)


def _aim_at_real_objects(case, world):
    """Valid (positive) cases name alice's own run, dataset or sweep and existing logs: random ids only
    ever reach 404. Invalid cases keep what was generated."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if case.operation.definition.raw.get("operationId") == "models_register" and isinstance(case.body, dict):
        case.body.pop("modelfile", None)
        case.body.pop("team", None)
        case.body["run"] = world["run"]  # registered: a 201 whose body the schema checks
    if not case.path_parameters:
        return
    p = case.path_parameters
    if "id" in p:
        kind = case.path.split("/")[2]
        p["id"] = {"datasets": world["dataset"], "sweeps": world["sweep"]}.get(kind, world["run"])
    if "name" in p:
        p["name"] = world["model"]
        if "version" in p:
            p["version"] = 1 + len(str(p["version"])) % 2
        if "alias" in p:
            p["alias"] = ("production", "candidate")[len(str(p["alias"])) % 2]
    if "stream" in p:
        p["source"], p["stream"] = "0", ("stdout", "stderr")[len(str(p["stream"])) % 2]
    elif "source" in p:
        p["source"] = ("driver", "0")[len(str(p["source"])) % 2]


@pytest.mark.django_db
def test_served_schema_is_the_one_fuzzed(live_server, world):
    resp = requests.get(
        f"{live_server.url}/api/schema/", params={"format": "json"}, headers={"Authorization": f"Token {world['key']}"}
    )
    assert resp.status_code == 200
    assert resp.json() == SCHEMA
    assert len(SCHEMA["paths"]) >= 18


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db
def test_api_conforms_to_its_schema(case, live_server, world):
    _aim_at_real_objects(case, world)
    case.call_and_validate(base_url=live_server.url, headers={"Authorization": f"Token {world['key']}"})
