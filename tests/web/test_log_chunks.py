"""A log chunk never ends inside a UTF-8 character: its next offset starts that character again."""

import pytest

from webapp.runs import artifacts
from webapp.runs.artifacts import whole_chars


@pytest.mark.parametrize(
    "data, kept",
    [
        (b"abc", b"abc"),
        ("aé".encode(), "aé".encode()),
        ("aé".encode()[:2], b"a"),
        ("a€".encode()[:3], b"a"),
        ("a😀".encode()[:4], b"a"),
        ("a😀".encode(), "a😀".encode()),
        ("é".encode()[:1], "é".encode()[:1]),  # nothing else left: kept
        (b"\xff\xfe", b"\xff\xfe"),  # not UTF-8: as it is
    ],
)
def test_whole_chars(data, kept):
    assert whole_chars(data) == kept


@pytest.mark.django_db
def test_reading_in_small_chunks_gives_every_character_once(alice, tmp_path, settings):
    from webapp.runs.models import Run

    settings.ARTIFACT_ROOT = tmp_path
    run = Run(pk=1, team=alice[1])
    text = "ligne é, € et 😀 " * 50
    path = artifacts.log_path(run, "driver")
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode())
    got, offset = "", 0
    while offset < path.stat().st_size:
        chunk, offset, _ = artifacts.read_chunk(run, path, offset, limit=5)
        got += chunk
    assert got == text
