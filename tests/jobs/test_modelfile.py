"""workers/jobs/modelfile.py on real tf_keras model files (.keras and .h5) and hostile archives."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow

from workers.jobs import modelfile  # noqa: E402
from workers.jobs.modelfile import ModelFileError, describe, inspect_config, load_safe  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def keras():
    import tf_keras

    return tf_keras


def _good(keras):
    inp = keras.Input((6, 6, 1), name="pixels")
    x = keras.layers.Conv2D(2, 3, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    x = keras.layers.Dropout(0.1)(x)  # the activation behind a pass-through layer still counts
    model = keras.Model(inp, x, name="good")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _with_lambda(keras):
    # The Lambda sits inside a nested model: the check walks nested configs.
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2.0)], name="inner")
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(2)(inner(inp)), name="sneaky")


@pytest.fixture(scope="session")
def files(keras, tmp_path_factory):
    d = tmp_path_factory.mktemp("modelfiles")
    good, lam = _good(keras), _with_lambda(keras)
    out = {"params": good.count_params(), "dir": d}
    for ext in ("keras", "h5"):
        good.save(d / f"good.{ext}")
        lam.save(d / f"lambda.{ext}")
        out[f"good.{ext}"] = d / f"good.{ext}"
        out[f"lambda.{ext}"] = d / f"lambda.{ext}"
    return out


def _rezip(src, dest, extra=(), config_edit=None, metadata=None):
    """Copy a .keras archive member by member, optionally editing config.json or adding members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json" and config_edit:
                data = json.dumps(config_edit(json.loads(data))).encode()
            if info.filename == "metadata.json" and metadata:
                data = json.dumps(metadata).encode()
            zout.writestr(info.filename, data)
        for name, data in extra:
            zout.writestr(name, data)
    return dest


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_good_model_is_described(files, fmt):
    d = describe(files[f"good.{fmt}"])
    assert d == {
        "format": fmt,
        "input_shape": [6, 6, 1],
        "num_outputs": 3,
        "output_activation": "softmax",
        "layers": 5,
        "params": files["params"],
        "layer_classes": ["Conv2D", "Dense", "Dropout", "Flatten", "Functional", "InputLayer"],
    }
    json.dumps(d)  # JSON-able as it is


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_load_safe_gives_a_working_model(files, fmt):
    model = load_safe(files[f"good.{fmt}"])
    probs = model.predict(np.zeros((2, 6, 6, 1), "float32"), verbose=0)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_format_comes_from_the_bytes_not_the_name(files, tmp_path):
    (tmp_path / "really_keras.h5").write_bytes(files["good.keras"].read_bytes())
    (tmp_path / "really_h5.keras").write_bytes(files["good.h5"].read_bytes())
    assert describe(tmp_path / "really_keras.h5")["format"] == "keras"
    assert describe(tmp_path / "really_h5.keras")["format"] == "h5"


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_lambda_layer_is_refused(files, fmt):
    with pytest.raises(ModelFileError, match="Lambda") as err:
        inspect_config(files[f"lambda.{fmt}"])
    assert "rebuild the model without Lambda layers" in str(err.value)
    with pytest.raises(ModelFileError, match="Lambda"):
        load_safe(files[f"lambda.{fmt}"])


def test_tf_op_between_layers_is_refused(keras, tmp_path):
    inp = keras.Input((4,))
    keras.Model(inp, keras.layers.Dense(2)(inp) + 1.0).save(tmp_path / "op.keras")
    with pytest.raises(ModelFileError, match="TFOpLambda"):
        inspect_config(tmp_path / "op.keras")


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_custom_layer_is_refused(keras, tmp_path, fmt):
    @keras.saving.register_keras_serializable(package="Evil")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    keras.Sequential([keras.Input((3,)), Doubler()]).save(tmp_path / f"custom.{fmt}")
    with pytest.raises(ModelFileError, match="not allowed") as err:
        inspect_config(tmp_path / f"custom.{fmt}")
    assert "Doubler" in str(err.value)


@pytest.mark.parametrize(
    "module,class_name,message",
    [
        ("os", "system", "custom object 'system' from module 'os'"),  # importlib would import any module
        ("keras.utils", "get_file", "not a built-in tf_keras object"),  # a keras function, not an initializer
    ],
)
def test_injected_module_in_config_is_refused(files, tmp_path, module, class_name, message):
    def edit(cfg):
        dense = next(layer for layer in cfg["config"]["layers"] if layer["class_name"] == "Dense")
        dense["config"]["kernel_initializer"] = {
            "module": module,
            "class_name": class_name,
            "config": {"command": "touch /tmp/pwned"},
            "registered_name": None,
        }
        return cfg

    path = _rezip(files["good.keras"], tmp_path / "injected.keras", config_edit=edit)
    with pytest.raises(ModelFileError, match=message):
        load_safe(path)


def test_layer_that_reads_a_vocabulary_file_is_refused(keras, tmp_path):
    vocab = tmp_path / "vocab.txt"  # stands for any file on the server, e.g. the secret key
    vocab.write_text("7\n8\n9\n")
    lookup = keras.layers.IntegerLookup(vocabulary=str(vocab), output_mode="one_hot")
    keras.Sequential([keras.Input((1,), dtype="int64"), lookup, keras.layers.Dense(2)]).save(tmp_path / "v.h5")
    with pytest.raises(ModelFileError, match="IntegerLookup.*vocabulary file"):
        inspect_config(tmp_path / "v.h5")


def test_unknown_layer_class_is_refused(files, tmp_path):
    def edit(cfg):
        cfg["config"]["layers"][1]["class_name"] = "Conv2DButBetter"
        return cfg

    path = _rezip(files["good.keras"], tmp_path / "unknown.keras", config_edit=edit)
    with pytest.raises(ModelFileError, match="'Conv2DButBetter'.*not a built-in tf_keras layer"):
        inspect_config(path)


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "..\\evil", "assets/../../evil"])
def test_archive_with_unsafe_member_name_is_refused(files, tmp_path, name):
    path = _rezip(files["good.keras"], tmp_path / "slip.keras", extra=[(name, b"boo")])
    with pytest.raises(ModelFileError, match="unsafe member name"):
        load_safe(path)


def test_archive_with_unexpected_member_is_refused(files, tmp_path):
    path = _rezip(files["good.keras"], tmp_path / "assets.keras", extra=[("assets/vocab.txt", b"a\nb\n")])
    with pytest.raises(ModelFileError, match="unexpected member 'assets/vocab.txt'"):
        inspect_config(path)


def test_archive_with_too_many_members_is_refused(tmp_path):
    path = tmp_path / "many.keras"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(65):
            z.writestr(f"m{i}", b"")
    with pytest.raises(ModelFileError, match="65 members"):
        inspect_config(path)


def _redirect_a_weight(h5_path, secret, how):
    """Make one weight dataset of an HDF5 file read from elsewhere (as an attacker would)."""
    import h5py

    with h5py.File(h5_path, "r+") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None)  # a kernel
        shape, dtype = f[names[0]].shape, f[names[0]].dtype
        del f[names[0]]
        if how == "external":  # raw bytes of any file on the loading machine become the weights
            f.create_dataset(names[0], shape=shape, dtype=dtype, external=[(str(secret), 0, 4 * int(np.prod(shape)))])
        else:  # a link into another HDF5 file
            f[names[0]] = h5py.ExternalLink(str(secret), "/data")


@pytest.mark.parametrize("how", ["external", "link"])
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_weights_stored_outside_the_file_are_refused(files, tmp_path, fmt, how):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4096, dtype="float32").tobytes())
    if fmt == "h5":
        path = tmp_path / "m.h5"
        path.write_bytes(files["good.h5"].read_bytes())
        _redirect_a_weight(path, secret, how)
    else:
        with zipfile.ZipFile(files["good.keras"]) as z:
            (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
        _redirect_a_weight(tmp_path / "w.h5", secret, how)
        path = tmp_path / "m.keras"
        with zipfile.ZipFile(files["good.keras"]) as zin, zipfile.ZipFile(path, "w") as zout:
            for n in ("metadata.json", "config.json"):
                zout.writestr(n, zin.read(n))
            zout.write(tmp_path / "w.h5", "model.weights.h5")
    with pytest.raises(ModelFileError, match="outside itself|links to another file"):
        load_safe(path)


@pytest.fixture(scope="session")
def bomb(files):
    """50 MB of zeros as model.weights.h5: about 50 KB on disk, a 1000:1 ratio."""
    path = files["dir"] / "bomb.keras"
    _rezip(files["good.keras"], path)
    with zipfile.ZipFile(path) as z:
        keep = {n: z.read(n) for n in ("config.json", "metadata.json")}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in keep.items():
            z.writestr(n, data)
        with z.open("model.weights.h5", "w") as fh:
            chunk = bytes(1024 * 1024)
            for _ in range(50):
                fh.write(chunk)
    assert path.stat().st_size < 200_000
    return path


def test_zip_bomb_is_refused_by_ratio(bomb):
    with pytest.raises(ModelFileError, match="zip bomb"):
        inspect_config(bomb)


def test_archive_over_the_size_limit_is_refused(bomb):
    with pytest.raises(ModelFileError, match="unpacks to more than"):
        inspect_config(bomb, max_uncompressed_bytes=10 * 1024 * 1024, max_ratio=10_000)


@pytest.mark.parametrize(
    "content,message",
    [
        (os.urandom(4096), "unknown file format"),
        (b'{"class_name": "Sequential"}\n', "text file"),
        (b"", "empty"),
        (b"PK\x03\x04 truncated zip", "not a valid zip"),
        (b"\x89HDF\r\n\x1a\n but not really", "cannot be read as HDF5"),
    ],
)
def test_not_a_model_file_is_refused(tmp_path, content, message):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_safe(path)


def test_weights_only_h5_is_refused(keras, tmp_path):
    _good(keras).save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(ModelFileError, match="weights only"):
        inspect_config(tmp_path / "only.weights.h5")


def test_keras3_archive_is_refused_with_advice(files, tmp_path):
    path = _rezip(files["good.keras"], tmp_path / "k3.keras", metadata={"keras_version": "3.8.0"})
    with pytest.raises(ModelFileError, match="Keras 3.8.0.*tf_keras"):
        inspect_config(path)


def test_unknown_input_dimension_is_refused(keras, tmp_path):
    inp = keras.Input((None, 3))
    keras.Model(inp, keras.layers.GlobalAveragePooling1D()(inp)).save(tmp_path / "m.keras")
    with pytest.raises(ModelFileError, match=r"input shape \(batch, \?, 3\) has unknown dimensions"):
        describe(tmp_path / "m.keras")


def test_two_inputs_are_refused(keras, tmp_path):
    a, b = keras.Input((3,)), keras.Input((3,))
    keras.Model([a, b], keras.layers.Add()([a, b])).save(tmp_path / "m.h5")
    with pytest.raises(ModelFileError, match="2 input"):
        describe(tmp_path / "m.h5")


def _cli(path):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run(
        [sys.executable, "-m", "workers.jobs.modelfile", "describe", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_describes_a_good_file(files):
    proc = _cli(files["good.keras"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    # stdout holds the JSON and nothing else (TensorFlow's chatter goes to stderr)
    assert json.loads(proc.stdout) == describe(files["good.keras"])
    assert proc.stdout.count("\n") == 1


def test_cli_answers_json_error_and_exit_2_for_a_bad_file(tmp_path, files):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(os.urandom(1000))
    proc = _cli(bad)
    assert proc.returncode == 2
    assert "unknown file format" in json.loads(proc.stdout)["error"]
    proc = _cli(files["lambda.h5"])
    assert proc.returncode == 2 and "Lambda" in json.loads(proc.stdout)["error"]


def test_module_imports_no_tensorflow():
    code = "import sys, workers.jobs.modelfile; print('tensorflow' in sys.modules or 'h5py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    assert modelfile.FORMATS == ("keras", "h5")
