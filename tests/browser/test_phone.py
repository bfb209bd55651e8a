"""Every main page at a phone's width (390 × 844) in a real browser: no sideways scrolling of the
document (wide tables scroll inside their own box), and the page's main parts are on screen. The
runs are test_ui.py's (finished, with metrics and predictions), plus a driver log with long lines.

With SPARKDECK_SHOTS set, full-page screenshots of the run, dataset and new-run pages are written to
that folder (phone-run.png, phone-dataset.png, phone-new-run.png)."""

import datetime as dt
import os
from pathlib import Path

import pytest
from django.utils import timezone

from tests.browser import test_ui
from tests.browser.conftest import PHONE
from tests.browser.login import log_in_at
from webapp.monitoring.models import ExecutorSample

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

runs = test_ui.runs  # the same four finished runs (a fixture)


def overflow(page) -> dict:
    """The document's width, and the elements that reach past the viewport's right edge (the widest
    ones, to name in a failure)."""
    return page.evaluate(
        """() => {
          const vw = document.documentElement.clientWidth;
          const wide = [];
          for (const el of document.querySelectorAll('body *')) {
            const r = el.getBoundingClientRect();
            if (r.width && r.right > vw + 1) {
              let inScroller = false; // inside a box that scrolls sideways itself: fine
              for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
                const ox = getComputedStyle(p).overflowX;
                if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') { inScroller = true; break; }
              }
              const cls = typeof el.className === 'string' && el.className ? '.' + el.className.trim() : '';
              if (!inScroller) wide.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls}` +
                ` right=${Math.round(r.right)}`);
            }
          }
          return { scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 12) };
        }"""
    )


def check(page, url, visible, shot=None) -> list[str]:
    """What is wrong with `url` at the phone's width ([] when nothing): the document wider than the
    screen, or one of the `visible` selectors hidden or starting off screen (a wide table may run on
    to the right inside its own scroll box)."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # charts lay out on the next frame
    problems = check_now(page, visible, url)
    shots = os.environ.get("SPARKDECK_SHOTS")
    if shot and shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / f"phone-{shot}.png"), full_page=True, animations="disabled")
    return problems


def check_now(page, visible, where) -> list[str]:
    """check() on the page as it is now (also after a click that changed it in place)."""
    problems = []
    for sel in visible:
        loc = page.locator(sel).first
        box = loc.bounding_box() if loc.is_visible() else None
        if not box or box["width"] <= 0 or not -1 <= box["x"] < PHONE["width"]:
            problems.append(f"{where}: {sel} not on screen ({box})")
    o = overflow(page)
    if o["scrollWidth"] > PHONE["width"] + 1:
        problems.append(f"{where}: document {o['scrollWidth']} px wide; past the edge: {o['wide']}")
    return problems


def test_pages_fit_a_phone(live_server, runs, phone_page):
    phone = phone_page
    best, wide = runs["best"], runs["wide"]
    base = live_server.url
    # A driver log whose lines are far wider than the phone: they wrap inside the log box.
    lines = [f"INFO step {i} " + "x" * 300 for i in range(50)] + ["/very/long/path/" * 40]
    (best.run_dir / "driver.log").write_text("\n".join(lines) + "\n")
    now = timezone.now()  # executor samples: the Resources table's eight columns
    ExecutorSample.objects.bulk_create(
        ExecutorSample(
            run=best, executor_id=ex, sampled_at=now - dt.timedelta(seconds=5 * i), total_cores=1, max_tasks=1,
            active_tasks=1, memory_used=4000, max_memory=133 * 2**20, peak_jvm_heap=80 * 2**20, jvm_gc_time_ms=300,
        )
        for ex in ("0", "1")
        for i in range(3)
    )  # fmt: skip

    log_in_at(phone, base + "/")
    problems = check(phone, base + "/", ["h1", "#runs", f"#runs tr[data-run='{best.pk}'] a[href='/runs/{best.pk}/']"])

    run_url = f"{base}/runs/{best.pk}/"
    phone.goto(run_url)
    phone.wait_for_function("() => document.getElementById('log').textContent.includes('/very/long/path/')")
    phone.wait_for_function(
        "() => { const c = Chart.getChart(document.querySelector('#chart'));"
        " return c && c.data.datasets.some(d => d.data.length > 0); }"
    )
    problems += check(phone, run_url, ["h1", "#status", "#accuracy", "#chart", "#log", "#log-source", "#rerun"], "run")
    chart = phone.locator("#chart").bounding_box()
    if not (200 < chart["width"] and chart["x"] + chart["width"] <= PHONE["width"]):
        problems.append(f"the run's chart is not fitted to the phone: {chart}")
    plot = phone.evaluate("() => Chart.getChart(document.querySelector('#chart')).chartArea.height")
    if plot < 150:  # the legend under it must leave the plot room
        problems.append(f"the run's chart plots in {plot} px of height")
    if not phone.locator("#resources-table").is_visible():
        problems.append("the executors' resource table is not shown")
    log = phone.locator("#log").bounding_box()
    if log["x"] + log["width"] > PHONE["width"]:
        problems.append(f"the log box runs past the screen: {log}")

    problems += check(phone, f"{base}/datasets/", ["h1", f"a[href='/datasets/{best.dataset_id}/']"])
    problems += check(phone, f"{base}/datasets/{best.dataset_id}/", ["h1", "#ds-status", "#class-chart"], "dataset")
    problems += check(phone, f"{base}/runs/new/", ["h1", "#id_dataset", "#id_template", "#run-form button"], "new-run")
    problems += check(
        phone, f"{base}/runs/compare/?ids={best.pk},{wide.pk}", ["h1", "#compare-table", "#charts canvas"]
    )
    assert problems == [], "\n".join(problems)
    assert phone.problems == [], phone.problems


def test_the_model_registry_pages_fit_a_phone(live_server, runs, alice, phone_page):
    from webapp.registry import services as registry

    user, _ = alice
    best = runs["best"]
    (best.run_dir / "model").mkdir(parents=True, exist_ok=True)
    (best.run_dir / "model" / "model.keras").write_bytes(b"keras-archive-bytes")
    name = "digits-cnn-with-a-rather-long-model-name-to-wrap"
    long = "https://example.org/" + "x" * 200  # a long token typed by a user wraps, never widens the page
    version = registry.register_run(best, name, f"The baseline CNN {long}", user=user, model_description=long)
    registry.set_alias(version.model, "production", version, user)
    base = live_server.url
    log_in_at(phone_page, f"{base}/models/")
    problems = check(phone_page, f"{base}/models/", ["h1", "#registered-models"], "models")
    problems += check(phone_page, f"{base}/models/{name}/", ["h1", "#versions", "#aliases", "#alias-form"], "model")
    problems += check(phone_page, f"{base}/models/{name}/1/", ["h1", "#source", "#dataset", "#input-shape"], "version")
    problems += check(phone_page, f"{base}/models/register/?run={best.pk}", ["h1", "#register-form"], "register")
    assert problems == [], "\n".join(problems)
    assert phone_page.problems == [], phone_page.problems
