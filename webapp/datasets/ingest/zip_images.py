"""Read a ZIP archive of PNG/JPEG images, one folder per class, safely and in chunks.

Layout: ``<class>/<image>`` or ``<top>/<class>/<image>`` (one folder wrapping the class folders);
the class of an image is the name of its folder. ``__MACOSX/``, dotfiles (``.DS_Store``) and
``Thumbs.db``/``desktop.ini`` are ignored; anything else at the wrong depth, or that is not a
PNG or JPEG image (by content), is an error naming the file.

Safety: nothing is ever extracted to disk. The archive's directory is checked first, before one
byte is decompressed: the entry count (read from the end record even before zipfile parses the
directory), unsafe paths (``..``, absolute, backslashes, drive letters), symbolic links,
encrypted members, unsupported compression, the uncompressed size of each member and of all of
them, and the compression ratio (a zip bomb). Then members are read one at a time into memory,
each at most ``Limits.max_member_bytes``, and every image's pixel count is checked from its
header before it is decoded (``Limits.max_pixels``, ``Limits.max_side``).

Two passes, like the other readers: the constructor decodes every image once to validate it and
keeps only its size and mode; :meth:`ZipImageSource.batches` decodes them again, a chunk at a
time, converted to one channel count and resized to one size:

- channels: 3 (RGB) if any image has colour (RGB, RGBA, P, CMYK…), else 1 (grayscale);
- size: ``image_size`` (h, w) when given; otherwise the most common size, the other images
  resized to it (bilinear) if they are at most 10 % of them, refused beyond that.

Pixel values are 0..255 (16-bit grayscale PNGs are brought to that range), so features are the
pixels divided by 255.
"""

import collections
import io
import lzma
import math
import re
import stat
import struct
import zipfile
import zlib

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import DatasetError
from .info import Limits, Scan, human_bytes
from .labels import LabelCollector

CHUNK_IMAGES = 512  # images per batch at most
CHUNK_VALUES = 4_000_000  # values per batch at most: 32 MB as float64
RESIZE_SHARE = 0.10  # without an image_size, at most this share of images may be resized
BOMB_MIN_BYTES = 1 << 20  # the ratio check applies to members larger than this (uncompressed)
EXTRA_ENTRIES = 1000  # entries allowed on top of max_images + max_classes (folders, ignored files)
IMAGE_FORMATS = ("PNG", "JPEG")
PIXEL_MAX = 255.0
# Modes PIL gives PNG/JPEG images; the rest (RGB, RGBA, P, PA, CMYK, …) have colour.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"})
WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})  # 16-bit grayscale PNG
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
_DRIVE = re.compile(r"[A-Za-z]:")
_ROTATED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_EXIF_FORMATS = ("JPEG", "MPO")  # MPO: a camera's multi-picture JPEG, opened as its first picture
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError)
LAYOUT_HELP = (
    "Put each image in a folder named after its class (<class>/<image>.png), with the class "
    "folders at the top of the ZIP or inside one folder."
)


def _damaged(exc: Exception) -> DatasetError:
    return DatasetError(f"The ZIP archive is damaged or truncated ({exc}). Zip the class folders again and re-upload.")


def count_entries(fh) -> int | None:
    """The entry count from the archive's end record (zip64 too), None if there is none.

    Read before zipfile parses the central directory, whose ZipInfo objects would take far more
    memory than the file itself for an archive of millions of tiny entries.
    """
    fh.seek(0, 2)
    size = fh.tell()
    tail_len = min(size, 22 + 0xFFFF + 20)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or len(tail) - pos < 22:
        return None
    entries = struct.unpack("<H", tail[pos + 10 : pos + 12])[0]
    if entries == 0xFFFF and pos >= 20 and tail[pos - 20 : pos - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[pos - 12 : pos - 4])
        fh.seek(offset)
        record = fh.read(56)
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            (entries,) = struct.unpack("<Q", record[32:40])
    return entries


def _unsafe(name: str) -> str | None:
    """Why a member name is unsafe to use as a path, None if it is fine."""
    if "\x00" in name:
        return "it contains a NUL character"
    if "\\" in name:
        return "it contains a backslash; ZIP paths use '/' (a tool that writes Windows paths made it)"
    if name.startswith("/"):
        return "it is an absolute path"
    if _DRIVE.match(name):
        return "it starts with a drive letter"
    if ".." in name.split("/"):
        return "it has a '..' component, which points outside the archive (zip slip)"
    return None


def _ignored(parts: tuple[str, ...]) -> bool:
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts) or parts[-1].lower() in IGNORED_FILES


def check_size(size, what: str = "Image size") -> tuple[int, int]:
    """``size`` as (height, width) of positive ints, or DatasetError."""
    try:
        h, w = (int(v) for v in size)
        if h < 1 or w < 1 or (h, w) != tuple(size):
            raise ValueError
    except (TypeError, ValueError):
        raise DatasetError(f"{what} {size!r} must be (height, width) with positive whole numbers.") from None
    return h, w


class ZipImageSource:
    fmt = "zip"
    owns_shape = True  # array_shape already is the final (h, w, c): the user's shape picked the size
    unit = "image"

    def __init__(self, path, limits: Limits, image_size=None, channels: int | None = None):
        self.path, self.limits = path, limits
        self._size = None if image_size is None else check_size(image_size)
        if channels not in (None, 1, 3):
            raise DatasetError(f"Images can have 1 (grayscale) or 3 (RGB) channels, not {channels}.")
        self._forced_channels = channels
        try:
            with open(path, "rb") as fh:
                entries = count_entries(fh)
                most = limits.max_images + limits.max_classes + EXTRA_ENTRIES
                if entries is not None and entries > most:
                    raise DatasetError(f"The ZIP has {entries:,} entries; the limit is {limits.max_images:,} images.")
                with zipfile.ZipFile(fh) as zf:
                    self._members, classes = self._list(zf.infolist())
                    folders = len(set(classes))
                    if folders > limits.max_classes:
                        raise DatasetError(
                            f"Too many classes: the ZIP has {folders:,} class folders; at most "
                            f"{limits.max_classes:,} classes are accepted (one folder per class)."
                        )
                    self._probe(zf)
        except DatasetError:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, struct.error) as exc:
            raise _damaged(exc) from exc
        collector = LabelCollector(limits.max_classes)
        collector.add(np.array(classes, dtype=str))
        self._codes, self._class_names = collector.finish()
        self._finish()

    # ---- pass 0: the directory, before any decompression

    def _list(self, infos: list[zipfile.ZipInfo]) -> tuple[list[zipfile.ZipInfo], list[str]]:
        lim = self.limits
        files: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
        seen: set[str] = set()
        total = 0
        for info in infos:
            name = info.orig_filename
            why = _unsafe(name)
            if why:
                raise DatasetError(
                    f"The ZIP contains an unsafe path {name!r}: {why}. Such archives are refused; zip the "
                    "class folders again from inside their parent folder."
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DatasetError(
                    f"The ZIP contains a symbolic link {name!r}; links are not allowed. Zip the image files themselves."
                )
            parts = tuple(p for p in name.split("/") if p not in ("", "."))
            if info.is_dir() or not parts or _ignored(parts):
                continue
            key = "/".join(parts)
            if key in seen:
                raise DatasetError(f"The ZIP has two entries named {key!r}; each file may appear only once.")
            seen.add(key)
            if info.flag_bits & 0x1:
                raise DatasetError(
                    f"{name!r} in the ZIP is encrypted (password-protected); upload an archive without a password."
                )
            if info.compress_type not in _METHODS:
                raise DatasetError(
                    f"{name!r} in the ZIP uses compression method {info.compress_type}, which is not supported; "
                    "zip it with the standard 'deflate' compression."
                )
            if info.file_size > lim.max_member_bytes:
                raise DatasetError(
                    f"{name!r} in the ZIP is {human_bytes(info.file_size)} uncompressed; the limit is "
                    f"{human_bytes(lim.max_member_bytes)} per file."
                )
            if info.file_size > BOMB_MIN_BYTES and info.file_size > lim.max_zip_ratio * max(info.compress_size, 1):
                ratio = info.file_size / max(info.compress_size, 1)
                raise DatasetError(
                    f"{name!r} in the ZIP expands from {human_bytes(info.compress_size)} to "
                    f"{human_bytes(info.file_size)} (a ratio of {ratio:,.0f}:1, over {lim.max_zip_ratio}:1). "
                    "This looks like a zip bomb, so the archive is refused."
                )
            total += info.file_size
            if total > lim.max_unzipped_bytes:
                raise DatasetError(
                    f"The files in the ZIP add up to more than {human_bytes(lim.max_unzipped_bytes)} "
                    "uncompressed, the limit."
                )
            files.append((parts, info))
            if len(files) > lim.max_images:
                raise DatasetError(
                    f"The ZIP has more than {lim.max_images:,} image files; the limit is {lim.max_images:,} images."
                )
        if not files:
            raise DatasetError(f"The ZIP archive contains no images. {LAYOUT_HELP}")
        return self._layout(files)

    def _layout(self, files) -> tuple[list[zipfile.ZipInfo], list[str]]:
        """Check the folder structure; return the members in (class, path) order and their classes."""
        wrapped = len({parts[0] for parts, _ in files}) == 1 and max(len(parts) for parts, _ in files) >= 3
        depth = 3 if wrapped else 2
        for parts, info in files:
            if len(parts) == depth:
                continue
            name = info.orig_filename
            if all(p[-1].lower().endswith(".npy") for p, _ in files):
                raise DatasetError(
                    "The ZIP holds .npy arrays, not image folders: it looks like an NPZ archive "
                    "(numpy.savez). Rename it to .npz and upload it again."
                )
            if len(parts) < depth:
                raise DatasetError(f"{name!r} in the ZIP is not inside a class folder. {LAYOUT_HELP}")
            raise DatasetError(
                f"{name!r} in the ZIP is nested too deep: images go directly inside their class folder, "
                f"without subfolders. {LAYOUT_HELP}"
            )
        files.sort(key=lambda item: item[0])
        return [info for _, info in files], [parts[-2] for parts, _ in files]

    # ---- pass 1: decode each image once, keeping only its size and mode

    def _read(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
        cap = self.limits.max_member_bytes
        try:
            with zf.open(info) as fh:
                data = fh.read(cap + 1)
        except _READ_ERRORS as exc:
            raise DatasetError(
                f"{info.orig_filename!r} in the ZIP is damaged ({exc}). Zip the class folders again and re-upload."
            ) from exc
        if len(data) > cap:
            raise DatasetError(
                f"{info.orig_filename!r} in the ZIP is larger than {human_bytes(cap)} uncompressed, the limit per file."
            )
        return data

    def _open(self, data: bytes, name: str) -> Image.Image:
        try:
            return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except UnidentifiedImageError:
            raise DatasetError(
                f"{name!r} in the ZIP is not a PNG or JPEG image. Only PNG and JPEG images may be in the "
                "class folders (__MACOSX/ and hidden files are ignored)."
            ) from None
        except Image.DecompressionBombError as exc:
            raise self._too_many_pixels(name, None) from exc

    def _too_many_pixels(self, name: str, size) -> DatasetError:
        what = f"is {size[0]:,}×{size[1]:,} pixels" if size else "has too many pixels"
        return DatasetError(
            f"Image {name!r} in the ZIP {what}; the limit is {self.limits.max_pixels:,} pixels per image "
            "(a guard against decompression bombs). Shrink the images before zipping them."
        )

    def _damaged_image(self, name: str, exc: Exception) -> DatasetError:
        detail = str(exc) or type(exc).__name__
        return DatasetError(f"Image {name!r} in the ZIP is damaged and cannot be decoded ({detail}).")

    def _probe(self, zf: zipfile.ZipFile) -> None:
        n = len(self._members)
        self._heights = np.empty(n, dtype=np.int64)
        self._widths = np.empty(n, dtype=np.int64)
        colour = wide = False
        for i, info in enumerate(self._members):
            name = info.orig_filename
            data = self._read(zf, info)
            try:
                with self._open(data, name) as im:
                    w, h = im.size
                    if w * h > self.limits.max_pixels:
                        raise self._too_many_pixels(name, (w, h))
                    if max(w, h) > self.limits.max_side:
                        raise DatasetError(
                            f"Image {name!r} in the ZIP is too large: {h:,}×{w:,} pixels (height×width); "
                            f"images may be at most {self.limits.max_side:,} pixels a side. Shrink the "
                            "images before zipping them."
                        )
                    if im.format in _EXIF_FORMATS and im.getexif().get(ExifTags.Base.Orientation) in _ROTATED:
                        w, h = h, w
                    mode = im.mode
                    im.verify()  # PNG: every chunk's CRC
                with self._open(data, name) as im:
                    im.load()  # every pixel decodes
            except (DatasetError, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
                raise self._damaged_image(name, exc) from exc
            self._heights[i], self._widths[i] = h, w
            colour = colour or mode not in GRAY_MODES
            wide = wide or mode in WIDE_MODES
        self._colour = colour
        self.dtype = "uint16" if wide else "uint8"

    def _finish(self) -> None:
        """Pick the size (and check the resize rule) and the channels."""
        n = len(self._members)
        if self._size is None:
            counts = collections.Counter(zip(self._heights.tolist(), self._widths.tolist(), strict=True))
            (size, count), *_ = counts.most_common(1)  # ties: the size seen first, in member order
            other = n - count
            if other > RESIZE_SHARE * n:
                i = int(np.argmax((self._heights != size[0]) | (self._widths != size[1])))
                # suggest the common size only where images of it are within the limit
                side = min(64, math.isqrt(self.limits.max_features))
                hint = size if size[0] * size[1] <= self.limits.max_features else (side, side)
                raise DatasetError(
                    f"The ZIP has mixed image sizes: {count:,} of its {n:,} images are {size[0]}×{size[1]} "
                    f"(height×width) but {other:,} ({other / n:.0%}) are not, e.g. "
                    f"{self._members[i].orig_filename!r} is {self._heights[i]}×{self._widths[i]}. Images of "
                    f"other sizes are resized to the most common size only when they are at most "
                    f"{RESIZE_SHARE:.0%} of them; choose an image size (e.g. {hint[0]}x{hint[1]}) to resize them all."
                )
            self._size = size
        h, w = self._size
        self.resized = int(((self._heights != h) | (self._widths != w)).sum())
        self.set_channels(self._forced_channels or (3 if self._colour else 1))

    def set_channels(self, channels: int) -> None:
        """Convert every image to ``channels`` (1 or 3), unless the user's image shape chose them.

        A test ZIP and its training ZIP get the same channels (3 if either has colour).
        """
        channels = self._forced_channels or channels
        lim, (h, w) = self.limits, self._size
        self.channels = channels
        self.array_shape = (h, w, channels)
        self.num_features = h * w * channels
        self.rows = len(self._members)
        if self.num_features > lim.max_features:
            raise DatasetError(
                f"Images of {h}×{w}×{channels} have {self.num_features:,} values each; the limit is "
                f"{lim.max_features:,}. Choose a smaller image size."
            )
        if self.rows * self.num_features > lim.max_values:
            raise DatasetError(
                f"The dataset has {self.rows * self.num_features:,} values (images × pixels × channels); "
                f"the limit is {lim.max_values:,}. Choose a smaller image size or upload fewer images."
            )

    @property
    def has_colour(self) -> bool:
        return self._colour

    def scan(self) -> Scan:
        """Everything was validated while probing; pixels are 0..255 whatever the images hold."""
        return Scan(
            rows=self.rows,
            codes=self._codes,
            class_names=self._class_names,
            minimum=0.0,
            maximum=PIXEL_MAX,
            dtype=self.dtype,
        )

    # ---- pass 2: pixels, a chunk at a time

    def _pixels(self, im: Image.Image) -> np.ndarray:
        """One image as float64 (h, w, channels) on the 0..255 scale."""
        h, w = self._size
        if im.format in _EXIF_FORMATS:
            im = ImageOps.exif_transpose(im)
        if im.mode in WIDE_MODES:  # 16-bit grayscale: 0..65535 → 0..255, kept as floats
            im = Image.fromarray(np.asarray(im, dtype=np.float32) / 257.0, mode="F")
        elif im.mode in GRAY_MODES:
            im = im.convert("L")
        else:
            im = im.convert("RGBA" if im.mode in ("P", "PA") else "RGB").convert("RGB")
            if self.channels == 1:
                im = im.convert("L")
        if im.size != (w, h):
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        pixels = np.asarray(im, dtype=np.float64)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.shape[2] != self.channels:  # a grayscale image among colour ones
            pixels = np.repeat(pixels, self.channels, axis=2)
        return pixels

    def batches(self):
        """Yield the images as float64 (chunk, h·w·c) arrays (row-major H×W×C), in member order."""
        d = self.num_features
        step = max(1, min(CHUNK_IMAGES, CHUNK_VALUES // d))
        try:
            with zipfile.ZipFile(self.path) as zf:
                for start in range(0, self.rows, step):
                    members = self._members[start : start + step]
                    chunk = np.empty((len(members), d), dtype=np.float64)
                    for j, info in enumerate(members):
                        name = info.orig_filename
                        data = self._read(zf, info)
                        try:
                            with self._open(data, name) as im:
                                im.load()
                                chunk[j] = self._pixels(im).reshape(-1)
                        except (DatasetError, MemoryError):
                            raise
                        except Exception as exc:  # noqa: BLE001 - PIL raises many types for broken files
                            raise self._damaged_image(name, exc) from exc
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise _damaged(exc) from exc
