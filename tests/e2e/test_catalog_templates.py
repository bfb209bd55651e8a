"""The rest of the template catalogue through the real path (web form → Celery on Redis → TFoS /
Spark standalone → results): transfer learning from an earlier run with both heads, an uploaded
Keras model, and the LSTM on a genuine sequence dataset."""

import os
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.e2e.runs import submit, wait_dataset_ready, wait_modelfile_ready, wait_terminal
from webapp.datasets.ingest import write_digits_npz
from webapp.datasets.models import Dataset
from webapp.runs.models import MetricPoint, Run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]


def upload(client, tmp_path, name, classes=None):
    """Upload through the web form; the Celery worker (the caller's celery_worker fixture) converts it."""
    path = tmp_path / f"{name}.npz"
    write_digits_npz(path, classes=classes)
    resp = client.post(
        reverse("dataset_upload"), {"name": name, "file": SimpleUploadedFile(path.name, path.read_bytes())}
    )
    assert resp.status_code == 302, resp.content.decode()[:1000]
    return wait_dataset_ready(Dataset.objects.get(name=name).pk, 120)


def succeeded(run_id, worker, timeout=420):
    run, _ = wait_terminal(run_id, timeout, worker)
    assert run.status == Run.Status.SUCCEEDED, f"{run.status_reason}\n{run.status_detail}"
    return run


def test_transfer_from_an_earlier_run_with_both_heads(owner, client_b, tmp_path, loopback_cluster, celery_worker):
    """A CNN trained on digits 0–4 featurizes digits 5–9; LogisticRegression and a Keras head learn them."""
    low = upload(owner, tmp_path, "digits-0-4", classes=range(5))
    high = upload(owner, tmp_path, "digits-5-9", classes=range(5, 10))
    assert low.num_classes == high.num_classes == 5 and high.class_names == ["5", "6", "7", "8", "9"]
    # The base and the dense head train on the whole training split, as the accuracy bounds were set on.
    base = submit(
        owner, low, loopback_cluster, hp_cnn_epochs="4", hp_cnn_dense_units="128", hp_cnn_validation_split="0"
    )
    base = succeeded(base.pk, celery_worker)

    # The form offers the finished run as a base.
    form = owner.get(reverse("run_new")).content.decode()
    assert f'value="run:{base.pk}"' in form

    lr = submit(owner, high, loopback_cluster, template="featurizer", hp_featurizer_base=f"run:{base.pk}",
                hp_featurizer_head="logreg", hp_featurizer_max_iter="200")  # fmt: skip
    lr = succeeded(lr.pk, celery_worker)
    assert lr.result["head"] == "logreg" and lr.result["feature_dim"] == 128
    assert lr.test_accuracy >= 0.9, lr.test_accuracy
    assert lr.test_rows == high.test_rows
    assert MetricPoint.objects.filter(run=lr, name="loss", executor="driver").count() >= 2  # objective history
    resp = owner.get(reverse("run_model", args=[lr.pk]))
    assert resp.status_code == 200
    names = zipfile.ZipFile(lr.run_dir / "model" / "model.zip").namelist()
    assert "featurizer.keras" in names and any(n.startswith("logreg/") for n in names)
    page = owner.get(lr.get_absolute_url()).content.decode()
    assert f"run {base.pk}" in page and "128 per image" in page
    # The fit's own iteration count (MLlib's summary), shown instead of the dense head's epochs.
    iterations = lr.result["iterations"]
    assert isinstance(iterations, int) and 1 <= iterations <= 200, iterations
    assert f'<dd id="length">{iterations} iterations</dd>' in page and "15 epochs" not in page

    dense = submit(owner, high, loopback_cluster, template="featurizer", hp_featurizer_base=f"run:{base.pk}",
                   hp_featurizer_head="dense", hp_featurizer_validation_split="0")  # fmt: skip
    dense = succeeded(dense.pk, celery_worker)
    assert dense.result["head"] == "dense" and dense.test_accuracy >= 0.9, dense.test_accuracy
    # Both executors trained the head with TFoS and posted metrics.
    assert set(MetricPoint.objects.filter(run=dense).values_list("executor", flat=True)) == {"0", "1"}
    # The downloadable model is featurizer + head: images in, one probability per class out.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tf_keras

    combined = tf_keras.models.load_model(dense.run_dir / "model" / "model.keras", compile=False, safe_mode=True)
    assert combined.input_shape == (None, 8, 8, 1) and combined.output_shape == (None, 5)
    np.testing.assert_allclose(combined.predict(np.zeros((2, 8, 8, 1)), verbose=0).sum(axis=1), 1.0, rtol=1e-5)

    # Another team can neither see these runs nor use them as a base.
    for run in (lr, dense):
        assert client_b.get(run.get_absolute_url()).status_code == 404
        assert client_b.get(reverse("run_model", args=[run.pk])).status_code == 404
    assert f"run:{base.pk}" not in client_b.get(reverse("run_new")).content.decode()


def test_imported_keras_model_trains_like_a_template(owner, tmp_path, digits_dataset, loopback_cluster, celery_worker):
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras as keras

    inputs = keras.Input(shape=(64,))
    x = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))  # logits, flat input: both adapted in the job
    path = tmp_path / "mlp.keras"
    model.save(path)
    resp = owner.post(
        reverse("modelfile_upload"), {"name": "mlp", "file": SimpleUploadedFile("mlp.keras", path.read_bytes())}
    )
    assert resp.status_code == 302, resp.content.decode()[:1000]
    from webapp.modelfiles.models import ModelFile

    mf = wait_modelfile_ready(ModelFile.objects.get(name="mlp").pk, 120, celery_worker)  # checked by the worker
    run = submit(owner, digits_dataset, loopback_cluster, template="imported", hp_imported_model=f"file:{mf.pk}",
                 hp_imported_epochs="10", hp_imported_learning_rate="0.003")  # fmt: skip
    run = succeeded(run.pk, celery_worker)
    assert run.test_accuracy >= 0.9, run.test_accuracy
    assert set(MetricPoint.objects.filter(run=run).values_list("executor", flat=True)) == {"0", "1"}


def test_lstm_on_a_sequence_dataset(owner, tmp_path, loopback_cluster, celery_worker):
    from webapp.datasets.ingest import write_sequences_csv

    path = tmp_path / "waves.csv"
    write_sequences_csv(path)
    resp = owner.post(
        reverse("dataset_upload"),
        {"name": "waves", "layout": "sequence", "file": SimpleUploadedFile("waves.csv", path.read_bytes())},
    )
    assert resp.status_code == 302, resp.content.decode()[:1000]
    ds = wait_dataset_ready(Dataset.objects.get(name="waves").pk, 120, celery_worker)
    assert ds.layout == "sequence" and len(ds.shape) == 2
    # The CNN refuses sequences before anything is stored.
    resp = owner.post(reverse("run_new"), {"dataset": ds.pk, "template": "cnn", "input_mode": "tensorflow",
                                           "cluster": loopback_cluster.pk, "num_executors": 2, "executor_cores": 1,
                                           "executor_memory_mb": 1536})  # fmt: skip
    assert resp.status_code == 400 and "sequence data" in resp.content.decode()
    # The LSTM's real path (on image rows as time steps too: tests/jobs/test_templates.py builds that).
    run = submit(owner, ds, loopback_cluster, template="lstm", hp_lstm_epochs="8", hp_lstm_hidden_units="32")
    run = succeeded(run.pk, celery_worker)
    assert run.test_accuracy >= 0.85, run.test_accuracy
    assert run.result["template"] == "lstm" and run.hyperparameters["hidden_units"] == 32
    assert set(MetricPoint.objects.filter(run=run).values_list("executor", flat=True)) == {"0", "1"}
