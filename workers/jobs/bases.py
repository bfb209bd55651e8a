"""Pretrained bases for transfer learning: load one and cut it before its top.

A base is an earlier run's exported model, an uploaded model file (both loaded in safe mode) or a
Keras application whose ImageNet weights file sits in the weights directory (nothing is downloaded
at run time). ``featurizer(base, data_shape, input_size)`` returns a Keras model of built-in layers
only that maps the dataset's rows (scaled to [0, 1]) to feature vectors: channel adaptation, resize
to the base's input size, the application's own preprocessing, the base cut before its top.
TensorFlow is imported inside functions only (the web app imports KERAS_APPS).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class KerasApp:
    name: str
    weights_file: str  # the no-top ImageNet weights, as keras.applications names them
    size: int  # default input side
    min_size: int
    preprocess: str  # "tf": [-1, 1]; "caffe": BGR, 0..255 minus the ImageNet mean


KERAS_APPS = {
    a.name: a
    for a in (
        KerasApp("MobileNetV2", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", 224, 32, "tf"),
        KerasApp("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 224, 32, "caffe"),
        KerasApp("InceptionV3", "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", 299, 75, "tf"),
        KerasApp("VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", 224, 32, "caffe"),
    )
}
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


class BaseError(ValueError):
    """The base cannot be used; the message says why and what to do."""


def weights_path(app: KerasApp, weights_dir: str) -> str:
    return os.path.join(weights_dir, app.weights_file)


def missing_weights_message(app: KerasApp, weights_dir: str) -> str:
    return (
        f"{app.name} needs its ImageNet weights file {app.weights_file} in the weights directory "
        f"{weights_dir} (setting SPARKDECK_WEIGHTS_DIR). Nothing is downloaded at run time: copy the file "
        "there (it is the file keras.applications downloads into ~/.keras/models) and submit again."
    )


def _keras():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    return tf_keras


def load_app(app_name: str, weights_file: str, size: int):
    """The application without its top, global-average pooled, with weights from ``weights_file``."""
    app = KERAS_APPS.get(app_name)
    if app is None:
        raise BaseError(f"unknown Keras application {app_name!r}; known: {', '.join(KERAS_APPS)}")
    if not os.path.isfile(weights_file):
        raise BaseError(missing_weights_message(app, os.path.dirname(weights_file)))
    if size < app.min_size:
        raise BaseError(f"{app.name} needs images of at least {app.min_size}×{app.min_size}; input_size is {size}")
    keras = _keras()
    ctor = getattr(keras.applications, app.name)
    try:
        return ctor(include_top=False, weights=weights_file, input_shape=(size, size, 3), pooling="avg")
    except (ValueError, OSError) as e:
        raise BaseError(f"{app.weights_file} could not be loaded as {app.name} weights: {e}") from e


def cut_before_top(model):
    """The model up to the input of its classifier: the last Dense layer (or nested model) and what
    follows it (activation, dropout) are dropped. The output is flattened to a vector."""
    keras = _keras()
    layers = model.layers
    top = None
    for i in range(len(layers) - 1, 0, -1):
        if isinstance(layers[i], (keras.layers.Dense, keras.Model)):
            top = i
            break
        if not isinstance(layers[i], (keras.layers.Activation, keras.layers.Softmax, keras.layers.Dropout)):
            break
    if top is None:
        raise BaseError(
            f"model {model.name!r} does not end in a Dense classifier (last layer: "
            f"{type(layers[-1]).__name__}); cannot tell where its top starts"
        )
    features = layers[top].input
    if isinstance(features, (list, tuple)):
        raise BaseError(f"model {model.name!r}: its classifier has several inputs")
    cut = keras.Model(model.inputs, features, name=f"{model.name}_features")
    if len(cut.output_shape) == 4:
        cut = keras.Sequential([cut, keras.layers.GlobalAveragePooling2D()], name=cut.name)
    elif len(cut.output_shape) > 2:
        cut = keras.Sequential([cut, keras.layers.Flatten()], name=cut.name)
    return cut


def load_base(kind: str, path: str, name: str, input_size: int = 0):
    """(cut base model, preprocess mode or None)."""
    if kind == "app":
        app = KERAS_APPS.get(name)
        if app is None:
            raise BaseError(f"unknown Keras application {name!r}; known: {', '.join(KERAS_APPS)}")
        return load_app(name, path, input_size or app.size), app.preprocess
    from workers.jobs import modelfile

    try:
        model = modelfile.load_safe(path, compile=False)
    except modelfile.ModelFileError as e:
        raise BaseError(f"base model {name}: {e}") from e
    return cut_before_top(model), None


def featurizer(kind: str, path: str, name: str, data_shape, input_size: int = 0):
    """Rows of ``data_shape`` in [0, 1] → feature vectors, built from stock Keras layers only."""
    keras = _keras()
    layers = keras.layers
    data_shape = tuple(int(d) for d in data_shape)
    if len(data_shape) != 3:
        raise BaseError(f"the featurizer needs image data shaped [height, width, channels], got {list(data_shape)}")
    base, preprocess = load_base(kind, path, name, input_size)
    base_shape = tuple(base.input_shape[1:])
    if len(base_shape) != 3 or None in base_shape[2:]:
        raise BaseError(f"base {name} takes inputs shaped {list(base_shape)}; it must take images [h, w, c]")
    bh, bw, bc = base_shape
    if input_size and kind != "app":
        bh = bw = input_size
    if bh is None or bw is None:  # a fully convolutional base: keep the data's size
        bh, bw = data_shape[0], data_shape[1]
    inputs = keras.Input(shape=data_shape, name="image")
    x = inputs
    c = data_shape[2]
    if c != bc:
        x = _adapt_channels(keras, x, c, bc, name)
    if (data_shape[0], data_shape[1]) != (bh, bw):
        x = layers.Resizing(bh, bw, interpolation="bilinear", name="resize")(x)
    if preprocess == "tf":
        x = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)
    elif preprocess == "caffe":
        x = _caffe(keras, x)
    x = base(x)
    model = keras.Model(inputs, x, name="featurizer")
    model.trainable = False
    return model


def _adapt_channels(keras, x, have: int, want: int, name: str):
    if have == 1:
        return keras.layers.Concatenate(name="gray_to_rgb")([x] * want)
    if want == 1:
        # Grey = mean of the channels, as a fixed 1×1 convolution (a stock layer, unlike Lambda).
        conv = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="to_gray")
        y = conv(x)
        conv.set_weights([_const(keras, (1, 1, have, 1), 1.0 / have)])
        return y
    raise BaseError(f"base {name} takes {want}-channel images; the dataset has {have} channels")


def _caffe(keras, x):
    """[0, 1] RGB → BGR × 255 minus the ImageNet mean (keras.applications 'caffe' preprocessing)."""
    import numpy as np

    conv = keras.layers.Conv2D(3, 1, trainable=False, name="caffe_preprocess")
    y = conv(x)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for out in range(3):
        kernel[0, 0, 2 - out, out] = 255.0  # output channel `out` (BGR) reads input channel 2-out (RGB)
    conv.set_weights([kernel, -np.asarray(IMAGENET_BGR_MEAN, np.float32)])
    return y


def _const(keras, shape, value):
    import numpy as np

    return np.full(shape, value, np.float32)
