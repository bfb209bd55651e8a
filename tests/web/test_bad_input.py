"""Bad ids, numbers and names in query parameters, form fields, headers and paths answer 400 (or 404 for
a well-formed id that names nothing), never 500: each goes through webapp/params.py."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from webapp import params
from webapp.accounts.models import Membership
from webapp.api import tokens
from webapp.datasets.models import Dataset
from webapp.runs.models import Run

# Values that are not an id: NUL and other control characters, digits that are not ASCII ('³' passes
# str.isdigit() and then int() fails; '٣' passes int()), too big for any column, negative, fractional.
BAD_NUMBERS = ["\x00", "1\x00", "³", "٣", "１", str(10**30), "9" * 5000, "-1", "1.5", "0x10", " 1 ", "1e3", "a\x01b"]
BAD_NAMES = ["\x00", "a\x00b", "a\x1fb", "\x7f"]
# In a comma-separated list blanks around a value are allowed ("1, 2").
BAD_LIST_IDS = [v for v in BAD_NUMBERS if v != " 1 "] + ["1,³", "1,,\x00"]


@pytest.fixture
def world(alice, cluster):
    user, team = alice
    dataset = Dataset.objects.create(
        team=team, name="digits", status=Dataset.Status.READY, shape=[8, 8, 1], num_classes=10, source_format="npz"
    )
    run = Run.objects.create(team=team, created_by=user, dataset=dataset, cluster=cluster, name="r", template="cnn")
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "driver.log").write_text("hello\nworld\n")
    return {"user": user, "team": team, "run": run, "dataset": dataset, "cluster": cluster}


@pytest.fixture
def web(world):
    c = Client(raise_request_exception=False)
    c.force_login(world["user"])
    return c


@pytest.fixture
def api(world):
    c = APIClient(raise_request_exception=False)
    c.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue(world['user'])}")
    return c


def _field_error(resp, field):
    body = resp.json()
    assert field in body, body
    assert body[field] and all(isinstance(m, str) and m for m in body[field])
    return body[field][0]


# ---------------------------------------------------------------- the helper itself


@pytest.mark.parametrize("raw", BAD_NUMBERS + ["", "+1", "1_000", "١٢"])
def test_parse_int_refuses_all_but_ascii_digits(raw):
    with pytest.raises(params.BadParam) as err:
        params.parse_int(raw, "n", min_value=0, max_value=10**6)
    assert err.value.name == "n" and err.value.message
    assert "\x00" not in str(err.value)


def test_parse_int_bounds_and_defaults():
    assert params.parse_int("42", "n") == 42
    assert params.parse_int("0", "n", min_value=0) == 0
    assert params.parse_int(None, "n", default=7) == 7
    assert params.parse_int("", "n", default=7) == 7
    assert params.parse_int("-3", "n", min_value=-5) == -3
    assert params.parse_id(str(params.MAX_ID), "id") == params.MAX_ID
    for raw in ("0", str(params.MAX_ID + 1)):
        with pytest.raises(params.BadParam):
            params.parse_id(raw, "id")
    with pytest.raises(params.BadParam, match="from 1 to 10"):
        params.parse_int("11", "n", min_value=1, max_value=10)
    with pytest.raises(params.BadParam, match="required"):
        params.parse_int(None, "n")


@pytest.mark.parametrize("raw", BAD_NAMES)
def test_clean_text_refuses_control_characters(raw):
    with pytest.raises(params.BadParam, match="control character"):
        params.clean_text(raw, "name")


def test_clean_text_keeps_ordinary_text_and_bounds_it():
    assert params.clean_text("  Zoë's run  ", "name") == "Zoë's run"
    with pytest.raises(params.BadParam, match="at most 5"):
        params.clean_text("abcdef", "name", max_length=5)


# ---------------------------------------------------------------- the API


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/runs/", "/api/datasets/"])
def test_api_list_team_param(api, path, subtests):
    for raw in BAD_NUMBERS + BAD_NAMES + ["no-such-team"]:
        with subtests.test(raw=raw):
            resp = api.get(path, {"team": raw})
            assert resp.status_code == 400
            _field_error(resp, "team")


@pytest.mark.django_db
def test_api_submit_team_field(api, world, subtests):
    for raw in BAD_NUMBERS + BAD_NAMES + [10**30, -1, True, [1], {"a": 1}]:
        with subtests.test(raw=raw):
            body = {"team": raw, "dataset": world["dataset"].pk, "template": "cnn", "cluster": world["cluster"].pk}
            resp = api.post("/api/runs/", body, format="json")
            assert resp.status_code == 400
            _field_error(resp, "team")
            assert not Run.objects.exclude(pk=world["run"].pk).exists()


@pytest.mark.django_db
def test_api_upload_team_field(api, world, subtests):
    for raw in BAD_NUMBERS + BAD_NAMES:
        with subtests.test(raw=raw):
            upload = SimpleUploadedFile("d.csv", b"a,label\n1,0\n2,1\n")
            resp = api.post("/api/datasets/", {"team": raw, "name": "x", "file": upload}, format="multipart")
            assert resp.status_code == 400
            _field_error(resp, "team")
            assert list(Dataset.objects.values_list("name", flat=True)) == ["digits"]


@pytest.mark.django_db
def test_api_run_filter_dataset_ids(api, subtests):
    for raw in BAD_LIST_IDS:
        with subtests.test(raw=raw):
            resp = api.get("/api/runs/", {"dataset": raw})
            assert resp.status_code == 400
            _field_error(resp, "dataset")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["size", "page"])
def test_api_dataset_paging(api, name, subtests):
    for raw in BAD_NUMBERS + ["0"]:
        with subtests.test(raw=raw):
            resp = api.get("/api/datasets/", {name: raw})
            assert resp.status_code == 400
            _field_error(resp, name)


@pytest.mark.django_db
def test_api_dataset_list_is_paginated_and_a_page_past_the_end_is_404(api):
    body = api.get("/api/datasets/", {"size": "1"}).json()
    assert body["count"] == 1 and [d["name"] for d in body["results"]] == ["digits"]
    assert body["next"] is None and body["previous"] is None
    assert api.get("/api/datasets/", {"page": "2"}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    "suffix, name",
    [
        ("logs/driver/", "offset"),
        ("logs/driver/", "limit"),
        ("predictions/", "page"),
        ("predictions/", "size"),
        ("predictions/", "true"),
        ("metrics/", "max_points"),
    ],
)
def test_api_run_query_numbers(api, world, suffix, name, subtests):
    for raw in BAD_NUMBERS:
        with subtests.test(raw=raw):
            resp = api.get(f"/api/runs/{world['run'].pk}/{suffix}", {name: raw})
            assert resp.status_code == 400
            _field_error(resp, name)


@pytest.mark.django_db
def test_api_huge_path_id_is_404(api, subtests):
    for raw in [str(10**30), str(2**63), "99999999999"]:
        with subtests.test(raw=raw):
            assert api.get(f"/api/runs/{raw}/").status_code == 404
            assert api.get(f"/api/datasets/{raw}/").status_code == 404


@pytest.mark.django_db
def test_api_bad_token_header_is_401(world, subtests):
    for header in ["Token sdk_\x00abc", "Token sdk_" + "é" * 10, "Bearer \x01", "Token " + "a" * 5000]:
        with subtests.test(header=header):
            c = APIClient(raise_request_exception=False)
            resp = c.get("/api/runs/", HTTP_AUTHORIZATION=header)
            assert resp.status_code == 401


# ---------------------------------------------------------------- the pages


@pytest.mark.django_db
def test_switch_team_bad_id(web, subtests):
    for raw in BAD_NUMBERS + ["abc", ""]:
        with subtests.test(raw=raw):
            resp = web.post("/accounts/team/", {"team": raw})
            assert resp.status_code == 400
            assert "team" in resp.content.decode()


@pytest.mark.django_db
def test_switch_team_unknown_or_other_team_is_404(web, bob):
    _, team_b = bob
    assert web.post("/accounts/team/", {"team": str(team_b.pk)}).status_code == 404
    assert web.post("/accounts/team/", {"team": "12345678"}).status_code == 404


@pytest.mark.django_db
def test_run_table_dataset_filter(web, subtests):
    for raw in BAD_LIST_IDS:
        with subtests.test(raw=raw):
            resp = web.get("/", {"dataset": raw})
            assert resp.status_code == 400
            assert "dataset" in resp.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "suffix, name",
    [
        ("live.json", "since"),
        ("predictions/", "page"),
        ("series.json", "max_points"),
        ("log-search.json", "max"),
    ],
)
def test_run_page_numbers(web, world, suffix, name, subtests):
    for raw in BAD_NUMBERS:
        with subtests.test(raw=raw):
            resp = web.get(
                f"/runs/{world['run'].pk}/{suffix}", {name: raw, "q": "hello"}, HTTP_ACCEPT="application/json"
            )
            assert resp.status_code == 400
            assert name in resp.content.decode()


@pytest.mark.django_db
def test_live_log_offset(web, world, subtests):
    for raw in [v for v in BAD_NUMBERS if v != "-1"] + ["-2"]:
        with subtests.test(raw=raw):
            resp = web.get(f"/runs/{world['run'].pk}/live.json", {"log": "driver", "off:driver": raw})
            assert resp.status_code == 400


@pytest.mark.django_db
def test_live_log_offset_minus_one_means_the_tail(web, world):
    resp = web.get(f"/runs/{world['run'].pk}/live.json", {"log": "driver", "off:driver": "-1"})
    assert resp.status_code == 200 and resp.json()["logs"]["driver"]["text"] == "hello\nworld\n"


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["start", "end"])
def test_series_range(web, world, name, subtests):
    for raw in ["\x00", "1e400", "nan", "inf", "1e300", "³", "-1e300"]:
        with subtests.test(raw=raw):
            resp = web.get(f"/runs/{world['run'].pk}/series.json", {name: raw})
            assert resp.status_code == 400


@pytest.mark.django_db
def test_rerun_from(web, subtests):
    for raw in BAD_NUMBERS:
        with subtests.test(raw=raw):
            resp = web.get("/runs/new/", {"from": raw})
            assert resp.status_code == 400


@pytest.mark.django_db
def test_compare_ids(web, world, subtests):
    for raw in BAD_LIST_IDS:
        with subtests.test(raw=raw):
            resp = web.get("/runs/compare/data.json", {"ids": f"{world['run'].pk},{raw}"})
            assert resp.status_code == 400


@pytest.mark.django_db
def test_member_role_change_bad_membership(web, world, subtests):
    for raw in BAD_NUMBERS:
        with subtests.test(raw=raw):
            Membership.objects.filter(user=world["user"]).update(role=Membership.Role.OWNER)
            resp = web.post("/accounts/team/members/", {"action": "role", "membership": raw, "role": "admin"})
            assert resp.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/runs/{}/", "/runs/{}/live.json", "/datasets/{}/", "/models/files/{}/", "/models/digits/{}/"]
)
def test_huge_path_id_is_404(web, path, subtests):
    for raw in [str(10**30), str(2**63)]:
        with subtests.test(raw=raw):
            assert web.get(path.format(raw)).status_code == 404


@pytest.mark.django_db
def test_upload_bad_content_length_header(web, subtests):
    for raw in ["³", "-5", "1" * 30, "\x00"]:
        with subtests.test(raw=raw):
            resp = web.generic(
                "POST",
                "/datasets/upload/",
                b"x" * 10,
                content_type="multipart/form-data; boundary=zz",
                CONTENT_LENGTH=raw,
            )
            assert resp.status_code == 400


@pytest.mark.django_db
def test_bad_request_page_says_what_was_wrong(web):
    resp = web.post("/accounts/team/", {"team": "³"})
    assert resp.status_code == 400
    text = resp.content.decode()
    assert "team" in text and "whole number" in text


@pytest.mark.django_db
def test_api_submit_hyperparameter_numbers(api, world, subtests):
    for raw in ["٣", "³", " 3 x", "1e3", "9" * 5000, True, 3.5]:
        with subtests.test(raw=raw):
            body = {
                "dataset": world["dataset"].pk,
                "template": "cnn",
                "cluster": world["cluster"].pk,
                "hyperparameters": {"epochs": raw},
            }
            resp = api.post("/api/runs/", body, format="json")
            assert resp.status_code == 400
            assert "integer" in _field_error(resp, "epochs")


@pytest.mark.django_db
def test_api_run_name_with_control_characters_or_blank(api, world, subtests):
    for name in ["\x1b[31mred", "a\x00b", "tab\there", "   "]:
        with subtests.test(name=name):
            resp = api.patch(f"/api/runs/{world['run'].pk}/", {"name": name}, format="json")
            assert resp.status_code == 400
            _field_error(resp, "name")
            world["run"].refresh_from_db()
            assert world["run"].name == "r"


@pytest.mark.django_db
def test_api_run_notes_keep_newlines_and_tabs_but_not_nul(api, world):
    url = f"/api/runs/{world['run'].pk}/"
    resp = api.patch(url, {"notes": "a\x00b"}, format="json")
    assert resp.status_code == 400 and "Null characters" in resp.json()["notes"][0]
    resp = api.patch(url, {"notes": "line 1\n\tline 2"}, format="json")
    assert resp.status_code == 200 and resp.json()["notes"] == "line 1\n\tline 2"
    # and the schema says so, so that a fuzzer's valid notes hold no NUL
    from drf_spectacular.generators import SchemaGenerator

    notes = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]["PatchedRunEditRequest"]
    assert notes["properties"]["notes"]["oneOf"][0]["pattern"] == r"^[^\u0000]*$"


@pytest.mark.django_db
def test_api_unknown_route_is_a_json_404(api):
    for path in ("/api/runs/abc/", "/api/runs/-1/", "/api/nothing/"):
        resp = api.get(path)
        assert resp.status_code == 404 and resp["Content-Type"] == "application/json"
        assert resp.json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_api_dataset_archived_flag(api, subtests):
    for raw in ["maybe", "", "TRUE", "yes", "\x00"]:
        with subtests.test(raw=raw):
            resp = api.get("/api/datasets/", {"archived": raw})
            assert resp.status_code == 400
            _field_error(resp, "archived")


@pytest.mark.django_db
def test_api_metric_names(api, world, subtests):
    for raw in [" loss", "loss,nope", "\x00"]:
        with subtests.test(raw=raw):
            resp = api.get(f"/api/runs/{world['run'].pk}/metrics/", {"names": raw})
            assert resp.status_code == 400
            _field_error(resp, "names")


def test_json_is_refused_past_32_levels_however_it_would_fail():
    def nested(depth):
        return "[" * depth + "]" * depth

    assert isinstance(params.load_json(nested(32)), list)  # 32 levels decode
    assert params.json_depth_ok({"a": [{"b": 1}]}) and not params.json_depth_ok(params.load_json(nested(32)), 31)
    for text in (nested(33), '{"a":' * 40 + "1" + "}" * 40, "[" * 100_000):  # the last: the decoder's own limit
        with pytest.raises(params.JSONTooDeep, match="deeper than 32 levels"):
            params.load_json(text)
    with pytest.raises(ValueError) as exc:
        params.load_json("{nope")
    assert not isinstance(exc.value, params.JSONTooDeep)
