"""The per-row shape recorded in meta.json: (h, w, c) for images, (steps, features) for sequences,
(features,) for tables; and which layout an upload gets when the user leaves it to us ("auto")."""

import math

from .errors import DatasetError

LAYOUTS = ("image", "sequence", "table")
AUTO = "auto"  # not a layout: resolve_layout picks one from the format and the shape given
TABLE_FORMATS = ("csv", "tsv", "parquet")
MIN_SEQUENCE_STEPS = 2

_EXAMPLES = {"image": "28x28 or 32x32x3", "sequence": "20x3 (steps x features) or 20"}


def check_layout(layout: str) -> str:
    """``layout`` is one of LAYOUTS or "auto"."""
    if layout not in LAYOUTS and layout != AUTO:
        raise DatasetError(f"Unknown dataset layout {layout!r}; choose 'auto', 'image', 'sequence' or 'table'.")
    return layout


def resolve_layout(layout: str, fmt: str, image_shape=None) -> str:
    """The layout an upload gets: the user's choice, or for "auto" a table for CSV/TSV/Parquet
    without an image shape, and images otherwise (NPZ arrays, ZIPs of images, or a shape given)."""
    check_layout(layout)
    if layout != AUTO:
        return layout
    return "table" if fmt in TABLE_FORMATS and image_shape is None else "image"


def resolve_table_shape(num_features: int, array_shape: tuple[int, ...] | None, table_shape=None) -> tuple[int]:
    """(num_features,) for table rows: flat feature vectors, whatever the format.

    An NPZ ``x`` with more than 2 dimensions is refused (its rows are images or sequences), and so is
    a typed shape other than the feature count: a table has no height and width.
    """
    if array_shape is not None and len(array_shape) > 1:
        raise DatasetError(
            f"A table needs flat rows (x of shape rows × features), but each row here has shape "
            f"{tuple(array_shape)}. Choose the image or sequence layout, or reshape x to 2 dimensions."
        )
    if table_shape is not None and tuple(int(v) for v in table_shape) != (num_features,):
        raise DatasetError(
            f"A table's rows are flat vectors of its {num_features} features; the shape "
            f"{'x'.join(map(str, table_shape))} does not apply. Leave the shape empty, or choose the "
            "image layout to give an image shape."
        )
    return (int(num_features),)


def parse_shape(text: str, layout: str = "image") -> tuple[int, ...] | None:
    """Parse a user-typed shape such as "28x28", "32, 32, 3", "20x3" or "" (none) for the upload form."""
    text = text or ""
    parts = [p for p in text.lower().replace("×", "x").replace("x", ",").replace(" ", ",").split(",") if p]
    if not parts:
        return None
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        what = "Sequence" if layout == "sequence" else "Image"
        raise DatasetError(
            f"{what} shape {text!r} should look like {_EXAMPLES.get(layout, _EXAMPLES['image'])}."
        ) from None


def resolve_shape(num_features: int, array_shape: tuple[int, ...] | None, image_shape) -> tuple[int, int, int]:
    """Pick (h, w, c) for rows of ``num_features`` values.

    ``array_shape`` is the per-row shape an NPZ array already has (None for CSV and 2-D arrays).
    Without either, a perfect square count becomes a one-channel s × s image (784 → 28×28×1) and
    anything else a 1 × d × 1 "image" (plain feature vectors), so that the shape always has 3 dims.
    """
    if image_shape is not None:
        shape = tuple(int(v) for v in image_shape)
        if len(shape) == 2:
            shape += (1,)
        if len(shape) != 3 or min(shape) < 1:
            raise DatasetError(
                f"Image shape {tuple(image_shape)} must be (height, width) or (height, width, channels) "
                "with positive sizes."
            )
        if math.prod(shape) != num_features:
            raise DatasetError(
                f"Image shape {'×'.join(map(str, shape))} has {math.prod(shape)} values per row, but the "
                f"data has {num_features} features per row. Fix the shape or leave it empty."
            )
        return shape
    if array_shape is not None:
        return tuple(array_shape) + (1,) * (3 - len(array_shape))
    side = math.isqrt(num_features)
    if side * side == num_features:
        return (side, side, 1)
    return (1, num_features, 1)


def resolve_sequence_shape(
    num_features: int, array_shape: tuple[int, ...] | None, sequence_shape=None
) -> tuple[int, int]:
    """Pick (steps, features) for sequence rows of ``num_features`` values.

    ``array_shape`` is the per-row shape of an NPZ array with more than 2 dimensions (None for CSV
    and for (rows, steps) arrays): (steps, features) is taken as is. Flat rows (CSV columns, a 2-D
    array) are univariate sequences: (num_features, 1). ``sequence_shape`` is the user's
    (steps, features) or (steps,) and must account for every value of a row (row-major: step 0's
    features first).
    """
    if sequence_shape is not None:
        shape = tuple(int(v) for v in sequence_shape)
        if len(shape) == 1:
            shape += (1,)
        if len(shape) != 2 or min(shape) < 1:
            raise DatasetError(
                f"Sequence shape {'x'.join(map(str, sequence_shape))} must be steps x features (e.g. 20x3) "
                "or steps alone, with positive sizes."
            )
        if math.prod(shape) != num_features:
            raise DatasetError(
                f"Sequence shape {shape[0]}×{shape[1]} (steps × features) has {math.prod(shape)} values per "
                f"row, but the data has {num_features} values per row. Fix the shape or leave it empty."
            )
    elif array_shape is None:
        shape = (int(num_features), 1)
    elif len(array_shape) == 2:
        shape = (int(array_shape[0]), int(array_shape[1]))
    else:
        raise DatasetError(
            f"Sequence data must be an array of shape (rows, steps) or (rows, steps, features), but each "
            f"row here has shape {tuple(array_shape)}. Reshape it, or upload it as images."
        )
    if shape[0] < MIN_SEQUENCE_STEPS:
        raise DatasetError(
            f"A sequence needs at least {MIN_SEQUENCE_STEPS} time steps, but the shape "
            f"{shape[0]}×{shape[1]} (steps × features) has {shape[0]}."
        )
    return shape
