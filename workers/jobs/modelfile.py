"""User-imported Keras model files (``.keras`` archives and legacy ``.h5``), checked before use.

``inspect_config(path)`` reads the architecture WITHOUT building anything from it: the ``.keras`` zip
is checked first (member names, count, sizes, compression ratio), then every object in the config is
checked against tf_keras' own built-ins. ``Lambda`` layers (Python bytecode), custom classes or
functions (``module``/``registered_name`` outside keras/tf_keras) and unknown class names are refused.
Only then does ``load_safe(path)`` hand the file to ``tf_keras.models.load_model`` in safe mode.
``describe(path)`` is what the web app stores about an upload. The web app never loads a model in
its own process: it runs ``python -m workers.jobs.modelfile describe PATH`` (JSON on stdout, exit 0;
``{"error": ...}`` and exit 2), so a hostile file can take down only that subprocess.

Django-free and importable on Spark executors; TensorFlow and h5py are imported inside functions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import tempfile
import zipfile
from pathlib import PurePosixPath

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
FORMATS = ("keras", "h5")

# What tf_keras' saving_lib writes; anything else (e.g. an assets/ folder, which tf_keras would
# extract to disk) is refused.
KERAS_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
MAX_MEMBERS = 64
DEFAULT_MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
DEFAULT_MAX_RATIO = 200
# A member this small cannot be a bomb whatever its ratio (a tiny config.json compresses well).
RATIO_FLOOR_BYTES = 1024**2
MAX_CONFIG_BYTES = 32 * 1024**2
MAX_DEPTH = 200
MAX_H5_LINKS = 100_000

# Class names that are models/containers rather than entries of tf_keras.layers.
MODEL_CLASSES = ("Functional", "Sequential", "Model", "InputLayer")
# Pure data that tf_keras' deserializer turns into constants (no lookup, no code).
DATA_CLASSES = ("__tensor__", "__numpy__", "__bytes__", "__tuple__")
# Built-in layers that read a file named in their config (a vocabulary path): a crafted model could pull
# any file of the loading machine into itself. They take strings or integer ids, not Sparkdeck's
# float features, so they are refused outright.
FILE_READING_LAYERS = ("StringLookup", "IntegerLookup", "TextVectorization")
# Config keys whose values are layers (wrappers, RNN cells, models' layer lists).
LAYER_KEYS = ("layers", "layer", "forward_layer", "backward_layer", "cell", "cells")
# Layers that pass their input through unchanged at inference: the output activation is behind them.
PASS_THROUGH = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
)
ACTIVATION_LAYERS = {
    "Softmax": "softmax",
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "ELU": "elu",
    "PReLU": "prelu",
    "ThresholdedReLU": "thresholded_relu",
}

LAMBDA_MESSAGE = (
    "the model contains a Lambda layer{where}: it holds arbitrary Python code and is not allowed — "
    "rebuild the model without Lambda layers (use built-in layers such as Rescaling, Activation, Add, "
    "Concatenate or Reshape instead) and upload it again"
)
CUSTOM_HINT = (
    "custom classes and functions are not allowed in uploaded models — rebuild the model from built-in "
    "tf_keras layers, activations and initializers only and upload it again"
)


class ModelFileError(ValueError):
    """The model file cannot be used; the message is shown to the user: what is wrong, what to do."""


def _keras():
    # Must be set before TensorFlow is first imported in this process.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras

    return tf_keras


# ---------------------------------------------------------------------------------------------
# format detection


def detect_format(head: bytes) -> str:
    """'keras' or 'h5' from the file's first bytes (never from its name)."""
    if head.startswith(ZIP_MAGIC):
        return "keras"
    if head.startswith(HDF5_MAGIC):
        return "h5"
    if not head:
        raise ModelFileError("the file is empty; upload a model saved with model.save('model.keras')")
    is_text = all(32 <= b < 127 or b in b"\t\r\n" for b in head)
    what = "it looks like a text file" if is_text else "not a model file"
    raise ModelFileError(
        f"unknown file format ({what}): expected a Keras model saved with model.save() — a .keras archive "
        "(zip) or a legacy .h5 (HDF5) file"
    )


def file_format(path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as e:
        raise ModelFileError(f"the model file cannot be read: {e.strerror or e}") from None
    return detect_format(head)


# ---------------------------------------------------------------------------------------------
# reading the config without building anything


def _unsafe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in parts
    )


def _check_archive(zf: zipfile.ZipFile, max_uncompressed_bytes: int, max_ratio: float) -> None:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(
            f"the .keras archive has {len(infos)} members (at most {MAX_MEMBERS}); "
            "re-save the model with model.save('model.keras')"
        )
    seen = set()
    total = 0
    for info in infos:
        name = info.filename
        if _unsafe_name(name):
            raise ModelFileError(
                f"the .keras archive contains an unsafe member name {name!r} (absolute path, '..' or backslash); "
                "re-save the model with model.save('model.keras')"
            )
        if name not in KERAS_MEMBERS:
            raise ModelFileError(
                f"the .keras archive contains an unexpected member {name!r} (only {', '.join(KERAS_MEMBERS)} are "
                "allowed; models with assets such as lookup-layer vocabularies are not supported)"
            )
        if name in seen:
            raise ModelFileError(f"the .keras archive contains {name!r} twice; re-save the model")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise ModelFileError(f"the .keras archive member {name!r} is encrypted; re-save the model unencrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(
                f"the .keras archive member {name!r} uses an unsupported compression method; re-save the model"
            )
        # Python's zipfile never yields more than file_size bytes (and checks the CRC), so the header's
        # sizes bound what tf_keras will read or extract.
        total += info.file_size
        if total > max_uncompressed_bytes:
            raise ModelFileError(
                f"the .keras archive unpacks to more than {max_uncompressed_bytes / 2**30:.3g} GiB; "
                "upload a smaller model"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR_BYTES and ratio > max_ratio:
            raise ModelFileError(
                f"the .keras archive member {name!r} is compressed {ratio:.0f}:1 (at most {max_ratio:g}:1 allowed; "
                "this looks like a zip bomb); re-save the model with model.save('model.keras')"
            )
    missing = [n for n in ("config.json", "model.weights.h5") if n not in seen]
    if missing:
        raise ModelFileError(
            f"the .keras archive has no {' or '.join(missing)}: it is not a Keras model saved with "
            "model.save('model.keras')"
        )


def _read_json_member(zf: zipfile.ZipFile, name: str):
    with zf.open(name) as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{name} in the .keras archive is larger than {MAX_CONFIG_BYTES // 2**20} MB")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{name} in the .keras archive is not valid JSON; re-save the model") from None


def _read_keras_config(path, max_uncompressed_bytes: int, max_ratio: float) -> tuple[dict, str | None]:
    try:
        with zipfile.ZipFile(path) as zf:
            _check_archive(zf, max_uncompressed_bytes, max_ratio)
            config = _read_json_member(zf, "config.json")
            meta = _read_json_member(zf, "metadata.json") if "metadata.json" in zf.namelist() else {}
            version = meta.get("keras_version") if isinstance(meta, dict) else None
            version = version if isinstance(version, str) else None
            major = version.split(".")[0] if version else ""
            if major.isdigit() and int(major) >= 3:
                raise ModelFileError(
                    f"the model was saved with Keras {version}; Sparkdeck trains with legacy Keras 2 (tf_keras): "
                    "save it with tf_keras (or tf.keras on TensorFlow ≤ 2.15) and upload it again"
                )
            _check_keras_weights(zf)
    except zipfile.BadZipFile as e:
        raise ModelFileError(
            f"the .keras file is not a valid zip archive ({e}); re-save the model with model.save('model.keras')"
        ) from None
    return config, version


def _check_h5_storage(f, what: str) -> None:
    """Refuse HDF5 data that lives outside the file: external links, external storage, virtual datasets.

    HDF5 resolves those on the loading machine's file system, so a 'weights' dataset could hold the
    bytes of any file readable there (a secret key, /proc/self/environ), to come back in a trained model.
    """
    import h5py

    problem = []

    def visit(name, link):  # a true return value stops the walk
        visit.count += 1
        if visit.count > MAX_H5_LINKS:
            problem.append(f"{what} has more than {MAX_H5_LINKS} HDF5 objects")
            return True
        if isinstance(link, h5py.ExternalLink):
            problem.append(f"{what} links to another file ({link.filename!r}) from {name!r}")
            return True
        if isinstance(link, h5py.HardLink):
            obj = f.get(name)
            if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
                problem.append(f"{what} stores {name!r} outside itself (HDF5 external or virtual dataset)")
                return True
        return None

    visit.count = 0
    try:
        f.visititems_links(visit)
    except ModelFileError:
        raise
    except Exception as e:
        raise ModelFileError(f"{what} cannot be read as HDF5 ({_one_line(e)}); re-save the model") from None
    if problem:
        raise ModelFileError(f"{problem[0]}; this is not allowed — re-save the model with model.save()")


def _check_keras_weights(zf: zipfile.ZipFile) -> None:
    import h5py

    info = zf.getinfo("model.weights.h5")
    what = "model.weights.h5 in the .keras archive"
    try:
        if info.compress_type == zipfile.ZIP_STORED:  # what tf_keras writes: seekable in place
            with zf.open(info) as fh, h5py.File(fh, "r") as f:
                _check_h5_storage(f, what)
            return
        with tempfile.TemporaryDirectory(prefix="modelfile-") as tmp:
            copy = os.path.join(tmp, "weights.h5")
            with zf.open(info) as src, open(copy, "wb") as dst:
                while chunk := src.read(1024 * 1024):
                    dst.write(chunk)
            with h5py.File(copy, "r") as f:
                _check_h5_storage(f, what)
    except ModelFileError:
        raise
    except Exception as e:  # not HDF5, damaged, bad CRC
        raise ModelFileError(f"{what} cannot be read as HDF5 ({_one_line(e)}); re-save the model") from None


def _read_h5_config(path) -> tuple[dict, str | None]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
            _check_h5_storage(f, "the .h5 file")
    except ModelFileError:
        raise
    except Exception as e:  # h5py raises OSError and others on damaged files
        raise ModelFileError(f"the .h5 file cannot be read as HDF5 ({_one_line(e)}); re-save the model") from None
    if raw is None:
        raise ModelFileError(
            "the .h5 file has no model architecture (it holds weights only?); save the whole model with "
            "model.save('model.h5') or, better, model.save('model.keras')"
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str) or len(raw) > MAX_CONFIG_BYTES:
        raise ModelFileError("the model_config attribute of the .h5 file is not a JSON text of sensible size")
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        raise ModelFileError("the .h5 file's model_config is not valid JSON; re-save the model") from None
    if isinstance(version, bytes):
        version = version.decode("utf-8", errors="replace")
    return config, (version if isinstance(version, str) else None)


@functools.lru_cache(maxsize=1)
def _builtins() -> tuple[frozenset, frozenset, frozenset]:
    """(layer class names, other built-in class names, built-in function names) of tf_keras."""
    keras = _keras()

    def names(module, kind):
        out = set()
        for n in dir(module):
            if n.startswith("_"):
                continue
            obj = getattr(module, n, None)
            if kind == "class" and isinstance(obj, type) or kind == "function" and callable(obj):
                out.add(n)
        return out

    layers = names(keras.layers, "class") - {"Lambda"}
    layers |= set(MODEL_CLASSES)
    others = set()
    functions = set()
    for mod in (
        keras.initializers,
        keras.regularizers,
        keras.constraints,
        keras.activations,
        keras.optimizers,
        keras.optimizers.schedules,
        keras.losses,
        keras.metrics,
        keras.mixed_precision,
    ):
        others |= names(mod, "class")
    for mod in (keras.activations, keras.losses, keras.metrics):
        functions |= {n for n in names(mod, "function") if not isinstance(getattr(mod, n), type)}
    functions -= {"get", "serialize", "deserialize"}
    return frozenset(layers), frozenset(others), frozenset(functions)


def _keras_module(module) -> bool:
    return module is None or (
        isinstance(module, str)
        and (module in ("keras", "tf_keras") or module.startswith("keras.") or module.startswith("tf_keras."))
    )


def _where(node: dict) -> str:
    cfg = node.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return f" ({name!r})" if isinstance(name, str) else ""


def _check_object(node: dict, is_layer: bool, out: dict) -> None:
    layer_names, other_names, function_names = _builtins()
    cls = node.get("class_name")
    if not isinstance(cls, str):
        raise ModelFileError("the model config has an object without a valid class_name; re-save the model")
    if cls in ("Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"):
        if cls in ("TFOpLambda", "SlicingOpLambda"):
            raise ModelFileError(
                f"the model applies a TensorFlow operation between layers{_where(node)} (a {cls} layer, made by "
                "code such as x + 1 or tf.concat on Keras tensors); it is not allowed — use built-in layers such "
                "as Add, Concatenate or Rescaling instead and upload the model again"
            )
        raise ModelFileError(LAMBDA_MESSAGE.format(where=_where(node)))
    module = node.get("module")
    registered = node.get("registered_name")
    if cls == "function":
        fn = node.get("config")
        if (
            not (_keras_module(module) or module == "builtins")
            or not isinstance(fn, str)
            or fn not in function_names
            or registered not in (None, fn)
        ):
            raise ModelFileError(f"the model refers to the custom function {fn!r}; {CUSTOM_HINT}")
        return
    if not _keras_module(module):
        raise ModelFileError(f"the model uses the custom object {cls!r} from module {module!r}; {CUSTOM_HINT}")
    if registered not in (None, cls):
        raise ModelFileError(f"the model uses the custom object {cls!r} (registered as {registered!r}); {CUSTOM_HINT}")
    if cls in FILE_READING_LAYERS:  # wherever it sits: deserializing it is what reads the file
        raise ModelFileError(
            f"the model contains a {cls} layer{_where(node)}: it can read a vocabulary file named in the model "
            "from the server's disk, so it is not allowed — remove text/lookup preprocessing from the model "
            "(Sparkdeck feeds numeric features) and upload it again"
        )
    if cls in DATA_CLASSES and not is_layer:
        return
    if is_layer:
        if cls not in layer_names:
            raise ModelFileError(
                f"the model uses the layer class {cls!r}{_where(node)}, which is not a built-in tf_keras layer; "
                f"{CUSTOM_HINT}"
            )
        out["layer_classes"].add(cls)
        out["layers"] += 1
    elif cls not in other_names and cls not in layer_names:
        raise ModelFileError(f"the model uses {cls!r}, which is not a built-in tf_keras object; {CUSTOM_HINT}")


def _walk(node, is_layer: bool, out: dict, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ModelFileError("the model config is nested too deeply; re-save the model")
    if isinstance(node, list):
        for item in node:
            _walk(item, is_layer, out, depth + 1)
    elif isinstance(node, dict):
        if "class_name" in node:
            _check_object(node, is_layer, out)
        elif is_layer:
            raise ModelFileError("the model config has a layer without a class_name; re-save the model")
        for key, value in node.items():
            child_is_layer = key in LAYER_KEYS and isinstance(value, dict | list) and _holds_objects(value)
            _walk(value, child_is_layer, out, depth + 1)


def _holds_objects(value) -> bool:
    items = value if isinstance(value, list) else [value]
    return any(isinstance(v, dict) and "class_name" in v for v in items)


def inspect_config(
    path,
    *,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> dict:
    """Check a model file without building or running anything from it.

    Returns ``{"format": "keras"|"h5", "keras_version": str|None, "config": <architecture config>,
    "layer_classes": [sorted class names, nested models included], "layers": <layer count, the
    top-level model not counted>}``. Raises ModelFileError for an unknown format, an unsafe archive,
    a Lambda layer, a custom object or a class tf_keras does not define.
    """
    fmt = file_format(path)
    if fmt == "keras":
        config, version = _read_keras_config(path, max_uncompressed_bytes, max_ratio)
    else:
        config, version = _read_h5_config(path)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError("the file holds no Keras model architecture; save the model with model.save()")
    out = {"layer_classes": set(), "layers": -1}  # the top-level model is counted by the walk: start at -1
    try:
        _walk(config, True, out)
    except RecursionError:
        raise ModelFileError("the model config is nested too deeply; re-save the model") from None
    if config["class_name"] not in ("Functional", "Sequential", "Model"):
        raise ModelFileError(
            f"the file holds a single {config['class_name']!r} layer, not a model; save a Sequential or "
            "functional model"
        )
    return {
        "format": fmt,
        "keras_version": version,
        "config": config,
        "layer_classes": sorted(out["layer_classes"]),
        "layers": max(out["layers"], 0),
    }


# ---------------------------------------------------------------------------------------------
# loading


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def _named(path, fmt: str):
    """The path tf_keras needs: it picks the loader by the '.keras' suffix, so give it one."""
    path = os.fspath(path)
    if fmt == "h5" or path.endswith(".keras"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="modelfile-") as tmp:
        link = os.path.join(tmp, "model.keras")
        os.symlink(os.path.abspath(path), link)
        yield link


def _load(path, fmt: str, compile: bool):
    keras = _keras()
    from tf_keras.src.saving import serialization_lib

    # tf_keras' load_model honours safe_mode only for .keras archives; the legacy .h5 loader ignores
    # it and would unmarshal a Lambda's bytecode. Its deserializers consult this scope, so set it for
    # both formats (our own config check has refused Lambda layers before we get here anyway).
    try:
        with serialization_lib.SafeModeScope(True), _named(path, fmt) as p:
            if fmt == "h5":
                return keras.models.load_model(p, compile=compile)
            return keras.models.load_model(p, compile=compile, safe_mode=True)
    except ModelFileError:
        raise
    except Exception as e:  # anything TensorFlow/h5py raise: one line for the user
        raise ModelFileError(
            f"the model could not be loaded: {_one_line(e)}; re-save it with model.save() and upload it again"
        ) from None


def load_safe(path, compile: bool = False, **limits):
    """``inspect_config`` then ``tf_keras.models.load_model(..., safe_mode=True)``; the tf_keras model.

    ``limits``: ``max_uncompressed_bytes``, ``max_ratio`` as for ``inspect_config``.
    """
    info = inspect_config(path, **limits)
    return _load(path, info["format"], compile)


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.layer if history is not None else None


def _activation_name(layer, depth: int = 0) -> str:
    keras = _keras()
    if layer is None or depth > 50:
        return "linear"
    if isinstance(layer, keras.Model) and getattr(layer, "outputs", None):
        return _activation_name(_producer(layer.outputs[0]), depth + 1)
    cls = type(layer).__name__
    if cls in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[cls]
    act = getattr(layer, "activation", None)
    if act is not None:
        if isinstance(act, str):
            return act
        return getattr(act, "__name__", None) or type(act).__name__
    if cls in PASS_THROUGH:
        try:
            return _activation_name(_producer(layer.input), depth + 1)
        except (AttributeError, ValueError):
            return "linear"
    return "linear"


def describe(path, **limits) -> dict:
    """Load safely and summarise (JSON-able): format, input shape without the batch dim, outputs.

    ``{"format", "input_shape", "num_outputs", "output_activation", "layers", "params", "layer_classes"}``.
    """
    info = inspect_config(path, **limits)
    model = _load(path, info["format"], compile=False)
    inputs = list(getattr(model, "inputs", None) or [])
    outputs = list(getattr(model, "outputs", None) or [])
    if not inputs or not outputs:
        raise ModelFileError(
            "the model has no defined input shape; start it with keras.Input(shape=...) (or give the first "
            "layer input_shape=...) and save it again"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(
            f"the model has {len(inputs)} input(s) and {len(outputs)} output(s); Sparkdeck needs exactly one "
            "input and one output"
        )
    in_shape = list(inputs[0].shape)[1:]
    if not in_shape or any(d is None for d in in_shape):
        raise ModelFileError(
            f"the model's input shape ({', '.join(['batch'] + ['?' if d is None else str(d) for d in in_shape])}) "
            "has unknown dimensions; give every "
            "dimension but the batch a fixed size, e.g. keras.Input(shape=(28, 28, 1))"
        )
    out_shape = list(outputs[0].shape)
    num_outputs = out_shape[-1] if len(out_shape) > 1 else 1
    if num_outputs is None:
        raise ModelFileError("the model's output has an unknown number of units; end it with e.g. Dense(k)")
    return {
        "format": info["format"],
        "input_shape": [int(d) for d in in_shape],
        "num_outputs": int(num_outputs),
        "output_activation": _activation_name(_producer(outputs[0]) or model.layers[-1]),
        "layers": int(info["layers"]),
        "params": int(model.count_params()),
        "layer_classes": list(info["layer_classes"]),
    }


# ---------------------------------------------------------------------------------------------
# CLI: python -m workers.jobs.modelfile describe PATH


def main(argv=None) -> int:
    import argparse

    # Before TensorFlow is imported (here, in describe): legacy Keras, and no INFO logs.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m workers.jobs.modelfile")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", help="check a .keras/.h5 model file and print its summary as JSON")
    d.add_argument("path")
    d.add_argument("--max-uncompressed-bytes", type=int, default=DEFAULT_MAX_UNCOMPRESSED_BYTES)
    d.add_argument("--max-ratio", type=float, default=DEFAULT_MAX_RATIO)
    args = parser.parse_args(argv)

    # Only our JSON goes to stdout: while TensorFlow works, file descriptor 1 points at stderr, so
    # nothing it (or C++ code under it) prints can corrupt the answer.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        try:
            result, rc = (
                describe(args.path, max_uncompressed_bytes=args.max_uncompressed_bytes, max_ratio=args.max_ratio),
                0,
            )
        except ModelFileError as e:
            result, rc = {"error": str(e)}, 2
        except Exception as e:  # never a traceback instead of an answer
            result, rc = {"error": f"the model file could not be checked: {_one_line(e)}"}, 2
        sys.stdout.flush()
    finally:
        os.dup2(real_stdout, 1)
        os.close(real_stdout)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
