"""A failed dataset keeps its row and its reason, not its files; a team's failed rows go in one click.

Every file of the bad corpus (tests/data/bad, made by tests/data/make_bad.py) goes through the real
upload → conversion path (create_dataset, then the conversion the task runs): the row ends FAILED with
the corpus' expected message and nothing of the dataset is left under DATA_ROOT."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from webapp.accounts.models import Membership
from webapp.datasets import services
from webapp.datasets.ingest import DatasetError
from webapp.datasets.models import Dataset
from webapp.datasets.states import Status

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text(encoding="utf-8"))
# The corpus' limits, as the settings that give them (others are the ingest's own defaults).
LIMIT_SETTINGS = {"max_classes": "MAX_CLASSES", "max_images": "MAX_IMAGES"}


# Refused by create_dataset itself (empty, or not the format its name says): no row is stored.
REFUSED_AT_UPLOAD = {
    "empty.csv",
    "empty.zip",
    "parquet_named.csv",
    "png_named.csv",
    "sheet.xlsx",
    "text_named.npz",
    "text_named.parquet",
    "text_named.zip",
}


def _upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def _left_on_disk() -> list[str]:
    root = settings.DATA_ROOT / "datasets"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _fail_through_the_service(team, user, filename, case, monkeypatch):
    kwargs = case["kwargs"]
    limits = kwargs.get("limits", {})
    for key, value in limits.items():
        if key in LIMIT_SETTINGS:
            monkeypatch.setattr(settings, LIMIT_SETTINGS[key], value)
        else:  # limits with no setting of their own, or (max_bytes) one the upload itself would refuse first
            base = services.limits()
            monkeypatch.setattr(services, "limits", lambda base=base, key=key, value=value: _with(base, key, value))
    extra = {}
    if "test_src" in kwargs:
        extra["test_upload"] = _upload(BAD / kwargs["test_src"])
    if "label_column" in kwargs:
        extra["label_column"] = kwargs["label_column"]
    try:
        services.create_and_convert(team=team, user=user, name=filename[:200], upload=_upload(BAD / filename), **extra)
    except DatasetError as exc:
        return str(exc)
    raise AssertionError(f"{filename} was accepted")


def _with(limits, key, value):
    from dataclasses import replace

    return replace(limits, **{key: value})


@pytest.mark.django_db
def test_every_bad_file_leaves_a_failed_row_with_its_reason_and_no_file(alice, monkeypatch, subtests):
    user, team = alice
    for filename, case in sorted(EXPECTED.items()):
        with subtests.test(file=filename):
            with monkeypatch.context() as m:
                message = _fail_through_the_service(team, user, filename, case, m)
            assert case["message"] in message
            ds = Dataset.objects.filter(team=team, name=filename[:200]).first()
            if filename in REFUSED_AT_UPLOAD:
                assert ds is None  # refused before anything was stored
            else:
                assert ds.status == Status.FAILED and case["message"] in ds.status_reason
                assert ds.size_on_disk == 0 and not ds.storage_dir.exists()
            assert _left_on_disk() == []
    assert sorted(Dataset.objects.values_list("name", flat=True)) == sorted(set(EXPECTED) - REFUSED_AT_UPLOAD)


@pytest.fixture
def failed_pair(alice, bob, monkeypatch):
    """Two FAILED datasets of alice's team, one of bob's, and a READY one of alice's (with its files)."""
    out = {}
    for who, names in ((alice, ["bad-a1", "bad-a2"]), (bob, ["bad-b"])):
        user, team = who
        for name in names:
            with pytest.raises(DatasetError):
                services.create_and_convert(team=team, user=user, name=name, upload=_upload(BAD / "csv_ragged.csv"))
            out[name] = Dataset.objects.get(team=team, name=name)
    return out


def _login(user):
    c = Client()
    c.force_login(user)
    return c


@pytest.mark.django_db
def test_clear_failed_deletes_only_the_own_teams_failed_rows(alice, bob, failed_pair, digits_dataset):
    list_page = _login(alice[0]).get(reverse("dataset_list")).content.decode()
    assert 'id="clear-failed"' in list_page and "Delete 2 failed datasets" in list_page
    resp = _login(bob[0]).post(reverse("dataset_clear_failed"))
    assert resp.status_code == 302
    assert sorted(Dataset.objects.values_list("name", flat=True)) == ["bad-a1", "bad-a2", "digits"]
    resp = _login(alice[0]).post(reverse("dataset_clear_failed"), follow=True)
    assert "Deleted 2 failed datasets of Team A." in resp.content.decode()
    assert list(Dataset.objects.values_list("name", flat=True)) == ["digits"]
    assert digits_dataset.storage_dir.is_dir() and (digits_dataset.storage_dir / "train.parquet").exists()
    assert 'id="clear-failed"' not in _login(alice[0]).get(reverse("dataset_list")).content.decode()


@pytest.mark.django_db
def test_clear_failed_removes_files_left_by_an_older_version(alice, failed_pair, django_capture_on_commit_callbacks):
    stale = failed_pair["bad-a1"].storage_dir / "upload"
    stale.mkdir(parents=True)
    (stale / "original.csv").write_text("kept by a version that kept failed uploads\n")
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_failed_datasets(alice[1])
    assert not failed_pair["bad-a1"].storage_dir.exists()


@pytest.mark.django_db
def test_viewers_cannot_clear_failed_datasets(alice, failed_pair, make_member):
    viewer, _ = make_member("vera", "Team A", role=Membership.Role.VIEWER)
    c = _login(viewer)
    assert 'id="clear-failed"' not in c.get(reverse("dataset_list")).content.decode()
    resp = c.post(reverse("dataset_clear_failed"), follow=True)
    assert "Viewers cannot delete datasets." in resp.content.decode()
    assert Dataset.objects.filter(team=alice[1], status=Status.FAILED).count() == 2


@pytest.mark.django_db
def test_clear_failed_needs_post_login_and_csrf(alice, failed_pair):
    anonymous = Client()
    assert anonymous.post(reverse("dataset_clear_failed")).status_code == 302  # to the login page
    c = _login(alice[0])
    assert c.get(reverse("dataset_clear_failed")).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice[0])
    assert strict.post(reverse("dataset_clear_failed")).status_code == 403
    assert Dataset.objects.filter(status=Status.FAILED).count() == 3


@pytest.mark.django_db
def test_failed_dataset_page_shows_why_and_no_download(alice, failed_pair):
    ds = failed_pair["bad-a1"]
    page = _login(alice[0]).get(ds.get_absolute_url()).content.decode()
    assert ds.status_reason and ds.status_reason[:40] in page
    assert reverse("dataset_download", args=[ds.pk]) not in page
    assert _login(alice[0]).get(reverse("dataset_download", args=[ds.pk])).status_code == 404
