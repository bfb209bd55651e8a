"""Team roles: owner / admin / member / viewer — the helpers, run editing by role, and the members page."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from webapp.accounts import services
from webapp.accounts.models import Membership
from webapp.datasets.models import Dataset
from webapp.runs.models import Run

TEAM = "Team A"


@pytest.fixture
def crew(make_member):
    """Team A with one of each role (plus alice, a member, from the shared fixtures)."""
    users = {role: make_member(f"{role}-user", TEAM, role)[0] for role in ("owner", "admin", "member", "viewer")}
    users["team"] = Membership.objects.get(user=users["owner"]).team
    return users


def login(user):
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def run_of(crew, cluster):
    ds = Dataset.objects.create(team=crew["team"], name="digits", status="READY", shape=[8, 8, 1], num_classes=10)

    def make(user, **fields):
        return Run.objects.create(
            team=crew["team"],
            created_by=user,
            name=f"run of {user}",
            dataset=ds,
            cluster=cluster,
            template="cnn",
            status=fields.pop("status", "SUCCEEDED"),
            **fields,
        )

    return make


# ---------------------------------------------------------------- helpers


@pytest.mark.django_db
def test_role_helpers(crew, make_member):
    team = crew["team"]
    stranger, _ = make_member("stranger", "Team B")
    assert [services.role_of(crew[r], team) for r in ("owner", "admin", "member", "viewer")] == [
        "owner",
        "admin",
        "member",
        "viewer",
    ]
    assert services.role_of(stranger, team) is None and services.role_of(stranger, team.pk) is None
    assert [services.can_submit(crew[r], team) for r in ("owner", "admin", "member", "viewer")] == [1, 1, 1, 0]
    assert [services.can_manage_members(crew[r], team) for r in ("owner", "admin", "member", "viewer")] == [1, 1, 0, 0]
    assert not services.can_submit(stranger, team) and not services.can_view(stranger, team)
    assert services.can_view(crew["viewer"], team)


@pytest.mark.django_db
def test_can_edit_run_matrix(crew, run_of, make_member):
    own = run_of(crew["member"])
    others = run_of(crew["admin"])
    orphan = run_of(None)
    expect = {
        "owner": (True, True, True),
        "admin": (True, True, True),
        "member": (True, False, False),
        "viewer": (False, False, False),
    }
    for role, (a, b, c) in expect.items():
        user = crew[role]
        assert (
            services.can_edit_run(user, own),
            services.can_edit_run(user, others),
            services.can_edit_run(user, orphan),
        ) == (a, b, c), role
    stranger, _ = make_member("stranger", "Team B")
    assert not services.can_edit_run(stranger, own)


@pytest.mark.django_db
def test_role_follows_the_runs_team(crew, run_of, make_member, cluster):
    """A user who is viewer in one team and owner in another edits only in the latter."""
    user = crew["viewer"]
    other_team = make_member("someone", "Team C")[1]
    Membership.objects.create(team=other_team, user=user, role="owner")
    ds = Dataset.objects.create(team=other_team, name="d", status="READY", shape=[8, 8, 1], num_classes=10)
    theirs = Run.objects.create(team=other_team, name="c", dataset=ds, cluster=cluster, template="cnn")
    assert services.can_edit_run(user, theirs)
    assert not services.can_edit_run(user, run_of(crew["member"]))


# ---------------------------------------------------------------- run editing through the views


@pytest.mark.django_db
@pytest.mark.parametrize(
    "role, own_ok, others_ok",
    [("owner", True, True), ("admin", True, True), ("member", True, False), ("viewer", False, False)],
)
def test_editing_runs_by_role(crew, run_of, role, own_ok, others_ok):
    user = crew[role]
    own = run_of(user)
    others = run_of(crew["member"] if role != "member" else crew["admin"])
    c = login(user)
    for run, ok in ((own, own_ok), (others, others_ok)):
        want = 302 if ok else 403
        assert c.get(reverse("run_edit", args=[run.pk])).status_code == (200 if ok else 403)
        assert c.post(reverse("run_edit", args=[run.pk]), {"name": "new", "tags": "t", "notes": ""}).status_code == want
        assert c.post(reverse("run_star", args=[run.pk]), {"starred": "1"}).status_code == want
        assert c.post(reverse("run_archive", args=[run.pk]), {"archived": "1"}).status_code == want
        run.refresh_from_db()
        assert (run.name == "new", run.starred, run.archived, run.tags == "t") == (ok, ok, ok, ok)


@pytest.mark.django_db
def test_viewer_sees_the_table_without_edit_controls(crew, run_of):
    run = run_of(crew["member"])
    html = login(crew["viewer"]).get("/").content.decode()
    assert f'data-run="{run.pk}"' in html
    assert reverse("run_edit", args=[run.pk]) not in html and reverse("run_star", args=[run.pk]) not in html
    assert reverse("run_new") not in html.split("</header>", 1)[1]  # no "New run" button for viewers
    assert "members-link" not in html


@pytest.mark.django_db
def test_admin_can_submit(crew):
    assert services.can_submit(crew["admin"], crew["team"])


# ---------------------------------------------------------------- the members page


@pytest.mark.django_db
def test_members_page_requires_login(client):
    resp = client.get(reverse("team_members"))
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("role, status", [("owner", 200), ("admin", 200), ("member", 403), ("viewer", 403)])
def test_members_page_only_for_owner_and_admin(crew, role, status):
    c = login(crew[role])
    resp = c.get(reverse("team_members"))
    assert resp.status_code == status
    if status == 200:
        html = resp.content.decode()
        assert all(f'data-member="{u.username}"' in html for u in (crew["viewer"], crew["owner"]))
        assert "members-link" in c.get("/").content.decode()
    post = c.post(reverse("team_members"), {"action": "add", "username": "nobody-new", "role": "member"})
    assert post.status_code in ((400,) if status == 200 else (403,))


@pytest.mark.django_db
def test_members_post_needs_csrf(crew):
    c = Client(enforce_csrf_checks=True)
    c.force_login(crew["owner"])
    assert c.post(reverse("team_members"), {"action": "remove", "membership": "1"}).status_code == 403


def _m(crew, role):
    return Membership.objects.get(team=crew["team"], user=crew[role])


@pytest.mark.django_db
def test_admin_adds_changes_and_removes_members(crew):
    newbie = get_user_model().objects.create_user("newbie")
    c = login(crew["admin"])
    url = reverse("team_members")
    assert c.post(url, {"action": "add", "username": "newbie", "role": "viewer"}).status_code == 302
    m = Membership.objects.get(team=crew["team"], user=newbie)
    assert m.role == "viewer"
    assert c.post(url, {"action": "role", "membership": m.pk, "role": "admin"}).status_code == 302
    m.refresh_from_db()
    assert m.role == "admin"
    assert c.post(url, {"action": "remove", "membership": m.pk}).status_code == 302
    assert not Membership.objects.filter(pk=m.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "by, data, message",
    [
        ("admin", {"action": "add", "username": "newbie", "role": "owner"}, "Only owners make other users owners."),
        (
            "admin",
            {"action": "role", "target": "owner", "role": "member"},
            "Only owners make, change or remove owners.",
        ),
        (
            "admin",
            {"action": "role", "target": "member", "role": "owner"},
            "Only owners make, change or remove owners.",
        ),
        ("admin", {"action": "remove", "target": "owner"}, "Only owners make, change or remove owners."),
        ("owner", {"action": "role", "target": "owner", "role": "admin"}, "last owner"),
        ("owner", {"action": "remove", "target": "owner"}, "last owner"),
        ("owner", {"action": "add", "username": "nobody", "role": "member"}, "No user named &#x27;nobody&#x27;"),
        ("owner", {"action": "add", "username": "viewer-user", "role": "member"}, "already in Team A"),
        ("owner", {"action": "add", "username": "newbie", "role": "emperor"}, "Unknown role"),
        ("owner", {"action": "role", "target": "viewer", "role": "emperor"}, "Unknown role"),
        ("owner", {"action": "dance"}, "Unknown action."),
    ],
)
def test_member_changes_that_are_refused(crew, by, data, message):
    get_user_model().objects.create_user("newbie")
    data = dict(data)
    if "target" in data:
        data["membership"] = _m(crew, data.pop("target")).pk
    before = sorted(Membership.objects.values_list("user__username", "role"))
    resp = login(crew[by]).post(reverse("team_members"), data)
    assert resp.status_code == 400 and message in resp.content.decode()
    assert sorted(Membership.objects.values_list("user__username", "role")) == before


@pytest.mark.django_db
def test_owner_hands_over_ownership(crew):
    c = login(crew["owner"])
    url = reverse("team_members")
    assert c.post(url, {"action": "role", "membership": _m(crew, "admin").pk, "role": "owner"}).status_code == 302
    # now two owners: the first may step down, and loses the members page
    resp = c.post(url, {"action": "role", "membership": _m(crew, "owner").pk, "role": "member"})
    assert resp.status_code == 302 and resp["Location"] == reverse("dashboard")
    assert c.get(url).status_code == 403
    assert _m(crew, "admin").role == "owner"


@pytest.mark.django_db
def test_memberships_of_other_teams_are_404(crew, make_member):
    _, team_b = make_member("bob", "Team B")
    theirs = Membership.objects.get(team=team_b)
    c = login(crew["owner"])
    for data in (
        {"action": "remove", "membership": theirs.pk},
        {"action": "role", "membership": theirs.pk, "role": "viewer"},
    ):
        assert c.post(reverse("team_members"), data).status_code == 404
    assert c.post(reverse("team_members"), {"action": "remove", "membership": "x"}).status_code == 400  # not an id
    assert Membership.objects.filter(pk=theirs.pk, role="member").exists()


@pytest.mark.django_db
def test_service_refuses_non_managers(crew):
    with pytest.raises(PermissionDenied):
        services.add_member(crew["team"], crew["member"], "viewer-user", "member")
    with pytest.raises(PermissionDenied):
        services.remove_member(crew["team"], crew["viewer"], _m(crew, "member").pk)
