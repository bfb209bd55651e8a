"""Keras model templates (legacy Keras 2, ``tf_keras``: Keras 3 breaks under MWMS in TFoS).

``BUILDERS[name](shape, num_classes, hp)`` returns a compiled model. ``check(name, shape)`` runs
the same input checks without importing TensorFlow, so the driver can refuse a run up front.
"""

from __future__ import annotations

import math
import os


def _keras():
    # Must be set before TensorFlow is first imported in this process.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    return tf_keras


def _hp(hp, name, default):
    # hp: spec.Hyperparameters or a plain dict; both have .get
    return default if hp is None else hp.get(name, default)


def optimizer(keras, hp, learning_rate: float):
    """The run's optimizer ("adam" | "sgd" with momentum 0.9 | "rmsprop") at its learning rate."""
    name = str(_hp(hp, "optimizer", "adam")).lower()
    lr = float(_hp(hp, "learning_rate", learning_rate))
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    raise ValueError(f"unknown optimizer {name!r}; use adam, sgd or rmsprop")


def compile_classifier(keras, model, hp, learning_rate: float):
    model.compile(
        optimizer=optimizer(keras, hp, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _classify(keras, inputs, x, num_classes: int, hp, *, name: str, dropout: float, learning_rate: float):
    """The tail every template shares: dropout → softmax over the classes, compiled.

    The defaults are the template's own; the run's hyperparameters override them.
    """
    rate = float(_hp(hp, "dropout", dropout))
    if rate > 0:
        x = keras.layers.Dropout(rate)(x)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="probs")(x)
    return compile_classifier(keras, keras.Model(inputs, outputs, name=name), hp, learning_rate)


def require_image_shape(shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"the cnn template needs image data shaped [height, width, channels], got {list(shape)}")
    return shape


def _pool_size(h: int, w: int):
    # Halve each side that still has room; None when the image is already 1x1.
    size = (2 if h >= 2 else 1, 2 if w >= 2 else 1)
    return None if size == (1, 1) else size


def build_cnn(shape, num_classes: int, hp=None):
    """conv k×k×f -> pool -> conv k×k×2f -> pool -> dense -> dropout -> softmax (seed: k=5, f=32, 1024)."""
    h, w, c = require_image_shape(shape)
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=(h, w, c), name="features")
    x = inputs
    first = int(_hp(hp, "filters", 32))
    kernel = int(_hp(hp, "kernel_size", 5))
    for filters in (first, 2 * first):
        # 'same' padding keeps small images (8x8 digits) from shrinking to nothing.
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
        pool = _pool_size(h, w)
        if pool:
            x = layers.MaxPooling2D(pool, padding="same")(x)
            h, w = -(-h // pool[0]), -(-w // pool[1])
    x = layers.Flatten()(x)
    x = layers.Dense(int(_hp(hp, "dense_units", 1024)), activation="relu")(x)
    return _classify(keras, inputs, x, num_classes, hp, name="cnn", dropout=0.4, learning_rate=0.001)


def require_sequence_shape(shape) -> tuple:
    """[steps, features] (a sequence dataset) or [steps, width, channels] (image rows as steps)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(
            "the lstm template needs sequences shaped [steps, features] or images shaped "
            f"[steps (rows), width, channels], got {list(shape)}"
        )
    return shape


def build_lstm(shape, num_classes: int, hp=None):
    """Rows as time steps (the seed recipe: 28 steps × 28 inputs for MNIST, 8 × 8 for digits)."""
    shape = require_sequence_shape(shape)
    steps, inputs_per_step = shape[0], math.prod(shape[1:])
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=shape, name="features")
    x = inputs if len(shape) == 2 else layers.Reshape((steps, inputs_per_step))(inputs)
    # Stored features are scaled to [0, 1]; centred inputs let the LSTM gates learn (on a single
    # feature per step it otherwise stayed at chance; digits rows: 0.89 -> 0.97 after 5 epochs).
    x = layers.Rescaling(4.0, offset=-2.0, name="center")(x)
    depth = int(_hp(hp, "layers", 1))
    units = int(_hp(hp, "hidden_units", 128))
    for i in range(depth):
        x = layers.LSTM(units, return_sequences=i < depth - 1)(x)
    return _classify(keras, inputs, x, num_classes, hp, name="lstm", dropout=0.2, learning_rate=0.005)


def require_vector_shape(shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"the dense head needs feature vectors shaped [dimensions], got {list(shape)}")
    return shape


def build_dense_head(shape, num_classes: int, hp=None):
    """The transfer-learning head on featurizer outputs: standardize → [dense relu] → dropout → softmax."""
    (dim,) = require_vector_shape(shape)
    keras = _keras()
    inputs = keras.Input(shape=(dim,), name="features")
    # Standardize the features (as MLlib's LogisticRegression does): raw ReLU activations of a
    # base are unscaled; on digits 5-9 from a 0-4 CNN this took the head from 0.85 to 0.95.
    x = keras.layers.BatchNormalization(name="standardize")(inputs)
    units = int(_hp(hp, "dense_units", 0))
    if units:
        x = keras.layers.Dense(units, activation="relu")(x)
    return _classify(keras, inputs, x, num_classes, hp, name="dense_head", dropout=0.0, learning_rate=0.001)


def build_mlp(shape, num_classes: int, hp=None):
    """Table rows (features already standardized per column): [dense relu → dropout] × layers → softmax."""
    (dim,) = require_table_shape(shape)
    keras = _keras()
    inputs = keras.Input(shape=(dim,), name="features")
    x = inputs
    depth, units = int(_hp(hp, "layers", 2)), int(_hp(hp, "units", 64))
    rate = float(_hp(hp, "dropout", 0.1))
    for i in range(depth):
        x = keras.layers.Dense(units, activation="relu")(x)
        if rate > 0 and i < depth - 1:  # the last one's dropout is _classify's
            x = keras.layers.Dropout(rate)(x)
    return _classify(keras, inputs, x, num_classes, hp, name="mlp", dropout=0.1, learning_rate=0.001)


def require_table_shape(shape) -> tuple:
    shape = tuple(int(d) for d in shape)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(
            f"the mlp template needs table rows shaped [features], got {list(shape)}: upload the data as a table"
        )
    return shape


def build_imported(shape, num_classes: int, hp=None, base=None):
    """An uploaded model (loaded in safe mode), fitted to the dataset's rows and compiled."""
    if base is None:
        raise ValueError("the imported template needs a model file (spec.base)")
    from workers.jobs import modelfile

    keras = _keras()
    model = modelfile.load_safe(base.path, compile=False)
    fit_to_data(model, shape, num_classes)
    inputs = keras.Input(shape=tuple(shape), name="features")
    x = inputs
    if tuple(model.input_shape[1:]) != tuple(shape):
        x = keras.layers.Reshape(tuple(model.input_shape[1:]))(x)  # same number of values, checked above
    x = model(x)
    if _output_activation(model) != "softmax":
        x = keras.layers.Softmax(name="probs")(x)  # the model outputs logits
    return compile_classifier(keras, keras.Model(inputs, x, name="imported"), hp, 0.001)


def fit_to_data(model, shape, num_classes: int) -> None:
    """Refuse a model whose input cannot take the dataset's rows or whose output is not one unit per class."""
    in_shape = tuple(model.input_shape[1:])
    if None in in_shape or math.prod(in_shape) != math.prod(shape):
        raise ValueError(
            f"the model takes inputs shaped {list(in_shape)} but the dataset's rows are {list(shape)} "
            f"({math.prod(shape)} values)"
        )
    out = model.output_shape
    if len(out) != 2 or out[-1] != num_classes:
        raise ValueError(f"the model outputs {list(out[1:])} but the dataset has {num_classes} classes")


def _output_activation(model) -> str:
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return "softmax"
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


BUILDERS = {
    "cnn": build_cnn,
    "lstm": build_lstm,
    "mlp": build_mlp,
    "dense_head": build_dense_head,
    "imported": build_imported,
}
_CHECKS = {
    "cnn": require_image_shape,
    "lstm": require_sequence_shape,
    "mlp": require_table_shape,
    "dense_head": require_vector_shape,
}
# Not trained by main_fun: the driver featurizes, then trains dense_head (or MLlib) on the features.
PIPELINES = ("featurizer",)


def mllib_head(template: str, hp) -> bool:
    """The MLP template trained by Spark MLlib in the driver instead of Keras on TFoS."""
    return template == "mlp" and str(_hp(hp, "head", "keras")) == "mllib"


def check(template: str, shape) -> None:
    """Raise ValueError when the template is unknown or cannot take this input shape."""
    if template in PIPELINES:
        require_image_shape(shape)
        return
    if template not in BUILDERS:
        raise ValueError(f"unknown template {template!r}; known: {sorted(BUILDERS) + list(PIPELINES)}")
    _CHECKS.get(template, lambda s: None)(shape)


def build(template: str, shape, num_classes: int, hp=None, base=None):
    check(template, shape)
    if template == "imported":
        return build_imported(shape, num_classes, hp, base)
    return BUILDERS[template](shape, num_classes, hp)
