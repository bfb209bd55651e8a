"""glibc malloc settings for the executors, where TensorFlow trains and predicts in Python workers.

TensorFlow's CPU allocator is plain malloc. With glibc's defaults the activations and gradients
freed at the end of a training step go back to the kernel (the heap top is trimmed, big blocks are
unmapped) and the next step faults them in again, page by page, zeroed. perf on a 2-core machine:
18% of a CNN step in the kernel (page faults, clear_page) under a distribution strategy, 2.6% in
one plain process. Keeping freed memory in the process removes that: the CNN step (28x28 digits,
batch 64) went from 236 to 157 ms under OneDeviceStrategy, 205 to 146 ms under
MultiWorkerMirroredStrategy, and 155 to 142 ms without a strategy (bench/malloc_step.py).

The cost: a process keeps up to MALLOC_TRIM_THRESHOLD_ of freed heap (and every block under
MALLOC_MMAP_THRESHOLD_) instead of returning it, so its RSS stays near its peak. Where containers
are sized tightly (YARN), lower these per cluster: a MALLOC_* name in the cluster's executor
environment wins over these defaults (docs/clusters.md).
"""

MALLOC_ENV = {
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),  # return freed heap top to the kernel only above 1 GiB
    "MALLOC_TOP_PAD_": str(256 << 20),  # grow the heap in big steps (address space; touched lazily)
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),  # glibc's largest: blocks under it come from the heap
}


def spark_defaults() -> dict[str, str]:
    """``spark.executorEnv.*`` entries for MALLOC_ENV (the driver sets them only where missing)."""
    return {f"spark.executorEnv.{key}": value for key, value in MALLOC_ENV.items()}
