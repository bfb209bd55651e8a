"""The pins: every top-level requirement is exact and locked at that version; the runtime lock holds
none of the tests' tools, and the dev lock only what the runtime lock lacks."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\[\]-]+?)(\[[a-z,]+\])?==([^\s;]+)$")


def lines(name):
    return [ln.strip() for ln in (REPO / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(name) -> dict[str, str]:
    out = {}
    for ln in lines(name):
        m = PIN.match(ln)
        assert m, f"{name}: {ln!r} is not an exact pin"
        out[norm(m.group(1))] = m.group(3)
    return out


def test_top_level_pins_are_exact_and_locked_at_that_version():
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    for req, lock in (("requirements.txt", runtime), ("requirements-dev.txt", dev)):
        for ln in lines(req):
            if ln.startswith("setuptools<"):  # TFoS needs pkg_resources: a bound, and the lock's exact version
                assert "setuptools" in runtime
                continue
            m = PIN.match(ln)
            assert m, f"{req}: {ln!r} is not an exact pin"
            assert lock.get(norm(m.group(1))) == m.group(3), f"{req}: {ln} is not what its lock holds"


def test_the_runtime_holds_no_test_tool_and_the_locks_do_not_overlap():
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    assert not {"pytest", "pytest-django", "schemathesis", "playwright", "ruff", "hypothesis"} & set(runtime)
    assert not set(runtime) & set(dev)
