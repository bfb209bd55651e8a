import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

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
    assert (ds.storage_dir / "train.parquet").exists() and ds.original_path().exists()
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert "1797" in page and "8 × 8 × 1" in page


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
