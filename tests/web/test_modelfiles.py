"""Model file import: upload through the view (checked in a real subprocess), team scoping, refusals."""

import os
import tempfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from webapp.accounts.models import Membership
from webapp.modelfiles.models import ModelFile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before anything imports TensorFlow


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    """Tiny tf_keras models saved for real: a good one (.keras, .h5) and one with a Lambda layer."""
    import tf_keras as keras

    d = tmp_path_factory.mktemp("models")
    inp = keras.Input((4,))
    good = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(5)(inp)))
    good.save(d / "good.keras")
    good.save(d / "good.h5")
    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t + 1.0), keras.layers.Dense(2)])
    lam.save(d / "lambda.keras")
    return {name: (d / name).read_bytes() for name in ("good.keras", "good.h5", "lambda.keras")}


def stored(settings):
    """Everything under DATA_ROOT: stored models and any temp folder an upload left behind."""
    root = settings.DATA_ROOT
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def system_temp():
    # Training jobs running at the same time make sparkdeck-worker-model-* dirs: not ours to count.
    return {n for n in os.listdir(tempfile.gettempdir()) if "model" in n and not n.startswith("sparkdeck-worker-model")}


XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}


def upload(client, name, filename, content, **extra):
    f = SimpleUploadedFile(filename, content)
    return client.post(reverse("modelfile_upload"), {"name": name, "file": f}, **extra)


@pytest.fixture
def checked_upload(eager_tasks, django_capture_on_commit_callbacks):
    """upload(...) whose check (queued on commit) runs in this process before it returns."""

    def post(*args, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return upload(*args, **extra)

    return post


def model_urls(mf):
    return [
        reverse("modelfile_detail", args=[mf.pk]),
        reverse("modelfile_download", args=[mf.pk]),
    ]


@pytest.mark.django_db
def test_upload_then_list_detail_download(client_a, client_b, settings, model_bytes, checked_upload):
    # Uploaded under a misleading name: the format comes from the bytes.
    resp = checked_upload(client_a, "tiny", "my-model.h5", model_bytes["good.keras"])
    mf = ModelFile.objects.get(name="tiny")
    assert resp.status_code == 302 and resp["Location"] == mf.get_absolute_url()
    assert mf.status == "READY" and mf.status_reason == "" and mf.checked_at >= mf.check_started_at
    assert (mf.format, mf.input_shape, mf.num_outputs, mf.output_activation) == ("keras", [4], 3, "softmax")
    assert mf.params == 4 * 5 + 5 + 5 * 3 + 3 and "Dense" in mf.layer_classes
    assert mf.original_name == "my-model.h5" and mf.size_bytes == len(model_bytes["good.keras"])
    assert mf.storage_path == settings.DATA_ROOT / "models" / str(mf.pk) / "model.keras"
    assert stored(settings) == ["models", f"models/{mf.pk}", f"models/{mf.pk}/model.keras"]  # no temp left

    listing = client_a.get(reverse("modelfile_list")).content.decode()
    assert "tiny" in listing and "s-ready" in listing
    page = client_a.get(mf.get_absolute_url()).content.decode()
    for text in ("softmax", "InputLayer", "Dense", str(mf.params), "Runs using this model"):
        assert text in page
    assert 'http-equiv="refresh"' not in page  # done: no more reloading
    down = client_a.get(reverse("modelfile_download", args=[mf.pk]))
    assert down.status_code == 200 and b"".join(down.streaming_content) == model_bytes["good.keras"]
    assert 'filename="my-model.h5"' in down["Content-Disposition"]

    # The other team: not in its list, 404 on every URL.
    assert "tiny" not in client_b.get(reverse("modelfile_list")).content.decode()
    for url in model_urls(mf):
        assert client_b.get(url).status_code == 404, url


@pytest.mark.django_db
def test_upload_is_stored_then_checked_by_the_task(client_a, settings, model_bytes, django_capture_on_commit_callbacks):
    """The request stores the file and queues the check on commit; the page shows UPLOADED (and reloads)
    until the task ran; a second run of the task changes nothing."""
    from webapp.modelfiles import services, tasks

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = upload(client_a, "later", "m.keras", model_bytes["good.keras"], **XHR)
    mf = ModelFile.objects.get(name="later")
    assert resp.status_code == 200 and resp.json() == {"url": mf.get_absolute_url(), "status": "UPLOADED"}
    assert len(callbacks) == 1  # the check is queued only once the row is committed
    assert mf.status == "UPLOADED" and mf.input_shape == []
    assert mf.storage_path.read_bytes() == model_bytes["good.keras"]
    page = client_a.get(mf.get_absolute_url()).content.decode()
    assert "waiting for a worker to check it" in page and 'http-equiv="refresh"' in page
    assert "s-uploaded" in client_a.get(reverse("modelfile_list")).content.decode()

    assert tasks.check_modelfile.name == "webapp.modelfiles.tasks.check_modelfile"
    tasks.check_modelfile.apply(args=[mf.pk]).get()
    mf.refresh_from_db()
    assert (mf.status, mf.input_shape, mf.num_outputs) == ("READY", [4], 3)
    first_check = mf.checked_at
    again = services.check(mf.pk)  # a duplicated task: claims nothing, checks nothing
    assert again.status == "READY" and again.checked_at == first_check


@pytest.mark.django_db
def test_xhr_upload_of_h5_answers_json(client_a, settings, model_bytes, checked_upload):
    resp = checked_upload(client_a, "legacy", "legacy.h5", model_bytes["good.h5"], **XHR)
    mf = ModelFile.objects.get(name="legacy")
    assert resp.status_code == 200 and resp.json() == {"url": mf.get_absolute_url(), "status": "UPLOADED"}
    assert mf.status == "READY" and mf.format == "h5" and mf.storage_path.name == "model.h5"
    assert mf.storage_path.exists()


@pytest.mark.django_db
def test_lambda_upload_fails_with_the_reason_and_the_file_is_removed(client_a, settings, model_bytes, checked_upload):
    temp_before = system_temp()
    resp = checked_upload(client_a, "sneaky", "sneaky.keras", model_bytes["lambda.keras"])
    mf = ModelFile.objects.get(name="sneaky")
    assert resp.status_code == 302 and resp["Location"] == mf.get_absolute_url()
    assert mf.status == "FAILED" and "Lambda layer" in mf.status_reason
    assert stored(settings) == ["models"]  # the row stays, the file and its folder do not
    assert system_temp() == temp_before
    page = client_a.get(mf.get_absolute_url()).content.decode()
    assert "rebuild the model without Lambda layers" in page and "s-failed" in page
    assert client_a.get(reverse("modelfile_download", args=[mf.pk])).status_code == 404
    # The failed upload does not hold its name.
    resp = upload(client_a, "sneaky", "fixed.keras", model_bytes["good.keras"], **XHR)
    assert resp.status_code == 200 and ModelFile.objects.filter(name="sneaky").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "filename,content,message",
    [
        ("random.keras", os.urandom(2048), "Unknown file format"),
        ("notes.keras", b"these are my notes, not a model\n", "text file"),
        ("empty.h5", b"", "empty"),
    ],
)
def test_not_a_model_is_refused_at_once_as_json(client_a, settings, filename, content, message):
    resp = upload(client_a, "bad", filename, content, **XHR)
    assert resp.status_code == 400 and message in resp.json()["error"]
    assert not ModelFile.objects.exists() and stored(settings) == []


@pytest.mark.django_db
def test_checker_over_its_time_limit_fails_the_model(client_a, settings, model_bytes, checked_upload):
    settings.MODELFILE_CHECK_TIMEOUT = 0.5  # less than TensorFlow takes to import
    checked_upload(client_a, "slow", "slow.keras", model_bytes["good.keras"], **XHR)
    mf = ModelFile.objects.get(name="slow")
    assert mf.status == "FAILED" and "longer than 0.5 s" in mf.status_reason
    assert stored(settings) == ["models"]


@pytest.mark.django_db
def test_unqueueable_check_fails_the_model(client_a, settings, model_bytes, monkeypatch, checked_upload):
    from webapp.modelfiles import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.check_modelfile, "delay", broker_down)
    resp = checked_upload(client_a, "orphan", "m.keras", model_bytes["good.keras"], **XHR)
    assert resp.status_code == 200
    mf = ModelFile.objects.get(name="orphan")
    assert mf.status == "FAILED" and "could not be queued" in mf.status_reason and stored(settings) == ["models"]


@pytest.mark.django_db
def test_check_claimed_by_a_dead_worker_is_taken_over_after_the_lease(alice, settings, model_bytes):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.modelfiles import services

    user, team = alice
    mf = ModelFile.objects.create(team=team, name="m", original_name="m.keras", format="keras", created_by=user)
    mf.storage_path.parent.mkdir(parents=True)
    mf.storage_path.write_bytes(model_bytes["good.keras"])
    recent = timezone.now() - timedelta(seconds=5)
    ModelFile.objects.filter(pk=mf.pk).update(status="CHECKING", check_started_at=recent)
    assert services.check(mf.pk).status == "CHECKING"  # a live worker holds it: not checked twice
    old = timezone.now() - timedelta(seconds=services.CLAIM_LEASE_SECONDS + 1)
    ModelFile.objects.filter(pk=mf.pk).update(check_started_at=old)
    assert services.check(mf.pk).status == "READY"


@pytest.mark.django_db
def test_the_sweep_queues_again_checks_whose_task_or_worker_was_lost(alice, settings, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from webapp.modelfiles import services, tasks

    settings.CONVERSION_REQUEUE_SECONDS = 300
    user, team = alice
    sent = []
    monkeypatch.setattr(tasks.check_modelfile, "delay", lambda pk: sent.append(pk))
    fresh, lost, dead, done = (
        ModelFile.objects.create(team=team, name=n, original_name="m.keras", format="keras", created_by=user)
        for n in ("fresh", "lost", "dead", "done")
    )
    ModelFile.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=301))
    stale = timezone.now() - timedelta(seconds=services.CLAIM_LEASE_SECONDS + 1)
    ModelFile.objects.filter(pk=dead.pk).update(status="CHECKING", check_started_at=stale)
    ModelFile.objects.filter(pk=done.pk).update(status="READY", created_at=timezone.now() - timedelta(days=1))
    assert services.sweep_checks() == 2
    assert sorted(sent) == sorted([lost.pk, dead.pk])


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_from_its_content_length(client_a, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    resp = upload(client_a, "big", "big.keras", b"PK\x03\x04" + b"\0" * (1100 * 1024), **XHR)  # over limit + overhead
    assert resp.status_code == 413 and resp.json()["error"] == "The upload is larger than the 1000 bytes upload limit."
    assert not ModelFile.objects.exists() and stored(settings) == []


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_while_streaming(client_a, settings, model_bytes, monkeypatch):
    from webapp.datasets import uploads

    settings.MAX_UPLOAD_BYTES = 1000
    monkeypatch.setattr(uploads, "FORM_OVERHEAD_BYTES", 10**9)  # the Content-Length check lets it through
    resp = upload(client_a, "big", "big.keras", model_bytes["good.keras"], **XHR)
    assert resp.status_code == 413 and resp.json()["error"] == "The upload is larger than the 1000 bytes upload limit."
    assert not ModelFile.objects.exists() and stored(settings) == []
    resp = upload(client_a, "big", "big.keras", model_bytes["good.keras"])  # the form: back to a fresh one
    assert resp.status_code == 302 and resp["Location"] == reverse("modelfile_upload")


@pytest.mark.django_db
def test_duplicate_name_refused(client_a, alice, settings, model_bytes):
    user, team = alice
    ModelFile.objects.create(
        team=team, name="taken", original_name="x.keras", format="keras", created_by=user, status="READY"
    )
    resp = upload(client_a, "taken", "m.keras", model_bytes["good.keras"], **XHR)
    assert resp.status_code == 400 and "already has a model named 'taken'" in resp.json()["error"]
    assert ModelFile.objects.count() == 1 and stored(settings) == []


@pytest.mark.django_db
def test_viewer_cannot_upload(client_a, alice, settings, model_bytes):
    user, team = alice
    Membership.objects.filter(user=user, team=team).update(role="viewer")
    assert "Viewers cannot upload" in client_a.get(reverse("modelfile_upload")).content.decode()
    assert "Upload a model" not in client_a.get(reverse("modelfile_list")).content.decode()
    resp = upload(client_a, "nope", "m.keras", model_bytes["good.keras"])
    assert resp.status_code == 403 and "Viewers cannot upload models" in resp.content.decode()
    assert not ModelFile.objects.exists() and stored(settings) == []


@pytest.mark.django_db
def test_csrf_enforced_on_upload(alice, settings, model_bytes):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice[0])
    resp = upload(c, "csrf", "m.keras", model_bytes["good.keras"])
    assert resp.status_code == 403
    assert not ModelFile.objects.exists() and stored(settings) == []


@pytest.mark.django_db
def test_download_refuses_a_planted_symlink(client_a, alice, tmp_path):
    user, team = alice
    mf = ModelFile.objects.create(
        team=team, name="m", original_name="m.keras", format="keras", created_by=user, status="READY"
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    mf.storage_path.parent.mkdir(parents=True)
    mf.storage_path.symlink_to(secret)
    assert client_a.get(reverse("modelfile_download", args=[mf.pk])).status_code == 404


@pytest.mark.django_db
def test_login_required(client, alice):
    user, team = alice
    mf = ModelFile.objects.create(team=team, name="m", original_name="m.keras", format="keras", created_by=user)
    for url in [reverse("modelfile_list"), reverse("modelfile_upload"), *model_urls(mf)]:
        resp = client.get(url)
        assert resp.status_code == 302 and "/accounts/login/" in resp["Location"], url


@pytest.mark.django_db
def test_missing_file_on_disk_is_404_not_500(client_a, alice):
    user, team = alice
    mf = ModelFile.objects.create(team=team, name="m", original_name="m.keras", format="keras", created_by=user)
    assert client_a.get(reverse("modelfile_download", args=[mf.pk])).status_code == 404


@pytest.mark.django_db
def test_nav_links_to_models(client_a):
    assert reverse("modelfile_list") in client_a.get(reverse("dataset_list")).content.decode()


@pytest.mark.django_db
def test_detail_lists_runs_that_use_the_model(client_a, alice, cluster, digits_dataset):
    from webapp.runs.models import Run

    user, team = alice
    mf = ModelFile.objects.create(team=team, name="m", original_name="m.keras", format="keras", created_by=user)
    common = {"team": team, "created_by": user, "dataset": digits_dataset, "cluster": cluster}
    Run.objects.create(name="uses-it", template="imported", hyperparameters={"model": f"file:{mf.pk}"}, **common)
    Run.objects.create(name="unrelated-run", template="cnn", hyperparameters={"epochs": 3}, **common)
    page = client_a.get(mf.get_absolute_url()).content.decode()
    assert "uses-it" in page and "unrelated-run" not in page
