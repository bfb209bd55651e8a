"""Run spec (``<run dir>/spec.json``, see docs/architecture.md): load and validate.

Pure Python (no TensorFlow, no Spark) so the driver can refuse a bad spec in milliseconds and
executors can rebuild the same object from the plain dict they receive.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from workers.jobs.metrics import CLOSE_SECONDS

INPUT_MODES = ("tensorflow", "spark")
PRUNE_OBJECTIVES = ("val_accuracy", "val_loss")  # the sweep objectives; validation metrics only


class SpecError(ValueError):
    """The spec is missing something or holds a value that cannot work."""


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 0.001
    dropout: float = 0.4
    extra: dict = field(default_factory=dict)  # template-specific knobs (e.g. LSTM units)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in _HP_FIELDS else self.extra.get(name, default)


_HP_FIELDS = ("epochs", "batch_size", "learning_rate", "dropout")


@dataclass(frozen=True)
class DatasetSpec:
    train: str
    test: str
    shape: tuple
    num_classes: int
    class_names: tuple = ()


@dataclass(frozen=True)
class MetricsSpec:
    url: str | None = None  # None: metrics are not posted (plain runs, tests)
    token: str = ""
    every_steps: int = 5
    close_seconds: int = CLOSE_SECONDS  # how long an executor retries its last points before leaving them in a file
    prune: PruneSpec | None = None  # a sweep's trial: ask the pruner at each epoch's end


@dataclass(frozen=True)
class PruneSpec:
    url: str  # the epoch endpoint (the run's bearer token is metrics.token)
    objective: str = "val_accuracy"
    wait_seconds: int = 300  # how long a node keeps asking through a web outage before it trains on


@dataclass(frozen=True)
class Timeouts:
    reservation: int = 120  # TFCluster.run: all executors must register within this
    feed: int = 120  # SPARK mode: one partition must be consumed within this
    shutdown: int = 60  # after training: TFoS shutdown + waiting for the exported model
    train: int | None = None  # optional bound on the whole training phase


@dataclass(frozen=True)
class BaseSpec:
    """The model a run builds on (featurizer base, imported model); resolved by the web app."""

    kind: str  # "run" | "file" | "app"
    name: str  # run/file: a label for logs; app: the Keras application (e.g. "MobileNetV2")
    path: str  # run/file: the model file; app: the ImageNet weights file


BASE_KINDS = ("run", "file", "app")


@dataclass(frozen=True)
class RunSpec:
    run_id: Any
    app_name: str
    template: str
    hyperparameters: Hyperparameters
    input_mode: str
    cluster_size: int
    dataset: DatasetSpec
    artifact_dir: str
    metrics: MetricsSpec
    timeouts: Timeouts
    bind_host: str | None = None
    seed: int = 42
    base: BaseSpec | None = None

    def to_dict(self) -> dict:
        """The spec.json form again (extra hyperparameters flattened back), picklable and JSON-able."""
        d = asdict(self)
        d["hyperparameters"].update(d["hyperparameters"].pop("extra"))
        d["dataset"]["shape"] = list(self.dataset.shape)
        d["dataset"]["class_names"] = list(self.dataset.class_names)
        return d


def load_spec(path: str) -> RunSpec:
    """Read and validate a spec file; every problem raises SpecError naming the field."""
    return parse_spec(_read(path))


def load_any(path: str) -> RunSpec | ScoreSpec:
    """A training run's spec, or a scoring job's (``"kind": "score"``)."""
    raw = _read(path)
    return parse_score_spec(raw) if is_score_spec(raw) else parse_spec(raw)


def _read(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as e:
        raise SpecError(f"cannot read spec {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise SpecError(f"spec {path} is not valid JSON: {e}") from e
    return raw


def parse_spec(raw: Any) -> RunSpec:
    if isinstance(raw, RunSpec):
        return raw
    if not isinstance(raw, dict):
        raise SpecError("spec must be a JSON object")
    hp = _obj(raw, "hyperparameters")
    ds = _obj(raw, "dataset")
    metrics = raw.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise SpecError("metrics must be an object")
    timeouts = raw.get("timeouts") or {}
    if not isinstance(timeouts, dict):
        raise SpecError("timeouts must be an object")

    input_mode = _str(raw, "input_mode", "input_mode").lower()
    if input_mode not in INPUT_MODES:
        raise SpecError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")

    shape = ds.get("shape")
    if not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise SpecError(f"dataset.shape must be 1 to 3 positive integers, got {shape!r}")

    extra = {k: v for k, v in hp.items() if k not in _HP_FIELDS}
    spec = RunSpec(
        run_id=raw.get("run_id"),
        app_name=_str(raw, "app_name", "app_name"),
        template=_str(raw, "template", "template"),
        hyperparameters=Hyperparameters(
            epochs=_int(hp, "epochs", "hyperparameters.epochs", 3, lo=1),
            batch_size=_int(hp, "batch_size", "hyperparameters.batch_size", 32, lo=1),
            learning_rate=_float(hp, "learning_rate", "hyperparameters.learning_rate", 0.001),
            dropout=_float(hp, "dropout", "hyperparameters.dropout", 0.4, lo=0.0, hi=0.99),
            extra=extra,
        ),
        input_mode=input_mode,
        cluster_size=_int(raw, "cluster_size", "cluster_size", None, lo=1),
        dataset=DatasetSpec(
            train=_abs_path(ds, "train", "dataset.train"),
            test=_abs_path(ds, "test", "dataset.test"),
            shape=tuple(int(d) for d in shape),
            num_classes=_int(ds, "num_classes", "dataset.num_classes", None, lo=2),
            class_names=tuple(str(c) for c in ds.get("class_names") or ()),
        ),
        artifact_dir=_abs_path(raw, "artifact_dir", "artifact_dir"),
        metrics=MetricsSpec(
            url=metrics.get("url") or None,
            token=str(metrics.get("token") or ""),
            every_steps=_int(metrics, "every_steps", "metrics.every_steps", 5, lo=1),
            close_seconds=_int(metrics, "close_seconds", "metrics.close_seconds", CLOSE_SECONDS, lo=0),
            prune=_prune(metrics.get("prune")),
        ),
        timeouts=Timeouts(
            reservation=_int(timeouts, "reservation", "timeouts.reservation", 120, lo=1),
            feed=_int(timeouts, "feed", "timeouts.feed", 120, lo=1),
            shutdown=_int(timeouts, "shutdown", "timeouts.shutdown", 60, lo=1),
            train=_int(timeouts, "train", "timeouts.train", None, lo=1, optional=True),
        ),
        bind_host=raw.get("bind_host") or None,
        seed=_int(raw, "seed", "seed", 42, lo=0),
        base=_base(raw.get("base")),
    )
    if spec.metrics.url and not spec.metrics.url.startswith(("http://", "https://")):
        raise SpecError(f"metrics.url must be http(s), got {spec.metrics.url!r}")
    return spec


def _prune(raw) -> PruneSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError("metrics.prune must be an object")
    url = _str(raw, "url", "metrics.prune.url")
    if not url.startswith(("http://", "https://")):
        raise SpecError(f"metrics.prune.url must be http(s), got {url!r}")
    objective = raw.get("objective", "val_accuracy")
    if objective not in PRUNE_OBJECTIVES:
        raise SpecError(f"metrics.prune.objective must be one of {PRUNE_OBJECTIVES}, got {objective!r}")
    wait = _int(raw, "wait_seconds", "metrics.prune.wait_seconds", 300, lo=0)
    return PruneSpec(url=url, objective=objective, wait_seconds=wait)


def _base(raw) -> BaseSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError("base must be an object")
    kind = _str(raw, "kind", "base.kind")
    if kind not in BASE_KINDS:
        raise SpecError(f"base.kind must be one of {BASE_KINDS}, got {kind!r}")
    return BaseSpec(kind=kind, name=_str(raw, "name", "base.name"), path=_abs_path(raw, "path", "base.path"))


# --- small typed getters: each names the offending field in its message ---------------------


def _obj(d: dict, key: str) -> dict:
    v = d.get(key)
    if not isinstance(v, dict):
        raise SpecError(f"{key} must be an object")
    return v


def _str(d: dict, key: str, name: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v.strip():
        raise SpecError(f"{name} must be a non-empty string")
    return v.strip()


def _abs_path(d: dict, key: str, name: str) -> str:
    v = _str(d, key, name)
    if not v.startswith("/"):
        raise SpecError(f"{name} must be an absolute path, got {v!r}")
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(d, key, name, default, lo=None, optional=False):
    v = d.get(key, default)
    if v is None and (optional or default is not None):
        return default
    if not _is_int(v):
        raise SpecError(f"{name} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise SpecError(f"{name} must be >= {lo}, got {v}")
    return v


def _float(d, key, name, default, lo=None, hi=None):
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(f"{name} must be a number, got {v!r}")
    if lo is not None and v < lo or hi is not None and v > hi:
        raise SpecError(f"{name} must be within [{lo}, {hi}], got {v}")
    if lo is None and v <= 0:
        raise SpecError(f"{name} must be > 0, got {v}")
    return float(v)


# --- scoring jobs -------------------------------------------------------------------------------

MAX_TOP_K = 100
MAX_SCORE_BATCH = 65536


@dataclass(frozen=True)
class ScoreSpec:
    """A batch scoring job's spec.json (``"kind": "score"``): a registered model applied to a
    dataset's Parquet files by a plain Spark job (workers/jobs/score.py)."""

    run_id: Any
    app_name: str
    inputs: tuple  # the dataset's Parquet files (absolute paths), scored as one
    shape: tuple  # the model's input shape: each row's features reshaped to it
    model: str  # the model file (the registered version's own copy)
    artifact_dir: str
    class_names: tuple = ()
    top_k: int = 3
    batch_size: int = 1024
    rescale: dict | None = None  # {"from": {mean, std}, "to": {mean, std}} for table datasets
    bind_host: str | None = None


def is_score_spec(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("kind") == "score"


def parse_score_spec(raw: Any) -> ScoreSpec:
    """Validate a scoring spec; every problem raises SpecError naming the field."""
    if not is_score_spec(raw):
        raise SpecError('a scoring spec has "kind": "score"')
    inputs = raw.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise SpecError("inputs must be a non-empty list of Parquet paths")
    paths = tuple(_abs_path({"p": p}, "p", f"inputs[{i}]") for i, p in enumerate(inputs))
    shape = raw.get("shape")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise SpecError(f"shape must be 1 to 3 positive integers, got {shape!r}")
    top_k = _int(raw, "top_k", "top_k", 3, lo=1)
    batch = _int(raw, "batch_size", "batch_size", 1024, lo=1)
    if top_k > MAX_TOP_K or batch > MAX_SCORE_BATCH:
        raise SpecError(f"top_k must be at most {MAX_TOP_K} and batch_size at most {MAX_SCORE_BATCH}")
    rescale = raw.get("rescale")
    if rescale is not None and not (
        isinstance(rescale, dict)
        and all(isinstance(rescale.get(k), dict) and {"mean", "std"} <= set(rescale[k]) for k in ("from", "to"))
    ):
        raise SpecError('rescale must be {"from": {"mean", "std"}, "to": {"mean", "std"}}')
    names = raw.get("class_names") or []
    if not isinstance(names, list):
        raise SpecError("class_names must be a list")
    return ScoreSpec(
        run_id=raw.get("run_id"),
        app_name=_str(raw, "app_name", "app_name"),
        inputs=paths,
        shape=tuple(shape),
        model=_abs_path(raw, "model", "model"),
        artifact_dir=_abs_path(raw, "artifact_dir", "artifact_dir"),
        class_names=tuple(str(c) for c in names),
        top_k=top_k,
        batch_size=batch,
        rescale=rescale,
        bind_host=raw.get("bind_host") or None,
    )
