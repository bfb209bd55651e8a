"""Datasets from uploads: store the upload (UPLOADED), convert it in a Celery task, delete or archive.

create_dataset() streams the upload to ``<storage_dir>/upload/original.<ext>``, saves the row UPLOADED and
queues ``tasks.convert_dataset`` once the row is committed. convert() (called by that task, or at
once with ``convert_now=True``) claims the row UPLOADED → CONVERTING, runs ingest() into a temporary
directory, moves the result into ``<storage_dir>`` and records READY; a DatasetError records FAILED with its
message and removes every file of the dataset, the upload included: the row stays so the user sees why,
and delete_failed_datasets() clears such rows. Every status change goes through Dataset.transition
(compare-and-set), so a duplicated task converts once.
"""

import hashlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from webapp import safefiles

from .ingest import DatasetError, Limits, detect_format, ingest, parse_shape
from .ingest.detect import HEAD_BYTES
from .ingest.shapes import check_layout, resolve_layout
from .models import UPLOAD_DIR, Dataset
from .states import DELETABLE, IllegalTransition, StaleStatus, Status
from .uploads import too_large_message

log = logging.getLogger(__name__)

DEFAULT_TEST_FRACTION = 0.2
SPLIT_SEED = 42
INTERNAL_FAILURE = (
    "The conversion stopped because of an internal error (not a problem with your file as far as we "
    "know). Upload it again; if it fails again, ask an admin to look at the worker log."
)
QUEUE_FAILURE = "The conversion could not be queued (the task queue is unreachable). Upload the file again later."


def limits() -> Limits:
    """The ingest limits from settings (SPARKDECK_MAX_*); unset ones keep the ingest defaults."""
    # max_bytes also bounds each array inside an NPZ, which may be larger than the compressed upload:
    # never below the ingest default. The upload itself is bounded while it streams.
    kwargs = {"max_bytes": max(settings.MAX_UPLOAD_BYTES, Limits().max_bytes)}
    for field, value in (
        ("max_classes", settings.MAX_CLASSES),
        ("max_images", settings.MAX_IMAGES),
        ("max_pixels", settings.MAX_PIXELS),
        ("max_values", settings.MAX_VALUES),
    ):
        if value:
            kwargs[field] = value
    return Limits(**kwargs)


def parse_image_size(text: str) -> tuple[int, int] | None:
    """ "64x64" (height × width) → (64, 64); "" → None (the ZIP's most common size)."""
    text = (text or "").strip().lower().replace("×", "x")
    if not text:
        return None
    parts = [p.strip() for p in text.split("x")]
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise DatasetError(f"Image size {text!r} should look like 64x64 (height x width, in pixels).")
    return size


def check_test_fraction(value) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"The test fraction must be between 0 and 1 (e.g. 0.2), not {value!r}.")
    return fraction


def _name_taken(name: str) -> DatasetError:
    return DatasetError(f"Your team already has a dataset named {name!r}; pick another name.")


class _Budget:
    """Bytes left for this request's files together; refuses the chunk that goes over."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise DatasetError(too_large_message(self.limit))


def _store(upload, folder: Path, stem: str, budget: _Budget) -> tuple[str, int]:
    """Stream ``upload`` to ``folder/<stem>.<fmt>``; return (fmt, bytes). Nothing is read twice."""
    part = folder / f"{stem}.part"
    size, head = 0, b""
    with open(part, "wb") as fh:
        for chunk in upload.chunks():
            budget.take(len(chunk))
            size += len(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            fh.write(chunk)
    fmt = detect_format(upload.name, head)
    os.rename(part, folder / f"{stem}.{fmt}")
    return fmt, size


def _make_room(final: Path) -> None:
    """A directory left from another database (pks restart) is moved aside, never mixed in or deleted."""
    if final.exists():
        aside = final.with_name(f".stale-{final.name}-{time.time_ns()}")
        log.warning("dataset directory %s exists without its row; moved to %s", final, aside)
        os.rename(final, aside)


def create_dataset(
    *,
    team,
    user,
    name: str,
    upload,
    label_column: str = "label",
    layout: str = "auto",
    shape_text: str = "",
    x_key: str = "x",
    y_key: str = "y",
    image_size_text: str = "",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    test_upload=None,
    convert_now: bool = False,
) -> Dataset:
    """Store the upload and create the dataset UPLOADED; its conversion is queued when the row commits.

    ``upload`` (and ``test_upload``, an optional separate test split) are Django UploadedFiles (or any
    object with .name and .chunks()). ``layout`` is "image", "sequence", "table" or "auto" (a table for
    CSV/TSV/Parquet without a shape, images otherwise; resolved here from the stored file's format and
    kept resolved); ``shape_text`` the user's shape ("28x28", "20x3"), empty to infer it;
    ``image_size_text`` the size ZIP images are brought to ("64x64", empty = the most common one).
    Bad values, an unsupported or empty file and a file over settings.MAX_UPLOAD_BYTES (both files
    together, checked while streaming) raise DatasetError and store nothing.

    ``convert_now=True`` (tests, fixtures, seeding) converts in this process instead of queueing and
    returns the dataset READY, or raises DatasetError with the reason (the row stays FAILED).
    """
    check_layout(layout)
    user_shape = parse_shape(shape_text or "", layout=layout)
    image_size = parse_image_size(image_size_text)
    test_fraction = check_test_fraction(test_fraction)
    name = name.strip()
    if Dataset.objects.filter(team=team, name=name).exists():
        raise _name_taken(name)
    parent = settings.DATA_ROOT / "datasets"
    parent.mkdir(parents=True, exist_ok=True)
    # Same filesystem as the final place: moving it there is a rename.
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=parent))
    try:
        budget = _Budget(settings.MAX_UPLOAD_BYTES)
        fmt, size = _store(upload, staging, "original", budget)
        layout = resolve_layout(layout, fmt, user_shape)
        if image_size is not None and fmt != "zip":
            raise DatasetError(
                "An image size (resizing) applies only to ZIP archives of images; for other formats "
                "give the shape of the rows instead."
            )
        test_fmt = None
        if test_upload is not None:
            test_fmt, test_size = _store(test_upload, staging, "test", budget)
            size += test_size
        options = {
            "label_column": label_column or "label",
            "layout": layout,
            "shape": list(user_shape) if user_shape else None,
            "x_key": x_key or "x",
            "y_key": y_key or "y",
            "image_size": list(image_size) if image_size else None,
            "test_fraction": test_fraction,
            "seed": SPLIT_SEED,
            "test_format": test_fmt,
            "test_name": Path(test_upload.name).name[:255] if test_upload is not None else None,
        }
        with transaction.atomic():
            ds = Dataset.objects.create(
                team=team,
                name=name,
                status=Status.UPLOADED,
                source_format=fmt,
                original_name=Path(upload.name).name[:255],
                layout=layout,  # shape, classes and rows: known once converted
                split_mode=Dataset.SplitMode.TEST_FILE if test_fmt else Dataset.SplitMode.FRACTION,
                options=options,
                size_bytes=size,
                size_on_disk=size,
                created_by=user,
            )
            final = ds.storage_dir
            _make_room(final)
            final.mkdir()
            try:
                os.rename(staging, final / UPLOAD_DIR)
                os.chmod(final / UPLOAD_DIR, 0o755)  # mkdtemp made it 0700
            except OSError:
                # The row rolls back with the exception; take the directory with it.
                shutil.rmtree(final, ignore_errors=True)
                raise
            if not convert_now:
                pk = ds.pk
                transaction.on_commit(lambda: dispatch_conversion(pk))
    except IntegrityError:
        raise _name_taken(name) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was moved into place
    if convert_now:
        ds = convert(ds.pk)
        if ds.status != Status.READY:
            raise DatasetError(ds.status_reason or f"Dataset {name} could not be converted.")
    return ds


def create_and_convert(**kwargs) -> Dataset:
    """create_dataset(..., convert_now=True): a READY dataset or DatasetError (tests, seeding, the bench)."""
    return create_dataset(**kwargs, convert_now=True)


def dispatch_conversion(dataset_id: int) -> None:
    """Queue the conversion (after commit). A broker that cannot be reached fails the dataset with a reason
    rather than the request that already stored it."""
    from django.utils import timezone

    Dataset.objects.filter(pk=dataset_id, status=Status.UPLOADED).update(conversion_queued_at=timezone.now())
    _send_conversion(dataset_id)


def _send_conversion(dataset_id: int) -> None:
    from .tasks import convert_dataset

    try:
        convert_dataset.delay(dataset_id)
    except Exception:
        log.exception("could not queue the conversion of dataset %s", dataset_id)
        ds = Dataset.objects.filter(pk=dataset_id).first()
        if ds is not None:
            try:
                ds.transition(Status.FAILED, reason=QUEUE_FAILURE, size_on_disk=0)
            except (StaleStatus, IllegalTransition):
                return  # a worker got it after all
            _remove_files(ds)


def _ingest_kwargs(ds: Dataset) -> dict:
    opts = ds.options
    layout = opts.get("layout") or ds.layout
    shape = tuple(opts["shape"]) if opts.get("shape") else None
    return {
        "label_column": opts.get("label_column") or "label",
        "layout": layout,
        ("sequence_shape" if layout == Dataset.Layout.SEQUENCE else "image_shape"): shape,
        "x_key": opts.get("x_key") or "x",
        "y_key": opts.get("y_key") or "y",
        "image_size": tuple(opts["image_size"]) if opts.get("image_size") else None,
        "test_fraction": opts.get("test_fraction", DEFAULT_TEST_FRACTION),
        "seed": opts.get("seed", SPLIT_SEED),
        "limits": limits(),
        "test_src": ds.test_upload_path(),  # None: split test_fraction off
        "test_fmt": opts.get("test_format"),
    }


def _converted_entries(ds: Dataset):
    if ds.storage_dir.is_dir():
        yield from (p for p in ds.storage_dir.iterdir() if p.name != UPLOAD_DIR)


def _remove_converted(ds: Dataset) -> None:
    """Everything but the upload (leftovers of a conversion killed halfway)."""
    for path in _converted_entries(ds):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


HASHED_FILES = ("train.parquet", "test.parquet")
HASH_CHUNK = 1024 * 1024


def content_hash(ds: Dataset) -> str:
    """The sha256 (hex) of the converted files, train.parquet then test.parquet, streamed; "" when they
    are not there. Stored on the row the first time: a READY or ARCHIVED dataset's files never change."""
    if ds.content_hash:
        return ds.content_hash
    if not ds.has_files:
        return ""
    digest = hashlib.sha256()
    try:
        for name in HASHED_FILES:
            with safefiles.open_under(ds.storage_dir, name) as fh:
                while chunk := fh.read(HASH_CHUNK):
                    digest.update(chunk)
    except OSError:
        return ""
    ds.content_hash = digest.hexdigest()
    Dataset.objects.filter(pk=ds.pk, content_hash="").update(content_hash=ds.content_hash)
    return ds.content_hash


def disk_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def convert(dataset_id: int) -> Dataset | None:
    """Convert an UPLOADED dataset; any other status (or no row) returns at once: idempotent.

    Returns the dataset as it is afterwards (None when the row does not exist).
    """
    ds = Dataset.objects.filter(pk=dataset_id).first()
    if ds is None or ds.status != Status.UPLOADED:
        return ds
    try:
        ds.transition(Status.CONVERTING)
    except StaleStatus:
        return Dataset.objects.filter(pk=dataset_id).first()  # another worker claimed it, or it was deleted
    work = None
    try:
        _remove_converted(ds)  # leftovers of a conversion killed halfway
        work = Path(tempfile.mkdtemp(prefix=".convert-", dir=ds.storage_dir))
        out = work / "out"
        info = ingest(ds.original_path(), ds.source_format, out, **_ingest_kwargs(ds))
        for entry in out.iterdir():
            if entry.name == UPLOAD_DIR:
                raise RuntimeError(f"ingest wrote {entry.name!r}, the name of the upload folder")
            os.replace(entry, ds.storage_dir / entry.name)
        shutil.rmtree(work)
        work = None
        fields = {
            "layout": info.layout,
            "shape": list(info.shape),
            "num_classes": info.num_classes,
            "class_names": list(info.class_names),
            "class_counts": list(info.class_counts),
            "train_rows": info.train_rows,
            "test_rows": info.test_rows,
            "dtype": info.dtype[:20],
            "split_mode": info.split_mode,
            "size_on_disk": disk_usage(ds.storage_dir),
            "status_reason": "",
        }
        ds.transition(Status.READY, **fields)
    except StaleStatus:
        # Only a deletion can move a CONVERTING dataset: leave nothing behind it.
        log.warning("dataset %s changed while converting; its files are removed", dataset_id)
        if not Dataset.objects.filter(pk=dataset_id).exists():
            shutil.rmtree(ds.storage_dir, ignore_errors=True)
        return Dataset.objects.filter(pk=dataset_id).first()
    except DatasetError as exc:
        _fail(ds, str(exc))
    except Exception:
        log.exception("conversion of dataset %s failed unexpectedly", dataset_id)
        _fail(ds, INTERNAL_FAILURE)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return ds


def _remove_files(ds: Dataset) -> None:
    shutil.rmtree(ds.storage_dir, ignore_errors=True)


def _fail(ds: Dataset, reason: str) -> None:
    """FAILED with the reason; nothing of the dataset stays on disk (the user keeps their own file)."""
    try:
        ds.transition(Status.FAILED, reason=reason, size_on_disk=0)
    except StaleStatus:
        log.warning("dataset %s changed while failing: %s", ds.pk, reason)
        if Dataset.objects.filter(pk=ds.pk).exists():
            return  # someone else moved it on: their files, not ours to remove
    _remove_files(ds)


class DatasetInUse(DatasetError):
    """Runs refer to the dataset: it can be archived, not deleted."""


def delete_dataset(ds: Dataset) -> None:
    """Delete the row, then (after commit) its files. Refused while converting or when a run used it."""
    with transaction.atomic():
        # The row lock orders this against a worker claiming the conversion and a run being created.
        locked = Dataset.objects.select_for_update().filter(pk=ds.pk).first()
        if locked is None:
            return
        used = locked.runs.count()
        if used:
            raise DatasetInUse(
                f"Dataset {locked.name} is used by {used} run{'s' if used != 1 else ''}, which need its "
                "files; archive it instead (it is then hidden, its files kept)."
            )
        if locked.status not in DELETABLE:
            raise DatasetError(f"Dataset {locked.name} is being converted; delete it when that is done.")
        path = locked.storage_dir
        try:
            locked.delete()
        except ProtectedError:
            raise DatasetInUse(f"Dataset {locked.name} is used by a run; archive it instead.") from None
        transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))


def delete_failed_datasets(team) -> int:
    """Delete `team`'s FAILED datasets (rows and, after commit, whatever files are left); returns how many."""
    with transaction.atomic():
        # The row locks order this against a conversion failing one right now. Runs train only on READY
        # datasets; one that a run refers to all the same is left alone (archive or delete it singly).
        failed = list(
            Dataset.objects.select_for_update(of=("self",)).filter(team=team, status=Status.FAILED, runs=None)
        )
        paths = [ds.storage_dir for ds in failed]
        Dataset.objects.filter(pk__in=[ds.pk for ds in failed]).delete()
        transaction.on_commit(lambda: [shutil.rmtree(p, ignore_errors=True) for p in paths])
    return len(failed)


def archive_dataset(ds: Dataset) -> None:
    """READY → ARCHIVED: hidden from the run form and the list, files kept for the runs that used it."""
    try:
        ds.transition(Status.ARCHIVED)
    except IllegalTransition:
        state = ds.get_status_display().lower()
        raise DatasetError(f"Only ready datasets can be archived; {ds.name} is {state}.") from None
    except StaleStatus:
        raise DatasetError(f"Dataset {ds.name} changed meanwhile (now {ds.status}); look again.") from None


def sweep_conversions(now=None) -> int:
    """The periodic sweep: queue lost conversions again, fail the ones whose worker died."""
    return requeue_lost_conversions(now) + fail_stale_conversions(now)


def requeue_lost_conversions(now=None) -> int:
    """UPLOADED datasets whose conversion task was queued more than CONVERSION_REQUEUE_SECONDS ago and
    never claimed: the task was lost (a broker or worker restart). Queue it again; a duplicate is
    harmless (the conversion claims UPLOADED → CONVERTING by compare-and-set), and each dataset is
    queued again at most once per period."""
    from django.utils import timezone

    now = now or timezone.now()
    cutoff = now - timezone.timedelta(seconds=settings.CONVERSION_REQUEUE_SECONDS)
    requeued = 0
    lost = Dataset.objects.filter(status=Status.UPLOADED, conversion_queued_at__lt=cutoff)
    for pk, queued_at in lost.values_list("pk", "conversion_queued_at"):
        # Compare-and-set on the stamp: two sweeps never both queue it.
        if Dataset.objects.filter(pk=pk, status=Status.UPLOADED, conversion_queued_at=queued_at).update(
            conversion_queued_at=now
        ):
            log.warning("dataset %s: its conversion task was lost; queueing it again", pk)
            _send_conversion(pk)
            requeued += 1
    return requeued


def fail_stale_conversions(now=None) -> int:
    """CONVERTING for longer than settings.CONVERSION_TIMEOUT_SECONDS: the worker that claimed it is
    gone (a live one finishes or fails the dataset itself). Fail it so it can be deleted/re-uploaded."""
    from django.utils import timezone

    now = now or timezone.now()
    limit = settings.CONVERSION_TIMEOUT_SECONDS
    cutoff = now - timezone.timedelta(seconds=limit)
    failed = 0
    for ds in Dataset.objects.filter(status=Status.CONVERTING, conversion_started_at__lt=cutoff):
        try:
            ds.transition(
                Status.FAILED,
                reason=f"The conversion did not finish within {limit // 60} minutes (its worker stopped). "
                "Upload the file again.",
                size_on_disk=0,
            )
        except (StaleStatus, IllegalTransition):
            continue  # finished meanwhile
        _remove_files(ds)
        failed += 1
    return failed
