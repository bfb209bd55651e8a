"""Dataset Parquet (docs/architecture.md: row_id, label, features list<float32>) for training.

TENSORFLOW input mode: each executor reads only its shard of the Parquet file itself.
SPARK input mode: the driver turns the Parquet file into an RDD of (features, label) that TFoS
feeds to the executors; the executor side reads it back in batches through ``TFNode.DataFeed``.
TensorFlow is imported inside functions only: executors import this module in the plain Python
worker (SPARK mode forks TF from it), and the driver never needs TF.
"""

from __future__ import annotations

import math

import numpy as np

COLUMNS = ["row_id", "label", "features"]
FEED_SCHEMA = "row_id BIGINT, label BIGINT, features ARRAY<FLOAT>"


def num_rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def read_arrays(path: str, shape, shard_index: int = 0, num_shards: int = 1, rows=None):
    """Return (x float32 [n, *shape], y int64 [n], row_id int64 [n]) for one shard.

    ``rows`` (a bool mask over the file's row positions, None = every row) picks the rows to
    shard: the training rows or the validation rows of a run. The shard is every
    ``num_shards``-th of those rows from ``shard_index`` on: shard sizes differ by at most one row,
    whatever the row-group layout. Read row group by row group so an executor never holds more
    than its shard.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} out of range for {num_shards} shards")
    pf = pq.ParquetFile(path)
    missing = set(COLUMNS) - set(pf.schema_arrow.names)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected {COLUMNS}")
    total = pf.metadata.num_rows
    if rows is None:
        mine = np.arange(shard_index, total, num_shards)
    else:
        if len(rows) != total:
            raise ValueError(f"{path}: a row mask of {len(rows)} rows for a file of {total}")
        mine = np.flatnonzero(rows)[shard_index::num_shards]
    xs, ys, ids = [], [], []
    offset = 0
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        lo, hi = np.searchsorted(mine, [offset, offset + n])
        take = mine[lo:hi] - offset
        offset += n
        if take.size:
            t = pf.read_row_group(rg, columns=COLUMNS).take(pa.array(take))
            xs.append(features_to_array(t.column("features"), shape, path))
            ys.append(t.column("label").to_numpy().astype(np.int64))
            ids.append(t.column("row_id").to_numpy().astype(np.int64))
    if not xs:
        return np.zeros((0, *shape), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)


def read_labels(path: str) -> np.ndarray:
    """The label column of a dataset Parquet file, in row order (int64)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["label"]).column("label").to_numpy().astype(np.int64)


def row_ids_at(path: str, rows) -> list[int]:
    """The row ids of a dataset Parquet file at the positions a bool mask picks (the validation rows):
    Spark's scans do not keep the file's row order, so they filter by id."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["row_id"]).column("row_id").to_numpy()[rows].tolist()


def validation_mask(path: str, num_classes: int, fraction: float, seed: int):
    """The rows of the training file a run holds out for validation (a bool mask by position), or
    None when ``fraction`` is 0: a stratified ``fraction`` of them, the same on every executor and
    the driver (it depends only on the labels and the seed)."""
    from workers.jobs.split import SplitError, stratified_split

    if not fraction:
        return None
    try:
        return stratified_split(read_labels(path), num_classes, fraction, seed, held_out="validation")
    except SplitError as exc:
        raise ValueError(f"validation_split {fraction}: {exc}") from None


def features_to_array(column, shape, source: str = "features") -> np.ndarray:
    """Arrow list column -> float32 array [n, *shape]; clear error when lengths do not fit."""
    import pyarrow.compute as pc

    col = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if col.null_count:
        raise ValueError(f"{source}: {col.null_count} row(s) have no features")
    size = math.prod(shape)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    bad = np.nonzero(lengths != size)[0]
    if bad.size:
        raise ValueError(
            f"{source}: a row has {int(lengths[bad[0]])} feature values but shape {list(shape)} needs {size}"
        )
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape((len(col), *shape))


def steps_per_epoch(total_rows: int, global_batch: int) -> int:
    """Same on every worker (MWMS steps in lockstep): one pass over the data at global_batch."""
    return max(1, math.ceil(total_rows / global_batch))


def per_replica_batch(global_batch: int, num_workers: int) -> int:
    return max(1, global_batch // num_workers)


def shard_dataset(x, y, batch: int, seed: int):
    """In-memory shard -> shuffled, repeating tf.data pipeline of per-replica batches."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(max(1, len(x)), seed=seed, reshuffle_each_iteration=True)
    return worker_options(ds.repeat().batch(batch).prefetch(2))


def eval_dataset(x, y, batch: int):
    """A worker's validation shard as a repeating tf.data pipeline of per-replica batches (fit
    evaluates a fixed number of steps; repeating keeps a short shard from running dry)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    return worker_options(ds.repeat().batch(batch).prefetch(2))


# --- SPARK input mode --------------------------------------------------------------------------


def feed_partitions(total_rows: int, num_workers: int, max_rows: int = 10000) -> int:
    # TFoS waits >= 1 s per fed partition (it polls queue.join once a second), so feed few, big
    # partitions: one per worker per epoch, more only to bound the rows queued at once.
    per_worker = max(1, math.ceil(total_rows / (num_workers * max_rows)))
    return num_workers * per_worker


def to_feed_item(row):
    """Spark Row(features, label) -> (float32 array, int): compact to pickle through TFoS queues."""
    return np.asarray(row[0], dtype=np.float32), int(row[1])


def spark_feed_rdd(spark, path: str, num_partitions: int, exclude_rows=None):
    """Driver side: the Parquet file as an RDD of (features, label), evenly partitioned.
    ``exclude_rows``: a bool mask by row position (the run's validation rows) left out of the feed."""
    # An explicit schema skips Spark's schema-inference job (~5 s on a fresh executor).
    df = spark.read.schema(FEED_SCHEMA).parquet(path)
    if exclude_rows is not None:
        held_out = spark.sparkContext.broadcast(frozenset(row_ids_at(path, exclude_rows)))
        rdd = df.rdd.filter(lambda row: row.row_id not in held_out.value).map(lambda row: (row.features, row.label))
    else:
        rdd = df.select("features", "label").rdd
    return rdd.repartition(num_partitions).map(to_feed_item)


def feed_dataset(data_feed, shape, batch: int):
    """Executor side: tf.data pipeline reading ``batch`` rows at a time from a TFNode.DataFeed."""
    import tensorflow as tf

    size = math.prod(shape)

    def batches():
        while not data_feed.should_stop():
            items = data_feed.next_batch(batch)
            if not items:
                return
            x = np.stack([np.asarray(i[0], dtype=np.float32) for i in items])
            if x.shape[1:] != (size,):
                raise ValueError(f"fed rows have {x.shape[1:]} feature values but shape {list(shape)} needs {size}")
            yield x.reshape((len(items), *shape)), np.asarray([i[1] for i in items], np.int64)

    ds = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec((None, *shape), tf.float32),
            tf.TensorSpec((None,), tf.int64),
        ),
    )
    return worker_options(ds.prefetch(2))


def worker_options(ds):
    """Options for a worker's input pipeline."""
    import tensorflow as tf

    opts = tf.data.Options()
    # Each worker already holds only its own data; TF must not shard it again.
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # Nothing here to tune (no parallel map; a fixed 2-batch prefetch), and the autotuning thread
    # delays the iterator's teardown at the end of fit() (see tfdata_teardown.py).
    opts.autotune.enabled = False
    return ds.with_options(opts)
