"""Generate tests/data/bad/: upload files that ingest() must refuse, and bad/expected.json.

    .venv/bin/python tests/data/make_bad.py        # rewrites tests/data/bad/

Importable too: ``build(dest_dir)`` writes the corpus into ``dest_dir`` and returns the expected
mapping. tests/datasets_ingest/test_bad_corpus.py ingests every file named in expected.json and
checks that the files on disk are exactly the ones build() makes, so edit the cases here and
rerun the script, never the files by hand.

expected.json maps a file name to ``{"fmt_hint": <fmt passed to ingest, null to detect it from
the name>, "message": <a substring of the DatasetError message>, "kwargs": {<extra ingest
keyword arguments>}}``. In kwargs, "limits" is a dict of Limits fields (lowered limits, so that
the files stay small), "test_src" a file name in the same folder (a "*.test.*" companion file,
which is not a case of its own) and "image_size" a [height, width] list.

Every file is small and generated deterministically (fixed zip timestamps, fixed seeds); the zip
bomb is a few KB on disk.
"""

import io
import json
import stat
import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

BAD_DIR = Path(__file__).resolve().parent / "bad"
EXPECTED = "expected.json"
DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same bytes on every run

CASES: dict[str, dict] = {}  # filename → {"build": fn(path), "fmt_hint", "message", "kwargs"}
COMPANIONS: dict[str, object] = {}  # filename → fn(path): files cases refer to (test splits)


def case(filename: str, message: str, fmt_hint: str | None = "auto", **kwargs):
    """Register the decorated builder for ``filename``; fmt_hint "auto" is the file's extension."""

    def register(build):
        hint = filename.rsplit(".", 1)[-1] if fmt_hint == "auto" else fmt_hint
        CASES[filename] = {"build": build, "fmt_hint": hint, "message": message, "kwargs": kwargs}
        return build

    return register


def companion(filename: str):
    def register(build):
        COMPANIONS[filename] = build
        return build

    return register


# ---- file makers


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _gray(h: int = 8, w: int = 8, seed: int = 0) -> bytes:
    return _png(np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height grayscale pixels, with (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _member(name: str, data: bytes, mode: int = 0o100644, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, DATE)
    info.compress_type = method
    info.create_system = 3  # unix, so external_attr holds a mode
    info.external_attr = mode << 16
    return info


def _zip(members: list[tuple], path: Path) -> None:
    """members: (name, data) or (name, data, unix mode); written with fixed timestamps."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which one case wants
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data, *mode in members:
                zf.writestr(_member(name, data, *mode), data)
    path.write_bytes(buf.getvalue())


def _classes(sizes=None, per_class: int = 3, names=("cat", "dog"), prefix: str = "") -> list[tuple]:
    """Valid class folders of small grayscale PNGs; ``sizes`` gives (h, w) per image in order."""
    members, k = [], 0
    for c in names:
        for i in range(per_class):
            h, w = sizes[k] if sizes else (8, 8)
            members.append((f"{prefix}{c}/{i}.png", _gray(h, w, seed=k)))
            k += 1
    return members


def _patch_zip_headers(data: bytes, flag_or: int = 0, method: int | None = None) -> bytes:
    """Set flag bits / the compression method in every local and central directory header."""
    out = bytearray(data)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        pos = out.find(sig)
        while pos >= 0:
            (flags,) = struct.unpack_from("<H", out, pos + flag_at)
            struct.pack_into("<H", out, pos + flag_at, flags | flag_or)
            if method is not None:
                struct.pack_into("<H", out, pos + method_at, method)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _npz(path: Path, **arrays) -> None:
    """Like numpy.savez (stored .npy members) but with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, value in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asarray(value), allow_pickle=True)
            zf.writestr(_member(f"{key}.npy", b"", method=zipfile.ZIP_STORED), npy.getvalue())
    path.write_bytes(buf.getvalue())


def _parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def _text(text: str):
    return lambda path: path.write_text(text, encoding="utf-8")


_X = np.arange(40, dtype=np.float32).reshape(10, 4)
_Y = np.arange(10) % 2
_GOOD_CSV = "a,b,label\n" + "".join(f"{i},{i * 2},{'xy'[i % 2]}\n" for i in range(10))

# ---- wrong file for its name, empty, too large

case("empty.csv", "The file is empty")(_text(""))
case("empty.zip", "The file is empty")(_text(""))


@case("png_named.csv", "It is a PNG image", fmt_hint=None)
def _(path):
    path.write_bytes(_gray())


@case("parquet_named.csv", "rename it to .parquet", fmt_hint=None)
def _(path):
    _parquet(path, pa.table({"a": [1.0, 2.0], "label": [0, 1]}))


case("text_named.parquet", "not a Parquet file", fmt_hint=None)(_text(_GOOD_CSV))
case("text_named.zip", "not a zip archive", fmt_hint=None)(_text(_GOOD_CSV))
case("text_named.npz", "not an NPZ archive", fmt_hint=None)(_text(_GOOD_CSV))
case("sheet.xlsx", "Unsupported file type (.xlsx)", fmt_hint=None)(_text(_GOOD_CSV))
case("oversize.csv", "KB; the limit is 1,000 bytes", limits={"max_bytes": 1000})(
    _text("a,b,label\n" + "".join(f"{i},{i * 2},{'xy'[i % 2]}\n" for i in range(200)))
)


@case("images_named.npz", "It holds images: to upload a zip of image folders, name it .zip")
def _(path):
    _zip(_classes(), path)


# ---- ZIP of images: archive safety


@case("zip_truncated.zip", "The ZIP archive is damaged or truncated")
def _(path):
    _zip(_classes(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


@case("zip_slip.zip", "it has a '..' component")
def _(path):
    _zip([*_classes(), ("cat/../../evil.png", _gray())], path)


@case("zip_absolute.zip", "it is an absolute path")
def _(path):
    _zip([*_classes(), ("/tmp/cat/9.png", _gray())], path)


@case("zip_backslash.zip", "it contains a backslash")
def _(path):
    _zip([*_classes(), ("cat\\9.png", _gray())], path)


@case("zip_drive_letter.zip", "it starts with a drive letter")
def _(path):
    _zip([*_classes(), ("C:/cat/9.png", _gray())], path)


@case("zip_symlink.zip", "symbolic link 'dog/link.png'")
def _(path):
    _zip([*_classes(), ("dog/link.png", b"../../../etc/passwd", stat.S_IFLNK | 0o777)], path)


@case("zip_bomb.zip", "looks like a zip bomb")
def _(path):
    # 4 MB of zeros deflate to about 4 KB: a ratio near 1000:1.
    _zip([*_classes(), ("dog/huge.png", bytes(4 << 20))], path)


@case("zip_too_many_images.zip", "the limit is 20 images", limits={"max_images": 20})
def _(path):
    _zip(_classes(per_class=11), path)


@case("zip_encrypted.zip", "is encrypted (password-protected)")
def _(path):
    _zip(_classes(), path)
    path.write_bytes(_patch_zip_headers(path.read_bytes(), flag_or=0x1))


@case("zip_unknown_method.zip", "uses compression method 99")
def _(path):
    _zip(_classes(), path)
    path.write_bytes(_patch_zip_headers(path.read_bytes(), method=99))  # 99: WinZip AES


@case("zip_member_too_big.zip", "the limit is 1 KB per file", limits={"max_member_bytes": 1024})
def _(path):
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    _zip([*_classes(), ("dog/big.png", noise)], path)


@case("zip_total_too_big.zip", "add up to more than 500 bytes", limits={"max_unzipped_bytes": 500})
def _(path):
    _zip(_classes(), path)


@case("zip_duplicate_names.zip", "two entries named 'cat/0.png'")
def _(path):
    _zip([*_classes(), ("cat/0.png", _gray(seed=9))], path)


# ---- ZIP of images: layout and contents


@case("zip_empty_archive.zip", "contains no images")
def _(path):
    _zip([("cat/", b"", stat.S_IFDIR | 0o755), ("__MACOSX/cat/._0.png", b"x")], path)


@case("zip_file_at_top.zip", "'readme.png' in the ZIP is not inside a class folder")
def _(path):
    _zip([*_classes(), ("readme.png", _gray())], path)


@case("zip_nested_too_deep.zip", "'cat/kittens/9.png' in the ZIP is nested too deep")
def _(path):
    _zip([*_classes(), ("cat/kittens/9.png", _gray())], path)


@case("zip_not_image.zip", "'dog/notes.txt' in the ZIP is not a PNG or JPEG image")
def _(path):
    _zip([*_classes(), ("dog/notes.txt", b"these are my notes\n")], path)


@case("zip_bmp_image.zip", "'dog/9.bmp' in the ZIP is not a PNG or JPEG image")
def _(path):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, "BMP")
    _zip([*_classes(), ("dog/9.bmp", buf.getvalue())], path)


@case("zip_corrupt_png.zip", "Image 'dog/1.png' in the ZIP is damaged and cannot be decoded")
def _(path):
    members = _classes()
    data = bytearray(members[4][1])
    data[data.find(b"IDAT") + 8] ^= 0xFF  # a byte of compressed pixels: the chunk CRC no longer fits
    members[4] = ("dog/1.png", bytes(data))
    _zip(members, path)


@case("zip_truncated_png.zip", "Image 'cat/2.png' in the ZIP is damaged and cannot be decoded")
def _(path):
    members = _classes()
    members[2] = ("cat/2.png", members[2][1][:60])
    _zip(members, path)


@case("zip_pixel_bomb.zip", "is 5,000×5,000 pixels; the limit is 16,777,216 pixels per image")
def _(path):
    _zip([*_classes(), ("dog/9.png", _png_header_only(5000, 5000))], path)


@case("zip_pil_pixel_bomb.zip", "'dog/9.png' in the ZIP has too many pixels")
def _(path):
    _zip([*_classes(), ("dog/9.png", _png_header_only(100_000, 100_000))], path)


@case("zip_long_strip.zip", "Image 'dog/9.png' in the ZIP is too large: 1×20,000 pixels (height×width)")
def _(path):
    _zip([*_classes(), ("dog/9.png", _png_header_only(20_000, 1))], path)


@case("zip_too_many_classes.zip", "Too many classes: the ZIP has 6 class folders; at most 5", limits={"max_classes": 5})
def _(path):
    _zip(_classes(names=("a", "b", "c", "d", "e", "f")), path)


@case("zip_mixed_sizes.zip", "mixed image sizes")
def _(path):
    _zip(_classes(sizes=[(8, 8)] * 4 + [(6, 6)] * 2), path)


@case("zip_single_class.zip", "at least 2 classes")
def _(path):
    _zip(_classes(names=("cat",)), path)


@case("zip_one_image_class.zip", "class(es) 'dog' have only 1 image")
def _(path):
    _zip([*_classes(names=("cat",)), ("dog/0.png", _gray())], path)


@case("zip_npz_renamed.zip", "looks like an NPZ archive")
def _(path):
    _npz(path, x=_X, y=_Y)


@case("zip_too_wide.zip", "have 64 values each; the limit is 50", limits={"max_features": 50})
def _(path):
    _zip(_classes(), path)


# ---- CSV / TSV

case("csv_ragged.csv", "Line 4 of the CSV has 2 values but the header has 3 columns")(
    _text("a,b,label\n1,2,0\n3,4,1\n5,1\n6,7,0\n")
)
case("csv_non_numeric.csv", "Line 3, column 'b' of the CSV: 'abc' is not a number")(
    _text("a,b,label\n1,2,0\n3,abc,1\n")
)
case("csv_missing_label.csv", "no column named 'label' (its columns are 'a', 'b', 'class')")(
    _text("a,b,class\n1,2,0\n3,4,1\n")
)
case("csv_empty_label.csv", "Line 4 of the CSV has an empty label")(_text("a,b,label\n1,2,0\n3,4,1\n3,4,\n"))
case("csv_nan.csv", "Line 4, column 'a' of the CSV: 'nan' is not a finite number")(
    _text("a,b,label\n1,2,0\n3,4,1\nnan,1,1\n")
)
case("csv_header_only.csv", "has a header but no data rows")(_text("a,b,label\n"))
case("csv_only_label.csv", "has only the 'label' column")(_text("label\ncat\ndog\n"))
case("csv_semicolons.csv", "';' as separator")(_text("a;b;label\n1;2;0\n3;4;1\n"))
case("csv_single_class.csv", "at least 2 classes")(_text("a,label\n1,x\n2,x\n3,x\n"))
case("csv_one_row_class.csv", "class(es) 'y' have only 1 row")(_text("a,label\n1,x\n2,x\n3,y\n"))
case("csv_continuous_labels.csv", "more than 5 distinct values", limits={"max_classes": 5})(
    _text("a,label\n" + "".join(f"{i},{i / 7:.3f}\n" for i in range(12)))
)
case("csv_headerless_named_label.csv", "there is no column 'species'", label_column="species")(
    _text("1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
)
case("csv_label_out_of_range.csv", "no column named '7'", label_column="7")(_text(_GOOD_CSV))
case("csv_empty_column_name.csv", "Column 3 of the CSV header has no name")(_text("a,b,,label\n1,2,3,0\n4,5,6,1\n"))


@case("csv_not_utf8.csv", "Line 3 of the CSV is not valid UTF-8 text (byte 0xe9)")
def _(path):
    path.write_bytes(b"a,b,label\n1,2,cat\n3,4,caf\xe9\n")


@case("csv_wide_header.csv", "9,999 feature columns; the limit is 5,000", limits={"max_features": 5000})
def _(path):
    path.write_text(",".join(f"c{i}" for i in range(9999)) + ",label\n" + "1," * 9999 + "0\n")


case("tsv_ragged.tsv", "Line 3 of the TSV has 2 values but the header has 3 columns")(
    _text("a\tb\tlabel\n1\t2\t0\n3\t1\n")
)
case("tsv_with_commas.tsv", "The file seems to use ',' as separator; name it .csv")(_text(_GOOD_CSV))

# ---- NPZ


@case("npz_object.npz", "holds Python objects (dtype=object)")
def _(path):
    _npz(path, x=np.array([[1, "a"]] * 10, dtype=object), y=_Y)


@case("npz_mismatch.npz", "Array 'x' has 10 rows but 'y' has 9 labels")
def _(path):
    _npz(path, x=_X, y=_Y[:9])


@case("npz_nan.npz", "Array 'x' contains NaN (a missing value) at row 3")
def _(path):
    x = _X.copy()
    x[3, 1] = np.nan
    _npz(path, x=x, y=_Y)


@case("npz_inf.npz", "Array 'x' contains an infinite value at row 6")
def _(path):
    x = _X.copy()
    x[6, 0] = np.inf
    _npz(path, x=x, y=_Y)


@case("npz_missing_y.npz", "The NPZ has no array named 'y'; it contains 'labels', 'x'")
def _(path):
    _npz(path, x=_X, labels=_Y)


@case("npz_strings.npz", "Array 'x' has dtype <U32; it must hold numbers")
def _(path):
    _npz(path, x=_X.astype("U32"), y=_Y)


@case("npz_truncated.npz", "The NPZ archive is damaged or truncated")
def _(path):
    _npz(path, x=_X, y=_Y)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@case("npz_float_labels.npz", "has the non-integer label 0.5 at row 1")
def _(path):
    _npz(path, x=_X, y=np.arange(10) / 2)


# ---- Parquet


@case("parquet_no_label.parquet", "The Parquet file has no column named 'label' (its columns are 'a', 'b', 'class')")
def _(path):
    _parquet(path, pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": [1, 2, 3, 4], "class": [0, 1, 0, 1]}))


@case("parquet_string_feature.parquet", "Column 'b' of the Parquet file has type string")
def _(path):
    _parquet(path, pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": ["x", "y", "z", "w"], "label": [0, 1, 0, 1]}))


@case("parquet_null_label.parquet", "Row 2 of the Parquet file has no label")
def _(path):
    _parquet(path, pa.table({"a": [1.0, 2.0, 3.0, 4.0], "label": ["x", "y", None, "y"]}))


@case("parquet_null_feature.parquet", "Row 1, column 'a' of the Parquet file is empty (null)")
def _(path):
    _parquet(path, pa.table({"a": [1.0, None, 3.0, 4.0], "label": ["x", "y", "x", "y"]}))


@case("parquet_nan.parquet", "Row 3, column 'b' of the Parquet file holds NaN")
def _(path):
    _parquet(path, pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 2.0, 3.0, float("nan")], "label": [0, 1, 0, 1]}))


@case("parquet_ragged_list.parquet", "Row 2 of column 'features' has 3 values but row 0 has 4")
def _(path):
    rows = [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]]
    _parquet(path, pa.table({"features": rows, "label": [0, 1, 0, 1]}))


@case("parquet_two_list_columns.parquet", "Use either numeric columns (one per feature) or a single list column")
def _(path):
    lists = [[1.0, 2.0]] * 4
    _parquet(path, pa.table({"f1": lists, "f2": lists, "label": [0, 1, 0, 1]}))


@case("parquet_empty.parquet", "The Parquet file has no rows")
def _(path):
    _parquet(path, pa.table({"a": pa.array([], pa.float64()), "label": pa.array([], pa.int64())}))


@case("parquet_truncated.parquet", "The Parquet file is damaged or cannot be read")
def _(path):
    _parquet(path, pa.table({"a": np.arange(100, dtype=np.float64), "label": np.arange(100) % 2}))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---- a separate test file


@case("split_extra_class.csv", "The test file has class(es) 'z'", test_src="split_extra_class.test.csv")
def _(path):
    path.write_text(_GOOD_CSV)


@companion("split_extra_class.test.csv")
def _(path):
    path.write_text("a,b,label\n1,2,x\n3,4,z\n")


@case(
    "split_shape_mismatch.csv",
    "The test file's rows have 3 features but the training file's have 2",
    test_src="split_shape_mismatch.test.csv",
)
def _(path):
    path.write_text(_GOOD_CSV)


@companion("split_shape_mismatch.test.csv")
def _(path):
    path.write_text("a,b,c,label\n1,2,3,x\n3,4,5,y\n")


@case(
    "split_bad_test_file.csv",
    "In the test file: Line 3 of the TSV has 2 values",
    test_src="split_bad_test_file.test.tsv",
)
def _(path):
    path.write_text(_GOOD_CSV)


@companion("split_bad_test_file.test.tsv")
def _(path):
    path.write_text("a\tb\tlabel\n1\t2\tx\n3\ty\n")


def build(dest_dir: Path) -> dict:
    """Write every bad file and expected.json into ``dest_dir`` (other files there are removed)."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for old in dest_dir.iterdir():
        if old.is_file():
            old.unlink()
    expected = {}
    for filename, spec in sorted(CASES.items()):
        spec["build"](dest_dir / filename)
        expected[filename] = {"fmt_hint": spec["fmt_hint"], "message": spec["message"], "kwargs": spec["kwargs"]}
    for filename, make in sorted(COMPANIONS.items()):
        make(dest_dir / filename)
    with open(dest_dir / EXPECTED, "w", encoding="utf-8") as fh:
        json.dump(expected, fh, indent=2, ensure_ascii=False, sort_keys=True)
        fh.write("\n")
    return expected


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else BAD_DIR
    cases = build(target)
    print(f"wrote {len(cases)} bad files (+ {len(COMPANIONS)} companions and {EXPECTED}) to {target}")
