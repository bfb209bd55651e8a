"""The (h, w, c) shape recorded in meta.json."""

import math

from .errors import DatasetError


def parse_shape(text: str) -> tuple[int, ...] | None:
    """Parse a user-typed shape such as "28x28", "32, 32, 3" or "" (none) for the upload form."""
    parts = [p for p in text.replace("×", "x").replace("x", ",").replace(" ", ",").split(",") if p]
    if not parts:
        return None
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise DatasetError(f"Image shape {text!r} should look like 28x28 or 32x32x3.") from None


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
