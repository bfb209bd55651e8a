"""The dataset lifecycle: status machine, upload → queued conversion → READY | FAILED, status.json,
delete / archive, team scoping, roles, and upload limits."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from webapp.datasets import services, tasks
from webapp.datasets.ingest import DatasetError
from webapp.datasets.models import Dataset
from webapp.datasets.states import (
    ACTIVE,
    DELETABLE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    StaleStatus,
    Status,
)
from webapp.runs.models import Run

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}
S = Status


def converted_files(ds):
    return sorted(p.name for p in ds.storage_dir.iterdir() if p.name != "upload") if ds.storage_dir.exists() else []


@pytest.fixture
def uploaded(alice, digits_npz, django_capture_on_commit_callbacks):
    """Alice's digits upload, stored and UPLOADED; its conversion not run (the queued task is captured)."""
    user, team = alice
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ds = services.create_dataset(
            team=team, user=user, name="up", upload=SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
        )
    ds.queued = callbacks
    return ds


@pytest.fixture
def viewer_client(make_member, alice):
    user, _ = make_member("vera", "Team A", role="viewer")
    c = Client()
    c.force_login(user)
    return c


def make_run(ds, cluster):
    return Run.objects.create(team=ds.team, created_by=ds.created_by, dataset=ds, template="cnn", cluster=cluster)


# ---- the state machine -------------------------------------------------------------------------


def test_every_status_is_active_or_terminal_never_both():
    assert ACTIVE | TERMINAL == set(Status)
    assert not ACTIVE & TERMINAL
    assert set(TRANSITIONS) == set(Status)
    assert TRANSITIONS[S.FAILED] == TRANSITIONS[S.ARCHIVED] == frozenset()
    assert S.CONVERTING not in DELETABLE
    assert Dataset.Status.READY == "READY"  # the name webapp/runs checks


@pytest.mark.django_db
def test_happy_path_through_every_status(uploaded):
    ds = uploaded
    assert ds.status == S.UPLOADED and ds.converted_at is None
    ds.transition(S.CONVERTING)
    ds.transition(S.READY, train_rows=5)
    ds.transition(S.ARCHIVED)
    ds.refresh_from_db()
    assert ds.status == S.ARCHIVED and ds.train_rows == 5 and ds.converted_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,bad",
    [
        ([], S.READY),
        ([], S.ARCHIVED),
        ([S.CONVERTING], S.UPLOADED),
        ([S.CONVERTING], S.ARCHIVED),
        ([S.CONVERTING, S.READY], S.FAILED),
        ([S.CONVERTING, S.READY], S.CONVERTING),
        ([S.CONVERTING, S.FAILED], S.READY),
        ([S.CONVERTING, S.FAILED], S.ARCHIVED),
        ([S.CONVERTING, S.READY, S.ARCHIVED], S.READY),
    ],
)
def test_illegal_moves_raise_and_change_nothing(uploaded, path, bad):
    for s in path:
        uploaded.transition(s)
    before = Dataset.objects.get(pk=uploaded.pk).status
    with pytest.raises(IllegalTransition):
        uploaded.transition(bad)
    assert Dataset.objects.get(pk=uploaded.pk).status == before


@pytest.mark.django_db
def test_compare_and_set_loses_to_an_earlier_writer(uploaded):
    mine, theirs = Dataset.objects.get(pk=uploaded.pk), Dataset.objects.get(pk=uploaded.pk)
    theirs.transition(S.CONVERTING)
    with pytest.raises(StaleStatus):
        mine.transition(S.CONVERTING)
    assert mine.status == S.CONVERTING  # refreshed to what won
    mine.transition(S.FAILED, reason="x")
    with pytest.raises(StaleStatus):
        theirs.transition(S.READY, train_rows=99)  # still thinks CONVERTING
    assert theirs.status == S.FAILED
    assert Dataset.objects.filter(pk=uploaded.pk, status=S.FAILED, train_rows=0).exists()


@pytest.mark.django_db
def test_failure_keeps_its_reason(uploaded):
    uploaded.transition(S.FAILED, reason="no labels")
    uploaded.refresh_from_db()
    assert uploaded.status_reason == "no labels"


# ---- upload → queued conversion ----------------------------------------------------------------


@pytest.mark.django_db
def test_upload_stores_the_file_and_queues_the_conversion_on_commit(
    client_a, digits_npz, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = client_a.post(
            reverse("dataset_upload"),
            {"name": "d", "file": SimpleUploadedFile("digits.npz", digits_npz.read_bytes()), "test_fraction": "0.25"},
            **XHR,
        )
    assert resp.status_code == 200, resp.content
    ds = Dataset.objects.get(name="d")
    assert resp.json() == {"url": ds.get_absolute_url(), "status": "UPLOADED"}
    assert ds.status == S.UPLOADED and ds.created_by.username == "alice"
    assert ds.original_path() == ds.storage_dir / "upload" / "original.npz"
    assert ds.original_path().read_bytes() == digits_npz.read_bytes()
    assert ds.size_bytes == digits_npz.stat().st_size and converted_files(ds) == []
    assert ds.options["test_fraction"] == 0.25 and ds.split_mode == "fraction"

    assert len(callbacks) == 1  # convert_dataset.delay, only once the row is committed
    queued = []
    monkeypatch.setattr(tasks.convert_dataset, "delay", lambda *a, **kw: queued.append((a, kw)))
    callbacks[0]()
    assert queued == [((ds.pk,), {})]  # the id alone: JSON arguments


@pytest.mark.django_db
def test_upload_that_cannot_be_queued_fails_with_a_reason(uploaded, monkeypatch):
    def broker_down(*a, **kw):
        raise ConnectionRefusedError("redis is down")

    monkeypatch.setattr(tasks.convert_dataset, "delay", broker_down)
    uploaded.queued[0]()
    uploaded.refresh_from_db()
    assert uploaded.status == S.FAILED and uploaded.status_reason == services.QUEUE_FAILURE
    assert not uploaded.storage_dir.exists()


@pytest.mark.django_db
def test_page_of_an_uploaded_dataset_polls_its_status(client_a, uploaded):
    page = client_a.get(uploaded.get_absolute_url()).content.decode()
    url = reverse("dataset_status", args=[uploaded.pk])
    assert f'data-url="{url}"' in page and 'data-active="1"' in page and "js/dataset.js" in page
    assert "Train on it" not in page and "Archive" not in page


# ---- convert() ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_convert_makes_it_ready_with_everything_recorded(uploaded):
    ds = services.convert(uploaded.pk)
    assert ds.status == S.READY, ds.status_reason
    ds.refresh_from_db()
    assert (ds.train_rows, ds.test_rows, ds.shape, ds.num_classes, ds.layout) == (1437, 360, [8, 8, 1], 10, "image")
    assert ds.class_names == [str(i) for i in range(10)] and sum(ds.class_counts) == 1797
    assert ds.converted_at >= ds.created_at and ds.status_reason == "" and ds.split_mode == "fraction"
    assert ds.dtype  # the uploaded values' type, as ingest names it
    assert {"train.parquet", "test.parquet", "meta.json"} <= set(converted_files(ds))
    assert not [p for p in ds.storage_dir.iterdir() if p.name.startswith(".")]  # no temporary dirs left
    on_disk = sum(p.stat().st_size for p in ds.storage_dir.rglob("*") if p.is_file())
    assert ds.size_on_disk == on_disk > ds.size_bytes


@pytest.mark.django_db
def test_the_celery_task_converts(uploaded):
    tasks.convert_dataset.apply(args=[uploaded.pk]).get()
    uploaded.refresh_from_db()
    assert uploaded.status == S.READY


@pytest.mark.django_db
def test_convert_is_idempotent(uploaded):
    first = services.convert(uploaded.pk)
    stamp, files = first.converted_at, converted_files(first)
    again = services.convert(uploaded.pk)
    assert again.status == S.READY and again.converted_at == stamp and converted_files(again) == files
    assert services.convert(10**9) is None  # deleted meanwhile: nothing to do


@pytest.mark.django_db
def test_convert_leaves_a_dataset_another_worker_claimed(uploaded, monkeypatch):
    Dataset.objects.filter(pk=uploaded.pk).update(status=S.CONVERTING)
    monkeypatch.setattr(services, "ingest", lambda *a, **kw: pytest.fail("converted twice"))
    assert services.convert(uploaded.pk).status == S.CONVERTING


@pytest.mark.django_db
def test_bad_file_fails_with_the_message_and_keeps_no_file(alice, django_capture_on_commit_callbacks):
    user, team = alice
    with django_capture_on_commit_callbacks(execute=False):
        ds = services.create_dataset(
            team=team, user=user, name="ragged", upload=SimpleUploadedFile("r.csv", b"a,b,label\n1,2,0\n3,0\n")
        )
    ds = services.convert(ds.pk)
    assert ds.status == S.FAILED and "row" in ds.status_reason.lower()
    assert not ds.storage_dir.exists()  # neither converted files nor the upload
    assert ds.size_on_disk == 0 and ds.size_bytes == len(b"a,b,label\n1,2,0\n3,0\n")


@pytest.mark.django_db
def test_unexpected_error_fails_with_a_generic_message(uploaded, monkeypatch, caplog):
    def boom(src, fmt, dest, **kw):
        dest.mkdir()
        (dest / "train.parquet").write_bytes(b"half")
        raise RuntimeError("secret internals")

    monkeypatch.setattr(services, "ingest", boom)
    ds = services.convert(uploaded.pk)
    assert ds.status == S.FAILED and ds.status_reason == services.INTERNAL_FAILURE
    assert "secret" not in ds.status_reason and "secret internals" in caplog.text
    assert converted_files(ds) == []


@pytest.mark.django_db
def test_limits_come_from_settings(settings, uploaded):
    settings.MAX_CLASSES = 3
    settings.MAX_IMAGES = 7
    limits = services.limits()
    assert limits.max_classes == 3 and limits.max_images == 7
    ds = services.convert(uploaded.pk)  # digits has 10 classes
    assert ds.status == S.FAILED and "3" in ds.status_reason


@pytest.mark.django_db
def test_create_and_convert_gives_ready_or_raises(alice, digits_npz):
    user, team = alice
    ds = services.create_and_convert(
        team=team, user=user, name="now", upload=SimpleUploadedFile("d.npz", digits_npz.read_bytes())
    )
    assert ds.status == S.READY
    bad = SimpleUploadedFile("b.csv", b"a,label\n1\n")
    with pytest.raises(DatasetError, match="row"):
        services.create_and_convert(team=team, user=user, name="bad", upload=bad)
    assert Dataset.objects.get(name="bad").status == S.FAILED


# ---- status.json -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_status_json(client_a, uploaded):
    url = reverse("dataset_status", args=[uploaded.pk])
    body = client_a.get(url).json()
    assert body["status"] == "UPLOADED" and body["active"] is True and body["reason"] == ""
    services.convert(uploaded.pk)
    body = client_a.get(url).json()
    assert body["status"] == "READY" and body["active"] is False and body["url"] == uploaded.get_absolute_url()


# ---- delete / archive --------------------------------------------------------------------------


@pytest.mark.django_db
def test_delete_removes_row_and_files(client_a, digits_dataset, django_capture_on_commit_callbacks):
    folder = digits_dataset.storage_dir
    assert folder.exists()
    with django_capture_on_commit_callbacks(execute=True):
        resp = client_a.post(reverse("dataset_delete", args=[digits_dataset.pk]))
    assert resp.status_code == 302 and resp.url == reverse("dataset_list")
    assert not Dataset.objects.filter(pk=digits_dataset.pk).exists()
    assert not folder.exists()


@pytest.mark.django_db
def test_failed_and_uploaded_datasets_can_be_deleted(client_a, uploaded, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client_a.post(reverse("dataset_delete", args=[uploaded.pk]))
    assert not Dataset.objects.filter(pk=uploaded.pk).exists() and not uploaded.storage_dir.exists()
    assert services.convert(uploaded.pk) is None  # the queued task finds nothing to do


@pytest.mark.django_db
def test_delete_refused_while_converting(client_a, uploaded):
    uploaded.transition(S.CONVERTING)
    resp = client_a.post(reverse("dataset_delete", args=[uploaded.pk]), follow=True)
    assert "being converted" in resp.content.decode()
    assert Dataset.objects.filter(pk=uploaded.pk).exists()


@pytest.mark.django_db
def test_delete_refused_when_a_run_used_it_then_archive(
    client_a, digits_dataset, cluster, django_capture_on_commit_callbacks
):
    make_run(digits_dataset, cluster)
    with django_capture_on_commit_callbacks(execute=True):
        resp = client_a.post(reverse("dataset_delete", args=[digits_dataset.pk]), follow=True)
    page = resp.content.decode()
    assert "used by 1 run" in page and "archive it instead" in page
    assert reverse("dataset_archive", args=[digits_dataset.pk]) in page  # the page offers it
    assert Dataset.objects.filter(pk=digits_dataset.pk).exists()
    assert (digits_dataset.storage_dir / "train.parquet").exists()

    resp = client_a.post(reverse("dataset_archive", args=[digits_dataset.pk]))
    assert resp.status_code == 302
    digits_dataset.refresh_from_db()
    assert digits_dataset.status == S.ARCHIVED
    assert (digits_dataset.storage_dir / "train.parquet").exists()  # the run still needs its files


@pytest.mark.django_db
def test_archived_dataset_is_hidden_from_the_list_and_the_run_form(client_a, digits_dataset):
    archived_url = digits_dataset.get_absolute_url()
    assert archived_url in client_a.get(reverse("dataset_list")).content.decode()
    client_a.post(reverse("dataset_archive", args=[digits_dataset.pk]))
    listing = client_a.get(reverse("dataset_list")).content.decode()
    assert archived_url not in listing and "1 archived dataset hidden" in listing
    assert archived_url in client_a.get(reverse("dataset_list") + "?archived=1").content.decode()
    form = client_a.get(reverse("run_new")).context["form"]
    assert digits_dataset not in form.fields["dataset"].queryset
    page = client_a.get(archived_url)
    assert page.status_code == 200 and "Archived" in page.content.decode()


@pytest.mark.django_db
def test_only_ready_datasets_can_be_archived(client_a, uploaded):
    resp = client_a.post(reverse("dataset_archive", args=[uploaded.pk]), follow=True)
    assert "Only ready datasets can be archived" in resp.content.decode()
    assert Dataset.objects.get(pk=uploaded.pk).status == S.UPLOADED


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["dataset_delete", "dataset_archive"])
def test_delete_and_archive_are_post_only_and_csrf_protected(alice, digits_dataset, name):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice[0])
    url = reverse(name, args=[digits_dataset.pk])
    assert strict.get(url).status_code == 405
    assert strict.post(url).status_code == 403  # no CSRF token
    assert Dataset.objects.get(pk=digits_dataset.pk).status == S.READY


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["dataset_delete", "dataset_archive"])
def test_viewers_cannot_delete_or_archive(viewer_client, digits_dataset, name):
    resp = viewer_client.post(reverse(name, args=[digits_dataset.pk]), follow=True)
    assert "Viewers cannot" in resp.content.decode()
    assert Dataset.objects.get(pk=digits_dataset.pk).status == S.READY
    assert 'id="ds-actions"' not in viewer_client.get(digits_dataset.get_absolute_url()).content.decode()


@pytest.mark.django_db
def test_upload_is_csrf_protected(alice, digits_npz, settings):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice[0])
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    assert strict.post(reverse("dataset_upload"), {"name": "x", "file": f}).status_code == 403
    assert not Dataset.objects.exists()
    page = strict.get(reverse("dataset_upload"))
    token = page.cookies["csrftoken"].value
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = strict.post(reverse("dataset_upload"), {"name": "x", "file": f, "csrfmiddlewaretoken": token})
    assert resp.status_code == 302 and Dataset.objects.get(name="x").status == S.UPLOADED


@pytest.mark.django_db
def test_viewers_cannot_upload(viewer_client, digits_npz, settings):
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = viewer_client.post(reverse("dataset_upload"), {"name": "v", "file": f}, **XHR)
    assert resp.status_code == 400 and "Viewers" in resp.json()["error"]
    assert not Dataset.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name,method",
    [
        ("dataset_detail", "get"),
        ("dataset_status", "get"),
        ("dataset_download", "get"),
        ("dataset_delete", "post"),
        ("dataset_archive", "post"),
    ],
)
def test_another_teams_dataset_is_404_everywhere(client_b, digits_dataset, name, method):
    resp = getattr(client_b, method)(reverse(name, args=[digits_dataset.pk]))
    assert resp.status_code == 404
    ds = Dataset.objects.get(pk=digits_dataset.pk)
    assert ds.status == S.READY and (ds.storage_dir / "train.parquet").exists()


# ---- upload limits -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_oversized_upload_refused_from_its_content_length(client_a, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    big = SimpleUploadedFile("big.csv", b"a,label\n" + b"1,0\n" * (300 * 1024))  # 1.2 MB: over limit + overhead
    resp = client_a.post(reverse("dataset_upload"), {"name": "big", "file": big}, **XHR)
    assert resp.status_code == 413 and "limit" in resp.json()["error"]
    assert not Dataset.objects.exists()
    assert not (settings.DATA_ROOT / "datasets").exists()  # the body was never read


@pytest.mark.django_db
def test_oversized_upload_refused_while_streaming(client_a, settings, digits_npz, monkeypatch):
    from webapp.datasets import uploads

    settings.MAX_UPLOAD_BYTES = 1000
    monkeypatch.setattr(uploads, "FORM_OVERHEAD_BYTES", 10**9)  # the Content-Length check lets it through
    f = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    resp = client_a.post(reverse("dataset_upload"), {"name": "big", "file": f}, **XHR)
    assert resp.status_code == 413 and resp.json()["error"] == "The upload is larger than the 1000 bytes upload limit."
    assert not Dataset.objects.exists()
    assert not (settings.DATA_ROOT / "datasets").exists()


class ChunkedUpload:
    """An upload read chunk by chunk, recording how much was read."""

    def __init__(self, name, chunks):
        self.name, self._chunks, self.read = name, chunks, 0

    def chunks(self):
        for c in self._chunks:
            self.read += 1
            yield c


@pytest.mark.django_db
def test_create_dataset_stops_reading_at_the_limit(alice, settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    upload = ChunkedUpload("big.csv", [b"a,label\n" + b"1,0\n" * 1000] * 10)
    with pytest.raises(DatasetError, match="upload limit"):
        services.create_dataset(team=alice[1], user=alice[0], name="big", upload=upload)
    assert upload.read == 3  # the third chunk went over: the rest was never read
    assert not Dataset.objects.exists()
    assert list((settings.DATA_ROOT / "datasets").iterdir()) == []  # no staging left behind


@pytest.mark.django_db
def test_the_limit_counts_the_test_file_too(alice, settings):
    settings.MAX_UPLOAD_BYTES = 6000
    train = SimpleUploadedFile("train.csv", b"a,label\n" + b"1,0\n" * 1000)
    test = SimpleUploadedFile("test.csv", b"a,label\n" + b"1,0\n" * 1000)
    with pytest.raises(DatasetError, match="upload limit"):
        services.create_dataset(team=alice[1], user=alice[0], name="two", upload=train, test_upload=test)
    assert not Dataset.objects.exists()


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "env,ok",
    [
        ({"SPARKDECK_MAX_IMAGES": "abc"}, False),
        ({"SPARKDECK_MAX_PIXELS": "0"}, False),
        ({"SPARKDECK_MAX_UPLOAD_MB": "64", "SPARKDECK_MAX_UPLOAD_BYTES": "1"}, False),
        ({"SPARKDECK_MAX_UPLOAD_MB": "64", "SPARKDECK_MAX_CLASSES": " 12 "}, True),
    ],
)
def test_limit_settings_are_parsed_strictly(env, ok):
    code = "from django.conf import settings as s; print(s.MAX_UPLOAD_BYTES, s.MAX_CLASSES)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "DJANGO_SECRET_KEY": "t", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [str(64 * 2**20), "12"]
    else:
        assert proc.returncode != 0 and "ImproperlyConfigured" in proc.stderr


def test_a_conversion_whose_worker_vanished_is_failed_by_the_sweep(uploaded, settings):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.datasets.services import fail_stale_conversions

    settings.CONVERSION_TIMEOUT_SECONDS = 600
    uploaded.transition(Status.CONVERTING)  # claimed, then the worker died
    assert uploaded.conversion_started_at is not None
    assert fail_stale_conversions(now=timezone.now() + timedelta(seconds=599)) == 0
    uploaded.refresh_from_db()
    assert uploaded.status == Status.CONVERTING
    assert fail_stale_conversions(now=timezone.now() + timedelta(seconds=601)) == 1
    uploaded.refresh_from_db()
    assert uploaded.status == Status.FAILED and "did not finish within 10 minutes" in uploaded.status_reason
    assert not uploaded.storage_dir.exists()


def test_an_uploaded_dataset_whose_conversion_task_was_lost_is_queued_again(uploaded, settings, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.datasets.services import requeue_lost_conversions

    settings.CONVERSION_REQUEUE_SECONDS = 300
    sent = []
    monkeypatch.setattr(tasks.convert_dataset, "delay", lambda pk: sent.append(pk))
    uploaded.queued[0]()  # queued once (then the broker or its worker lost it)
    assert sent == [uploaded.pk]
    later = timezone.now() + timedelta(seconds=299)
    assert requeue_lost_conversions(now=later) == 0 and sent == [uploaded.pk]
    later = timezone.now() + timedelta(seconds=301)
    assert requeue_lost_conversions(now=later) == 1 and sent == [uploaded.pk] * 2
    assert requeue_lost_conversions(now=later) == 0  # at most once per period
    # The task that finally runs converts it once; the duplicate finds nothing to do.
    tasks.convert_dataset.apply(args=[uploaded.pk]).get()
    tasks.convert_dataset.apply(args=[uploaded.pk]).get()
    uploaded.refresh_from_db()
    assert uploaded.status == Status.READY
    assert requeue_lost_conversions(now=later + timedelta(days=1)) == 0
