"""The sweep page in a real browser: the charts draw (pruned trials' curves end early), the page follows
live.json while the sweep runs, the sweep pages fit a phone's width, and the new-run page switches to a
sweep in place (what was typed stays) and starts one."""

import pytest

from tests.browser.conftest import PHONE
from tests.browser.login import log_in_at
from tests.browser.test_phone import check, check_now
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.sweeps.models import Sweep, Trial, TrialEpoch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SPACE = {
    "learning_rate": {"type": "range", "low": 0.0001, "high": 0.1, "log": True},
    "dropout": {"type": "range", "low": 0.0, "high": 0.5, "log": False},
}


@pytest.fixture
def sweep(alice, cluster):
    """A running median sweep: three finished trials, one pruned after epoch 1, one running."""
    user, team = alice
    dataset = Dataset.objects.create(team=team, name="digits", status="READY", shape=[8, 8, 1], num_classes=10)
    sweep = Sweep.objects.create(
        team=team,
        created_by=user,
        name="a sweep with a rather long name to wrap on a phone",
        dataset=dataset,
        cluster=cluster,
        template="cnn",
        space=SPACE,
        base_hyperparameters={"epochs": 3, "validation_split": 0.1},
        pruner="median",
        max_trials=8,
    )
    rows = [
        ("COMPLETE", 0.8, {1: 0.5, 2: 0.7, 3: 0.8}),
        ("COMPLETE", 0.9, {1: 0.6, 2: 0.8, 3: 0.9}),
        ("PRUNED", 0.2, {1: 0.2}),
        ("COMPLETE", 0.5, {1: 0.3, 2: 0.4, 3: 0.5}),
        ("RUNNING", None, {1: 0.55}),
    ]
    for number, (status, value, epochs) in enumerate(rows):
        params = {"learning_rate": 0.001 * (number + 1), "dropout": 0.1 * number}
        run = Run.objects.create(
            team=team,
            created_by=user,
            name=f"trial {number}",
            dataset=dataset,
            cluster=cluster,
            template="cnn",
            hyperparameters={**sweep.base_hyperparameters, **params},
            status="RUNNING" if status == "RUNNING" else "SUCCEEDED",
        )
        trial = Trial.objects.create(
            sweep=sweep,
            number=number,
            run=run,
            params=params,
            status=status,
            value=value,
            epochs_run=len(epochs),
            pruned_at_epoch=1 if status == "PRUNED" else None,
        )
        for epoch, v in epochs.items():
            TrialEpoch.objects.create(trial=trial, epoch=epoch, value=v, decision="continue")
    return sweep


def chart(page, canvas_id):
    return page.evaluate(
        """(id) => {
          const c = Chart.getChart(document.getElementById(id));
          return c ? c.data.datasets.map(d => ({label: d.label, dash: d.borderDash || [],
                     xs: d.data.map(p => p.x ?? null), n: d.data.length})) : null;
        }""",
        canvas_id,
    )


def test_the_sweep_page_draws_its_charts_and_follows_the_sweep(live_server, sweep, page):
    url = f"{live_server.url}/sweeps/{sweep.pk}/"
    log_in_at(page, url)
    page.wait_for_load_state("networkidle")
    trials = {d["label"]: d for d in chart(page, "trials-chart")}
    assert trials["finished"]["n"] == 3 and trials["pruned (last epoch)"]["n"] == 1
    assert trials["best so far"]["xs"] == [0, 1, 2, 3, 4]
    epochs = {d["label"]: d for d in chart(page, "epochs-chart")}
    assert epochs["trial 2 (pruned)"]["xs"] == [1] and epochs["trial 2 (pruned)"]["dash"]  # ends early, dashed
    assert epochs["trial 1"]["xs"] == [1, 2, 3] and not epochs["trial 1"]["dash"]
    parallel = {d["label"]: d for d in chart(page, "parallel-chart")}
    assert set(parallel) == {"trial 0", "trial 1", "trial 2", "trial 3"}  # the ended ones
    assert parallel["trial 2"]["dash"] and parallel["trial 2"]["n"] == 3  # two parameters and the objective
    assert page.locator("#importance-box").is_visible()
    assert {d["label"] for d in chart(page, "importance-chart")} == {"importance"}
    assert page.locator("tr.best").get_attribute("data-trial") == "1"
    assert page.locator("#counts").inner_text() == "1 running · 3 complete · 1 pruned · 0 fail"

    # Sorting: by the objective (ascending, the trial without a value last), again for descending; by a
    # parameter's own column.
    def order():
        return page.eval_on_selector_all("#trial-rows tr", "rows => rows.map(r => r.dataset.trial)")

    page.click("#trials th[data-sort='value'] button")
    assert order() == ["2", "3", "0", "1", "4"]
    page.click("#trials th[data-sort='value'] button")
    assert order() == ["1", "0", "3", "2", "4"]
    assert page.get_attribute("#trials th[data-sort='value']", "aria-sort") == "descending"
    page.click("#trials th[data-sort='param:dropout'] button")
    assert order() == ["0", "1", "2", "3", "4"]
    names = page.eval_on_selector_all("#trials th[data-sort^='param:']", "hs => hs.map(h => h.dataset.sort.slice(6))")
    cells = page.locator("#trial-rows tr[data-trial='2'] td.num").all_inner_texts()
    assert dict(zip(names, cells, strict=True)) == {"learning_rate": "0.003", "dropout": "0.2"}
    page.click("#trials th[data-sort='value'] button")  # another column: ascending first
    page.click("#trials th[data-sort='value'] button")  # the objective, descending, kept across polls
    assert order() == ["1", "0", "3", "2", "4"]

    # The running trial finishes best: the table, the progress line and the best trial follow.
    Trial.objects.filter(sweep=sweep, number=4).update(status="COMPLETE", value=0.95, epochs_run=3)
    page.wait_for_function("document.getElementById('progress-text').textContent.startsWith('5 of 8')", timeout=6000)
    assert page.locator("tr.best").get_attribute("data-trial") == "4"
    assert order()[0] == "4"  # the new best heads the sorted table
    assert "Trial 4" in page.locator("#best-text").inner_text()
    Sweep.objects.filter(pk=sweep.pk).update(status="CANCELLED")
    page.wait_for_function("!document.getElementById('cancel-form') || document.getElementById('cancel-form').hidden")
    assert page.problems == []


def test_the_sweep_pages_fit_a_phone(live_server, sweep, phone_page):
    base = live_server.url
    log_in_at(phone_page, f"{base}/sweeps/")
    problems = check(phone_page, f"{base}/sweeps/", ["#sweeps", "h1"], shot="sweeps")
    problems += check(
        phone_page,
        f"{base}/sweeps/new/",
        ["#mode-switch", "#mode-run", "#id_space", "#sweep-form button[type=submit]"],
        shot="sweep-new",
    )
    # The run page switched to Sweep in place: the same fields, the same width.
    problems += check(phone_page, f"{base}/runs/new/", ["#mode-switch", "#mode-sweep", "#run-form button"])
    phone_page.click("#mode-sweep")
    problems += check_now(phone_page, ["#id_space", "#sweep-form button[type=submit]"], "/runs/new/ switched")
    problems += check(
        phone_page, f"{base}/sweeps/{sweep.pk}/", ["#trials", "#trials-chart", "#progress-text"], shot="sweep"
    )
    assert problems == [], problems
    assert phone_page.evaluate("document.documentElement.clientWidth") <= PHONE["width"]
    assert phone_page.problems == []


def test_the_new_run_page_switches_to_a_sweep_in_place(live_server, alice, cluster, digits_dataset, page, monkeypatch):
    from webapp.sweeps import tasks

    advanced = []  # the sweep's first trials are asked of Celery once it commits: noted, not run
    monkeypatch.setattr(tasks, "advance_sweep", type("Task", (), {"delay": staticmethod(advanced.append)}))
    base = live_server.url
    log_in_at(page, f"{base}/runs/new/")
    page.wait_for_load_state("networkidle")
    form = page.locator("form.card")
    assert page.get_attribute("#mode-run", "aria-selected") == "true"
    assert form.get_attribute("id") == "run-form" and form.evaluate("f => f.action") == f"{base}/runs/new/"
    assert not page.locator("#sweep-fields").is_visible() and page.locator("#id_space").is_disabled()
    assert page.locator("#parallel-cap").inner_text() == ""  # nothing asked for the hidden cap
    page.fill("#id_name", "switched sweep")
    page.select_option("#id_dataset", str(digits_dataset.pk))
    page.select_option("#id_template", "cnn")
    page.fill("#id_hp_cnn_epochs", "2")
    page.fill("#id_num_executors", "1")
    page.fill("#id_executor_memory_mb", "1024")

    page.click("#mode-sweep")
    assert page.get_attribute("#mode-sweep", "aria-selected") == "true" and page.url == f"{base}/sweeps/new/"
    assert page.title().startswith("New sweep") and page.inner_text("h1") == "New sweep"
    assert form.get_attribute("id") == "sweep-form" and form.evaluate("f => f.action") == f"{base}/sweeps/new/"
    assert page.locator("#sweep-fields").is_visible() and page.locator("#id_space").is_enabled()
    assert page.inner_text("#sweep-form button[type=submit]") == "Start sweep"
    assert page.inner_text("#id_hp_cnn_epochs >> xpath=ancestor::fieldset/legend").startswith("Base hyperparameters")
    assert page.input_value("#id_hp_cnn_epochs") == "2" and page.input_value("#id_name") == "switched sweep"
    page.wait_for_function("document.getElementById('parallel-cap').textContent.startsWith('At most')")
    # The space builder has the template's rows, and still writes the space.
    rows = page.eval_on_selector_all("#space-rows tr", "rs => rs.map(r => r.dataset.param)")
    assert {"learning_rate", "optimizer", "epochs"} <= set(rows)
    page.select_option("select[name=space_mode_optimizer]", "choice")
    page.fill("input[name=space_values_optimizer]", "adam, sgd")
    page.fill("#id_max_trials", "3")
    page.fill("#id_parallel", "1")

    # Back to one run and again to Sweep: the action follows each time.
    page.click("#mode-run")
    assert page.url == f"{base}/runs/new/" and page.inner_text("h1") == "New run"
    assert form.get_attribute("id") == "run-form" and form.evaluate("f => f.action") == f"{base}/runs/new/"
    assert page.locator("#id_max_trials").is_disabled() and not page.locator("#id_space").is_visible()
    page.focus("#mode-run")
    page.keyboard.press("ArrowRight")  # the tabs' keys
    assert page.get_attribute("#mode-sweep", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "mode-sweep"

    with page.expect_navigation():
        page.click("#sweep-form button[type=submit]")
    sweep = Sweep.objects.get()
    assert page.url == f"{base}/sweeps/{sweep.pk}/" and advanced == [sweep.pk]
    assert (sweep.name, sweep.dataset_id) == ("switched sweep", digits_dataset.pk)
    assert (sweep.max_trials, sweep.parallel, sweep.num_executors) == (3, 1, 1)
    assert sweep.base_hyperparameters["epochs"] == 2
    assert sweep.space["optimizer"] == {"type": "choice", "values": ["adam", "sgd"]}
    assert not Run.objects.exists()
    # A reload of the switched page keeps its mode: the address is the sweep page's.
    page.goto(f"{base}/runs/new/")
    page.click("#mode-sweep")
    page.reload()
    assert page.inner_text("h1") == "New sweep" and page.locator("#id_space").is_enabled()
    assert page.problems == []


def test_the_space_builder_writes_a_space_the_sweep_service_takes(live_server, alice, cluster, page):
    import json

    from webapp.catalog.registry import get_template
    from webapp.sweeps import space as search_space

    log_in_at(page, f"{live_server.url}/sweeps/new/")
    page.select_option("#id_template", "cnn")
    rows = page.eval_on_selector_all("#space-rows tr", "rs => rs.map(r => r.dataset.param)")
    assert {"learning_rate", "optimizer", "epochs", "dropout"} <= set(rows)
    # The form's initial space (a log range of learning_rate) shows in its row.
    assert page.input_value("select[name=space_mode_learning_rate]") == "range"
    assert page.is_checked("input[name=space_log_learning_rate]")
    page.fill("input[name=space_low_learning_rate]", "0.0005")
    page.fill("input[name=space_high_learning_rate]", "0.02")
    page.select_option("select[name=space_mode_optimizer]", "choice")
    page.fill("input[name=space_values_optimizer]", "adam, sgd")
    page.select_option("select[name=space_mode_filters]", "range")
    page.fill("input[name=space_low_filters]", "8")
    page.fill("input[name=space_high_filters]", "32")
    page.fill("input[name=space_step_filters]", "8")
    page.uncheck("input[name=space_log_filters]")
    page.select_option("select[name=space_mode_epochs]", "choice")
    page.fill("input[name=space_values_epochs]", "4")
    space = json.loads(page.input_value("#id_space"))
    assert space == {
        "epochs": {"type": "fixed", "value": 4},
        "learning_rate": {"type": "range", "low": 0.0005, "high": 0.02, "log": True},
        "filters": {"type": "range", "low": 8, "high": 32, "log": False, "step": 8},
        "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
    }
    clean = search_space.clean(get_template("cnn"), space, "random")
    assert clean["filters"] == {"type": "range", "low": 8, "high": 32, "log": False, "step": 8}
    # JSON typed by hand fills the rows back in.
    page.fill("#id_space", json.dumps({"dropout": {"type": "range", "low": 0.1, "high": 0.3}}))
    assert page.input_value("select[name=space_mode_dropout]") == "range"
    assert page.input_value("input[name=space_low_dropout]") == "0.1"
    assert page.input_value("select[name=space_mode_learning_rate]") == "base"
    assert page.problems == []
