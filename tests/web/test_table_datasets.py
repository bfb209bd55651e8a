"""Table datasets through the web: a CSV/Parquet upload without an image shape becomes a table (form and
API, conversion run eagerly as in test_dataset_upload), its page shows per-column statistics, image and
sequence templates refuse it with a way out, and its (features,) shape reaches the job code unchanged."""

import io
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from sklearn.datasets import load_breast_cancer, load_wine

from tests.web.test_api import submission, token_client
from tests.web.test_run_submit import form
from webapp.datasets.ingest import LAYOUTS
from webapp.datasets.models import Dataset
from webapp.runs.lifecycle import build_spec
from webapp.runs.models import Run
from workers.jobs import data as job_data
from workers.jobs.spec import parse_spec

pytestmark = pytest.mark.django_db
XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"}
WAY_OUT = "Use the MLP template for tables, or upload with an image shape to train a CNN."


def wine_csv() -> bytes:
    return load_wine(as_frame=True).frame.rename(columns={"target": "label"}).to_csv(index=False).encode()


@pytest.fixture
def wine(alice):
    from webapp.datasets.services import create_and_convert

    user, team = alice
    return create_and_convert(team=team, user=user, name="wine", upload=SimpleUploadedFile("wine.csv", wine_csv()))


def test_csv_upload_through_the_form_is_a_table_with_column_statistics(client_a, upload_converted):
    resp = upload_converted(client_a, {"name": "wine", "file": SimpleUploadedFile("wine.csv", wine_csv())}, **XHR)
    assert resp.status_code == 200, resp.json()
    ds = Dataset.objects.get(name="wine")
    assert ds.status == Dataset.Status.READY, ds.status_reason
    assert (ds.layout, ds.shape, ds.is_table, ds.options["layout"]) == ("table", [13], True, "table")
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert "Table" in page and "standardized per feature" in page and "scaled to [0, 1]" not in page
    assert 'src="data:image/png;base64,' not in page and "<polyline" not in page  # no image grid
    stats = page[page.index('id="column-stats"') :]
    stats = stats[: stats.index("</section>")]
    assert '<div class="table-box">' in stats
    raw = load_wine(as_frame=True).frame.drop(columns="target")
    for name in ("alcohol", "proline"):  # the CSV header's names, with min, max, mean, missing
        row = re.search(rf"<tr><td>{name}</td>(.*?)</tr>", stats).group(1)
        cells = re.findall(r"<td>([^<]*)</td>", row)
        col = raw[name]
        assert cells == [f"{col.min():.6g}", f"{col.max():.6g}", f"{col.mean():.6g}", "0"]
    assert stats.count("<tr><td>") == 13


def test_image_shape_keeps_a_csv_an_image_dataset(client_a, upload_converted):
    content = b"a,b,c,d,label\n" + b"".join(f"{i},{i % 3},2,{i % 5},{i % 2}\n".encode() for i in range(20))
    resp = upload_converted(client_a, {"name": "px", "file": SimpleUploadedFile("px.csv", content), "shape": "2x2"})
    ds = Dataset.objects.get(name="px")
    assert resp.status_code == 302 and ds.status == Dataset.Status.READY, ds.status_reason
    assert (ds.layout, ds.shape) == ("image", [2, 2, 1])
    page = client_a.get(ds.get_absolute_url()).content.decode()
    assert 'id="column-stats"' not in page and "scaled to [0, 1]" in page


def test_upload_page_offers_the_table_layout(client_a):
    assert Dataset.Layout.values == list(LAYOUTS)  # the model's choices are ingest's layouts
    page = client_a.get(reverse("dataset_upload")).content.decode()
    assert '<option value="auto" selected>Automatic</option>' in page and '<option value="table">Table</option>' in page


def test_parquet_upload_through_the_api_is_a_table(alice, eager_tasks, django_capture_on_commit_callbacks):
    buf = io.BytesIO()
    load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"}).to_parquet(buf)
    c = token_client(alice[0])
    f = SimpleUploadedFile("cancer.parquet", buf.getvalue())
    with django_capture_on_commit_callbacks(execute=True):
        resp = c.post("/api/datasets/", {"name": "cancer", "file": f}, format="multipart")
    assert resp.status_code == 201, resp.content
    body = c.get(resp.json()["url"]).json()
    assert (body["status"], body["layout"], body["shape"], body["num_classes"]) == ("READY", "table", [30], 2)
    schema = c.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert '"table"' in schema and '"auto"' in schema  # the upload's layout choices are documented


@pytest.mark.parametrize(
    "template,extra",
    [
        ("cnn", {}),
        ("lstm", {}),
        ("featurizer", {"hp_featurizer_base": "app:MobileNetV2"}),
    ],
)
def test_image_and_sequence_templates_refuse_a_table(client_a, wine, cluster, template, extra):
    resp = client_a.post(reverse("run_new"), form(wine, cluster, template=template, **extra))
    assert resp.status_code == 400
    body = resp.content.decode()
    assert "wine holds table data." in body and WAY_OUT in body
    assert not Run.objects.exists()


def test_the_api_refuses_a_cnn_on_a_table_with_the_same_words(alice, wine, cluster):
    resp = token_client(alice[0]).post("/api/runs/", submission(wine, cluster), format="json")
    assert resp.status_code == 400
    assert resp.json()["dataset"] == [f"CNN trains on image datasets; wine holds table data. {WAY_OUT}"]


def test_a_tables_shape_reaches_the_job_code(alice, wine, cluster):
    """The MLP template is not here yet: a run row made directly shows what its spec would carry."""
    run = Run.objects.create(team=alice[1], dataset=wine, cluster=cluster, template="cnn", name="t")
    spec = parse_spec(build_spec(run))
    assert spec.dataset.shape == (13,)
    x, y, row_id = job_data.read_arrays(spec.dataset.train, spec.dataset.shape)
    assert x.shape == (wine.train_rows, 13) and x.dtype == np.float32 and len(y) == len(row_id)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)  # standardized with the training rows' statistics
