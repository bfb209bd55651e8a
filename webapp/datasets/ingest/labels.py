"""Turn raw labels (ints or strings, seen chunk by chunk) into class indices 0..k-1."""

import re

import numpy as np
import pandas as pd

from .errors import DatasetError

_INT = re.compile(r"[+-]?\d+")


class LabelCollector:
    """Collects labels in row order; class names are fixed only at :meth:`finish`.

    Each distinct raw value gets a provisional id as it is first seen, so memory is one int32 per
    row plus one string per class, whatever the file size.
    """

    def __init__(self, max_classes: int):
        self.max_classes = max_classes
        self._ids: dict[str, int] = {}
        self._chunks: list[np.ndarray] = []

    def add(self, values) -> None:
        codes, uniques = pd.factorize(np.asarray(values), sort=False)
        remap = np.empty(len(uniques), dtype=np.int32)
        for i, value in enumerate(uniques):
            key = str(value)
            if key not in self._ids:
                if len(self._ids) >= self.max_classes:
                    raise DatasetError(
                        f"Too many classes: the labels have more than {self.max_classes:,} distinct values "
                        f"(at most {self.max_classes:,} classes). Sparkdeck trains classifiers: each label "
                        "must be a class (a category or class id), not a continuous number."
                    )
                self._ids[key] = len(self._ids)
            remap[i] = self._ids[key]
        self._chunks.append(remap[codes])

    def finish(self) -> tuple[np.ndarray, list[str]]:
        """Return (class index per row as int64, class names sorted; numerically if all ints)."""
        raw = list(self._ids)
        if raw and all(_INT.fullmatch(v) for v in raw):
            canon = [int(v) for v in raw]  # "07" and "7" are the same class
            order = sorted(set(canon))
            names = [str(v) for v in order]
        else:
            canon = raw
            order = names = sorted(set(raw))
        index = {v: i for i, v in enumerate(order)}
        final = np.array([index[v] for v in canon], dtype=np.int64)
        codes = np.concatenate(self._chunks) if self._chunks else np.empty(0, np.int32)
        return final[codes], names


def check_classes(codes: np.ndarray, names: list[str], unit: str = "row", min_rows: int = 2) -> list[int]:
    """Return the row count per class; refuse data a stratified split cannot handle.

    ``unit`` names a row in messages ("row", "image"); ``min_rows`` is the fewest rows a class may
    have (2 when a test split is drawn from it, 1 when the test set was uploaded separately).
    """
    counts = np.bincount(codes, minlength=len(names)).tolist()
    if len(names) < 2:
        only = f" (every {unit} is {names[0]!r})" if names else ""
        if unit == "image":
            fix = "Put the images of each class in their own folder, named after the class."
        else:
            fix = "Check that the label column/array is the right one."
        raise DatasetError(
            f"The dataset needs at least 2 classes to train a classifier, but it has {len(names)}{only}. {fix}"
        )
    small = [f"{name!r}" for name, n in zip(names, counts, strict=True) if n < min_rows]
    if small:
        shown = ", ".join(small[:10]) + (" …" if len(small) > 10 else "")
        raise DatasetError(
            f"Every class needs at least 2 {unit}s (one for training, one for testing); class(es) "
            f"{shown} have only 1 {unit}. Add more examples or remove those {unit}s."
        )
    return counts
