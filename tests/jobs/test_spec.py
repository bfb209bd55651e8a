import json

import pytest

from workers.jobs.spec import Hyperparameters, SpecError, load_spec, parse_spec


def example():
    # The example of docs/architecture.md.
    return {
        "run_id": 12,
        "app_name": "sparkdeck-run-12",
        "template": "cnn",
        "hyperparameters": {"epochs": 3, "batch_size": 32, "learning_rate": 0.001, "dropout": 0.4},
        "input_mode": "tensorflow",
        "cluster_size": 2,
        "dataset": {
            "train": "/abs/train.parquet",
            "test": "/abs/test.parquet",
            "shape": [8, 8, 1],
            "num_classes": 10,
            "class_names": ["0", "1"],
        },
        "artifact_dir": "/abs/var/artifacts/runs/12",
        "metrics": {"url": "http://127.0.0.1:8000/ingest/runs/12/metrics", "token": "t", "every_steps": 5},
        "timeouts": {"reservation": 120, "feed": 120, "shutdown": 60},
        "bind_host": "127.0.0.1",
        "seed": 42,
    }


def test_example_parses():
    spec = parse_spec(example())
    assert spec.run_id == 12 and spec.template == "cnn" and spec.input_mode == "tensorflow"
    assert spec.hyperparameters == Hyperparameters(3, 32, 0.001, 0.4)
    assert spec.dataset.shape == (8, 8, 1) and spec.dataset.num_classes == 10
    assert spec.metrics.every_steps == 5 and spec.metrics.token == "t"
    assert (spec.timeouts.reservation, spec.timeouts.feed, spec.timeouts.shutdown) == (120, 120, 60)
    assert spec.timeouts.train is None
    assert spec.bind_host == "127.0.0.1" and spec.seed == 42


def test_to_dict_round_trips_and_keeps_extra_hyperparameters():
    raw = example()
    raw["hyperparameters"]["units"] = 64
    spec = parse_spec(raw)
    assert spec.hyperparameters.get("units") == 64
    assert spec.hyperparameters.get("dropout") == 0.4
    again = parse_spec(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_defaults_for_optional_parts():
    raw = example()
    for key in ("metrics", "timeouts", "bind_host", "seed"):
        del raw[key]
    raw["hyperparameters"] = {}
    spec = parse_spec(raw)
    assert spec.metrics.url is None and spec.bind_host is None and spec.seed == 42
    assert spec.metrics.close_seconds == 20  # a spec without the key (an older web app) still bounds close()
    assert spec.hyperparameters.epochs == 3 and spec.hyperparameters.batch_size == 32


def test_a_trial_s_prune_part_parses_and_round_trips():
    raw = example()
    assert parse_spec(raw).metrics.prune is None  # a plain run is never stopped early
    raw["metrics"]["prune"] = {"url": "http://127.0.0.1:8000/ingest/runs/12/epoch", "objective": "val_loss"}
    spec = parse_spec(raw)
    assert spec.metrics.prune.objective == "val_loss" and spec.metrics.prune.wait_seconds == 300
    assert parse_spec(json.loads(json.dumps(spec.to_dict()))) == spec


def test_input_mode_is_case_insensitive():
    raw = example()
    raw["input_mode"] = "SPARK"
    assert parse_spec(raw).input_mode == "spark"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("template"), "template"),
        (lambda s: s.update(input_mode="files"), "input_mode"),
        (lambda s: s.update(cluster_size=0), "cluster_size"),
        (lambda s: s.pop("cluster_size"), "cluster_size"),
        (lambda s: s.update(artifact_dir="relative/dir"), "artifact_dir"),
        (lambda s: s["dataset"].update(train="train.parquet"), "dataset.train"),
        (lambda s: s["dataset"].update(shape=[8, 8, 1, 1]), "dataset.shape"),
        (lambda s: s["dataset"].update(shape=[8, 0, 1]), "dataset.shape"),
        (lambda s: s["dataset"].update(shape="8x8"), "dataset.shape"),
        (lambda s: s["dataset"].update(num_classes=1), "dataset.num_classes"),
        (lambda s: s["hyperparameters"].update(epochs=1.5), "hyperparameters.epochs"),
        (lambda s: s["hyperparameters"].update(epochs=True), "hyperparameters.epochs"),
        (lambda s: s["hyperparameters"].update(batch_size=0), "hyperparameters.batch_size"),
        (lambda s: s["hyperparameters"].update(learning_rate=0), "hyperparameters.learning_rate"),
        (lambda s: s["hyperparameters"].update(learning_rate="fast"), "hyperparameters.learning_rate"),
        (lambda s: s["hyperparameters"].update(dropout=1.0), "hyperparameters.dropout"),
        (lambda s: s["metrics"].update(url="ftp://x"), "metrics.url"),
        (lambda s: s["metrics"].update(every_steps=0), "metrics.every_steps"),
        (lambda s: s["metrics"].update(close_seconds=-1), "metrics.close_seconds"),
        (lambda s: s["metrics"].update(close_seconds="20"), "metrics.close_seconds"),
        (lambda s: s["timeouts"].update(feed=-1), "timeouts.feed"),
        (lambda s: s["metrics"].update(prune="yes"), "metrics.prune"),
        (lambda s: s["metrics"].update(prune={"objective": "val_loss"}), "metrics.prune.url"),
        (lambda s: s["metrics"].update(prune={"url": "file:///x"}), "metrics.prune.url"),
        (lambda s: s["metrics"].update(prune={"url": "http://w/e", "objective": "loss"}), "metrics.prune.objective"),
        (lambda s: s["metrics"].update(prune={"url": "http://w/e", "wait_seconds": -1}), "metrics.prune.wait_seconds"),
        (lambda s: s.update(hyperparameters=[]), "hyperparameters"),
    ],
)
def test_bad_specs_name_the_field(mutate, message):
    raw = example()
    mutate(raw)
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        parse_spec(raw)


def test_not_an_object():
    with pytest.raises(SpecError, match="JSON object"):
        parse_spec([1, 2])


def test_load_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(str(bad))
    good = tmp_path / "spec.json"
    good.write_text(json.dumps(example()))
    assert load_spec(str(good)).app_name == "sparkdeck-run-12"
