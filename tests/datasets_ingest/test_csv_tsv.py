"""CSV/TSV uploads: tab separators and files without a header row (csv_reader.py)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from webapp.datasets.ingest import DatasetError, csv_reader, detect_format, ingest

ROWS = [(i, i * 2 % 7, ("cat", "dog")[i % 2]) for i in range(20)]


def text(rows, sep=",", header=("a", "b", "label")) -> str:
    lines = [sep.join(header)] if header else []
    lines += [sep.join(map(str, row)) for row in rows]
    return "\n".join(lines) + "\n"


def same_output(a, b) -> bool:
    return all(pq.read_table(a / n).equals(pq.read_table(b / n)) for n in ("train.parquet", "test.parquet"))


@pytest.fixture
def reference(tmp_path):
    (tmp_path / "ref.csv").write_text(text(ROWS))
    return ingest(tmp_path / "ref.csv", "csv", tmp_path / "ref"), tmp_path / "ref"


def test_tsv_by_extension(tmp_path, reference):
    (tmp_path / "d.tsv").write_text(text(ROWS, sep="\t"))
    assert detect_format("d.TSV", b"a\tb\tlabel\n") == "tsv"
    info = ingest(tmp_path / "d.tsv", None, tmp_path / "tsv")
    assert info.source_format == "tsv" and info.shape == reference[0].shape
    assert same_output(tmp_path / "tsv", reference[1])


def test_tabs_in_a_csv_file_are_sniffed(tmp_path, reference):
    (tmp_path / "d.csv").write_text(text(ROWS, sep="\t"))
    info = ingest(tmp_path / "d.csv", "csv", tmp_path / "sniffed")
    assert info.source_format == "csv" and info.class_names == ["cat", "dog"]
    assert same_output(tmp_path / "sniffed", reference[1])


def test_tsv_errors_say_tsv(tmp_path):
    (tmp_path / "d.tsv").write_text("a\tb\tlabel\n1\t2\tx\n1\tfoo\ty\n")
    with pytest.raises(DatasetError, match=r"Line 3, column 'b' of the TSV: 'foo' is not a number"):
        ingest(tmp_path / "d.tsv", "tsv", tmp_path / "ds")


def test_headerless_csv_label_is_the_last_column(tmp_path):
    rows = [(i, i % 5, i % 2) for i in range(20)]
    (tmp_path / "h.csv").write_text(text(rows, header=None))
    (tmp_path / "named.csv").write_text(text(rows, header=("c0", "c1", "label")))
    info = ingest(tmp_path / "h.csv", "csv", tmp_path / "h")
    assert info.class_names == ["0", "1"] and info.shape == (2,) and info.rows == 20  # first line is data
    ingest(tmp_path / "named.csv", "csv", tmp_path / "named")
    assert same_output(tmp_path / "h", tmp_path / "named")


@pytest.mark.parametrize("label_column,classes", [("0", ["0", "1"]), ("-1", ["0", "1", "2"]), ("2", ["0", "1", "2"])])
def test_headerless_label_by_column_number(tmp_path, label_column, classes):
    rows = [(i % 2, i, i % 3) for i in range(12)]
    (tmp_path / "h.csv").write_text(text(rows, header=None))
    info = ingest(tmp_path / "h.csv", "csv", tmp_path / "ds", label_column=label_column)
    assert info.class_names == classes and info.shape == (2,)


def test_column_number_with_a_header(tmp_path):
    (tmp_path / "d.csv").write_text(text([(r[2], r[0], r[1]) for r in ROWS], header=("kind", "a", "b")))
    info = ingest(tmp_path / "d.csv", "csv", tmp_path / "ds", label_column="0")
    assert info.class_names == ["cat", "dog"] and info.shape == (2,)


def test_headerless_tsv_with_decimals(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_reader, "CHUNK_VALUES", 30)  # several chunks
    rows = [(f"{i / 4:.2f}", -i, i % 3) for i in range(30)]
    (tmp_path / "h.tsv").write_text(text(rows, sep="\t", header=None))
    info = ingest(tmp_path / "h.tsv", "tsv", tmp_path / "ds", layout="image")  # min-max scaled
    assert info.class_names == ["0", "1", "2"] and info.dtype == "float64"
    assert (info.offset, info.scale) == (-29.0, 29.0 + 7.25)
    table = pq.read_table(tmp_path / "ds" / "train.parquet")
    x = np.array(table.column("features").to_pylist())
    assert x.min() >= 0 and x.max() <= 1


def test_headerless_errors(tmp_path):
    (tmp_path / "h.csv").write_text("1,2,0\n3,4,1\n5,6\n")
    with pytest.raises(DatasetError, match="Line 3 of the CSV has 2 values but the first line has 3 columns"):
        ingest(tmp_path / "h.csv", "csv", tmp_path / "ds")
    (tmp_path / "one.csv").write_text("1\n2\n")
    with pytest.raises(DatasetError, match="single column"):
        ingest(tmp_path / "one.csv", "csv", tmp_path / "ds")
    with pytest.raises(DatasetError, match="no header.*there is no column 'species'"):
        ingest(tmp_path / "h.csv", "csv", tmp_path / "ds", label_column="species")
    assert not (tmp_path / "ds").exists()
