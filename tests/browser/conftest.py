"""A real browser for the UI tests: Playwright (the Python package only) driving Debian's chromium.

No `playwright install`: `make test` installs the distribution's chromium when it is missing
(`make browser`), and this launches /usr/bin/chromium (or $SPARKDECK_CHROMIUM) headless. A missing
browser fails the test with the reason, it never skips. Screenshots go to the test's tmp dir and are
copied to var/test-artifacts/browser/ (git-ignored) so CI keeps them.
"""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SPARKDECK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "var" / "test-artifacts" / "browser"
VIEWPORT = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def chromium(monkeypatch):
    """A headless chromium. Playwright's sync API keeps an asyncio loop in this thread, so Django's
    async-safety check would refuse the ORM calls of fixtures torn down after it (the db flush)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"no chromium at {CHROMIUM}: the browser test needs Debian's chromium "
            "(`make browser`, i.e. `apt-get install -y chromium`, as root), or SPARKDECK_CHROMIUM=/path/to/chromium"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the playwright package is missing ({exc}): `make install` installs requirements.lock")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking"],  # as root, no calls home
            headless=True,
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    yield from _page(chromium.new_context(viewport=VIEWPORT, device_scale_factor=1))


@pytest.fixture
def phone_page(chromium):
    """A page at a phone's size (PHONE), touch and a mobile viewport as on a phone."""
    yield from _page(chromium.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True))


def _page(context):
    page = context.new_page()
    page.set_default_timeout(10_000)
    problems = []  # JS console errors and uncaught page errors, as readable lines

    def console(msg):
        # The site has no favicon: the browser's own /favicon.ico request 404s (no page asked for it).
        if msg.type == "error" and not msg.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console.{msg.type} at {page.url}: {msg.text} {msg.location}")

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught error at {page.url}: {exc}"))
    page.problems = problems
    yield page
    context.close()


@pytest.fixture
def screenshot(page, tmp_path):
    """screenshot("name"): a full-page PNG as NN-name.png in the tmp dir and in var/test-artifacts/browser/."""
    local = tmp_path / "screenshots"
    local.mkdir()
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # only this run's pictures
    ARTIFACTS.mkdir(parents=True)
    taken = []

    def take(name: str) -> Path:
        filename = f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(local / filename), full_page=True, animations="disabled")  # transitions done
        shutil.copy2(local / filename, ARTIFACTS / filename)
        taken.append(ARTIFACTS / filename)
        print(f"screenshot: {local / filename} (kept as {ARTIFACTS / filename})")
        return ARTIFACTS / filename

    take.taken = taken
    return take
