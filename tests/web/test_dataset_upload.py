import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from webapp.datasets.ingest import SEQUENCE_CLASSES, write_sequences_csv, write_sequences_npz
from webapp.datasets.models import Dataset


def stored_dirs(settings):
    root = settings.DATA_ROOT
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.django_db
def test_upload_npz_then_dataset_page(client_a, digits_npz):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "d1", "file": f, "label_column": "label"})
    ds = Dataset.objects.get(name="d1")
    assert resp.status_code == 302
    assert (ds.train_rows, ds.test_rows, ds.shape, ds.num_classes) == (1437, 360, [8, 8, 1], 10)
    assert ds.layout == "image" and not ds.is_sequence  # no layout posted: images, as before
    assert (ds.storage_dir / "train.parquet").exists() and ds.original_path().exists()
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert "1797" in page and "8 × 8 × 1" in page and "Images" in page
    assert "<polyline" not in page


@pytest.mark.django_db
def test_xhr_upload_answers_json(client_a, digits_npz):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "d2", "file": f}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert resp.status_code == 200 and resp.json()["url"] == Dataset.objects.get(name="d2").get_absolute_url()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filename,content,message",
    [
        ("empty.npz", b"", "empty"),
        ("fake.npz", b"this is not a zip archive at all", "not"),
        ("ragged.csv", b"a,b,label\n1,2,0\n3,0\n", "row"),
    ],
)
def test_bad_upload_gets_a_message_and_stores_nothing(client_a, settings, filename, content, message):
    before = stored_dirs(settings)
    f = SimpleUploadedFile(filename, content)
    resp = client_a.post(reverse("dataset_upload"), {"name": "bad", "file": f}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert resp.status_code == 400
    assert message in resp.json()["error"].lower()
    assert not Dataset.objects.exists()
    assert stored_dirs(settings) == before


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_while_streaming(client_a, settings, digits_npz):
    settings.MAX_UPLOAD_BYTES = 1000
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "big", "file": f}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert resp.status_code == 400 and "limit" in resp.json()["error"]
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_duplicate_name_refused(client_a, digits_dataset, digits_npz):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(
        reverse("dataset_upload"), {"name": "digits", "file": f}, HTTP_X_REQUESTED_WITH="XMLHttpRequest"
    )
    assert resp.status_code == 400 and "already" in resp.json()["error"]
    assert Dataset.objects.count() == 1


def post_upload(client, path, **fields):
    f = SimpleUploadedFile(path.name, path.read_bytes())
    return client.post(reverse("dataset_upload"), {"file": f, **fields}, HTTP_X_REQUESTED_WITH="XMLHttpRequest")


@pytest.mark.django_db
def test_upload_page_offers_layout_and_shape(client_a):
    page = client_a.get(reverse("dataset_upload")).content.decode()
    assert 'name="layout"' in page and 'value="sequence"' in page and 'name="shape"' in page
    assert "20x3 for sequences" in page


@pytest.mark.django_db
def test_upload_sequence_csv_then_detail_and_list(client_a, tmp_path):
    src = write_sequences_csv(tmp_path / "waves.csv", n=200, steps=24, seed=1)
    resp = client_a.post(
        reverse("dataset_upload"),
        {"name": "waves", "file": SimpleUploadedFile("waves.csv", src.read_bytes()), "layout": "sequence"},
    )
    assert resp.status_code == 302
    ds = Dataset.objects.get(name="waves")
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
def test_upload_multifeature_sequences_with_typed_shape(client_a, tmp_path):
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
def test_upload_sequence_npz_infers_steps_and_features(client_a, tmp_path):
    src = write_sequences_npz(tmp_path / "w.npz", n=40, steps=12, features=2)  # x of (40, 12, 2)
    resp = post_upload(client_a, src, name="w", layout="sequence")
    assert resp.status_code == 200
    assert Dataset.objects.get(name="w").shape == [12, 2]


@pytest.mark.django_db
def test_image_upload_honours_typed_shape(client_a, digits_npz):
    resp = post_upload(client_a, digits_npz, name="d", shape="4x16")
    assert resp.status_code == 200
    ds = Dataset.objects.get(name="d")
    assert (ds.layout, ds.shape) == ("image", [4, 16, 1])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields,message",
    [
        ({"layout": "sequence", "shape": "7x3"}, "has 21 values per row, but the data has 24 values per row"),
        ({"layout": "sequence", "shape": "abc"}, "Sequence shape 'abc' should look like 20x3"),
        ({"layout": "video"}, "layout"),
        ({"shape": "5x5"}, "Image shape 5×5×1 has 25 values per row"),
    ],
    ids=["shape-mismatch", "shape-syntax", "bad-layout", "image-mismatch"],
)
def test_bad_layout_or_shape_gets_a_message_and_stores_nothing(client_a, settings, tmp_path, fields, message):
    src = write_sequences_csv(tmp_path / "waves.csv", n=40, steps=24)
    before = stored_dirs(settings)
    resp = post_upload(client_a, src, name="bad", **fields)
    assert resp.status_code == 400
    assert message in resp.json()["error"]
    assert not Dataset.objects.exists()
    assert stored_dirs(settings) == before
