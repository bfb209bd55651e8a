"""The run table (home page): columns, filters in the URL, sorting, keyset paging; run editing (name,
tags, notes, star, archive) with its permissions; the denormalized summary columns."""

import datetime as dt
import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from webapp.history import table
from webapp.history.filters import FilterError
from webapp.runs.models import MetricPoint, Run, RunTag
from webapp.runs.summary import metrics_arrived, summarize

T0 = timezone.make_aware(dt.datetime(2026, 5, 1, 9, 0))


@pytest.fixture
def finished(make_run):
    return make_run("finished-run", status="SUCCEEDED", test_accuracy=0.9, epochs=3)


def page_html(client, query=""):
    resp = client.get("/" + ("?" + query if query else ""))
    return resp, resp.content.decode()


def row_ids(html):
    return [int(x) for x in re.findall(r'<tr data-run="(\d+)"', html)]


# ---------------------------------------------------------------- access


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method, name", [("get", "run_edit"), ("post", "run_edit"), ("post", "run_star"), ("post", "run_archive")]
)
def test_login_required(client, finished, method, name):
    resp = getattr(client, method)(reverse(name, args=[finished.pk]))
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


@pytest.mark.django_db
def test_home_page_requires_login(client):
    resp = client.get("/")
    assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]


@pytest.mark.django_db
def test_other_team_gets_404_for_view_edit_star_archive(client_b, finished):
    assert client_b.get(reverse("run_detail", args=[finished.pk])).status_code == 404
    assert client_b.get(reverse("run_edit", args=[finished.pk])).status_code == 404
    assert client_b.post(reverse("run_edit", args=[finished.pk]), {"name": "pwned"}).status_code == 404
    assert client_b.post(reverse("run_star", args=[finished.pk])).status_code == 404
    assert client_b.post(reverse("run_archive", args=[finished.pk])).status_code == 404
    finished.refresh_from_db()
    assert finished.name == "finished-run" and not finished.starred and not finished.archived


@pytest.mark.django_db
def test_other_team_does_not_see_runs_in_the_table(client_b, finished):
    resp, html = page_html(client_b, "archived=1&q=finished")
    assert resp.status_code == 200 and "finished-run" not in html and row_ids(html) == []


@pytest.mark.django_db
def test_csrf_is_enforced_on_every_post(alice, finished):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice[0])
    for name in ("run_edit", "run_star", "run_archive"):
        assert c.post(reverse(name, args=[finished.pk]), {"name": "x"}).status_code == 403, name
    finished.refresh_from_db()
    assert finished.name == "finished-run" and not finished.starred and not finished.archived


@pytest.mark.django_db
def test_unsafe_next_is_ignored(client_a, finished):
    resp = client_a.post(reverse("run_star", args=[finished.pk]), {"starred": "1", "next": "https://evil.example/"})
    assert resp.status_code == 302 and resp["Location"] == finished.get_absolute_url()


# ---------------------------------------------------------------- the page


@pytest.mark.django_db
def test_table_shows_team_runs_with_default_columns(client_a, make_run, alice):
    run = make_run(
        "cnn-lr3", status="SUCCEEDED", epochs=5, batch_size=64, learning_rate=0.001, test_accuracy=0.9812, tags="base"
    )
    Run.objects.filter(pk=run.pk).update(duration_s=125.0, test_loss=0.061, best_accuracy=0.99, final_loss=0.02)
    resp, html = page_html(client_a)
    assert resp.status_code == 200
    assert row_ids(html) == [run.pk]
    for text in ("cnn-lr3", "SUCCEEDED", "digits", "0.9812", "0.0610", "2m 05s", "alice", ">base<", "2 × 1 core"):
        assert text in html, text
    headers = re.findall(r'<th class="[^"]*" data-col="(\w+)"', html)
    assert headers == table.DEFAULT_COLUMNS


@pytest.mark.django_db
def test_cols_choose_the_columns(client_a, finished):
    resp, html = page_html(client_a, "cols=test_accuracy,name,cluster")
    assert resp.status_code == 200
    assert re.findall(r'data-col="(\w+)"', html) == ["name", "test_accuracy", "cluster"]
    assert "loopback" in html  # the cluster column
    resp, html = page_html(client_a, "cols=name&cols=bogus")
    assert resp.status_code == 200 and re.findall(r'data-col="(\w+)"', html) == ["name"]
    assert "unknown column bogus" in html


@pytest.mark.django_db
def test_archived_hidden_by_default_and_toggle_shows_them(client_a, make_run):
    live = make_run("live", status="SUCCEEDED")
    gone = make_run("gone", status="SUCCEEDED", archived=True)
    assert row_ids(page_html(client_a)[1]) == [live.pk]
    assert row_ids(page_html(client_a, "archived=1")[1]) == [gone.pk, live.pk]
    assert row_ids(page_html(client_a, "archived=only")[1]) == [gone.pk]


@pytest.mark.django_db
def test_filters_and_sort_live_in_the_url(client_a, make_run):
    a = make_run("a", status="SUCCEEDED", test_accuracy=0.99, epochs=5, tags="keep")
    make_run("b", status="SUCCEEDED", test_accuracy=0.80, epochs=5, tags="keep")
    c = make_run("c", status="SUCCEEDED", test_accuracy=0.97, epochs=9, tags="keep")
    make_run("d", status="FAILED", epochs=9)
    resp, html = page_html(client_a, "tag=keep&expr=accuracy+%3E+0.95&sort=-test_accuracy&status=SUCCEEDED")
    assert resp.status_code == 200
    assert row_ids(html) == [a.pk, c.pk]
    # the form shows what the URL says, and header links keep the filters
    assert 'value="accuracy &gt; 0.95"' in html and 'value="keep"' in html
    assert re.search(
        r'href="\?tag=keep&amp;expr=accuracy\+%3E\+0.95&amp;sort=test_accuracy&amp;status=SUCCEEDED"', html
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, message",
    [
        ("expr=accuracy+%3E", "expr: expected a value after accuracy &gt;"),
        ("expr=acuracy+%3E+1", "did you mean accuracy?"),
        ("status=DONE", "status: unknown status"),
        ("sort=bogus", "sort: unknown column"),
        ("sort=tags", "sort: unknown column"),
        ("cursor=garbage", "cursor: not a cursor this table made"),
        ("since=yesterday", "since: &#x27;yesterday&#x27; is not a date"),
        ("size=0", "size: a whole number from 1 to 100"),
        ("archived=perhaps", "archived:"),
    ],
)
def test_bad_input_is_a_message_not_a_500(client_a, finished, query, message):
    resp, html = page_html(client_a, query)
    assert resp.status_code == 400
    assert 'id="filter-error"' in html and message in html
    assert row_ids(html) == []


@pytest.mark.django_db
def test_garbage_never_breaks_the_page(client_a, finished):
    rng = random.Random(1)
    alphabet = "ab=<>!~()'\"\\ .,-_0123456789eE\x00%&|andornot "
    keys = ["status", "template", "dataset", "submitter", "tag", "since", "until", "q", "expr", "archived"]
    keys += ["starred", "sort", "cursor", "cols", "size"]
    for _ in range(300):
        params = {rng.choice(keys): "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))}
        resp = client_a.get("/", params)
        assert resp.status_code in (200, 400), params


@pytest.mark.django_db
def test_query_count_does_not_grow_with_rows(client_a, alice, make_run, django_assert_max_num_queries):
    for i in range(30):
        make_run(f"r{i}", status="SUCCEEDED", tags="x y", created_by=None if i % 7 == 0 else alice[0])
    with django_assert_max_num_queries(12):
        resp = client_a.get("/?size=25&cols=name,dataset,cluster,submitter,tags,resources")
    assert resp.status_code == 200 and len(row_ids(resp.content.decode())) == 25


# ---------------------------------------------------------------- sorting and keyset paging


@pytest.fixture
def varied(make_run, alice):
    """23 runs with ties, nulls and several datasets / submitters, created in a shuffled order."""
    rng = random.Random(3)
    carol = get_user_model().objects.create_user("carol")
    runs = []
    for i in range(23):
        runs.append(
            make_run(
                name=rng.choice(["aa", "bb", "cc", "dd"]) + str(i % 3),
                dataset=rng.choice(["d1", "d2", "d3"]),
                created_by=rng.choice([None, carol, alice[0]]),
                created_at=T0 + dt.timedelta(minutes=rng.choice([0, 1, 2, 3, 5, 8])),
                status=rng.choice(["SUCCEEDED", "FAILED", "QUEUED"]),
                template=rng.choice(["cnn", "lstm"]),
                test_accuracy=rng.choice([None, 0.5, 0.75, 0.9, 0.95]),
                epochs=rng.choice([1, 3, 5]) if i % 4 else None,
                learning_rate=rng.choice([0.001, 0.01]) if i % 5 else None,
                num_executors=rng.choice([1, 2]),
                duration_s=rng.choice([None, 10.0, 20.5]),
            )
        )
    return runs


def expected_order(runs, col, desc):
    """Rows with a value by (value, id), then rows without one by id; both flipped for descending."""

    def value(run):
        obj = run
        for part in col.path.split("__"):
            obj = getattr(obj, part) if obj is not None else None
        return obj

    with_value = sorted((r for r in runs if value(r) is not None), key=lambda r: (value(r), r.pk), reverse=desc)
    without = sorted((r for r in runs if value(r) is None), key=lambda r: r.pk, reverse=desc)
    return [r.pk for r in with_value + without]


def walk(qs, sort, size):
    pages, cursor = [], None
    while True:
        p = table.page(qs, sort, cursor, size)
        pages.append(p)
        if not p.next_cursor:
            return pages
        cursor = p.next_cursor


@pytest.mark.django_db
@pytest.mark.parametrize("key", [c.key for c in table.COLUMNS.values() if c.path])
@pytest.mark.parametrize("desc", [False, True])
def test_keyset_paging_matches_the_full_order_both_ways(varied, key, desc):
    col = table.COLUMNS[key]
    for run in varied:
        run.refresh_from_db()
    qs = Run.objects.filter(team=varied[0].team).select_related("dataset", "created_by", "cluster")
    sort = f"-{key}" if desc else key
    expected = expected_order(varied, col, desc)
    pages = walk(qs, sort, 4)
    assert [r.pk for p in pages for r in p.items] == expected
    assert pages[0].prev_cursor is None and all(p.prev_cursor for p in pages[1:])
    assert all(len(p.items) == 4 for p in pages[:-1])
    # backwards from the last page with the prev cursors gives the same pages
    back, p = [pages[-1]], pages[-1]
    while p.prev_cursor:
        p = table.page(qs, sort, p.prev_cursor, 4)
        back.append(p)
    assert [r.pk for p in reversed(back) for r in p.items] == expected


@pytest.mark.django_db
def test_prev_from_near_the_start_gives_a_full_first_page(make_run):
    runs = [make_run(f"r{i}", created_at=T0 + dt.timedelta(minutes=i)) for i in range(10)]
    qs = Run.objects.filter(team=runs[0].team)
    first = table.page(qs, "-created", None, 4)
    second = table.page(qs, "-created", first.next_cursor, 4)
    third = table.page(qs, "-created", second.next_cursor, 4)
    Run.objects.filter(pk__in=[runs[9].pk, runs[8].pk]).delete()  # two rows before the cursor vanish
    again = table.page(qs, "-created", second.prev_cursor, 4)
    assert [r.name for r in again.items] == ["r7", "r6", "r5", "r4"] and again.prev_cursor is None
    assert [r.name for r in third.items] == ["r1", "r0"] and third.next_cursor is None


@pytest.mark.django_db
def test_new_runs_do_not_shift_later_pages(make_run):
    runs = [make_run(f"r{i}", created_at=T0 + dt.timedelta(minutes=i)) for i in range(9)]
    qs = Run.objects.filter(team=runs[0].team)
    first = table.page(qs, "-created", None, 3)
    make_run("newest")  # created now, before everything in this order
    second = table.page(qs, "-created", first.next_cursor, 3)
    assert [r.name for r in first.items] == ["r8", "r7", "r6"]
    assert [r.name for r in second.items] == ["r5", "r4", "r3"]


@pytest.mark.django_db
def test_cursor_checks():
    qs = Run.objects.none()
    good = table.page(qs, "-created", None, 5)
    assert good.items == [] and good.next_cursor is None and good.prev_cursor is None
    cursor = table.encode_cursor("-test_accuracy", "next", table.Position(False, 0.5, 3))
    with pytest.raises(FilterError, match="another sort order"):
        table.page(qs, "-created", cursor, 5)
    bad = table.encode_cursor("-created", "next", table.Position(False, "not a date", 3))
    with pytest.raises(FilterError, match="not a cursor this table made"):
        table.page(qs, "-created", bad, 5)
    null_on_not_null = table.encode_cursor("name", "next", table.Position(True, None, 3))
    with pytest.raises(FilterError, match="not a cursor"):
        table.page(qs, "name", null_on_not_null, 5)
    for junk in ("%%%", "eyJ9", "bnVsbA", "W10"):
        with pytest.raises(FilterError):
            table.page(qs, "-created", junk, 5)


@pytest.mark.django_db
def test_pager_links_walk_the_table(client_a, make_run):
    runs = [make_run(f"r{i}", created_at=T0 + dt.timedelta(minutes=i)) for i in range(7)]
    seen, url = [], "/?size=3&cols=name"
    while url:
        resp = client_a.get(url)
        html = resp.content.decode()
        seen += row_ids(html)
        m = re.search(r'href="([^"]+)" id="next-page"', html)
        url = "/" + m.group(1).replace("&amp;", "&") if m else None
    assert seen == [r.pk for r in reversed(runs)]
    assert 'id="prev-page"' in html and "cols=name" in html


# ---------------------------------------------------------------- editing


@pytest.mark.django_db
def test_edit_name_tags_notes(client_a, finished):
    url = reverse("run_edit", args=[finished.pk])
    assert client_a.get(url).status_code == 200
    resp = client_a.post(url, {"name": " renamed ", "tags": "Sweep, lr:0.01  baseline sweep", "notes": "good\r\nrun"})
    assert resp.status_code == 302
    finished.refresh_from_db()
    assert finished.name == "renamed" and finished.notes == "good\nrun"
    assert finished.tags == "baseline lr:0.01 sweep"
    assert sorted(RunTag.objects.filter(run=finished).values_list("tag", flat=True)) == ["baseline", "lr:0.01", "sweep"]
    client_a.post(url, {"name": "renamed", "tags": "sweep", "notes": ""})
    assert list(RunTag.objects.filter(run=finished).values_list("tag", flat=True)) == ["sweep"]
    assert row_ids(page_html(client_a, "tag=sweep")[1]) == [finished.pk]
    assert row_ids(page_html(client_a, "tag=baseline")[1]) == []
    assert row_ids(page_html(client_a, "q=SWEEP")[1]) == [finished.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "  ", "tags": "", "notes": ""}, "A run needs a name."),
        ({"name": "x" * 201, "tags": "", "notes": ""}, "at most 200 characters"),
        ({"name": "ok", "tags": "bad/tag", "notes": ""}, "Tags: tag &#x27;bad/tag&#x27;"),
        ({"name": "ok", "tags": " ".join(f"t{i}" for i in range(21)), "notes": ""}, "at most 20 tags"),
        ({"name": "ok", "tags": "x" * 41, "notes": ""}, "at most 40 characters"),
        ({"name": "ok", "tags": "", "notes": "n" * 20001}, "Notes have at most"),
    ],
)
def test_bad_edits_are_refused_with_a_message(client_a, finished, data, message):
    resp = client_a.post(reverse("run_edit", args=[finished.pk]), data)
    assert resp.status_code == 400 and message in resp.content.decode()
    finished.refresh_from_db()
    assert finished.name == "finished-run" and finished.tags == ""


@pytest.mark.django_db
def test_star_and_archive(client_a, finished, make_run):
    running = make_run("still-running", status="RUNNING")
    assert client_a.post(reverse("run_star", args=[finished.pk]), {"starred": "1"}).status_code == 302
    assert row_ids(page_html(client_a, "starred=1")[1]) == [finished.pk]
    resp = client_a.post(reverse("run_star", args=[finished.pk]), {"starred": "0"}, HTTP_ACCEPT="application/json")
    assert resp.json() == {"id": finished.pk, "starred": False}
    assert client_a.post(reverse("run_archive", args=[finished.pk]), {"archived": "1"}).status_code == 302
    assert row_ids(page_html(client_a)[1]) == [running.pk]
    assert row_ids(page_html(client_a, "archived=1")[1]) == [running.pk, finished.pk]
    resp = client_a.post(reverse("run_archive", args=[running.pk]), {"archived": "1"}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 400 and "archive it once it has ended" in resp.json()["error"]
    client_a.post(reverse("run_archive", args=[finished.pk]), {"archived": "0"})
    finished.refresh_from_db()
    assert not finished.archived


@pytest.mark.django_db
def test_only_editable_rows_get_edit_controls(client_a, make_run, make_member):
    other, _ = make_member("mo", "Team A", "member")
    mine = make_run("mine", status="SUCCEEDED")
    theirs = make_run("theirs", status="SUCCEEDED", created_by=other)
    html = page_html(client_a)[1]
    assert reverse("run_edit", args=[mine.pk]) in html
    assert reverse("run_edit", args=[theirs.pk]) not in html
    assert reverse("run_star", args=[theirs.pk]) not in html


# ---------------------------------------------------------------- denormalized summary columns


@pytest.mark.django_db
def test_hyperparameter_columns_are_copied_at_create(make_run):
    run = make_run(epochs=7, batch_size=128, learning_rate=0.0005)
    run.refresh_from_db()
    assert (run.epochs, run.batch_size, run.learning_rate) == (7, 128, 0.0005)
    odd = make_run(template="featurizer", status="QUEUED")
    odd.refresh_from_db()
    assert (odd.epochs, odd.batch_size, odd.learning_rate) == (None, None, None)


def _points(run, name, values):
    MetricPoint.objects.bulk_create(
        MetricPoint(run=run, name=name, executor=str(ex), step=10 * e, epoch=e, value=v, wall_time=0.0)
        for (e, ex), v in values.items()
    )


@pytest.mark.django_db
def test_summary_on_terminal_transition(make_run):
    run = make_run("t", status="QUEUED", epochs=2)
    run.transition(Run.Status.SUBMITTED)
    run.transition(Run.Status.RUNNING)
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(seconds=90))
    run.refresh_from_db()
    _points(run, "epoch_accuracy", {(1, 0): 0.80, (1, 1): 0.82, (2, 0): 0.91, (2, 1): 0.89})
    _points(run, "epoch_loss", {(1, 0): 0.6, (1, 1): 0.5, (2, 0): 0.3, (2, 1): 0.2})
    _points(run, "loss", {(2, 0): 0.01})  # per-step points do not count
    run.transition(Run.Status.SUCCEEDED, result={"test_accuracy": 0.93, "test_loss": 0.25}, test_accuracy=0.93)
    run.refresh_from_db()
    assert run.best_accuracy == pytest.approx(0.91)
    assert run.final_loss == pytest.approx(0.25)
    assert run.test_loss == pytest.approx(0.25) and run.test_accuracy == pytest.approx(0.93)
    assert 89 <= run.duration_s <= 95


@pytest.mark.django_db
def test_summary_of_a_run_cancelled_while_queued(make_run):
    run = make_run("q", status="QUEUED")
    run.transition(Run.Status.CANCELLED, reason="no")
    run.refresh_from_db()
    assert run.duration_s is None and run.best_accuracy is None and run.final_loss is None


@pytest.mark.django_db
def test_metrics_arrived_refreshes_only_for_epoch_points(make_run, django_assert_num_queries):
    run = make_run("live", status="RUNNING")
    with django_assert_num_queries(0):
        metrics_arrived(run, ["loss", "accuracy"])
    _points(run, "epoch_accuracy", {(1, 0): 0.7})
    _points(run, "epoch_loss", {(1, 0): 0.9})
    metrics_arrived(run, ["epoch_accuracy", "epoch_loss"])
    run.refresh_from_db()
    assert (run.best_accuracy, run.final_loss) == (0.7, 0.9)
    fields = summarize(run)
    assert fields["best_accuracy"] == 0.7 and fields["duration_s"] is None


@pytest.mark.django_db
def test_every_cell_is_escaped(client_a, make_run):
    run = make_run("<b>name</b>", template="<i>tmpl</i>", dataset="<u>data</u>")  # tags allow no markup
    Run.objects.filter(pk=run.pk).update(notes='"quoted" <em>note</em>')
    _, html = page_html(client_a, "cols=name,template,dataset")
    row = html[html.index(f'<tr data-run="{run.pk}"') :]
    row = row[: row.index("</tr>")]
    for raw in ("<b>", "<i>", "<u>", "<em>"):
        assert raw not in row
    for escaped in ("&lt;b&gt;name&lt;/b&gt;", "&lt;i&gt;tmpl&lt;/i&gt;", "&lt;u&gt;data&lt;/u&gt;"):
        assert escaped in row
    assert 'title="&quot;quoted&quot; &lt;em&gt;note&lt;/em&gt;"' in row
    assert '<td class="c-template">&lt;i&gt;tmpl&lt;/i&gt;</td>' in row
