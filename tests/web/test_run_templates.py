"""Runs that build on other models (transfer learning, imported models), rerun-with-changes, and
the template schema endpoint: validation in the web app, before anything is stored or dispatched."""

import pytest
from django.urls import reverse

from tests.web.test_run_submit import form
from webapp.runs.lifecycle import build_spec
from webapp.runs.models import Run
from workers.jobs.bases import KERAS_APPS

pytestmark = pytest.mark.django_db


def finished_run(team, dataset, cluster, status=Run.Status.SUCCEEDED, model=True):
    run = Run.objects.create(team=team, dataset=dataset, cluster=cluster, template="cnn", status=status, name="base")
    if model:
        (run.run_dir / "model").mkdir(parents=True)
        (run.run_dir / "model" / "model.keras").write_bytes(b"PK model")
    return run


def featurizer_form(dataset, cluster, base, **over):
    return form(dataset, cluster, template="featurizer", hp_featurizer_base=base, **over)


def errors_of(resp):
    assert resp.status_code == 400
    return resp.content.decode()


def test_featurizer_on_an_earlier_run_is_accepted_and_its_model_goes_into_the_spec(
    client_a, alice, digits_dataset, cluster, django_capture_on_commit_callbacks
):
    base = finished_run(alice[1], digits_dataset, cluster)
    with django_capture_on_commit_callbacks(execute=False):
        resp = client_a.post(reverse("run_new"), featurizer_form(digits_dataset, cluster, f"run:{base.pk}"))
    assert resp.status_code == 302
    run = Run.objects.latest("id")
    assert run.template == "featurizer" and run.hyperparameters["base"] == f"run:{base.pk}"
    assert run.hyperparameters["head"] == "logreg"
    spec = build_spec(run)
    assert spec["base"] == {
        "kind": "run",
        "name": f"run {base.pk} (base)",
        "path": str(base.run_dir / "model" / "model.keras"),
    }
    page = client_a.get(run.get_absolute_url()).content.decode()
    assert reverse("run_detail", args=[base.pk]) in page  # the base is linked


@pytest.mark.parametrize(
    "status, model, message",
    [
        (Run.Status.RUNNING, False, "only a succeeded run"),
        (Run.Status.SUCCEEDED, False, "exported no Keras model"),
    ],
)
def test_unusable_base_runs_are_refused(client_a, alice, digits_dataset, cluster, status, model, message):
    base = finished_run(alice[1], digits_dataset, cluster, status=status, model=model)
    resp = client_a.post(reverse("run_new"), featurizer_form(digits_dataset, cluster, f"run:{base.pk}"))
    assert message in errors_of(resp)
    assert Run.objects.count() == 1  # only the base


def test_another_teams_run_is_no_base(client_b, alice, bob, digits_dataset, cluster, tmp_path):
    from webapp.datasets.ingest import write_digits_npz
    from webapp.datasets.services import create_and_convert

    base = finished_run(alice[1], digits_dataset, cluster)
    npz = write_digits_npz(tmp_path / "b.npz")
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("b.npz", npz.read_bytes())
    theirs = create_and_convert(team=bob[1], user=bob[0], name="b", upload=upload)
    resp = client_b.post(reverse("run_new"), featurizer_form(theirs, cluster, f"run:{base.pk}"))
    assert f"No run {base.pk} in your team" in errors_of(resp)
    assert f"run:{base.pk}" not in client_b.get(reverse("run_new")).content.decode()


def test_keras_application_needs_its_weights_file(client_a, digits_dataset, cluster, settings, tmp_path):
    settings.WEIGHTS_DIR = tmp_path / "weights"
    app = KERAS_APPS["MobileNetV2"]
    body = errors_of(client_a.post(reverse("run_new"), featurizer_form(digits_dataset, cluster, "app:MobileNetV2")))
    assert app.weights_file in body and str(settings.WEIGHTS_DIR) in body
    assert not Run.objects.exists()
    assert "weights file missing" in client_a.get(reverse("run_new")).content.decode()

    settings.WEIGHTS_DIR.mkdir()
    (settings.WEIGHTS_DIR / app.weights_file).write_bytes(b"h5")
    resp = client_a.post(reverse("run_new"), featurizer_form(digits_dataset, cluster, "app:MobileNetV2"))
    assert resp.status_code == 302
    spec = build_spec(Run.objects.get())
    assert spec["base"] == {"kind": "app", "name": "MobileNetV2", "path": str(settings.WEIGHTS_DIR / app.weights_file)}


def test_imported_model_must_fit_the_dataset(client_a, alice, digits_dataset, cluster):
    from webapp.modelfiles.models import ModelFile

    def model_file(name, shape, outputs, status="READY"):
        mf = ModelFile.objects.create(
            team=alice[1], name=name, format="keras", input_shape=shape, num_outputs=outputs, status=status
        )
        mf.storage_path.parent.mkdir(parents=True)
        mf.storage_path.write_bytes(b"PK")
        return mf

    def post(mf):
        return client_a.post(reverse("run_new"), form(digits_dataset, cluster, template="imported",
                                                     hp_imported_model=f"file:{mf.pk}"))  # fmt: skip

    assert "takes inputs shaped [28, 28, 1]" in errors_of(post(model_file("big", [28, 28, 1], 10)))
    assert "has 3 outputs" in errors_of(post(model_file("three", [8, 8, 1], 3)))
    for status in ("UPLOADED", "CHECKING", "FAILED"):  # not (or not yet) checked: never a base
        assert f"is {status}; only a checked (READY)" in errors_of(post(model_file(status, [64], 10, status)))
    assert not Run.objects.exists()
    ok = model_file("flat", [64], 10)  # flat input with the same number of values: reshaped in the job
    assert post(ok).status_code == 302
    assert build_spec(Run.objects.get())["base"]["path"] == str(ok.storage_path)


def test_rerun_with_changes_prefills_the_form(client_a, client_b, alice, digits_dataset, cluster):
    run = Run.objects.create(
        team=alice[1], dataset=digits_dataset, cluster=cluster, template="lstm", name="seq",
        hyperparameters={"epochs": 7, "hidden_units": 33, "layers": 2}, num_executors=1, input_mode="spark",
    )  # fmt: skip
    page = client_a.get(reverse("run_new") + f"?from={run.pk}").content.decode()
    assert 'name="hp_lstm_hidden_units" value="33"' in page
    assert 'name="hp_lstm_epochs" value="7"' in page
    assert 'value="seq (rerun)"' in page and f'Rerun of <a href="{run.get_absolute_url()}"' in page
    assert '<option value="lstm" selected>' in page and '<option value="spark" selected>' in page
    assert "Rerun with changes" in client_a.get(run.get_absolute_url()).content.decode()
    assert client_b.get(reverse("run_new") + f"?from={run.pk}").status_code == 404


def test_template_schema_endpoint(client_a, client):
    data = client_a.get(reverse("catalog_templates")).json()
    keys = [t["key"] for t in data["templates"]]
    assert keys == ["cnn", "lstm", "mlp", "featurizer", "imported"]
    feat = next(t for t in data["templates"] if t["key"] == "featurizer")
    base = next(p for p in feat["params"] if p["name"] == "base")
    assert base["kind"] == "ref" and base["refs"] == ["run", "file", "app"]
    client.logout()
    assert client.get(reverse("catalog_templates")).status_code == 302  # login required


def test_sequence_layout_is_refused_by_image_templates(client_a, digits_dataset, cluster):
    digits_dataset.layout = "sequence"
    digits_dataset.shape = [8, 8]
    digits_dataset.save()
    body = errors_of(client_a.post(reverse("run_new"), form(digits_dataset, cluster)))
    assert "CNN trains on image datasets" in body and "sequence data" in body
    resp = client_a.post(reverse("run_new"), form(digits_dataset, cluster, template="lstm"))
    assert resp.status_code == 302
