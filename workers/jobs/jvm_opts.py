"""JVM options for a run's own JVMs: the driver (spark-submit's) and, in TENSORFLOW input mode,
the executors.

A run's JVMs are short-lived and do little JVM work: the driver schedules a handful of tasks,
and a TENSORFLOW-mode executor only starts the Python worker in which TensorFlow reads its own
shard and trains. Their cost is startup, and on a small machine the C2 compiler's threads compete
with everything else starting at that moment (the other JVM, TensorFlow's import). C1 only
(``-XX:TieredStopAtLevel=1``) cut an executor's start, from launch to registered with the driver,
from 9 to 5 s on a 2-core machine, and a run's fixed overhead by 5.5 s (bench/train_vs_plain.py
--java-opts). SPARK-mode executors keep the default: there the JVM reads and serializes every
fed row, where C2's code is faster. A cluster's own spark.driver/executor.extraJavaOptions win.
"""

STARTUP_JAVA_OPTS = "-XX:TieredStopAtLevel=1"
# Sparkdeck's own options for the executors' JVMs (class-data archive, workers/jvm_cds.py), passed
# under a key of their own so the driver can join them with the options above and a cluster's own
# spark.executor.extraJavaOptions still wins as a whole.
EXECUTOR_OPTS_CONF = "spark.sparkdeck.executorJavaOptions"


def join(*opts: str) -> str:
    return " ".join(o for o in opts if o)


def executor_java_opts(input_mode: str, sparkdeck_opts: str = "") -> str:
    """The executors' JVM options: C1 only in TENSORFLOW mode, then Sparkdeck's archive options."""
    return join(STARTUP_JAVA_OPTS if input_mode == "tensorflow" else "", sparkdeck_opts)
