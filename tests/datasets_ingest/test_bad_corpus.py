"""The corpus of bad uploads in tests/data/bad/ (made by tests/data/make_bad.py): every file is refused.

Each case: ingest() raises DatasetError whose message contains the expected text, leaves no
dataset directory and no temporary directory behind, and does not touch the corpus folder.
"""

import importlib.util
import json
from pathlib import Path

import pytest

from webapp.datasets.ingest import DatasetError, Limits, ingest

DATA = Path(__file__).resolve().parent.parent / "data"
BAD = DATA / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text(encoding="utf-8"))


def _make_bad():
    spec = importlib.util.spec_from_file_location("make_bad", DATA / "make_bad.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _kwargs(raw: dict) -> dict:
    kwargs = dict(raw)
    if "limits" in kwargs:
        kwargs["limits"] = Limits(**kwargs["limits"])
    if "test_src" in kwargs:
        kwargs["test_src"] = BAD / kwargs["test_src"]
    if "image_size" in kwargs:
        kwargs["image_size"] = tuple(kwargs["image_size"])
    return kwargs


def test_corpus_is_big_enough():
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_bad_file_is_refused(tmp_path, filename):
    case = EXPECTED[filename]
    before = sorted(p.name for p in BAD.iterdir())
    parent = tmp_path / "datasets"
    dest = parent / "ds"
    with pytest.raises(DatasetError) as err:
        ingest(BAD / filename, case["fmt_hint"], dest, **_kwargs(case["kwargs"]))
    message = str(err.value)
    assert case["message"] in message
    assert "Traceback" not in message
    assert not dest.exists()
    assert not parent.exists() or list(parent.iterdir()) == []  # no temporary directory left
    assert sorted(p.name for p in BAD.iterdir()) == before


def test_corpus_on_disk_is_what_make_bad_generates(tmp_path):
    """Regenerate into tmp_path: same files, same cases. If this fails, run tests/data/make_bad.py."""
    expected = _make_bad().build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in BAD.iterdir())
    assert json.loads(json.dumps(expected)) == EXPECTED
    assert (tmp_path / "expected.json").read_text(encoding="utf-8") == (BAD / "expected.json").read_text(
        encoding="utf-8"
    )
