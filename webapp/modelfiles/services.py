"""Import uploaded Keras model files: the request stores the file (UPLOADED) and queues its check;
a worker checks it (CHECKING → READY, described, or FAILED with the reason and the file removed).

Neither the web process nor the worker opens the model with TensorFlow or h5py: ``python -m
workers.jobs.modelfile describe`` does, in a child with a time limit and a minimal environment (no
database URL, no secret key), so a hostile or huge file can at worst kill that child.
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
from django.utils import timezone

from workers.jobs.modelfile import FORMATS, ModelFileError, detect_format

from .models import ModelFile
from .states import IllegalTransition, StaleStatus, Status

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


QUEUE_FAILURE = "The check could not be queued (the task broker is unreachable); upload the model again."
INTERNAL_FAILURE = "The model file could not be checked (an internal error; see the server log)."
# A CHECKING row whose worker died (acks_late redelivers its task) is taken over after this long.
CLAIM_LEASE_SECONDS = 2 * CHECK_TIMEOUT_SECONDS


def _duplicate(name):
    return ModelFileError(f"Your team already has a model named {name!r}; pick another name.")


def create_model_file(*, team, user, name: str, upload) -> ModelFile:
    """Store `upload` (a Django UploadedFile, or anything with .name and .chunks()) as an UPLOADED model
    file and queue its check once the row is committed. Refused at once (ModelFileError, nothing
    stored): no name, a name the team has, a file over MAX_UPLOAD_BYTES, bytes that are no Keras format.
    """
    name = (name or "").strip()
    if not name:
        raise ModelFileError("Give the model a name.")
    if ModelFile.objects.filter(team=team, name=name).exclude(status=Status.FAILED).exists():
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
                if size > settings.MAX_UPLOAD_BYTES:  # the upload handler stops it first; a direct caller here
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
        with transaction.atomic():
            mf = ModelFile.objects.create(
                team=team,
                name=name,
                original_name=Path(upload.name or f"model.{fmt}").name[:255],
                format=fmt,
                size_bytes=size,
                created_by=user,
            )
            final_dir = mf.storage_path.parent
            shutil.rmtree(final_dir, ignore_errors=True)  # a stale folder of a deleted row with the same id
            final_dir.mkdir(parents=True)
            os.replace(src, mf.storage_path)  # the suffix is the one tf_keras picks its loader by
            pk = mf.pk
            transaction.on_commit(lambda: dispatch_check(pk))
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


def dispatch_check(model_file_id: int) -> None:
    """Queue the check (after commit). A broker that cannot be reached fails the model file with a
    reason rather than the request that already stored it."""
    from .tasks import check_modelfile

    try:
        check_modelfile.delay(model_file_id)
    except Exception:
        log.exception("could not queue the check of model file %s", model_file_id)
        mf = ModelFile.objects.filter(pk=model_file_id).first()
        if mf is not None:
            _fail(mf, QUEUE_FAILURE)


def sweep_checks(now=None) -> int:
    """The periodic sweep: checks whose task was lost (UPLOADED for longer than the conversion requeue
    period) or whose worker died (CHECKING past the lease) are queued again; the claim's
    compare-and-set makes a duplicate do nothing."""
    now = now or timezone.now()
    lost = ModelFile.objects.filter(
        status=Status.UPLOADED, created_at__lt=now - timezone.timedelta(seconds=settings.CONVERSION_REQUEUE_SECONDS)
    ) | ModelFile.objects.filter(
        status=Status.CHECKING, check_started_at__lt=now - timezone.timedelta(seconds=CLAIM_LEASE_SECONDS)
    )
    ids = list(lost.values_list("pk", flat=True))
    for pk in ids:
        log.warning("model file %s: its check was lost; queueing it again", pk)
        dispatch_check(pk)
    return len(ids)


def _claim(mf: ModelFile) -> bool:
    """UPLOADED → CHECKING, or take over a CHECKING row whose claim is older than the lease (its
    worker died and the task was delivered again). False when another worker holds it or it is done."""
    if mf.status == Status.UPLOADED:
        try:
            mf.transition(Status.CHECKING)
            return True
        except StaleStatus:
            return False
    if mf.status != Status.CHECKING:
        return False
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=CLAIM_LEASE_SECONDS)
    taken = ModelFile.objects.filter(pk=mf.pk, status=Status.CHECKING, check_started_at__lt=stale).update(
        check_started_at=now
    )
    if taken:
        mf.check_started_at = now
    return bool(taken)


def check(model_file_id: int) -> ModelFile | None:
    """Check an UPLOADED model file in the checker subprocess; READY with its description, or FAILED
    with the reason (the file removed). Idempotent: a row another worker holds, or one already checked,
    is returned as it is (None when there is no row)."""
    mf = ModelFile.objects.filter(pk=model_file_id).first()
    if mf is None or not _claim(mf):
        return mf
    tmp = mf.storage_path.parent / "tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # what a killed check left
        tmp.mkdir(parents=True)
        info = describe_in_subprocess(mf.storage_path, tmpdir=tmp)
        if info["format"] != mf.format:
            raise ModelFileError("The model file was refused: its format changed while it was checked.")
        mf.transition(
            Status.READY,
            input_shape=list(info["input_shape"]),
            num_outputs=info["num_outputs"],
            output_activation=info["output_activation"][:50],
            params=info["params"],
            layer_classes=list(info["layer_classes"]),
            status_reason="",
        )
    except ModelFileError as exc:
        _fail(mf, str(exc))
    except (StaleStatus, IllegalTransition):
        log.warning("model file %s changed while it was checked", model_file_id)
    except Exception:
        log.exception("checking model file %s failed unexpectedly", model_file_id)
        _fail(mf, INTERNAL_FAILURE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelFile.objects.filter(pk=model_file_id).first()


def _fail(mf: ModelFile, reason: str) -> None:
    """FAILED with `reason`; the row stays (so the user sees why), the file goes."""
    try:
        mf.transition(Status.FAILED, reason=reason)
    except (StaleStatus, IllegalTransition):
        log.warning("model file %s changed while failing: %s", mf.pk, reason)
        return
    shutil.rmtree(mf.storage_path.parent, ignore_errors=True)
