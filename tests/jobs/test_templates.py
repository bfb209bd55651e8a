import numpy as np
import pytest

from workers.jobs import templates
from workers.jobs.spec import Hyperparameters


def pools(model):
    return [layer for layer in model.layers if "pool" in layer.name]


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1)])
def test_cnn_outputs_one_probability_per_class(shape):
    model = templates.build_cnn(list(shape), 10, Hyperparameters(learning_rate=0.002, dropout=0.3))
    assert model.output_shape == (None, 10)
    assert model.input_shape == (None, *shape)
    probs = model.predict(np.zeros((2, *shape), np.float32), verbose=0)
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert len(pools(model)) == 2
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.002)
    assert model.loss == "sparse_categorical_crossentropy"
    dropout = [layer for layer in model.layers if "dropout" in layer.name]
    assert dropout and dropout[0].rate == pytest.approx(0.3)


def test_cnn_layer_sizes_follow_the_classic_mnist_net():
    model = templates.build_cnn([28, 28, 1], 10, {"dropout": 0.4})
    convs = [layer for layer in model.layers if "conv" in layer.name]
    assert [c.filters for c in convs] == [32, 64]
    assert all(c.kernel_size == (5, 5) and c.padding == "same" for c in convs)
    assert model.get_layer(index=-3).units == 1024  # dense 1024, then dropout, then softmax
    flatten = [layer for layer in model.layers if "flatten" in layer.name][0]
    assert flatten.output_shape == (None, 7 * 7 * 64)


def test_dense_units_come_from_the_hyperparameters():
    hp = Hyperparameters(extra={"dense_units": 64})  # catalog values beyond the common four
    assert templates.build_cnn([8, 8, 1], 10, hp).get_layer(index=-3).units == 64


def test_tiny_images_skip_pooling_safely():
    assert len(pools(templates.build_cnn([1, 1, 3], 4))) == 0
    model = templates.build_cnn([1, 5, 1], 3)  # only the width can be halved
    assert model.output_shape == (None, 3)
    assert [p.pool_size for p in pools(model)] == [(1, 2), (1, 2)]


@pytest.mark.parametrize("shape", [[64], [8, 8], [2, 2, 2, 2]])
def test_non_image_shapes_are_refused(shape):
    with pytest.raises(ValueError, match=r"cnn template needs image data shaped \[height, width, channels\]"):
        templates.build_cnn(shape, 10)
    with pytest.raises(ValueError, match="cnn template"):
        templates.check("cnn", shape)


def test_registry_and_unknown_template():
    assert templates.BUILDERS["cnn"] is templates.build_cnn
    templates.check("cnn", [8, 8, 1])
    with pytest.raises(ValueError, match="unknown template 'gan'"):
        templates.check("gan", [8, 8, 1])


def test_lstm_reads_image_rows_as_time_steps():
    model = templates.build("lstm", [8, 8, 1], 10, {"hidden_units": 16, "layers": 2, "dropout": 0.1})
    lstms = [layer for layer in model.layers if "lstm" in layer.name]
    assert [lstm.units for lstm in lstms] == [16, 16]
    assert lstms[0].input_shape == (None, 8, 8)  # 8 steps of 8 inputs
    assert lstms[0].return_sequences and not lstms[1].return_sequences
    probs = model.predict(np.zeros((3, 8, 8, 1), np.float32), verbose=0)
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("shape", [[64], [2, 2, 2, 2]])
def test_lstm_refuses_shapes_without_steps_and_inputs(shape):
    with pytest.raises(ValueError, match="lstm template needs"):
        templates.check("lstm", shape)


def test_lstm_takes_sequence_datasets_as_steps_by_features():
    model = templates.build("lstm", [30, 3], 4, {"hidden_units": 8})
    lstm = [layer for layer in model.layers if "lstm" in layer.name][0]
    assert lstm.input_shape == (None, 30, 3)
    assert model.predict(np.zeros((2, 30, 3), np.float32), verbose=0).shape == (2, 4)


def test_cnn_filters_kernel_and_optimizer_come_from_the_hyperparameters():
    model = templates.build_cnn([8, 8, 1], 10, {"filters": 8, "kernel_size": 3, "optimizer": "sgd"})
    convs = [layer for layer in model.layers if "conv" in layer.name]
    assert [c.filters for c in convs] == [8, 16]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.momentum) == pytest.approx(0.9)
    rms = templates.build_cnn([8, 8, 1], 10, {"optimizer": "rmsprop", "learning_rate": 0.01})
    assert type(rms.optimizer).__name__ == "RMSprop"
    with pytest.raises(ValueError, match="unknown optimizer"):
        templates.build_cnn([8, 8, 1], 10, {"optimizer": "lbfgs"})


def test_dense_head_on_feature_vectors():
    plain = templates.build("dense_head", [20], 5, {"dense_units": 0, "dropout": 0.0})
    assert [type(layer).__name__ for layer in plain.layers] == ["InputLayer", "BatchNormalization", "Dense"]
    hidden = templates.build("dense_head", [20], 5, {"dense_units": 12, "dropout": 0.5})
    assert [layer.units for layer in hidden.layers if hasattr(layer, "units")] == [12, 5]
    with pytest.raises(ValueError, match="feature vectors"):
        templates.check("dense_head", [4, 5])


def test_featurizer_pipeline_needs_image_data():
    templates.check("featurizer", [8, 8, 1])
    with pytest.raises(ValueError, match="image data"):
        templates.check("featurizer", [30, 2])
