"""Keras model templates (legacy Keras 2, ``tf_keras``: Keras 3 breaks under MWMS in TFoS).

``BUILDERS[name](shape, num_classes, hp)`` returns a compiled model. ``check(name, shape)`` runs
the same input checks without importing TensorFlow, so the driver can refuse a run up front.
"""

from __future__ import annotations

import os


def _keras():
    # Must be set before TensorFlow is first imported in this process.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    return tf_keras


def _hp(hp, name, default):
    # hp: spec.Hyperparameters or a plain dict; both have .get
    return default if hp is None else hp.get(name, default)


def _classify(keras, inputs, x, num_classes: int, hp, *, name: str, dropout: float, learning_rate: float):
    """The tail every template shares: dropout → softmax over the classes, compiled with Adam.

    The defaults are the template's own; the run's hyperparameters override them.
    """
    x = keras.layers.Dropout(float(_hp(hp, "dropout", dropout)))(x)
    outputs = keras.layers.Dense(int(num_classes), activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(_hp(hp, "learning_rate", learning_rate))),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


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
    """conv5x5x32 -> pool -> conv5x5x64 -> pool -> dense (1024) -> dropout -> softmax."""
    h, w, c = require_image_shape(shape)
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=(h, w, c), name="features")
    x = inputs
    for filters in (32, 64):
        # 'same' padding keeps small images (8x8 digits) from shrinking to nothing.
        x = layers.Conv2D(filters, 5, padding="same", activation="relu")(x)
        pool = _pool_size(h, w)
        if pool:
            x = layers.MaxPooling2D(pool, padding="same")(x)
            h, w = -(-h // pool[0]), -(-w // pool[1])
    x = layers.Flatten()(x)
    x = layers.Dense(int(_hp(hp, "dense_units", 1024)), activation="relu")(x)
    return _classify(keras, inputs, x, num_classes, hp, name="cnn", dropout=0.4, learning_rate=0.001)


def require_sequence_shape(shape) -> tuple:
    """[steps, width, channels]: each image row is one time step of width × channels inputs."""
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"the lstm template needs data shaped [steps, width, channels], got {list(shape)}")
    return shape


def build_lstm(shape, num_classes: int, hp=None):
    """Rows as time steps (the seed recipe: 28 steps × 28 inputs for MNIST, 8 × 8 for digits)."""
    steps, width, channels = require_sequence_shape(shape)
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=(steps, width, channels), name="features")
    x = layers.Reshape((steps, width * channels))(inputs)
    depth = int(_hp(hp, "layers", 1))
    units = int(_hp(hp, "hidden_units", 128))
    for i in range(depth):
        x = layers.LSTM(units, return_sequences=i < depth - 1)(x)
    return _classify(keras, inputs, x, num_classes, hp, name="lstm", dropout=0.2, learning_rate=0.005)


BUILDERS = {"cnn": build_cnn, "lstm": build_lstm}
_CHECKS = {"cnn": require_image_shape, "lstm": require_sequence_shape}


def check(template: str, shape) -> None:
    """Raise ValueError when the template is unknown or cannot take this input shape."""
    if template not in BUILDERS:
        raise ValueError(f"unknown template {template!r}; known: {sorted(BUILDERS)}")
    _CHECKS.get(template, lambda s: None)(shape)


def build(template: str, shape, num_classes: int, hp=None):
    check(template, shape)
    return BUILDERS[template](shape, num_classes, hp)
