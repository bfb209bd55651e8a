import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workers.jobs import data


def write(path, n, width=4, row_group_size=3, **overrides):
    features = [[float(i)] * width for i in range(n)]
    cols = {
        "row_id": pa.array(range(100, 100 + n), pa.int64()),
        "label": pa.array([i % 3 for i in range(n)], pa.int64()),
        "features": pa.array(features, pa.list_(pa.float32())),
    }
    cols.update(overrides)
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return str(path)


@pytest.mark.parametrize("n, shards", [(10, 2), (10, 3), (7, 4), (3, 5)])
def test_shards_partition_the_rows_evenly(tmp_path, n, shards):
    path = write(tmp_path / "t.parquet", n)
    parts = [data.read_arrays(path, (2, 2, 1), k, shards) for k in range(shards)]
    ids = np.concatenate([p[2] for p in parts])
    assert sorted(ids.tolist()) == list(range(100, 100 + n))  # every row exactly once
    sizes = [len(p[0]) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    for k, (x, y, rid) in enumerate(parts):
        assert x.dtype == np.float32 and x.shape == (len(rid), 2, 2, 1)
        assert y.dtype == np.int64
        assert all((r - 100) % shards == k for r in rid)  # position-based, across row groups
        np.testing.assert_array_equal(x[:, 0, 0, 0], rid - 100)  # features stay with their row


def test_whole_file_and_digits(digits):
    x, y, rid = data.read_arrays(digits["train"], digits["shape"])
    assert x.shape == (digits["train_rows"], 8, 8, 1)
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))
    assert data.num_rows(digits["test"]) == digits["test_rows"] == 360
    assert pq.ParquetFile(digits["train"]).metadata.row_group(0).num_rows <= 1024


def test_wrong_shape_is_a_clear_error(tmp_path):
    path = write(tmp_path / "t.parquet", 5, width=4)
    with pytest.raises(ValueError, match=r"a row has 4 feature values but shape \[3, 3, 1\] needs 9"):
        data.read_arrays(path, (3, 3, 1))


def test_missing_column_and_bad_shard(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"row_id": [1], "label": [0]}), path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['features'\]"):
        data.read_arrays(str(path), (1,))
    with pytest.raises(ValueError, match="shard_index 2 out of range"):
        data.read_arrays(str(path), (1,), 2, 2)


def test_steps_and_batches():
    assert data.steps_per_epoch(1437, 32) == 45
    assert data.steps_per_epoch(10, 32) == 1
    assert data.per_replica_batch(32, 2) == 16
    assert data.per_replica_batch(1, 4) == 1
    assert data.feed_partitions(1437, 2) == 2
    assert data.feed_partitions(50000, 2) == 6  # at most 10,000 rows queued per partition


def test_shard_dataset_repeats_in_batches():
    x = np.arange(5, dtype=np.float32).reshape(5, 1)
    y = np.arange(5, dtype=np.int64)
    batches = list(data.shard_dataset(x, y, 2, seed=1).take(5))
    assert [len(b[1]) for b in batches] == [2, 2, 2, 2, 2]  # repeats, never runs dry
    seen = np.concatenate([b[1].numpy() for b in batches])
    assert set(seen[:4].tolist()) <= set(range(5))


class FakeFeed:
    """TFNode.DataFeed's reading side: next_batch(n) -> up to n items, [] at the end."""

    def __init__(self, items):
        self.items = list(items)
        self.requested = []

    def should_stop(self):
        return not self.items

    def next_batch(self, n):
        self.requested.append(n)
        out, self.items = self.items[:n], self.items[n:]
        return out


def test_feed_dataset_reads_batches_not_single_rows():
    rows = [data.to_feed_item(([i / 10] * 4, i)) for i in range(5)]
    assert rows[0][0].dtype == np.float32 and isinstance(rows[0][1], int)
    feed = FakeFeed(rows)
    got = list(data.feed_dataset(feed, (2, 2, 1), 2))
    assert [b[0].shape for b in got] == [(2, 2, 2, 1), (2, 2, 2, 1), (1, 2, 2, 1)]
    assert np.concatenate([b[1].numpy() for b in got]).tolist() == [0, 1, 2, 3, 4]
    assert set(feed.requested) == {2}


def test_feed_dataset_shape_mismatch():
    feed = FakeFeed([data.to_feed_item(([0.0] * 4, 1))])
    with pytest.raises(Exception, match="needs 9"):
        list(data.feed_dataset(feed, (3, 3, 1), 2))


def test_a_row_mask_picks_the_rows_that_are_sharded(tmp_path):
    path = write(tmp_path / "t.parquet", 11)
    mask = np.zeros(11, bool)
    mask[[0, 3, 4, 8, 10]] = True
    parts = [data.read_arrays(path, (2, 2, 1), k, 2, rows=mask) for k in range(2)]
    assert [p[2].tolist() for p in parts] == [[100, 104, 110], [103, 108]]  # every 2nd chosen row, across groups
    rest = [data.read_arrays(path, (2, 2, 1), k, 2, rows=~mask)[2].tolist() for k in range(2)]
    assert sorted(rest[0] + rest[1]) == [101, 102, 105, 106, 107, 109]
    with pytest.raises(ValueError, match="a row mask of 3 rows for a file of 11"):
        data.read_arrays(path, (2, 2, 1), rows=np.ones(3, bool))


def test_validation_mask_is_stratified_seeded_and_optional(tmp_path):
    path = write(tmp_path / "t.parquet", 60)  # labels 0,1,2 repeating
    assert data.validation_mask(path, 3, 0.0, 1) is None
    mask = data.validation_mask(path, 3, 0.1, 1)
    labels = data.read_labels(path)
    assert mask.sum() == 6 and np.bincount(labels[mask]).tolist() == [2, 2, 2]
    assert np.array_equal(mask, data.validation_mask(path, 3, 0.1, 1))  # the same on every executor
    assert not np.array_equal(mask, data.validation_mask(path, 3, 0.1, 2))
    tiny = write(tmp_path / "tiny.parquet", 4)  # class 0 has 2 rows, classes 1 and 2 one each
    with pytest.raises(ValueError, match="validation_split 0.1: Every class needs at least 2 rows"):
        data.validation_mask(tiny, 3, 0.1, 1)


def test_row_ids_at_the_masked_positions(tmp_path):
    path = write(tmp_path / "t.parquet", 7)
    mask = np.array([True, False, False, True, False, False, True])
    assert data.row_ids_at(path, mask) == [100, 103, 106]
