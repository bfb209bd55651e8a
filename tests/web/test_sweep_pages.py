"""The sweep pages: list, form, detail, live JSON, cancel and rerun-best; team scoping and logins
(the services behind them: tests/web/test_sweeps.py)."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from webapp.datasets.models import Dataset
from webapp.runs.models import MetricPoint, Run
from webapp.sweeps.forms import SweepForm
from webapp.sweeps.models import Sweep, Trial

LR = {"type": "range", "low": 0.0001, "high": 0.1, "log": True}


@pytest.fixture
def finished_sweep(make_sweep):
    """Three ended trials (the best is trial 1; trial 2 was pruned after epoch 1) and one running."""
    return make_sweep(
        name="lr sweep",
        pruner="median",
        max_trials=6,
        trials=[
            {"params": {"learning_rate": 0.01}, "value": 0.8, "epochs_run": 2, "epochs": {1: 0.6, 2: 0.8}},
            {"params": {"learning_rate": 0.002}, "value": 0.9, "epochs_run": 2, "epochs": {1: 0.7, 2: 0.9}},
            {
                "params": {"learning_rate": 0.09},
                "status": "PRUNED",
                "value": 0.2,
                "epochs_run": 1,
                "pruned_at_epoch": 1,
                "epochs": {1: 0.2},
                "decision": "stop",
            },
            {"params": {"learning_rate": 0.0005}, "status": "RUNNING", "run_status": "RUNNING", "epochs": {1: 0.65}},
        ],
    )


def urls(sweep):
    return {
        "detail": reverse("sweep_detail", args=[sweep.pk]),
        "live": reverse("sweep_live", args=[sweep.pk]),
        "cancel": reverse("sweep_cancel", args=[sweep.pk]),
        "rerun": reverse("sweep_rerun_best", args=[sweep.pk]),
    }


# --- pages -------------------------------------------------------------------------------------


def test_the_list_shows_the_teams_sweeps_with_progress_and_best(client_a, finished_sweep, make_sweep, bob):
    make_sweep(name="bobs sweep", team=bob[1], created_by=bob[0])
    r = client_a.get(reverse("sweep_list"))
    assert r.status_code == 200
    html = r.content.decode()
    row = html[html.index(f'data-sweep="{finished_sweep.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "lr sweep" in row and "RUNNING" in row
    assert "3 / 6" in row and "1 running" in row  # three trials ended of six
    assert "0.9000" in row and "trial 1" in row  # the best value, not the pruned trial's
    assert "bobs sweep" not in html
    assert 'href="/sweeps/"' in html  # the nav's link


def test_the_detail_page_shows_trials_best_pruned_and_progress(client_a, finished_sweep):
    r = client_a.get(urls(finished_sweep)["detail"])
    assert r.status_code == 200
    html = r.content.decode()
    assert "3 of 6 trials finished" in html and ", 1 running" in html
    assert "pruned at epoch 1" in html
    best_row = html[html.index('data-trial="1" class="best"') :]
    assert "★ best" in best_row[: best_row.index("</tr>")]
    assert "learning_rate=0.002" in best_row
    runs = {t.number: t.run_id for t in finished_sweep.trials.all()}
    assert f'href="/runs/{runs[2]}/">run {runs[2]}</a>' in html
    assert 'id="cancel-form"' in html and 'id="rerun-best-form" >' in html  # both shown
    assert "js/sweep.js" in html and "chart.umd.min.js" in html
    data = json.loads(html.split('<script id="sweep-data" type="application/json">')[1].split("</script>")[0])
    assert [t["number"] for t in data["trials"]] == [0, 1, 2, 3]
    assert "<code>learning_rate</code>: 0.0001 – 0.1 (log)" in html  # the space, described
    # The finished trials, best first, to compare (the pruned trial 2 is not among them).
    assert f'href="/runs/compare/?ids={runs[1]},{runs[0]}">Compare the top 2 trials</a>' in html
    assert data["top_run_ids"] == [runs[1], runs[0]]


def test_a_finished_sweep_offers_no_cancel_and_a_sweep_without_a_finished_trial_no_rerun(client_a, make_sweep):
    sweep = make_sweep(status="CANCELLED", trials=[{"status": "FAIL", "run_status": "CANCELLED"}])
    html = client_a.get(urls(sweep)["detail"]).content.decode()
    assert 'id="cancel-form"' not in html
    assert 'id="rerun-best-form" hidden' in html and "No trial has finished yet." in html


def test_the_live_json_has_each_trial_with_its_epochs(client_a, finished_sweep):
    MetricPoint.objects.create(
        run=finished_sweep.trials.get(number=0).run,
        name="val_accuracy",
        executor="0",
        step=9,
        epoch=2,
        value=0.1,
        wall_time=0,
    )  # the pruner's rows win over the run's points
    data = client_a.get(urls(finished_sweep)["live"]).json()
    assert (data["status"], data["terminal"], data["budget"], data["finished"], data["running"]) == (
        "RUNNING",
        False,
        6,
        3,
        1,
    )
    runs = {t.number: t.run_id for t in finished_sweep.trials.all()}
    assert data["best"] == {"number": 1, "value": 0.9, "run_id": runs[1], "test_accuracy": None}
    by_number = {t["number"]: t for t in data["trials"]}
    assert by_number[0]["epochs"] == [[1, 0.6], [2, 0.8]]
    assert by_number[1]["best"] and not by_number[0]["best"]
    pruned = by_number[2]
    assert (pruned["status"], pruned["pruned_at_epoch"], pruned["epochs_run"], pruned["epochs"]) == (
        "PRUNED",
        1,
        1,
        [[1, 0.2]],
    )
    assert by_number[3]["status"] == "RUNNING" and by_number[3]["value"] is None
    assert by_number[3]["run_url"] == f"/runs/{runs[3]}/"
    assert by_number[2]["params"] == {"learning_rate": 0.09} and by_number[2]["params_text"] == "learning_rate=0.09"
    assert by_number[2]["param_cells"] == ["0.09"] and "duration_s" in by_number[2]
    assert data["counts"] == {"RUNNING": 1, "COMPLETE": 2, "PRUNED": 1, "FAIL": 0}
    assert data["importance"] == {"learning_rate": 1.0}  # the one varied parameter explains it all


def test_without_a_pruner_the_curves_come_from_the_runs_validation_points(client_a, make_sweep):
    sweep = make_sweep(trials=[{"value": 0.7, "epochs_run": 2}, {"status": "FAIL", "run_status": "FAILED"}])
    run = sweep.trials.get(number=0).run
    for step, epoch, value in [(5, 1, 0.5), (10, 2, 0.7)]:
        MetricPoint.objects.create(
            run=run, name="val_accuracy", executor="0", step=step, epoch=epoch, value=value, wall_time=0
        )
    MetricPoint.objects.create(run=run, name="val_loss", executor="0", step=10, epoch=2, value=3.0, wall_time=0)
    data = client_a.get(urls(sweep)["live"]).json()
    assert [t["epochs"] for t in data["trials"]] == [[[1, 0.5], [2, 0.7]], []]


def test_a_diverged_epoch_is_a_gap_not_a_huge_number(client_a, make_sweep):
    sweep = make_sweep(
        trials=[{"status": "PRUNED", "value": None, "pruned_at_epoch": 2, "epochs": {1: 0.4, 2: -1e300}}]
    )
    data = client_a.get(urls(sweep)["live"]).json()
    assert data["trials"][0]["epochs"] == [[1, 0.4], [2, None]]


def test_importance_reaches_the_page_once_trials_differ(client_a, make_sweep):
    space = {"learning_rate": LR, "dropout": {"type": "range", "low": 0.0, "high": 0.5, "log": False}}
    trials = [
        {"params": {"learning_rate": lr, "dropout": d}, "value": v}
        for lr, d, v in [(0.001, 0.1, 0.9), (0.01, 0.4, 0.5), (0.05, 0.2, 0.3), (0.0005, 0.3, 0.95)]
    ]
    sweep = make_sweep(space=space, trials=trials)
    data = client_a.get(urls(sweep)["live"]).json()
    assert set(data["importance"]) == {"learning_rate", "dropout"}
    assert abs(sum(data["importance"].values()) - 1) < 1e-6
    html = client_a.get(urls(sweep)["detail"]).content.decode()
    assert 'id="importance-box" >' in html  # not hidden


def test_the_run_page_of_a_trial_links_its_sweep(client_a, finished_sweep):
    trial = finished_sweep.trials.get(number=2)
    html = client_a.get(reverse("run_detail", args=[trial.run_id])).content.decode()
    assert f'Trial 2 of sweep <a href="/sweeps/{finished_sweep.pk}/">lr sweep</a>, pruned at epoch 1' in html
    plain = Run.objects.get(name="seed-run")
    assert 'id="sweep-trial"' not in client_a.get(reverse("run_detail", args=[plain.pk])).content.decode()


# --- scoping and logins ------------------------------------------------------------------------


def test_another_teams_sweep_is_404_on_every_url(client_b, finished_sweep):
    u = urls(finished_sweep)
    for name in ("detail", "live"):
        assert client_b.get(u[name]).status_code == 404, name
    for name in ("cancel", "rerun"):
        assert client_b.post(u[name]).status_code == 404, name
    finished_sweep.refresh_from_db()
    assert finished_sweep.status == "RUNNING"
    assert Run.objects.count() == 5  # the seed run and four trials: no rerun was made
    assert "lr sweep" not in client_b.get(reverse("sweep_list")).content.decode()


def test_every_page_needs_a_login(db, finished_sweep):
    anon = Client()
    u = urls(finished_sweep)
    for url in (reverse("sweep_list"), reverse("sweep_new"), u["detail"]):
        r = anon.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/"), url
    assert anon.get(u["live"], HTTP_ACCEPT="application/json").status_code == 401
    for url in (u["cancel"], u["rerun"]):
        assert anon.post(url).status_code == 302
    assert Sweep.objects.get(pk=finished_sweep.pk).status == "RUNNING"


# --- the form ----------------------------------------------------------------------------------


def form_data(dataset, cluster, **fields):
    """The form as a browser sends it: every field's initial value, then these."""
    form = SweepForm(datasets=Dataset.objects.all(), team=None)
    data = {name: f.initial for name, f in form.fields.items() if f.initial is not None}
    data.update(
        name="form sweep",
        dataset=dataset.pk,
        template="cnn",
        cluster=cluster.pk,
        num_executors=1,
        executor_cores=1,
        executor_memory_mb=1024,
        hp_cnn_epochs=2,
        max_trials=4,
        parallel=2,
        space=json.dumps({"learning_rate": LR, "optimizer": {"type": "choice", "values": ["adam", "sgd"]}}),
    )
    data.update(fields)
    return data


def test_the_form_renders_with_its_fields(client_a, digits_dataset, cluster):
    html = client_a.get(reverse("sweep_new")).content.decode()
    for name in ("strategy", "objective", "pruner", "pruner_startup_trials", "pruner_warmup_epochs",
                 "pruner_reduction_factor", "max_trials", "parallel", "seed", "space", "cluster", "num_executors",
                 "hp_cnn_learning_rate"):  # fmt: skip
        assert f'name="{name}"' in html, name
    assert 'value="tpe"' in html and 'value="asha"' in html
    assert "How to write the space" in html and "&quot;type&quot;: &quot;choice&quot;" in html


def sweep_fieldset(html):
    """The opening tag of the new-run page's sweep fieldsets, and what it holds."""
    start = html.index('<fieldset id="sweep-fields"')
    tag = html[start : html.index(">", start) + 1]
    return tag, html[start : html.index('id="template-schemas"', start)]


def test_one_page_switches_between_a_run_and_a_sweep(client_a, digits_dataset, cluster):
    run = client_a.get(reverse("run_new") + f"?dataset={digits_dataset.pk}").content.decode()
    assert "<title>New run · Sparkdeck" in run and ">New run</h1>" in run and ">Submit run</button>" in run
    assert f'<form method="post" class="card" id="run-form" action="/runs/new/?dataset={digits_dataset.pk}">' in run
    assert 'id="mode-run" data-mode="run" aria-selected="true"' in run
    assert 'id="mode-sweep" data-mode="sweep" aria-selected="false"' in run
    assert f'href="/sweeps/new/?dataset={digits_dataset.pk}">Sweep</a>' in run  # a link: works without JS
    # The sweep's fields are there, disabled and hidden: the browser neither checks nor sends them.
    tag, fields = sweep_fieldset(run)
    assert tag == '<fieldset id="sweep-fields" class="mode-fields" data-only="sweep" disabled hidden>'
    for name in ("strategy", "objective", "space", "max_trials", "parallel", "seed", "pruner"):
        assert f'name="{name}"' in fields, name
    assert 'id="parallel-cap"' in fields and 'id="space-help"' in fields
    assert "js/mode_switch.js" in run and "js/space_builder.js" in run and "js/sweep_form.js" in run
    assert '<legend data-text-run="Hyperparameters" data-text-sweep="Base hyperparameters' in run
    assert "<legend>Search</legend>" in run and run.count('name="strategy"') == 1

    sweep = client_a.get(reverse("sweep_new")).content.decode()
    assert "<title>New sweep · Sparkdeck" in sweep and ">New sweep</h1>" in sweep and ">Start sweep</button>" in sweep
    assert '<form method="post" class="card" id="sweep-form" action="/sweeps/new/">' in sweep
    assert 'id="mode-sweep" data-mode="sweep" aria-selected="true"' in sweep
    assert 'href="/runs/new/">One run</a>' in sweep
    assert sweep_fieldset(sweep)[0] == '<fieldset id="sweep-fields" class="mode-fields" data-only="sweep">'
    assert ">Base hyperparameters (a varied one takes the space's values)</legend>" in sweep

    # ?mode=sweep on the run URL is the sweep page, its other parameters kept.
    r = client_a.get(reverse("run_new") + f"?mode=sweep&dataset={digits_dataset.pk}")
    assert r.status_code == 302 and r["Location"] == f"/sweeps/new/?dataset={digits_dataset.pk}"
    assert client_a.get(reverse("run_new") + "?mode=sweep")["Location"] == "/sweeps/new/"


def test_a_viewer_sees_the_same_page_in_each_mode(make_member, client_a, digits_dataset, cluster):
    viewer, _ = make_member("vera", "Team A", role="viewer")
    c = Client()
    c.force_login(viewer)
    for name in ("run_new", "sweep_new"):
        mine, theirs = (_no_csrf(x.get(reverse(name)).content.decode()) for x in (client_a, c))
        assert theirs.replace("vera", "alice") == mine, name  # the switch and the form as for a member


def _no_csrf(html):
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


def test_the_form_starts_a_sweep(client_a, digits_dataset, cluster, django_capture_on_commit_callbacks):
    data = form_data(digits_dataset, cluster, strategy="tpe", pruner="median", pruner_warmup_epochs="0", seed="7")
    with django_capture_on_commit_callbacks() as callbacks:
        r = client_a.post(reverse("sweep_new"), data)
    sweep = Sweep.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/sweeps/{sweep.pk}/"
    assert len(callbacks) == 1  # its first trials are made once the request commits
    assert (sweep.name, sweep.strategy, sweep.pruner, sweep.pruner_warmup_epochs, sweep.seed) == (
        "form sweep",
        "tpe",
        "median",
        0,
        7,
    )
    assert sweep.space["optimizer"] == {"type": "choice", "values": ["adam", "sgd"]}
    assert sweep.base_hyperparameters["epochs"] == 2 and sweep.created_by.username == "alice"
    assert (sweep.num_executors, sweep.executor_memory_mb, sweep.max_trials, sweep.parallel) == (1, 1024, 4, 2)


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"space": "{not json"}, "The space is not valid JSON"),
        ({"space": '{"learning_rate": NaN}'}, "The space is not valid JSON"),
        ({"space": "[" * 5000}, "The space is"),
        ({"space": '{"units": {"type": "choice", "values": [1]}}'}, "units: CNN"),
        ({"space": '{"learning_rate": {"type": "range", "low": 0.1, "high": 0.01}}'}, "low must be below high"),
        ({"space": '{"learning_rate": {"type": "range", "low": 0.001, "high": 1e999}}'}, "learning_rate: high"),
        ({"space": '[{"learning_rate": 0.1}]'}, "must be an object"),
        ({"space": "1" * 5000}, "The space is not valid JSON"),
        ({"max_trials": "501"}, "must be from 1 to 500"),
        ({"parallel": "3¹"}, "must be a whole number"),
        ({"parallel": "3"}, "at most 2 trial(s) at once"),
        ({"hp_cnn_validation_split": "0"}, "set validation_split above 0"),
        ({"hp_cnn_epochs": "lots"}, "epochs"),
        ({"num_executors": "3"}, "executors"),
        ({"strategy": "bayes"}, "Select a valid choice"),
    ],
)
def test_a_bad_request_gives_the_form_back_with_its_error(client_a, digits_dataset, cluster, fields, words):
    r = client_a.post(reverse("sweep_new"), form_data(digits_dataset, cluster, **fields))
    assert r.status_code == 400
    html = r.content.decode()
    assert 'id="sweep-errors"' in html and 'class="errorlist' in html
    assert words.replace("'", "&#x27;") in html
    assert 'id="sweep-form"' in html and "form sweep" in html  # what was typed is kept
    assert not Sweep.objects.exists()


def test_a_space_error_is_shown_beside_the_space(client_a, digits_dataset, cluster):
    space = json.dumps({"optimizer": {"type": "choice", "values": []}})
    html = client_a.post(reverse("sweep_new"), form_data(digits_dataset, cluster, space=space)).content.decode()
    field = html[html.index('name="space"') :]
    assert field.index("optimizer: a choice needs a non-empty list") < field.index("How to write the space")


def test_a_viewer_cannot_start_or_cancel_a_sweep(make_member, cluster, finished_sweep):
    from webapp.accounts.models import Membership

    viewer, team = make_member("vera", "Team A", role="viewer")
    assert Membership.objects.get(user=viewer).team == finished_sweep.team
    c = Client()
    c.force_login(viewer)
    r = c.post(reverse("sweep_new"), form_data(finished_sweep.dataset, cluster))
    assert r.status_code == 400 and "Viewers cannot start sweeps." in r.content.decode()
    assert Sweep.objects.count() == 1
    c.post(urls(finished_sweep)["cancel"])
    assert Sweep.objects.get(pk=finished_sweep.pk).status == "RUNNING"
    assert 'id="cancel-form"' not in c.get(urls(finished_sweep)["detail"]).content.decode()


# --- cancel and rerun best ---------------------------------------------------------------------


def test_cancel_needs_a_post_and_cancels_the_running_trials(client_a, finished_sweep):
    u = urls(finished_sweep)
    assert client_a.get(u["cancel"]).status_code == 405
    assert Sweep.objects.get(pk=finished_sweep.pk).status == "RUNNING"
    r = client_a.post(u["cancel"])
    assert r.status_code == 302 and r["Location"] == u["detail"]
    finished_sweep.refresh_from_db()
    assert finished_sweep.status == "CANCELLED" and "alice" in finished_sweep.status_reason
    running = finished_sweep.trials.get(number=3)
    assert running.run.status == "CANCELLED" and running.status == "FAIL"
    assert finished_sweep.trials.get(number=1).status == "COMPLETE"  # finished trials are kept
    again = client_a.post(u["cancel"], follow=True)
    assert "already ended" in again.content.decode()


def test_cancel_checks_the_csrf_token(finished_sweep, alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice[0])
    assert c.post(urls(finished_sweep)["cancel"]).status_code == 403
    assert Sweep.objects.get(pk=finished_sweep.pk).status == "RUNNING"


def test_rerun_best_starts_a_normal_run_with_the_best_trials_hyperparameters(client_a, make_sweep):
    sweep = make_sweep(
        name="lr sweep",
        pruner="median",
        num_executors=1,
        executor_memory_mb=1024,
        trials=[
            {"params": {"learning_rate": 0.01}, "value": 0.8},
            {"params": {"learning_rate": 0.002}, "value": 0.9},
            {"params": {"learning_rate": 0.05}, "status": "PRUNED", "value": 0.95, "pruned_at_epoch": 1},
        ],
    )
    assert client_a.get(urls(sweep)["rerun"]).status_code == 405
    r = client_a.post(urls(sweep)["rerun"])
    run = Run.objects.order_by("-pk").first()
    assert r.status_code == 302 and r["Location"] == f"/runs/{run.pk}/"
    assert run.hyperparameters["learning_rate"] == 0.002  # the best finished trial's, not the pruned one's
    assert run.hyperparameters["epochs"] == 3 and run.hyperparameters["validation_split"] == 0.1
    assert run.status == "QUEUED" and run.name == "lr sweep · best (trial 1)"
    assert (run.dataset_id, run.num_executors, run.executor_memory_mb) == (sweep.dataset_id, 1, 1024)
    assert run.early_stop == {} and not Trial.objects.filter(run=run).exists()  # a normal run


def test_rerun_best_without_a_finished_trial_says_so(client_a, make_sweep):
    sweep = make_sweep(trials=[{"status": "RUNNING", "run_status": "RUNNING"}])
    before = Run.objects.count()
    r = client_a.post(urls(sweep)["rerun"], follow=True)
    assert r.redirect_chain[-1][0] == urls(sweep)["detail"]
    assert "no trial has finished yet" in r.content.decode()
    assert Run.objects.count() == before


def test_the_form_s_trials_at_once_cap_follows_the_resources_and_the_quota(client_a, client_b, cluster, alice):
    from webapp.clusters.models import TeamQuota

    url = reverse("sweep_limit")
    ask = {"cluster": cluster.pk, "num_executors": 1, "executor_cores": 1, "executor_memory_mb": 1024}
    # The idle loopback cluster (2 workers × 1 core): two one-executor trials, one two-executor trial.
    one = client_a.get(url, ask).json()
    assert one["most"] == 2 and "loopback holds 2 run(s)" in one["why"]
    assert client_a.get(url, {**ask, "num_executors": 2}).json()["most"] == 1
    TeamQuota.objects.create(cluster=cluster, team=alice[1], max_concurrent_runs=1)
    quota = client_a.get(url, ask).json()
    assert quota == {"most": 1, "why": "your team's quota allows 1 run(s)"}
    assert client_b.get(url, ask).json()["most"] == 2  # another team's quota is not theirs
    for bad, field in [
        ({**ask, "num_executors": "²"}, "num_executors"),
        ({**ask, "executor_memory_mb": "9" * 40}, "executor_memory_mb"),
        ({**ask, "cluster": "\x00"}, "cluster"),
        ({**ask, "cluster": 999999}, "cluster: no such cluster"),
    ]:
        r = client_a.get(url, bad)
        assert r.status_code == 400 and field in r.json()["error"], bad
    anon = Client().get(url, ask)
    assert anon.status_code in (302, 401)
    html = client_a.get(reverse("sweep_new")).content.decode()
    assert f'data-url="{url}"' in html and "js/sweep_form.js" in html


def test_the_list_pages_pager_links_newer_and_older_pages():
    from django.core.paginator import Paginator
    from django.template.loader import render_to_string

    html = render_to_string("_pager.html", {"page": Paginator(range(120), 50).page(2)})
    assert 'href="?page=1" rel="prev"' in html and 'href="?page=3" rel="next"' in html and "page 2 of 3" in html
    assert render_to_string("_pager.html", {"page": Paginator(range(3), 50).page(1)}).strip() == ""
