"""Model templates and their hyperparameter schemas, declared once.

The run form, validation and the job spec all read these declarations.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # int | float
    default: float
    min: float
    max: float
    help: str

    def parse(self, raw):
        try:
            value = self.type(raw)
        except (TypeError, ValueError):
            raise ValueError(f"must be a{'n integer' if self.type is int else ' number'}") from None
        if self.type is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError("must be an integer")
        if not (self.min <= value <= self.max):
            raise ValueError(f"must be between {self.min} and {self.max}")
        return value


@dataclass(frozen=True)
class Template:
    key: str
    label: str
    description: str
    needs_image: bool
    params: tuple = field(default_factory=tuple)

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
                values[p.name] = p.default
                continue
            try:
                values[p.name] = p.parse(raw_value)
            except ValueError as exc:
                errors[p.name] = str(exc)
        return values, errors


def common(epochs=3, learning_rate=0.001):
    """The knobs every template has; defaults differ per template."""
    return (
        Param("epochs", int, epochs, 1, 500, "Passes over the training split."),
        Param("batch_size", int, 32, 1, 4096, "Global batch: split evenly over the executors."),
        Param("learning_rate", float, learning_rate, 1e-6, 1.0, "Adam learning rate."),
    )


TEMPLATES = {
    "cnn": Template(
        key="cnn",
        label="CNN",
        description="conv 5×5×32 → pool 2 → conv 5×5×64 → pool 2 → dense → dropout → softmax, "
        "adapted to the image size.",
        needs_image=True,
        params=common()
        + (
            Param("dense_units", int, 1024, 8, 8192, "Units in the dense layer."),
            Param("dropout", float, 0.4, 0.0, 0.9, "Dropout rate before the output layer."),
        ),
    ),
    "lstm": Template(
        key="lstm",
        label="LSTM",
        description="Each image row is one time step (8 steps × 8 inputs for digits, 28 × 28 for MNIST) → "
        "stacked LSTM → dropout → softmax.",
        needs_image=True,
        params=common(epochs=10, learning_rate=0.005)
        + (
            Param("hidden_units", int, 128, 4, 2048, "Units in each LSTM layer."),
            Param("layers", int, 1, 1, 4, "Stacked LSTM layers."),
            Param("dropout", float, 0.2, 0.0, 0.9, "Dropout rate before the output layer."),
        ),
    ),
}


def get_template(key: str) -> Template:
    try:
        return TEMPLATES[key]
    except KeyError:
        raise ValueError(f"unknown template {key!r}; choose one of {', '.join(TEMPLATES)}") from None
