"""Transfer-learning bases: Keras applications from a weights file, cutting a model before its top."""

import os

import numpy as np
import pytest

from workers.jobs import bases, templates

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="module")
def keras():
    return templates._keras()


@pytest.fixture(scope="module")
def mobilenet_weights(tmp_path_factory, keras):
    """A weights file under the name keras.applications gives the ImageNet one (random values:
    nothing can be downloaded here), so the real loading path runs."""
    d = tmp_path_factory.mktemp("weights")
    app = bases.KERAS_APPS["MobileNetV2"]
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    model.save_weights(str(d / app.weights_file))
    return d, model


def test_missing_weights_name_the_file_and_the_directory(tmp_path):
    app = bases.KERAS_APPS["ResNet50"]
    with pytest.raises(bases.BaseError) as exc:
        bases.featurizer("app", str(tmp_path / app.weights_file), "ResNet50", (8, 8, 1), 32)
    msg = str(exc.value)
    assert app.weights_file in msg and str(tmp_path) in msg and "SPARKDECK_WEIGHTS_DIR" in msg


def test_keras_application_loads_weights_from_the_weights_dir(mobilenet_weights, keras):
    weights_dir, reference = mobilenet_weights
    path = bases.weights_path(bases.KERAS_APPS["MobileNetV2"], str(weights_dir))
    feat = bases.featurizer("app", path, "MobileNetV2", (8, 8, 1), input_size=32)
    assert feat.output_shape == (None, 1280)
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype(np.float32)
    got = feat.predict(x, verbose=0)
    # Same thing by hand: grey → RGB, resize to 32, scale to [-1, 1], the reference network.
    import tensorflow as tf

    rgb = np.repeat(x, 3, axis=-1)
    want = reference.predict(tf.image.resize(rgb, (32, 32)).numpy() * 2.0 - 1.0, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_input_below_the_application_minimum_is_refused(mobilenet_weights):
    weights_dir, _ = mobilenet_weights
    path = bases.weights_path(bases.KERAS_APPS["MobileNetV2"], str(weights_dir))
    with pytest.raises(bases.BaseError, match="at least 32"):
        bases.featurizer("app", path, "MobileNetV2", (8, 8, 1), input_size=16)


def test_caffe_preprocessing_matches_keras_applications(keras):
    inputs = keras.Input(shape=(4, 4, 3))
    model = keras.Model(inputs, bases._caffe(keras, inputs))
    x = np.random.default_rng(1).random((2, 4, 4, 3)).astype(np.float32)
    want = keras.applications.resnet50.preprocess_input(x * 255.0)
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-3)


def test_cut_before_top_returns_the_penultimate_activations(keras):
    model = templates.build_cnn([8, 8, 1], 5, {"dense_units": 48, "dropout": 0.3})
    cut = bases.cut_before_top(model)
    assert cut.output_shape == (None, 48)
    x = np.random.default_rng(2).random((4, 8, 8, 1)).astype(np.float32)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-2]
    want = keras.Model(model.inputs, dense.output).predict(x, verbose=0)
    np.testing.assert_allclose(cut.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_cut_refuses_a_model_without_a_dense_top(keras):
    inputs = keras.Input(shape=(8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(bases.BaseError, match="does not end in a Dense classifier"):
        bases.cut_before_top(model)


def test_featurizer_from_a_model_file_resizes_to_its_input(tmp_path, keras):
    base = templates.build_cnn([12, 12, 1], 3, {"dense_units": 16})
    path = tmp_path / "base.keras"
    base.save(path)
    feat = bases.featurizer("file", str(path), "base", (8, 8, 3), input_size=0)
    assert feat.input_shape == (None, 8, 8, 3)
    assert feat.output_shape == (None, 16)
    assert any(layer.name == "resize" for layer in feat.layers)
    assert any(layer.name == "to_gray" for layer in feat.layers)
    out = feat.predict(np.ones((2, 8, 8, 3), np.float32), verbose=0)
    assert out.shape == (2, 16) and np.isfinite(out).all()
