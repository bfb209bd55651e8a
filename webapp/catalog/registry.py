"""Model templates and their hyperparameter schemas, declared once.

The run form, the JSON schema endpoint, validation and the job spec all read these declarations.
"""

import re
from dataclasses import dataclass, field

from webapp import params

# A reference to a model the run builds on: an earlier run's export, an uploaded model file or a
# Keras application. Whether it exists and belongs to the team is checked in webapp/runs/bases.py.
REF = re.compile(r"^(run|file|app):([A-Za-z0-9_]{1,64})$")
REF_KINDS = {"run": "an earlier run's model", "file": "an uploaded model file", "app": "a Keras application"}


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # int | float | str
    default: object
    min: float | None = None
    max: float | None = None
    help: str = ""
    choices: tuple = ()  # str params: the allowed values
    refs: tuple = ()  # str params: reference kinds accepted ("run", "file", "app"); "" = required

    @property
    def kind(self) -> str:
        if self.refs:
            return "ref"
        if self.choices:
            return "choice"
        return {int: "int", float: "float"}.get(self.type, "str")

    def parse(self, raw):
        if self.refs:
            m = REF.match(str(raw).strip())
            if not m or m.group(1) not in self.refs:
                allowed = " or ".join(REF_KINDS[k] for k in self.refs)
                raise ValueError(f"must be {allowed}")
            return m.group(0)
        if self.choices:
            value = str(raw).strip()
            if value not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}")
            return value
        wrong = ValueError(f"must be a{'n integer' if self.type is int else ' number'}")
        text = raw.strip() if isinstance(raw, str) else raw
        if self.type is int and isinstance(text, float):  # JSON 3.0
            if not text.is_integer():
                raise wrong
            text = int(text)
        try:
            if self.type is int:
                value = params.parse_int(text, self.name, min_value=-params.MAX_ID, max_value=params.MAX_ID)
            else:
                value = params.parse_float(text, self.name, min_value=-params.MAX_FLOAT, max_value=params.MAX_FLOAT)
        except params.BadParam:
            raise wrong from None
        if not (self.min <= value <= self.max):
            raise ValueError(f"must be between {self.min} and {self.max}")
        return value

    def to_json(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        if self.kind in ("int", "float"):
            d.update(min=self.min, max=self.max)
        if self.choices:
            d["choices"] = list(self.choices)
        if self.refs:
            d["refs"] = list(self.refs)
        return d


@dataclass(frozen=True)
class Template:
    key: str
    label: str
    description: str
    layouts: tuple = ("image",)  # dataset layouts it can train on
    params: tuple = field(default_factory=tuple)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @property
    def ref_params(self) -> tuple:
        return tuple(p for p in self.params if p.refs)

    def validate(self, raw: dict) -> tuple[dict, dict]:
        """Return (values, errors); unknown keys are errors, missing keys take defaults."""
        values, errors = {}, {}
        known = {p.name for p in self.params}
        for key in raw:
            if key not in known:
                errors[key] = "unknown hyperparameter"
        for p in self.params:
            raw_value = raw.get(p.name, "")
            if raw_value in ("", None):
                if p.refs:
                    errors[p.name] = "required: pick a model"
                else:
                    values[p.name] = p.default
                continue
            try:
                values[p.name] = p.parse(raw_value)
            except ValueError as exc:
                errors[p.name] = str(exc)
        return values, errors

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "description": self.description,
            "layouts": list(self.layouts),
            "params": [p.to_json() for p in self.params],
        }


OPTIMIZERS = ("adam", "sgd", "rmsprop")


def common(epochs=3, learning_rate=0.001, batch_size=32):
    """The knobs every Keras-trained template has; defaults differ per template."""
    return (
        Param("epochs", int, epochs, 1, 500, "Passes over the training split."),
        Param("batch_size", int, batch_size, 1, 4096, "Global batch: split evenly over the executors."),
        Param("learning_rate", float, learning_rate, 1e-6, 1.0, "Optimizer learning rate."),
        Param(
            "validation_split",
            float,
            0.1,
            0.0,
            0.5,
            "Share of the training split held out (stratified, seeded) for val_loss/val_accuracy after "
            "every epoch; 0 = no validation. The test split is never used for it.",
        ),
    )


def training(optimizer="adam"):
    return (
        Param("optimizer", str, optimizer, help="adam, sgd (momentum 0.9) or rmsprop.", choices=OPTIMIZERS),
        Param(
            "steps_per_epoch", int, 0, 0, 1_000_000, "Batches per epoch on every executor; 0 = one pass over the data."
        ),
    )


TEMPLATES = {
    "cnn": Template(
        key="cnn",
        label="CNN",
        description="conv k×k×f → pool 2 → conv k×k×2f → pool 2 → dense → dropout → softmax (the seed network: "
        "k=5, f=32, dense 1024), adapted to the image size.",
        params=common(epochs=3)
        + (
            Param("filters", int, 32, 1, 512, "Filters in the first conv layer; the second has twice as many."),
            Param("kernel_size", int, 5, 1, 15, "Side of the square conv kernels."),
            Param("dense_units", int, 1024, 8, 8192, "Units in the dense layer."),
            Param("dropout", float, 0.4, 0.0, 0.9, "Dropout rate before the output layer."),
        )
        + training(),
    ),
    "lstm": Template(
        key="lstm",
        label="LSTM",
        description="Sequences: each time step is one input vector. Image datasets are read row by row (8 steps × "
        "8 inputs for digits, 28 × 28 for MNIST); sequence datasets use their own steps × features. "
        "Stacked LSTM → dropout → softmax.",
        layouts=("image", "sequence"),
        params=common(epochs=10, learning_rate=0.005)
        + (
            Param("hidden_units", int, 128, 4, 2048, "Units in each LSTM layer."),
            Param("layers", int, 1, 1, 4, "Stacked LSTM layers."),
            Param("dropout", float, 0.2, 0.0, 0.9, "Dropout rate before the output layer."),
        )
        + training(),
    ),
    "mlp": Template(
        key="mlp",
        label="Dense network (MLP)",
        description="Tables (CSV/TSV/Parquet feature columns, standardized per feature on upload): dense relu "
        "layers, each followed by dropout → softmax.",
        layouts=("table",),
        params=common(epochs=30, learning_rate=0.001)
        + (
            Param("layers", int, 2, 1, 8, "Hidden dense layers."),
            Param("units", int, 64, 1, 4096, "Units in each hidden layer."),
            Param("dropout", float, 0.1, 0.0, 0.9, "Dropout rate after each hidden layer (keras head)."),
            Param(
                "head",
                str,
                "keras",
                help="keras: trained with TFoS on the executors; mllib: Spark MLlib's "
                "MultilayerPerceptronClassifier (sigmoid layers, L-BFGS) in the driver's Spark application.",
                choices=("keras", "mllib"),
            ),
            Param("max_iter", int, 200, 1, 5000, "mllib head: L-BFGS iterations (epochs apply to the keras head)."),
        )
        + training(),
    ),
    "featurizer": Template(
        key="featurizer",
        label="Transfer learning (featurizer + classifier)",
        description="A pretrained base network cut before its top turns every image into a feature vector in a "
        "distributed Spark job (images are resized to the base's input size); a classifier is trained on the "
        "features: Spark MLlib LogisticRegression, or a small Keras dense head trained with TFoS.",
        params=(
            Param(
                "base",
                str,
                "",
                help="An earlier run's model, an uploaded model file, or a Keras application whose ImageNet "
                "weights file is in the weights directory.",
                refs=("run", "file", "app"),
            ),
            Param(
                "head",
                str,
                "logreg",
                help="logreg: Spark MLlib LogisticRegression; dense: Keras head on TFoS.",
                choices=("logreg", "dense"),
            ),
            Param("input_size", int, 0, 0, 512, "Resize images to this square size; 0 = the base's own input size."),
            Param("reg_param", float, 0.01, 0.0, 10.0, "logreg: regularization strength (on standardized features)."),
            Param("elastic_net", float, 0.0, 0.0, 1.0, "logreg: L1 share of the penalty (0 = L2 only, 1 = L1 only)."),
            Param("max_iter", int, 100, 1, 1000, "logreg: optimizer iterations."),
        )
        + common(epochs=15, learning_rate=0.005)
        + (
            Param("dense_units", int, 0, 0, 4096, "dense head: hidden units; 0 = softmax straight on the features."),
            Param("dropout", float, 0.0, 0.0, 0.9, "dense head: dropout before the output layer."),
        )
        + training(),
    ),
    "imported": Template(
        key="imported",
        label="Imported Keras model",
        description="Train an uploaded .keras/.h5 model (loaded in safe mode: no Lambda layers or custom code). "
        "Its input must take the dataset's rows and its output must have one unit per class; a non-softmax "
        "output is treated as logits.",
        layouts=("image", "sequence"),
        params=(Param("model", str, "", help="An uploaded model file.", refs=("file",)),)
        + common(epochs=5)
        + training(),
    ),
}


def get_template(key: str) -> Template:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise ValueError(f"unknown template {key!r}; choose one of {', '.join(TEMPLATES)}") from None


def schema() -> list[dict]:
    return [t.to_json() for t in TEMPLATES.values()]
