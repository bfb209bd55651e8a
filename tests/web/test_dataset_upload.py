"""Uploading through the web form. Uploads are converted by the Celery task queued on commit; here
(`upload_converted`) that task runs eagerly before the request returns, so the dataset is READY or FAILED."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from webapp.datasets.ingest import SEQUENCE_CLASSES, write_sequences_csv, write_sequences_npz
from webapp.datasets.models import Dataset

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def stored_files(settings):
    """Every file under the data root (relative paths), staging and converted ones included."""
    root = settings.DATA_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.django_db
def test_upload_npz_then_dataset_page(client_a, digits_npz, upload_converted):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = upload_converted(client_a, {"name": "d1", "file": f, "label_column": "label"})
    ds = Dataset.objects.get(name="d1")
    assert resp.status_code == 302 and resp.url == ds.get_absolute_url()
    assert ds.status == Dataset.Status.READY, ds.status_reason
    assert (ds.train_rows, ds.test_rows, ds.shape, ds.num_classes) == (1437, 360, [8, 8, 1], 10)
    assert ds.layout == "image" and not ds.is_sequence  # no layout posted: images, as before
    assert (ds.storage_dir / "train.parquet").exists() and ds.original_path().exists()
    assert ds.original_path() == ds.storage_dir / "upload" / "original.npz"
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert "1797" in page and "8 × 8 × 1" in page and "Images" in page
    assert "<polyline" not in page
    # Class counts as a Chart.js bar chart, sample images per class as PNG thumbnails.
    assert 'id="class-chart"' in page and "vendor/chartjs/chart.umd.min.js" in page
    assert page.count('src="data:image/png;base64,') >= 10


@pytest.mark.django_db
def test_xhr_upload_answers_json(client_a, digits_npz, upload_converted):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = upload_converted(client_a, {"name": "d2", "file": f}, **XHR)
    assert resp.status_code == 200 and resp.json()["url"] == Dataset.objects.get(name="d2").get_absolute_url()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filename,content,message",
    [
        ("empty.npz", b"", "empty"),
        ("fake.npz", b"this is not a zip archive at all", "not"),
        ("notes.txt", b"a,b,label\n1,2,0\n", "unsupported"),
    ],
)
def test_unusable_file_is_refused_at_once_and_stores_nothing(client_a, settings, filename, content, message):
    """What the name and first bytes show is refused in the request itself: no row, no file, no task."""
    before = stored_files(settings)
    f = SimpleUploadedFile(filename, content)
    resp = client_a.post(reverse("dataset_upload"), {"name": "bad", "file": f}, **XHR)
    assert resp.status_code == 400
    assert message in resp.json()["error"].lower()
    assert not Dataset.objects.exists()
    assert stored_files(settings) == before


@pytest.mark.django_db
def test_file_that_fails_conversion_ends_failed_keeping_no_file(client_a, upload_converted):
    f = SimpleUploadedFile("ragged.csv", b"a,b,label\n1,2,0\n3,0\n")
    resp = upload_converted(client_a, {"name": "bad", "file": f}, **XHR)
    assert resp.status_code == 200  # stored; the conversion's verdict is on the dataset page
    ds = Dataset.objects.get(name="bad")
    assert ds.status == Dataset.Status.FAILED and "row" in ds.status_reason.lower()
    assert not ds.storage_dir.exists()  # the row says why; no file of it stays
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert ds.status_reason in page.replace("&#x27;", "'") and "Train on it" not in page


@pytest.mark.django_db
def test_duplicate_name_refused(client_a, digits_dataset, digits_npz):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "digits", "file": f}, **XHR)
    assert resp.status_code == 400 and "already" in resp.json()["error"]
    assert Dataset.objects.count() == 1


@pytest.fixture
def post_upload(upload_converted):
    def post(client, path, **fields):
        f = SimpleUploadedFile(path.name, path.read_bytes())
        return upload_converted(client, {"file": f, **fields}, **XHR)

    return post


@pytest.mark.django_db
def test_upload_page_offers_layout_and_shape(client_a):
    page = client_a.get(reverse("dataset_upload")).content.decode()
    assert 'name="layout"' in page and 'value="sequence"' in page and 'name="shape"' in page
    assert "20x3 for sequences" in page
    for field in ("label_column", "x_key", "y_key", "image_size", "test_fraction", "test_file"):
        assert f'name="{field}"' in page, field
    assert 'data-max-bytes="' in page


@pytest.mark.django_db
def test_upload_sequence_csv_then_detail_and_list(client_a, tmp_path, upload_converted):
    src = write_sequences_csv(tmp_path / "waves.csv", n=200, steps=24, seed=1)
    resp = upload_converted(
        client_a, {"name": "waves", "file": SimpleUploadedFile("waves.csv", src.read_bytes()), "layout": "sequence"}
    )
    assert resp.status_code == 302
    ds = Dataset.objects.get(name="waves")
    assert ds.status == Dataset.Status.READY, ds.status_reason
    assert ds.layout == Dataset.Layout.SEQUENCE and ds.is_sequence
    assert (ds.shape, ds.num_classes, ds.train_rows, ds.test_rows) == ([24, 1], 4, 160, 40)
    assert ds.class_names == sorted(SEQUENCE_CLASSES) and ds.source_format == "csv"
    meta = json.loads((ds.storage_dir / "meta.json").read_text())
    assert meta["layout"] == "sequence" and meta["shape"] == [24, 1]

    detail = client_a.get(ds.get_absolute_url())
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Sequences" in page and "24 steps × 1 feature per step" in page
    assert "Sample sequences" in page
    # Every class is drawn (the first 24 training rows hold all 4), each sample one polyline of 24 points.
    sketches = detail.context["sketches"]
    assert [name for name, _ in sketches] == sorted(SEQUENCE_CLASSES)
    drawn = sum(len(rows) for _, rows in sketches)
    assert page.count("<polyline") == drawn and 4 <= drawn <= 12
    first = page.split('<polyline points="', 1)[1].split('"', 1)[0]
    assert len(first.split()) == 24

    listing = client_a.get(reverse("dataset_list")).content.decode()
    assert "waves" in listing and "Sequences" in listing


@pytest.mark.django_db
def test_upload_multifeature_sequences_with_typed_shape(client_a, tmp_path, post_upload):
    src = write_sequences_csv(tmp_path / "w3.csv", n=80, steps=10, features=3)
    resp = post_upload(client_a, src, name="w3", layout="sequence", shape="10x3")
    assert resp.status_code == 200, resp.json()
    ds = Dataset.objects.get(name="w3")
    assert ds.is_sequence and ds.shape == [10, 3]
    detail = client_a.get(ds.get_absolute_url())
    page = detail.content.decode()
    assert "10 steps × 3 features per step" in page
    drawn = sum(len(rows) for _, rows in detail.context["sketches"])
    assert drawn >= 4 and page.count("<polyline") == 3 * drawn  # one line per feature


@pytest.mark.django_db
def test_upload_sequence_npz_infers_steps_and_features(client_a, tmp_path, post_upload):
    src = write_sequences_npz(tmp_path / "w.npz", n=40, steps=12, features=2)  # x of (40, 12, 2)
    resp = post_upload(client_a, src, name="w", layout="sequence")
    assert resp.status_code == 200
    assert Dataset.objects.get(name="w").shape == [12, 2]


@pytest.mark.django_db
def test_image_upload_honours_typed_shape(client_a, digits_npz, post_upload):
    resp = post_upload(client_a, digits_npz, name="d", shape="4x16")
    assert resp.status_code == 200
    ds = Dataset.objects.get(name="d")
    assert (ds.layout, ds.shape) == ("image", [4, 16, 1])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields,message",
    [
        ({"layout": "sequence", "shape": "abc"}, "Sequence shape 'abc' should look like 20x3"),
        ({"layout": "video"}, "layout"),
        ({"image_size": "64 by 64"}, "should look like 64x64"),
        ({"test_fraction": "1.5"}, "test_fraction"),
    ],
    ids=["shape-syntax", "bad-layout", "image-size-syntax", "test-fraction-range"],
)
def test_bad_form_values_get_a_message_and_store_nothing(client_a, settings, tmp_path, fields, message):
    src = write_sequences_csv(tmp_path / "waves.csv", n=40, steps=24)
    before = stored_files(settings)
    f = SimpleUploadedFile(src.name, src.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "bad", "file": f, **fields}, **XHR)
    assert resp.status_code == 400
    assert message in resp.json()["error"]
    assert not Dataset.objects.exists()
    assert stored_files(settings) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields,message",
    [
        ({"layout": "sequence", "shape": "7x3"}, "has 21 values per row, but the data has 24 values per row"),
        ({"shape": "5x5"}, "Image shape 5×5×1 has 25 values per row"),
    ],
    ids=["shape-mismatch", "image-mismatch"],
)
def test_shape_that_does_not_fit_the_data_fails_the_conversion(client_a, tmp_path, post_upload, fields, message):
    src = write_sequences_csv(tmp_path / "waves.csv", n=40, steps=24)
    resp = post_upload(client_a, src, name="bad", **fields)
    assert resp.status_code == 200
    ds = Dataset.objects.get(name="bad")
    assert ds.status == Dataset.Status.FAILED and message in ds.status_reason
    assert not ds.storage_dir.exists()


def images_zip(path, sizes):
    """A ZIP of PNG images, one folder per class: ``sizes`` maps class → list of (h, w)."""
    import zipfile

    import numpy as np

    from webapp.datasets.thumbs import png_bytes

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for cls, shapes in sizes.items():
            for i, (h, w) in enumerate(shapes):
                zf.writestr(f"{cls}/{i}.png", png_bytes(rng.random((h, w, 1), dtype=np.float32)))
    return path


@pytest.mark.django_db
def test_zip_of_images_resized_to_the_chosen_size(client_a, tmp_path, post_upload):
    src = images_zip(tmp_path / "shapes.zip", {"circle": [(8, 8)] * 10, "square": [(8, 8)] * 8 + [(12, 10)] * 2})
    resp = post_upload(client_a, src, name="shapes", image_size="6x6")
    assert resp.status_code == 200, resp.json()
    ds = Dataset.objects.get(name="shapes")
    assert ds.status == Dataset.Status.READY, ds.status_reason
    assert (ds.source_format, ds.shape, ds.class_names, ds.rows) == ("zip", [6, 6, 1], ["circle", "square"], 20)
    assert ds.options["image_size"] == [6, 6] and ds.dtype
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert page.count('src="data:image/png;base64,') >= 2


@pytest.mark.django_db
def test_image_size_is_only_for_zips(client_a, digits_npz, settings):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "d", "file": f, "image_size": "8x8"}, **XHR)
    assert resp.status_code == 400 and "ZIP" in resp.json()["error"]
    assert not Dataset.objects.exists() and stored_files(settings) == []


@pytest.mark.django_db
def test_separate_test_file_is_the_test_split(client_a, tmp_path, upload_converted):
    from webapp.datasets.ingest import write_digits_csv

    lines = write_digits_csv(tmp_path / "all.csv").read_bytes().splitlines(keepends=True)
    train, test = b"".join(lines[:1501]), lines[0] + b"".join(lines[1501:])  # header + 1500 / header + 297
    resp = upload_converted(
        client_a,
        {
            "name": "split",
            "file": SimpleUploadedFile("train.csv", train),
            "test_file": SimpleUploadedFile("test.csv", test),
        },
        **XHR,
    )
    assert resp.status_code == 200, resp.json()
    ds = Dataset.objects.get(name="split")
    assert ds.status == Dataset.Status.READY, ds.status_reason
    assert (ds.train_rows, ds.test_rows, ds.split_mode) == (1500, 297, Dataset.SplitMode.TEST_FILE)
    assert ds.size_bytes == len(train) + len(test)
    assert (ds.upload_dir / "test.csv").read_bytes() == test
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert "Separate test file" in page and "test file test.csv" in page
