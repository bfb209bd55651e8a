"""Create datasets from uploads: validate + convert first, then store; nothing half-stored."""

import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from .ingest import DatasetError, detect_format, ingest, parse_shape
from .ingest.shapes import check_layout
from .models import Dataset


def create_dataset(
    *, team, user, name: str, upload, label_column: str = "label", layout: str = "image", shape_text: str = ""
) -> Dataset:
    """`upload` is a Django UploadedFile (or any object with .name and .chunks()).

    ``layout`` is "image" or "sequence"; ``shape_text`` is the user's shape ("28x28", "20x3"), empty
    to infer it from the data. Bad values raise DatasetError before the upload is read.
    """
    check_layout(layout)
    user_shape = parse_shape(shape_text or "", layout=layout)
    shape_kw = {"sequence_shape" if layout == Dataset.Layout.SEQUENCE else "image_shape": user_shape}
    if Dataset.objects.filter(team=team, name=name).exists():
        raise DatasetError(f"Your team already has a dataset named {name!r}; pick another name.")
    settings.DATA_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="upload-", dir=settings.DATA_ROOT))
    try:
        src = work / "upload"
        size = 0
        with open(src, "wb") as fh:
            for chunk in upload.chunks():
                size += len(chunk)
                if size > settings.MAX_UPLOAD_BYTES:
                    raise DatasetError(
                        f"The file is larger than the {settings.MAX_UPLOAD_BYTES // 2**20} MB upload limit."
                    )
                fh.write(chunk)
        with open(src, "rb") as fh:
            fmt = detect_format(upload.name, fh.read(4096))
        info = ingest(src, fmt, work / "converted", label_column=label_column, layout=layout, **shape_kw)
        with transaction.atomic():
            ds = Dataset.objects.create(
                team=team,
                name=name,
                source_format=fmt,
                original_name=Path(upload.name).name[:255],
                layout=info.layout,
                shape=list(info.shape),
                num_classes=info.num_classes,
                class_names=list(info.class_names),
                class_counts=list(info.class_counts),
                train_rows=info.train_rows,
                test_rows=info.test_rows,
                size_bytes=size,
                created_by=user,
            )
            final = ds.storage_dir
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(work / "converted"), final)
                shutil.move(str(src), ds.original_path())
            except OSError:
                # The row rolls back with the exception; take the files with it.
                shutil.rmtree(final, ignore_errors=True)
                raise
        return ds
    except IntegrityError:
        raise DatasetError(f"Your team already has a dataset named {name!r}; pick another name.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
