"""The model registry (webapp/registry): registering runs' and uploaded files' models as numbered
versions with their own copy of the files, aliases and their recorded moves, archiving, resolving
`name@alias` / `name/3`, every refusal (nothing stored), and the pages (another team: 404 on each)."""

import ast
import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import URLPattern, reverse

from webapp.modelfiles.models import ModelFile
from webapp.registry import services
from webapp.registry import urls as registry_urls
from webapp.registry.models import Alias, AliasMove, ModelVersion, RegisteredModel, registry_root
from webapp.registry.services import RegistryError

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def nothing_stored():
    assert RegisteredModel.objects.count() == 0 and ModelVersion.objects.count() == 0
    assert files_under(registry_root()) == []


@pytest.fixture
def user(alice):
    return alice[0]


@pytest.fixture
def ready_file(alice, settings):
    user, team = alice
    mf = ModelFile.objects.create(
        team=team,
        name="uploaded",
        original_name="up.keras",
        format="keras",
        status=ModelFile.Status.READY,
        input_shape=[8, 8, 1],
        num_outputs=10,
        created_by=user,
    )
    mf.storage_path.parent.mkdir(parents=True)
    mf.storage_path.write_bytes(b"uploaded-keras-bytes")
    return mf


# --- registering ------------------------------------------------------------------------------


def test_versions_are_numbered_1_2_3_and_record_the_run(model_run, user):
    runs = [model_run(f"r{i}") for i in range(3)]
    versions = [services.register_run(r, "digits", f"take {i}", user) for i, r in enumerate(runs)]
    assert [v.version for v in versions] == [1, 2, 3]
    assert RegisteredModel.objects.get().name == "digits"
    v = ModelVersion.objects.get(model__name="digits", version=2)
    assert v.source_run == runs[1] and v.source == "run" and v.source_label == f"run {runs[1].pk} · r1"
    assert v.description == "take 1" and v.template == "cnn"
    assert v.hyperparameters == {"epochs": 3, "learning_rate": 0.001}
    assert v.metrics == {
        "test_accuracy": 0.91,
        "test_loss": 0.3,
        "test_rows": 360,
        "val_accuracy": 0.88,  # the best epoch's
        "val_loss": 0.4,  # the lowest
    }
    assert v.dataset == runs[1].dataset and v.dataset_name == "digits"
    assert v.input_shape == [8, 8, 1] and v.layout == "image"
    assert v.class_names == [str(i) for i in range(10)]  # the dataset names none: its class indices
    assert v.entry == "model/model.keras" and v.created_by == user
    assert files_under(v.storage_dir) == ["model/model.keras", "version.json"]
    assert (v.storage_dir / "model" / "model.keras").read_bytes() == b"keras-archive-bytes"
    assert v.storage_dir == registry_root() / str(v.model.team_id) / str(v.model_id) / "2"
    manifest = json.loads((v.storage_dir / "version.json").read_text())
    assert manifest["model"] == "digits" and manifest["version"] == 2 and manifest["entry"] == "model/model.keras"
    assert v.size_bytes == len(b"keras-archive-bytes")


def test_dataset_hash_class_names_and_standardization_are_recorded(model_run, user):
    run = model_run()
    ds = run.dataset
    ds.layout, ds.shape, ds.class_names = "table", [3], ["cat", "dog"]
    ds.save()
    ds.storage_dir.mkdir(parents=True)
    (ds.storage_dir / "train.parquet").write_bytes(b"train-bytes" * 1000)
    (ds.storage_dir / "test.parquet").write_bytes(b"test-bytes")
    standardize = {"mean": [1.0, 2.0, 3.0], "std": [1.0, 0.5, 2.0]}
    meta = {
        "shape": [3],
        "num_classes": 2,
        "class_names": ["cat", "dog"],
        "train_rows": 10,
        "test_rows": 2,
        "scale": 1.0,
        "offset": 0.0,
        "split": {"mode": "fraction", "test_fraction": 0.2, "seed": 42},
        "layout": "table",
        "columns": ["a", "b", "c"],
        "standardize": standardize,
    }
    (ds.storage_dir / "meta.json").write_text(json.dumps(meta))
    v = services.register_run(run, "tabular", "", user)
    assert v.dataset_hash == hashlib.sha256(b"train-bytes" * 1000 + b"test-bytes").hexdigest()
    ds.refresh_from_db()
    assert ds.content_hash == v.dataset_hash  # computed once, kept on the dataset
    assert v.class_names == ["cat", "dog"] and v.layout == "table" and v.input_shape == [3]
    assert v.preprocessing == {"scale": 1.0, "offset": 0.0, "standardize": standardize, "columns": ["a", "b", "c"]}


def test_an_mllib_head_run_keeps_every_file_of_its_model_folder(model_run, user):
    files = {
        "featurizer.keras": b"featurizer",
        "logreg/metadata/part-00000": b"{}",
        "logreg/data/part-0.parquet": b"coefficients",
        "model.zip": b"zip-of-both",
        ".tmp-123-model.keras": b"half-written",  # an export in progress is not a file of the model
    }
    run = model_run(template="featurizer", hyperparameters={"head": "logreg", "base": "run:1"}, files=files)
    v = services.register_run(run, "transfer", "", user)
    assert v.entry == "model/model.zip"
    assert files_under(v.storage_dir) == [
        "model/featurizer.keras",
        "model/logreg/data/part-0.parquet",
        "model/logreg/metadata/part-00000",
        "model/model.zip",
        "version.json",
    ]


def test_a_link_planted_in_the_model_folder_is_not_followed(model_run, user, tmp_path):
    run = model_run()
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (run.run_dir / "model" / "stolen.txt").symlink_to(secret)
    (run.run_dir / "model" / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    v = services.register_run(run, "digits", "", user)
    assert files_under(v.storage_dir) == ["model/model.keras", "version.json"]


def test_a_pruned_sweep_trial_with_a_model_can_be_registered(model_run, user):
    run = model_run(result={"pruned_at_epoch": 2, "epochs_run": 2}, test_accuracy=None, test_loss=None, test_rows=None)
    v = services.register_run(run, "pruned", "", user)
    assert v.metrics["pruned_at_epoch"] == 2 and v.metrics["epochs_run"] == 2 and "test_accuracy" not in v.metrics


def test_an_uploaded_model_file_is_registered_with_its_own_copy(ready_file, user):
    v = services.register_modelfile(ready_file, "uploaded", "from a file", user, model_description="imported")
    assert v.version == 1 and v.source == "file" and v.source_modelfile == ready_file
    assert v.entry == "model/model.keras" and v.input_shape == [8, 8, 1] and v.layout == "image"
    assert (v.storage_dir / "model" / "model.keras").read_bytes() == b"uploaded-keras-bytes"
    assert v.model.description == "imported"
    shutil.rmtree(ready_file.storage_path.parent)
    ready_file.delete()
    v.refresh_from_db()
    assert v.source_modelfile is None and v.source_label.startswith("model file")
    assert (v.storage_dir / "model" / "model.keras").read_bytes() == b"uploaded-keras-bytes"


def test_the_copy_survives_deleting_the_source_run_and_its_dir(model_run, client_a, user):
    run = model_run()
    v = services.register_run(run, "digits", "", user)
    shutil.rmtree(run.run_dir)
    run.delete()
    v.refresh_from_db()
    assert v.source_run is None and v.source_label.startswith("run ")
    assert (v.storage_dir / "model" / "model.keras").read_bytes() == b"keras-archive-bytes"
    page = client_a.get(v.get_absolute_url()).content.decode()
    assert "(deleted; this version keeps its own copy)" in page
    down = client_a.get(reverse("registry_download", args=["digits", 1]))
    assert down.status_code == 200 and b"".join(down.streaming_content) == b"keras-archive-bytes"


def test_a_failed_copy_leaves_no_files_and_no_row(model_run, user, monkeypatch):
    run = model_run(files={"model.keras": b"k", "head.keras": b"h", "more/x.bin": b"x"})
    real = services._copy_file
    calls = []

    def failing(src, dest):
        calls.append(dest)
        if len(calls) == 2:
            src.close()
            raise OSError(28, "No space left on device")
        return real(src, dest)

    monkeypatch.setattr(services, "_copy_file", failing)
    with pytest.raises(RegistryError) as err:
        services.register_run(run, "digits", "", user)
    assert err.value.errors == {"run": "The model files could not be copied: No space left on device."}
    nothing_stored()
    assert not any(p.name.startswith(".tmp-") for p in registry_root().rglob("*"))
    # and a later registration of the same model works, numbered 1
    monkeypatch.setattr(services, "_copy_file", real)
    assert services.register_run(run, "digits", "", user).version == 1


def test_a_leftover_folder_at_a_free_number_is_replaced(model_run, user):
    """A registration whose transaction rolled back after its files were moved in leaves them: the
    number is still free in the database, and the next registration takes the place."""
    first = services.register_run(model_run(), "digits", "", user)
    stale = first.storage_dir.parent / "2"
    (stale / "model").mkdir(parents=True)
    (stale / "model" / "stale.keras").write_bytes(b"old")
    v = services.register_run(model_run("second"), "digits", "", user)
    assert v.version == 2 and files_under(v.storage_dir) == ["model/model.keras", "version.json"]


def test_the_unique_constraint_holds_version_numbers(model_run, user):
    v = services.register_run(model_run(), "digits", "", user)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(model=v.model, version=1, source="run", files_path="x", entry="y")


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_get_different_numbers(model_run, user):
    """Two registrations of one new model at once, each in its own thread and database connection."""
    runs = [model_run(f"r{i}") for i in range(4)]
    barrier = threading.Barrier(len(runs))
    errors, numbers = [], []

    def register(run):
        try:
            barrier.wait(timeout=10)
            numbers.append(services.register_run(run, "raced", "", user).version)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and sorted(numbers) == [1, 2, 3, 4]
    assert RegisteredModel.objects.filter(name="raced").count() == 1
    for v in ModelVersion.objects.all():
        assert files_under(v.storage_dir) == ["model/model.keras", "version.json"]


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED", "RUNNING", "QUEUED"])
def test_a_run_that_did_not_succeed_is_refused(model_run, user, status):
    run = model_run(status=status)
    with pytest.raises(RegistryError) as err:
        services.register_run(run, "digits", "", user)
    assert err.value.errors == {"run": f"Run {run.pk} is {status}; only a succeeded run's model can be registered."}
    nothing_stored()


def test_a_run_without_model_files_is_refused(make_run, model_run, user, tmp_path):
    bare = make_run("bare", status="SUCCEEDED")
    linked = model_run("linked")
    shutil.move(linked.run_dir / "model", tmp_path / "moved")
    (linked.run_dir / "model").symlink_to(tmp_path / "moved", target_is_directory=True)
    for run in (bare, linked):
        with pytest.raises(RegistryError) as err:
            services.register_run(run, "digits", "", user)
        assert err.value.errors == {"run": f"Run {run.pk} has no model files to register."}
    nothing_stored()


def test_another_teams_run_is_no_such_run(model_run, bob):
    with pytest.raises(RegistryError) as err:
        services.register_run(model_run(), "digits", "", bob[0])
    assert err.value.errors == {"run": "No such run."} and err.value.missing
    nothing_stored()


def test_a_viewer_cannot_register_set_aliases_or_archive(model_run, ready_file, make_member, user):
    viewer, _ = make_member("vera", "Team A", role="viewer")
    with pytest.raises(PermissionDenied):
        services.register_run(model_run(), "digits", "", viewer)
    with pytest.raises(PermissionDenied):
        services.register_modelfile(ready_file, "digits", "", viewer)
    nothing_stored()
    v = services.register_run(model_run(), "digits", "", user)
    with pytest.raises(PermissionDenied):
        services.set_alias(v.model, "production", v, viewer)
    with pytest.raises(PermissionDenied):
        services.archive(v, viewer)
    services.set_alias(v.model, "production", v, user)
    with pytest.raises(PermissionDenied):
        services.remove_alias(v.model, "production", viewer)
    assert Alias.objects.count() == 1 and AliasMove.objects.count() == 1 and not ModelVersion.objects.get().archived


@pytest.mark.parametrize(
    "name", ["", "  ", "-lead", ".hidden", "a/b", "a@b", "a b", "ü", "x" * 101, "files", "register", None, 3]
)
def test_bad_names_are_refused(model_run, user, name):
    with pytest.raises(RegistryError) as err:
        services.register_run(model_run(), name, "", user)
    assert list(err.value.errors) == ["name"]
    nothing_stored()


def test_bad_descriptions_are_refused(model_run, user):
    for field, kwargs in [
        ("description", {"description": "nul\x00"}),
        ("description", {"description": "x" * 2001}),
        ("model_description", {"model_description": "nul\x00"}),
    ]:
        with pytest.raises(RegistryError) as err:
            services.register_run(model_run(), "digits", user=user, **kwargs)
        assert list(err.value.errors) == [field]
    nothing_stored()
    v = services.register_run(model_run(), "digits", "line one\nline two", user)
    assert v.description == "line one\nline two"


@pytest.mark.parametrize("status", ["UPLOADED", "CHECKING", "FAILED"])
def test_a_model_file_not_ready_is_refused(ready_file, user, status):
    ModelFile.objects.filter(pk=ready_file.pk).update(status=status)
    ready_file.refresh_from_db()
    with pytest.raises(RegistryError) as err:
        services.register_modelfile(ready_file, "digits", "", user)
    assert list(err.value.errors) == ["modelfile"] and status in err.value.errors["modelfile"]
    nothing_stored()


def test_a_model_file_missing_from_storage_is_refused(ready_file, user):
    ready_file.storage_path.unlink()
    with pytest.raises(RegistryError) as err:
        services.register_modelfile(ready_file, "digits", "", user)
    assert err.value.errors == {"modelfile": "Model file uploaded is missing from storage."}
    nothing_stored()


# --- aliases, archiving ------------------------------------------------------------------------


@pytest.fixture
def three(model_run, user):
    """Model "digits" with versions 1, 2, 3."""
    return [services.register_run(model_run(f"r{i}"), "digits", "", user) for i in range(3)]


def moves(model):
    return [
        (m.alias, m.from_version and m.from_version.version, m.to_version and m.to_version.version, m.by.username)
        for m in AliasMove.objects.filter(model=model).order_by("at", "id")
    ]


def test_alias_set_moved_and_removed_each_move_recorded(three, user):
    model = three[0].model
    services.set_alias(model, "production", three[0], user)
    services.set_alias(model, "candidate", 3, user)
    services.set_alias(model, "production", 2, user)
    services.set_alias(model, "production", 2, user)  # already there: no move
    services.remove_alias(model, "candidate", user)
    assert moves(model) == [
        ("production", None, 1, "alice"),
        ("candidate", None, 3, "alice"),
        ("production", 1, 2, "alice"),
        ("candidate", 3, None, "alice"),
    ]
    assert dict(Alias.objects.values_list("name", "version__version")) == {"production": 2}
    assert services.resolve(model.team, "digits@production") == three[1]


def test_alias_refusals(three, model_run, user):
    model = three[0].model
    other = services.register_run(model_run("o"), "other", "", user)
    services.archive(three[0], user)
    cases = [
        (dict(alias="production", version=other), {"version": "That version is of another model, not digits."}),
        (dict(alias="production", version=9), {"version": "Model digits has no version 9."}),
        (dict(alias="production", version="٣"), "version"),
        (dict(alias="production", version=1), {"version": "Version 1 is archived; aliases point at live versions."}),
        (dict(alias="Production", version=2), "alias"),
        (dict(alias="3", version=2), "alias"),
        (dict(alias="x" * 41, version=2), "alias"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(RegistryError) as err:
            services.set_alias(model, user=user, **kwargs)
        assert (err.value.errors if isinstance(expected, dict) else list(err.value.errors)) == (
            expected if isinstance(expected, dict) else [expected]
        ), kwargs
    assert Alias.objects.count() == 0 and AliasMove.objects.count() == 0
    with pytest.raises(RegistryError) as err:
        services.remove_alias(model, "production", user)
    assert err.value.missing and err.value.errors == {"alias": "Model digits has no alias production."}


def test_alias_moves_compare_and_set_on_the_expected_version(three, user):
    model = three[0].model
    with pytest.raises(RegistryError) as err:
        services.set_alias(model, "production", 2, user, expected=1)
    assert err.value.conflict and "is not set" in err.value.errors["alias"]
    services.set_alias(model, "production", 1, user, expected=None)
    with pytest.raises(RegistryError) as err:
        services.set_alias(model, "production", 3, user, expected=None)
    assert err.value.conflict and "points at version 1" in err.value.errors["alias"]
    services.set_alias(model, "production", 2, user, expected=1)
    with pytest.raises(RegistryError):
        services.remove_alias(model, "production", user, expected=1)
    services.remove_alias(model, "production", user, expected=2)
    assert [m[1:3] for m in moves(model)] == [(None, 1), (1, 2), (2, None)]


def test_archiving_a_version_an_alias_points_at_is_refused_naming_it(three, user):
    model = three[0].model
    services.set_alias(model, "production", 1, user)
    services.set_alias(model, "candidate", 1, user)
    with pytest.raises(RegistryError) as err:
        services.archive(three[0], user)
    assert err.value.errors == {"version": "Version 1 holds the alias candidate, production; move or remove it first."}
    assert not ModelVersion.objects.get(pk=three[0].pk).archived
    services.set_alias(model, "production", 2, user)
    services.remove_alias(model, "candidate", user)
    v = services.archive(three[0], user)
    assert v.archived and v.archived_by == user and v.archived_at is not None
    with pytest.raises(RegistryError) as err:
        services.archive(ModelVersion.objects.get(pk=v.pk), user)
    assert err.value.errors == {"version": "Version 1 is already archived."}
    assert (v.storage_dir / "model" / "model.keras").exists()  # kept


# --- resolving ---------------------------------------------------------------------------------


def test_resolve_both_forms_and_every_refusal(three, user, bob, model_run):
    model = three[0].model
    team = model.team
    services.set_alias(model, "production", 2, user)
    assert services.resolve(team, "digits@production") == three[1]
    assert services.resolve(team, "digits/3") == three[2]
    assert services.resolve(team, "digits/03") == three[2]
    services.archive(three[0], user)
    refused = {
        "digits/1": "Version 1 of digits is archived.",
        "digits/4": "Model digits has no version 4.",
        "digits/9999999999": "must be a whole number from 1 to 2147483647 (digits 0-9)",
        "digits@candidate": "Model digits has no alias candidate.",
        "nope@production": "No such model: nope.",
        "nope/1": "No such model: nope.",
    }
    for ref, message in refused.items():
        with pytest.raises(RegistryError) as err:
            services.resolve(team, ref, field="model")
        assert err.value.errors == {"model": message}, ref
    malformed = ["digits", "digits@", "digits/", "digits/٣", "digits/１", "digits/1.0", "digits/-1", "digits/ 1",
                 "digits@Production", "digits@3", "@production", "/1", "", None, 3, "digits/1/2", "a b/1",
                 "digits/" + "9" * 11]  # fmt: skip
    for ref in malformed:
        with pytest.raises(RegistryError) as err:
            services.resolve(team, ref, field="model")
        assert "write <name>@<alias> or <name>/<version>" in err.value.errors["model"], ref
    # Another team's model does not exist for this team (and the other way round).
    bobs = services.register_run(model_run("b", team=bob[1], created_by=bob[0]), "bobs", "", bob[0])
    services.set_alias(bobs.model, "production", bobs, bob[0])
    for ref in ("bobs@production", "bobs/1"):
        with pytest.raises(RegistryError) as err:
            services.resolve(team, ref)
        assert err.value.missing and err.value.errors == {"model": "No such model: bobs."}
    with pytest.raises(RegistryError):
        services.resolve(bob[1], "digits@production")


# --- pages -------------------------------------------------------------------------------------


def page_urls(v):
    """Every registry page of version `v`'s model, as (method, url)."""
    name, n = v.model.name, v.version
    return [
        ("get", reverse("registry_model", args=[name])),
        ("get", reverse("registry_version", args=[name, n])),
        ("get", reverse("registry_download", args=[name, n])),
        ("post", reverse("registry_alias_set", args=[name])),
        ("post", reverse("registry_alias_remove", args=[name, "production"])),
        ("post", reverse("registry_archive", args=[name, n])),
        ("get", reverse("registry_register") + f"?run={v.source_run_id}"),
        ("post", reverse("registry_register") + f"?run={v.source_run_id}"),
    ]


def test_every_registry_route_is_covered_by_the_cross_team_test():
    covered = {"registry_model", "registry_version", "registry_download", "registry_alias_set",
               "registry_alias_remove", "registry_archive", "registry_register", "registry_list"}  # fmt: skip
    names = {p.name for p in registry_urls.urlpatterns if isinstance(p, URLPattern)}
    assert names == covered


def test_other_team_gets_404_on_every_page(three, client_b, user, ready_file):
    v = three[0]
    services.set_alias(v.model, "production", v, user)
    for method, url in page_urls(v):
        data = {"alias": "production", "version": "2", "name": "stolen"}
        resp = getattr(client_b, method)(url, data) if method == "post" else client_b.get(url)
        assert resp.status_code == 404, (method, url)
    for method in ("get", "post"):
        url = reverse("registry_register") + f"?file={ready_file.pk}"
        assert getattr(client_b, method)(url).status_code == 404
    assert "digits" not in client_b.get(reverse("registry_list")).content.decode()
    assert Alias.objects.get().version == v and not ModelVersion.objects.filter(archived=True).exists()
    assert RegisteredModel.objects.count() == 1 and ModelVersion.objects.count() == 3


def test_login_required_on_the_pages(client, three):
    for method, url in [("get", reverse("registry_list")), *page_urls(three[0])]:
        resp = getattr(client, method)(url)
        assert resp.status_code == 302 and "/accounts/login/" in resp["Location"], url


def test_register_from_the_run_page(client_a, model_run):
    run = model_run("best run")
    page = client_a.get(run.get_absolute_url()).content.decode()
    link = reverse("registry_register") + f"?run={run.pk}"
    assert f'href="{link}"' in page
    form = client_a.get(link)
    assert form.status_code == 200 and 'id="register-form"' in form.content.decode()
    resp = client_a.post(link, {"name": "digits", "description": "the best so far", "model_description": "digits"})
    v = ModelVersion.objects.get()
    assert resp.status_code == 302 and resp["Location"] == v.get_absolute_url()
    assert v.description == "the best so far" and v.model.description == "digits"
    page = client_a.get(resp["Location"]).content.decode()
    assert "the best so far" in page and "digits/1" in page and "0.91" in page and "learning_rate=0.001" in page
    assert 'id="archive-form"' in page


def test_the_register_page_explains_refusals(client_a, make_run, model_run):
    failed = make_run("broke", status="FAILED")
    page = client_a.get(reverse("registry_register") + f"?run={failed.pk}").content.decode()
    assert f"Run {failed.pk} is FAILED" in page and 'id="register-form"' not in page
    assert f'?run={failed.pk}"' not in client_a.get(failed.get_absolute_url()).content.decode()
    resp = client_a.post(reverse("registry_register") + f"?run={failed.pk}", {"name": "digits"})
    assert resp.status_code == 400 and f"Run {failed.pk} is FAILED" in resp.content.decode()
    ok = model_run()
    resp = client_a.post(reverse("registry_register") + f"?run={ok.pk}", {"name": "bad/name"})
    assert resp.status_code == 400 and "use letters, digits" in resp.content.decode()
    for query in ("", "?run=abc", f"?run={ok.pk}&file=1", "?run=٣"):
        assert client_a.get(reverse("registry_register") + query).status_code == 400, query
    assert RegisteredModel.objects.count() == 0


def test_register_from_a_model_files_page(client_a, ready_file):
    page = client_a.get(ready_file.get_absolute_url()).content.decode()
    link = reverse("registry_register") + f"?file={ready_file.pk}"
    assert f'href="{link}"' in page
    resp = client_a.post(link, {"name": "uploaded"})
    assert resp.status_code == 302 and ModelVersion.objects.get().source_modelfile == ready_file


def test_a_viewer_cannot_register_on_the_page(make_member, model_run):
    viewer, _ = make_member("vera", "Team A", role="viewer")
    c = Client()
    c.force_login(viewer)
    run = model_run()
    url = reverse("registry_register") + f"?run={run.pk}"
    assert 'id="register-viewer"' in c.get(url).content.decode()
    resp = c.post(url, {"name": "digits"})
    assert resp.status_code == 403 and "Viewers cannot register models" in resp.content.decode()
    nothing_stored()


def test_model_page_lists_versions_aliases_and_history_and_moves_aliases(client_a, three, make_member):
    url = reverse("registry_model", args=["digits"])
    resp = client_a.post(reverse("registry_alias_set", args=["digits"]), {"alias": "production", "version": "1"})
    assert resp.status_code == 302 and resp["Location"] == url
    # A move from the alias's row carries where it pointed: a stale form does not move it again.
    set_url = reverse("registry_alias_set", args=["digits"])
    client_a.post(set_url, {"alias": "production", "version": "3", "expected": "1"})
    stale = client_a.post(set_url, {"alias": "production", "version": "2", "expected": "1"}, follow=True)
    assert "now points at version 3" in stale.content.decode()
    assert Alias.objects.get().version.version == 3
    page = client_a.get(url).content.decode()
    for text in ('data-version="1"', 'data-version="3"', 'data-alias="production"', "digits@production",
                 'id="alias-form"', 'id="alias-history"'):  # fmt: skip
        assert text in page, text
    assert page.count("<td><code>production</code></td>") == 2  # history: set, moved
    archive = client_a.post(reverse("registry_archive", args=["digits", 3]), follow=True)
    assert "holds the alias production" in archive.content.decode()
    client_a.post(reverse("registry_alias_remove", args=["digits", "production"]), {"expected": "3"})
    assert Alias.objects.count() == 0 and "removed" in client_a.get(url).content.decode()
    client_a.post(reverse("registry_archive", args=["digits", 3]))
    assert ModelVersion.objects.get(version=3).archived
    page = client_a.get(reverse("registry_version", args=["digits", 3])).content.decode()
    assert 'id="archived-note"' in page and 'id="archive-form"' not in page
    listing = client_a.get(reverse("registry_list")).content.decode()
    assert 'data-model="digits"' in listing and "v3" in listing
    # a viewer sees no forms, and posting changes nothing
    viewer, _ = make_member("vera", "Team A", role="viewer")
    c = Client()
    c.force_login(viewer)
    assert 'id="alias-form"' not in c.get(url).content.decode()
    c.post(set_url, {"alias": "production", "version": "1"})
    c.post(reverse("registry_archive", args=["digits", 1]))
    assert Alias.objects.count() == 0 and not ModelVersion.objects.get(version=1).archived


def test_page_urls_refuse_odd_names_and_numbers(client_a, three):
    for url in ["/models/digits/0/", "/models/digits/99999999999/", "/models/digits/4/", "/models/nope/",
                "/models/-x/", "/models/digits/1/../", "/models/digits/aliases/Prod/remove/"]:  # fmt: skip
        assert client_a.get(url).status_code == 404, url


def test_nav_links_to_the_registry_and_the_model_files(client_a):
    page = client_a.get(reverse("dataset_list")).content.decode()
    assert f'href="{reverse("registry_list")}"' in page and f'href="{reverse("modelfile_list")}"' in page
    assert reverse("modelfile_list") == "/models/files/" and reverse("registry_list") == "/models/"


# --- the import graph --------------------------------------------------------------------------


def test_runs_datasets_and_modelfiles_never_import_the_registry():
    offenders = []
    for app in ("runs", "datasets", "modelfiles", "accounts", "sweeps"):
        for path in sorted((ROOT / "webapp" / app).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("webapp.registry")]
    assert offenders == []
