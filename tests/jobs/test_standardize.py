"""workers.jobs.standardize: streaming per-feature statistics and the one transform built from them."""

import numpy as np
import pytest

from workers.jobs.standardize import ColumnStats, Standardizer


def stats_of(rows, chunk=None) -> ColumnStats:
    rows = np.asarray(rows, dtype=np.float64)
    stats = ColumnStats(rows.shape[1])
    step = chunk or len(rows)
    for start in range(0, len(rows), step):
        stats.add(rows[start : start + step])
    return stats


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_streaming_statistics_equal_numpys_over_all_rows(chunk):
    rng = np.random.default_rng(3)
    rows = rng.normal(loc=[1e6, -3.0, 0.0], scale=[1e-2, 5.0, 1.0], size=(500, 3))
    std = stats_of(rows, chunk).standardizer()
    np.testing.assert_allclose(std.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        std.std, rows.std(axis=0), rtol=1e-7
    )  # sum/sum-of-squares would lose it all at 1e6 ± 1e-2
    out = std.apply(rows)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-5)


def test_statistics_come_from_the_rows_given_and_apply_alike_to_others():
    train = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    test = np.array([[1e9, 20.0], [2.0, -10.0]])  # a huge test value: not part of the statistics
    std = stats_of(train).standardizer()
    np.testing.assert_allclose(std.mean, [2.0, 20.0])
    np.testing.assert_allclose(std.std, np.sqrt([2 / 3, 200 / 3]))
    expected = (test - [2.0, 20.0]) / np.sqrt([2 / 3, 200 / 3])
    np.testing.assert_allclose(std.apply(test), expected.astype(np.float32), rtol=1e-6)  # not clipped
    assert std.apply(test)[0, 0] > 1e8


def test_constant_column_becomes_zero_and_its_std_is_one():
    rows = np.column_stack([np.full(1000, 0.1), np.arange(1000.0)])  # 0.1 summed 1000 times is not exact
    std = stats_of(rows, chunk=33).standardizer()
    assert std.std[0] == 1.0 and std.mean[0] == 0.1
    assert (std.apply(rows)[:, 0] == 0.0).all()
    assert std.apply([[5.1, 0.0]])[0, 0] == pytest.approx(5.0)


def test_missing_values_are_counted_and_left_out():
    rows = np.array([[1.0, np.nan], [np.nan, np.nan], [3.0, np.nan]])
    stats = stats_of(rows, chunk=1)
    summary = stats.summary()
    assert summary["missing"] == [1, 3]
    assert (summary["min"], summary["max"], summary["mean"]) == ([1.0, None], [3.0, None], [2.0, None])
    std = stats.standardizer()
    assert std.mean.tolist() == [2.0, 0.0] and std.std.tolist() == [1.0, 1.0]  # no value at all: identity
    out = std.apply(rows)
    assert np.isnan(out[1, 0]) and out[0, 0] == -1.0  # a missing value stays missing


def test_summary_of_raw_values():
    stats = stats_of([[-2.0, 5.0], [4.0, 5.0]])
    assert stats.summary() == {"min": [-2.0, 5.0], "max": [4.0, 5.0], "mean": [1.0, 5.0], "missing": [0, 0]}


def test_round_trip_through_meta_and_refusals():
    std = stats_of([[1.0, 2.0], [3.0, 6.0]]).standardizer()
    again = Standardizer.from_meta(std.to_meta())
    np.testing.assert_array_equal(again.apply([[2.0, 4.0]]), std.apply([[2.0, 4.0]]))
    with pytest.raises(ValueError, match="3 features; the statistics have 2"):
        std.apply(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="std > 0"):
        Standardizer(mean=[0.0], std=[0.0])
    with pytest.raises(ValueError, match="one length"):
        Standardizer.from_meta({"mean": [0.0, 1.0], "std": [1.0]})
    with pytest.raises(ValueError, match=r"shape \(m, 2\)"):
        ColumnStats(2).add(np.zeros((4, 3)))
