"""Import uploaded Keras model files: check them in a subprocess first, then store; nothing half-stored.

The web process never opens the model with TensorFlow or h5py: ``python -m workers.jobs.modelfile
describe`` does, in a child with a time limit and a minimal environment (no database URL, no secret
key), so a hostile or huge file can at worst kill that child.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from workers.jobs.modelfile import FORMATS, ModelFileError, detect_format

from .models import ModelFile

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 120
# Passed through to the checker; everything else (DATABASE_URL, DJANGO_SECRET_KEY, ...) is left out.
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LD_LIBRARY_PATH", "SYSTEMROOT")


def checker_python() -> str:
    """The Python that runs the jobs (settings.SPARK_PYTHON: same TensorFlow as training), else ours."""
    python = getattr(settings, "SPARK_PYTHON", "") or ""
    if python and os.path.isfile(python) and os.access(python, os.X_OK):
        return python
    return sys.executable


def _sentence(message: str) -> str:
    message = message.strip()
    return message[:1].upper() + message[1:] if message else "The model file was refused."


def _checker_env(tmpdir: Path) -> dict:
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env.update(
        PYTHONPATH=str(settings.BASE_DIR),
        TF_USE_LEGACY_KERAS="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="-1",  # a check needs no GPU; never grab the web host's
        TMPDIR=str(tmpdir),  # whatever TensorFlow unpacks goes where we clean up
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _valid_answer(answer) -> bool:
    try:
        return (
            answer["format"] in FORMATS
            and all(isinstance(d, int) and d > 0 for d in answer["input_shape"])
            and isinstance(answer["num_outputs"], int)
            and isinstance(answer["output_activation"], str)
            and isinstance(answer["params"], int)
            and all(isinstance(c, str) for c in answer["layer_classes"])
        )
    except (KeyError, TypeError):
        return False


def describe_in_subprocess(path: Path, *, tmpdir: Path, timeout: float | None = None) -> dict:
    """Run ``python -m workers.jobs.modelfile describe PATH``; its JSON, or ModelFileError."""
    timeout = timeout or getattr(settings, "MODELFILE_CHECK_TIMEOUT", CHECK_TIMEOUT_SECONDS)
    argv = [checker_python(), "-m", "workers.jobs.modelfile", "describe", str(path)]
    try:
        proc = subprocess.run(
            argv,
            cwd=settings.BASE_DIR,
            env=_checker_env(tmpdir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelFileError(
            f"Checking the model took longer than {timeout:g} s, so it was refused; upload a smaller model."
        ) from None
    except OSError as e:
        log.error("model checker %s could not start: %s", argv[0], e)
        raise ModelFileError("The model checker could not be started; ask an admin to look at the server log.") from e
    stdout = proc.stdout.decode("utf-8", errors="replace")
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if proc.returncode == 0 and isinstance(answer, dict) and _valid_answer(answer):
        return answer
    if proc.returncode == 2 and isinstance(answer, dict) and isinstance(answer.get("error"), str):
        raise ModelFileError(_sentence(answer["error"]))
    stderr_tail = proc.stderr.decode("utf-8", errors="replace")[-4000:]
    log.warning("model checker exited %s on %s; stderr tail:\n%s", proc.returncode, path, stderr_tail)
    if proc.returncode < 0:
        raise ModelFileError(
            f"Reading this model file crashed the checker (signal {-proc.returncode}): the file is damaged or "
            "not a Keras model. Re-save the model with model.save('model.keras') and upload it again."
        )
    raise ModelFileError("The model file could not be checked (the checker failed; see the server log).")


def _duplicate(name):
    return ModelFileError(f"Your team already has a model named {name!r}; pick another name.")


def create_model_file(*, team, user, name: str, upload) -> ModelFile:
    """`upload` is a Django UploadedFile (or any object with .name and .chunks()).

    On any failure nothing is stored: no row, no file, no temp folder.
    """
    name = (name or "").strip()
    if not name:
        raise ModelFileError("Give the model a name.")
    if ModelFile.objects.filter(team=team, name=name).exists():
        raise _duplicate(name)
    settings.DATA_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="model-upload-", dir=settings.DATA_ROOT))
    final_dir = None
    try:
        src = work / "upload"
        size = 0
        with open(src, "wb") as fh:
            for chunk in upload.chunks():
                size += len(chunk)
                if size > settings.MAX_UPLOAD_BYTES:
                    raise ModelFileError(
                        f"The file is larger than the {settings.MAX_UPLOAD_BYTES // 2**20} MB upload limit."
                    )
                fh.write(chunk)
        with open(src, "rb") as fh:
            head = fh.read(64)
        try:
            fmt = detect_format(head)  # by the bytes; the upload's name means nothing
        except ModelFileError as e:
            raise ModelFileError(_sentence(str(e))) from None
        candidate = work / f"model.{fmt}"  # the suffix tf_keras picks its loader by
        src.rename(candidate)
        (work / "tmp").mkdir()
        info = describe_in_subprocess(candidate, tmpdir=work / "tmp")
        if info["format"] != fmt:
            raise ModelFileError("The model file was refused: its format changed while it was checked.")
        with transaction.atomic():
            mf = ModelFile.objects.create(
                team=team,
                name=name,
                original_name=Path(upload.name or f"model.{fmt}").name[:255],
                format=fmt,
                input_shape=list(info["input_shape"]),
                num_outputs=info["num_outputs"],
                output_activation=info["output_activation"][:50],
                params=info["params"],
                layer_classes=list(info["layer_classes"]),
                size_bytes=size,
                created_by=user,
            )
            final_dir = mf.storage_path.parent
            shutil.rmtree(final_dir, ignore_errors=True)  # a stale folder of a deleted row with the same id
            final_dir.mkdir(parents=True)
            shutil.move(str(candidate), mf.storage_path)
        return mf
    except BaseException as exc:
        # The row rolled back (or never was): take its file with it.
        if final_dir is not None:
            shutil.rmtree(final_dir, ignore_errors=True)
        if isinstance(exc, IntegrityError):
            raise _duplicate(name) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
