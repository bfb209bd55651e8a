"""The upload's train/test split: workers/jobs/split.py's, with its errors shown as DatasetError."""

import numpy as np

from workers.jobs.split import SplitError
from workers.jobs.split import stratified_split as _split

from .errors import DatasetError


def stratified_split(labels: np.ndarray, num_classes: int, test_fraction: float, seed: int) -> np.ndarray:
    """Return a bool mask, True for test rows (see workers.jobs.split.stratified_split)."""
    try:
        return _split(labels, num_classes, test_fraction, seed, held_out="test")
    except SplitError as exc:
        raise DatasetError(str(exc)) from None
