"""Seeded, stratified split that is stable: same labels + seed → same split.

The dataset upload splits off its test rows with it, and each training run carves its validation
rows out of the training split with it (same code on the web app and the executors)."""

import math

import numpy as np


class SplitError(ValueError):
    """The labels cannot be split as asked; the message says why."""


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _row_keys(n: int, seed: int) -> np.ndarray:
    """A pseudo-random key per row from splitmix64(seed, row_id).

    Hashing instead of drawing from a Generator makes the key of a row depend only on its id and
    the seed, never on the NumPy version or on the other rows.
    """
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(seed % (1 << 64)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def _test_counts(counts: np.ndarray, n_test: int) -> np.ndarray:
    """Test rows per class: proportional (largest remainder), but ≥ 1 in each of train and test."""
    quota = counts * (n_test / counts.sum())
    take = np.clip(np.floor(quota), 1, counts - 1).astype(np.int64)
    while take.sum() < n_test:
        room = np.where(take < counts - 1, quota - take, -np.inf)
        take[int(np.argmax(room))] += 1
    while take.sum() > n_test:
        room = np.where(take > 1, quota - take, np.inf)
        take[int(np.argmin(room))] -= 1
    return take


def stratified_split(
    labels: np.ndarray, num_classes: int, test_fraction: float, seed: int, *, held_out: str = "test"
) -> np.ndarray:
    """Return a bool mask, True for the held-out (``held_out``: "test" or "validation") rows.

    The held-out set has ceil(test_fraction × rows) rows (as scikit-learn's train_test_split),
    spread over the classes in proportion, with every class on both sides (so each needs ≥ 2 rows).
    """
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"The {held_out} fraction must be between 0 and 1 (exclusive), not {test_fraction}.")
    n = len(labels)
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() < 2:
        raise SplitError(f"Every class needs at least 2 rows (one for training, one for the {held_out} set).")
    # The small epsilon keeps 0.2 × 1000 from becoming 201 through float rounding.
    n_test = min(max(math.ceil(test_fraction * n - 1e-9), num_classes), n - num_classes)
    take = _test_counts(counts, n_test)
    # Within each class, the rows with the smallest keys go to test.
    order = np.lexsort((_row_keys(n, seed), labels))
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, np.arange(num_classes))
    rank = np.arange(n) - starts[sorted_labels]
    is_test = np.zeros(n, dtype=bool)
    is_test[order] = rank < take[sorted_labels]
    return is_test
