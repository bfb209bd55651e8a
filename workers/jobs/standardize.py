"""Per-feature standardization of table rows: statistics from the training rows, one transform for all.

A table dataset's stored features are ``(raw - mean) / std`` per column (float32, not clipped), with
``mean`` and ``std`` taken from the training rows only and kept in meta.json as
``"standardize": {"mean": [...], "std": [...]}``. Whatever turns raw rows into model inputs (ingest's
test split, later batch scoring) applies :meth:`Standardizer.apply` with those stored numbers, so
train, test and scored rows go through the very same transform.

:class:`ColumnStats` gathers the statistics in one streaming pass (chunk by chunk, float64, Chan et
al.'s pairwise update of Welford's mean and sum of squared deviations), never holding all rows.
NaN counts as a missing value: it is counted per column and left out of every statistic.

NumPy only: the web app's ingest and code under spark-submit both import this module.
"""

from dataclasses import dataclass

import numpy as np


class ColumnStats:
    """Streaming per-column count, mean, spread, min, max and missing count of raw feature rows."""

    def __init__(self, num_features: int):
        d = int(num_features)
        self.num_features = d
        self.count = np.zeros(d, np.int64)  # present (non-missing) values per column
        self.missing = np.zeros(d, np.int64)
        self.mean = np.zeros(d, np.float64)
        self.m2 = np.zeros(d, np.float64)  # sum of squared deviations from the mean
        self.minimum = np.full(d, np.inf)
        self.maximum = np.full(d, -np.inf)

    def add(self, rows) -> None:
        """Take in a chunk of rows, shape (m, num_features)."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            raise ValueError(f"rows must have shape (m, {self.num_features}), not {rows.shape}")
        if not len(rows):
            return
        present = ~np.isnan(rows)
        n_b = present.sum(axis=0)
        self.missing += len(rows) - n_b
        seen = n_b > 0
        filled = np.where(present, rows, 0.0)
        mean_b = np.divide(filled.sum(axis=0), n_b, out=np.zeros(self.num_features), where=seen)
        m2_b = (np.where(present, rows - mean_b, 0.0) ** 2).sum(axis=0)
        n = self.count + n_b
        delta = mean_b - self.mean
        share = np.divide(n_b, n, out=np.zeros(self.num_features), where=seen)
        self.mean = np.where(seen, self.mean + delta * share, self.mean)
        self.m2 = np.where(seen, self.m2 + m2_b + delta**2 * self.count * share, self.m2)
        self.count = n
        self.minimum = np.minimum(self.minimum, np.where(present, rows, np.inf).min(axis=0))
        self.maximum = np.maximum(self.maximum, np.where(present, rows, -np.inf).max(axis=0))

    def standardizer(self) -> "Standardizer":
        """The transform these rows define: their mean and (population) std per column.

        A constant column (min == max) gets std 1 and its exact value as mean, so it becomes 0
        (not rounding noise divided by a tiny std); a column with no value at all gets mean 0, std 1.
        """
        seen = self.count > 0
        constant = seen & (self.minimum == self.maximum)
        std = np.sqrt(np.divide(self.m2, self.count, out=np.zeros(self.num_features), where=seen))
        std = np.where(constant | ~seen | (std == 0.0), 1.0, std)
        mean = np.where(constant, self.minimum, np.where(seen, self.mean, 0.0))
        return Standardizer(mean=mean, std=std)

    def summary(self) -> dict:
        """min, max, mean (None for a column with no value) and missing per column, as JSON lists."""
        seen = self.count > 0

        def listed(values):
            return [float(v) if s else None for v, s in zip(values, seen, strict=True)]

        return {
            "min": listed(self.minimum),
            "max": listed(self.maximum),
            "mean": listed(self.mean),
            "missing": [int(v) for v in self.missing],
        }


@dataclass(frozen=True)
class Standardizer:
    mean: np.ndarray  # float64, one per feature
    std: np.ndarray  # float64, one per feature, never 0

    def __post_init__(self):
        mean, std = np.asarray(self.mean, np.float64), np.asarray(self.std, np.float64)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"mean and std must be two lists of one length, not {mean.shape} and {std.shape}")
        if not (np.isfinite(std).all() and (std > 0).all() and np.isfinite(mean).all()):
            raise ValueError("standardization statistics must be finite, with every std > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def apply(self, rows) -> np.ndarray:
        """(rows - mean) / std as float32, rows of shape (..., num_features); NaN stays NaN."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[-1:] != self.mean.shape:
            raise ValueError(
                f"rows have {rows.shape[-1] if rows.ndim else 0} features; the statistics have {len(self.mean)}"
            )
        return ((rows - self.mean) / self.std).astype(np.float32)

    def to_meta(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_meta(cls, meta: dict) -> "Standardizer":
        """From meta.json's ``"standardize"`` object."""
        return cls(mean=np.asarray(meta["mean"], np.float64), std=np.asarray(meta["std"], np.float64))
