"""The registry's API (/api/models/…): registering runs and model files, listing, details, archiving,
aliases; refusals are 400 naming the field and store nothing, another team's model is 404 on every
endpoint, viewers get 403, a name two of your teams use needs ?team=."""

import pytest

from tests.web.apiclient import api
from webapp.modelfiles.models import ModelFile
from webapp.registry import services
from webapp.registry.models import Alias, AliasMove, ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

BAD_NUMBERS = ["\x00", "³", "٣", "１", str(10**30), "-1", "1.5", "0x10", True, None, [], {}, 1.5, 10**30]


@pytest.fixture
def alice_api(alice):
    return api(alice[0])


@pytest.fixture
def registered(model_run, alice):
    """alice's model "digits": version 1 (alias production) and version 2."""
    user = alice[0]
    v1 = services.register_run(model_run("r1"), "digits", "first", user)
    services.register_run(model_run("r2"), "digits", "second", user)
    services.set_alias(v1.model, "production", v1, user)
    return v1.model


def stored():
    return tuple(m.objects.count() for m in (RegisteredModel, ModelVersion, Alias, AliasMove))


def test_register_a_run_then_list_and_read(alice_api, model_run):
    run = model_run()
    resp = alice_api.post("/api/models/digits/versions/", {"run": run.pk, "description": "v one"}, format="json")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["version"] == 1 and body["model"] == "digits" and body["run"] == run.pk and body["source"] == "run"
    assert resp["Location"] == body["url"] == "http://testserver/api/models/digits/versions/1/"
    assert body["metrics"]["test_accuracy"] == 0.91 and body["metrics"]["val_accuracy"] == 0.88
    assert body["dataset"] == {"id": run.dataset_id, "name": "digits", "sha256": ""}
    assert body["input_shape"] == [8, 8, 1] and body["class_names"][:2] == ["0", "1"]
    assert body["entry"] == "model/model.keras" and body["aliases"] == [] and body["archived"] is False
    again = alice_api.post("/api/models/digits/versions/", {"run": model_run("b").pk}, format="json")
    assert again.status_code == 201 and again.json()["version"] == 2

    listing = alice_api.get("/api/models/").json()
    assert listing["count"] == 1
    (m,) = listing["results"]
    assert m["name"] == "digits" and m["latest_version"] == 2 and m["version_count"] == 2 and m["aliases"] == []
    assert m["team"]["slug"] == "team-a" and m["versions"].endswith("/api/models/digits/versions/")
    detail = alice_api.get("/api/models/digits/").json()
    assert detail["name"] == "digits" and detail["latest_version"] == 2
    versions = alice_api.get("/api/models/digits/versions/").json()
    assert versions["count"] == 2 and [v["version"] for v in versions["results"]] == [2, 1]
    assert alice_api.get("/api/models/digits/versions/?size=1&page=2").json()["results"][0]["version"] == 1
    one = alice_api.get("/api/models/digits/versions/1/").json()
    assert one["description"] == "v one" and one["archive"].endswith("/api/models/digits/versions/1/archive/")


def test_register_a_model_file(alice_api, alice):
    user, team = alice
    mf = ModelFile.objects.create(
        team=team, name="up", original_name="u.keras", format="keras", status="READY", input_shape=[4], created_by=user
    )
    mf.storage_path.parent.mkdir(parents=True)
    mf.storage_path.write_bytes(b"k")
    resp = alice_api.post("/api/models/up/versions/", {"modelfile": mf.pk, "model_description": "m"}, format="json")
    assert resp.status_code == 201 and resp.json()["modelfile"] == mf.pk and resp.json()["layout"] == "table"
    assert RegisteredModel.objects.get().description == "m"
    ModelFile.objects.filter(pk=mf.pk).update(status="CHECKING")
    resp = alice_api.post("/api/models/up/versions/", {"modelfile": mf.pk}, format="json")
    assert resp.status_code == 400 and list(resp.json()) == ["modelfile"]


def test_register_refusals_name_the_field_and_store_nothing(alice_api, model_run, make_run, bob):
    ok = model_run()
    failed = make_run("failed", status="FAILED")
    bare = make_run("bare", status="SUCCEEDED")
    bobs = model_run("bobs", team=bob[1], created_by=bob[0])
    cases = [
        ({}, "run"),
        ({"run": ok.pk, "modelfile": 1}, "run"),
        ({"run": failed.pk}, "run"),
        ({"run": bare.pk}, "run"),
        ({"run": bobs.pk}, "run"),
        ({"run": 10**9}, "run"),
        ({"modelfile": 10**9}, "modelfile"),
        ({"run": ok.pk, "description": "x" * 2001}, "description"),
        ({"run": ok.pk, "description": "nul\x00"}, "description"),
        ({"run": ok.pk, "team": "team-b"}, "team"),
        ({"run": ok.pk, "team": "no-such-team"}, "team"),
        *[({"run": raw}, "run") for raw in BAD_NUMBERS],
    ]
    for body, field in cases:
        resp = alice_api.post("/api/models/digits/versions/", body, format="json")
        assert resp.status_code == 400 and list(resp.json()) == [field], (body, resp.json())
    assert alice_api.post("/api/models/digits/versions/", {"run": failed.pk}, format="json").json() == {
        "run": [f"Run {failed.pk} is FAILED; only a succeeded run's model can be registered."]
    }
    assert alice_api.post("/api/models/digits/versions/", {"run": bobs.pk}, format="json").json() == {
        "run": ["No such run."]
    }
    for name in ("files", "register"):
        resp = alice_api.post(f"/api/models/{name}/versions/", {"run": ok.pk}, format="json")
        assert resp.status_code == 400 and list(resp.json()) == ["name"]
    for name in ("-x", "a%20b", "ü", "x" * 101):
        assert alice_api.post(f"/api/models/{name}/versions/", {"run": ok.pk}, format="json").status_code == 404
    assert alice_api.post("/api/models/digits/versions/", "[1]", content_type="application/json").status_code == 400
    assert stored() == (0, 0, 0, 0)


def test_aliases_set_move_remove_and_refusals(alice_api, registered):
    url = "/api/models/digits/aliases/production/"
    assert alice_api.get(url).json()["version"] == 1
    moved = alice_api.put(url, {"version": 2}, format="json")
    assert moved.status_code == 200 and moved.json()["version"] == 2 and moved.json()["updated_by"] == "alice"
    same = alice_api.post(url, {"version": 2}, format="json")
    assert same.status_code == 200 and AliasMove.objects.count() == 2  # nothing moved the second time
    made = alice_api.post("/api/models/digits/aliases/candidate/", {"version": 1}, format="json")
    assert made.status_code == 200 and made.json() == {
        "model": "digits",
        "alias": "candidate",
        "version": 1,
        "updated_by": "alice",
        "updated_at": made.json()["updated_at"],
    }
    aliases = alice_api.get("/api/models/digits/").json()["aliases"]
    assert aliases == [{"name": "candidate", "version": 1}, {"name": "production", "version": 2}]
    assert alice_api.get("/api/models/digits/versions/2/").json()["aliases"] == ["production"]
    # compare-and-set
    stale = alice_api.put(url, {"version": 1, "expected_version": 1}, format="json")
    assert stale.status_code == 409 and "now points at version 2" in stale.json()["detail"]
    fresh = alice_api.put("/api/models/digits/aliases/staging/", {"version": 1, "expected_version": 0}, format="json")
    assert fresh.status_code == 200
    assert alice_api.put(url, {"version": 1, "expected_version": 2}, format="json").json()["version"] == 1
    before = stored()
    for body, field in [
        ({}, "version"),
        ({"version": 9}, "version"),
        ({"version": 0}, "version"),
        *[({"version": raw}, "version") for raw in BAD_NUMBERS],
        ({"version": 1, "expected_version": -1}, "expected_version"),
    ]:
        resp = alice_api.put(url, body, format="json")
        assert resp.status_code == 400 and list(resp.json()) == [field], (body, resp.json())
    for bad in ("Production", "3x", "x" * 41, "a.b"):
        assert alice_api.put(f"/api/models/digits/aliases/{bad}/", {"version": 1}, format="json").status_code == 404
    assert stored() == before
    assert alice_api.delete("/api/models/digits/aliases/candidate/").status_code == 204
    assert alice_api.delete("/api/models/digits/aliases/candidate/").status_code == 404
    assert alice_api.get("/api/models/digits/aliases/candidate/").status_code == 404
    last = AliasMove.objects.order_by("-id").first()
    assert last.alias == "candidate" and last.to_version is None and last.by.username == "alice"


def test_archive_refusals_and_archived_versions_take_no_alias(alice_api, registered):
    resp = alice_api.post("/api/models/digits/versions/1/archive/")
    assert resp.status_code == 400 and resp.json() == {
        "version": ["Version 1 holds the alias production; move or remove it first."]
    }
    ok = alice_api.post("/api/models/digits/versions/2/archive/")
    assert ok.status_code == 200 and ok.json()["archived"] is True and ok.json()["archived_by"] == "alice"
    again = alice_api.post("/api/models/digits/versions/2/archive/")
    assert again.status_code == 400 and again.json() == {"version": ["Version 2 is already archived."]}
    resp = alice_api.put("/api/models/digits/aliases/production/", {"version": 2}, format="json")
    assert resp.status_code == 400 and resp.json() == {
        "version": ["Version 2 is archived; aliases point at live versions."]
    }
    assert Alias.objects.get().version.version == 1
    assert alice_api.post("/api/models/digits/versions/3/archive/").status_code == 404


def other_team_requests(run_id):
    """(method, url, body) of every registry endpoint naming alice's model."""
    return [
        ("get", "/api/models/digits/", None),
        ("get", "/api/models/digits/versions/", None),
        ("get", "/api/models/digits/versions/1/", None),
        ("post", "/api/models/digits/versions/1/archive/", None),
        ("post", "/api/models/digits/versions/2/archive/", None),
        ("get", "/api/models/digits/aliases/production/", None),
        ("put", "/api/models/digits/aliases/production/", {"version": 2}),
        ("post", "/api/models/digits/aliases/production/", {"version": 2}),
        ("put", "/api/models/digits/aliases/candidate/", {"version": 1}),
        ("delete", "/api/models/digits/aliases/production/", None),
    ]


def test_another_team_gets_404_on_every_endpoint(registered, bob, model_run):
    c = api(bob[0])
    run_id = registered.versions.get(version=1).source_run_id
    before = stored()
    for method, url, body in other_team_requests(run_id):
        resp = getattr(c, method)(url, body, format="json")
        assert resp.status_code == 404, (method, url, resp.content)
    # Registering alice's run under the same name: no such run for bob, nothing is made.
    resp = c.post("/api/models/digits/versions/", {"run": run_id}, format="json")
    assert resp.status_code == 400 and resp.json() == {"run": ["No such run."]}
    assert c.get("/api/models/").json()["count"] == 0
    assert c.get("/api/models/?team=team-a").status_code == 400
    assert stored() == before
    # bob's own model of the same name is his, and alice's stays hers
    own = model_run("b", team=bob[1], created_by=bob[0])
    resp = c.post("/api/models/digits/versions/", {"run": own.pk}, format="json")
    assert resp.status_code == 201 and resp.json()["version"] == 1
    assert RegisteredModel.objects.filter(name="digits").count() == 2


def test_a_viewer_reads_but_cannot_register_archive_or_set_aliases(registered, make_member, model_run):
    viewer, _ = make_member("vera", "Team A", role="viewer")
    c = api(viewer)
    assert c.get("/api/models/digits/").status_code == 200
    assert c.get("/api/models/digits/versions/1/").status_code == 200
    before = stored()
    writes = [
        ("post", "/api/models/digits/versions/", {"run": model_run().pk}),
        ("post", "/api/models/newname/versions/", {"run": model_run("n").pk}),
        ("post", "/api/models/digits/versions/2/archive/", None),
        ("put", "/api/models/digits/aliases/production/", {"version": 2}),
        ("post", "/api/models/digits/aliases/candidate/", {"version": 2}),
        ("delete", "/api/models/digits/aliases/production/", None),
    ]
    for method, url, body in writes:
        resp = getattr(c, method)(url, body, format="json")
        assert resp.status_code == 403 and "Viewers cannot" in resp.json()["detail"], (method, url)
    assert stored() == before and not ModelVersion.objects.filter(archived=True).exists()


def test_a_name_two_of_your_teams_use_needs_the_team(registered, alice, make_member, model_run):
    from webapp.accounts.models import Membership, Team

    user, team_a = alice
    team_c = Team.objects.create(name="Team C", slug="team-c")
    Membership.objects.create(team=team_c, user=user, role="member")
    services.register_run(model_run("c", team=team_c), "digits", "", user)
    c = api(user)
    resp = c.get("/api/models/digits/")
    assert resp.status_code == 400 and "team-a" in resp.json()["team"][0] and "team-c" in resp.json()["team"][0]
    assert c.get("/api/models/digits/?team=team-c").json()["team"]["slug"] == "team-c"
    assert c.get(f"/api/models/digits/versions/2/?team={team_a.pk}").status_code == 200
    assert c.get("/api/models/digits/versions/2/?team=team-c").status_code == 404
    assert c.get("/api/models/?team=team-c").json()["count"] == 1
    assert c.get("/api/models/").json()["count"] == 2


def test_paging_and_odd_parameters(alice_api, registered):
    assert alice_api.get("/api/models/?page=2").status_code == 404
    for raw in ["0", "٣", "1.5", "\x00", str(10**30)]:
        assert alice_api.get("/api/models/", {"page": raw}).status_code == 400, raw
        assert alice_api.get("/api/models/digits/versions/", {"size": raw}).status_code == 400, raw
    for url in ["/api/models/digits/versions/0/", "/api/models/digits/versions/99999999999/",
                "/api/models/digits/versions/2147483648/", "/api/models/digits/versions/x/"]:  # fmt: skip
        resp = alice_api.get(url)
        assert resp.status_code == 404 and "detail" in resp.json(), url


def test_lists_read_a_page_in_a_fixed_number_of_queries(alice_api, alice, model_run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(url):
        with CaptureQueriesContext(connection) as ctx:
            assert alice_api.get(url).status_code == 200
        return len(ctx.captured_queries)

    run = model_run()
    services.register_run(run, "a", "", alice[0])
    alice_api.get("/api/models/")  # the token's last use is recorded once a while: not in what is counted
    few = queries("/api/models/"), queries("/api/models/a/versions/")
    for name in ("b", "c", "d"):
        v = services.register_run(run, name, "", alice[0])
        services.set_alias(v.model, "production", v, alice[0])
    for _ in range(3):
        services.register_run(run, "a", "", alice[0])
    assert (queries("/api/models/"), queries("/api/models/a/versions/")) == few
