"""TensorBoard event files written by the chief: ``<artifact_dir>/tensorboard/train/events.out.tfevents.*``.

What ``tf_keras.callbacks.TensorBoard(update_freq="epoch", profile_batch=0)`` writes for a model's
metrics (tags ``epoch_loss``, ``epoch_accuracy``, … at step = epoch index, 0-based), written with
TensorFlow's own ``tf.summary.write`` and the scalars plugin's metadata: since TensorFlow 2.21 the
``tensorboard`` package is no longer installed with it, and without it Keras's callback fails on
its first ``tf.summary.scalar`` ("TensorBoard is not installed"). View them with
``tensorboard --logdir <folder>`` wherever TensorBoard is installed (docs/monitoring.md).

Writing is best effort: any failure prints one warning and turns the callback off; training never
fails because of it. Imports TensorFlow only inside ``make_callback``.
"""

from __future__ import annotations

import math
import os
import sys

TB_DIR = "tensorboard"
SCALARS_PLUGIN = "scalars"
DATA_CLASS_SCALAR = 1  # tensorboard's SummaryMetadata.DataClass.DATA_CLASS_SCALAR


def log_dir(artifact_dir: str) -> str:
    return os.path.join(artifact_dir, TB_DIR)


def make_callback(keras, tf, logdir: str, extra=None):
    """A Keras Callback writing every numeric epoch log as ``epoch_<name>`` under ``<logdir>/train``.
    ``extra``: a function of (epoch) returning more {tag: value} (e.g. seconds per step)."""

    class EpochSummaries(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = None
            self.failed = False
            self.written = 0  # scalars written (for logs and tests)
            self.metadata = tf.compat.v1.SummaryMetadata(
                plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name=SCALARS_PLUGIN),
                data_class=DATA_CLASS_SCALAR,
            )

        def _guard(self, what, fn):
            if self.failed:
                return
            try:
                fn()
            except Exception as e:  # a summary must never fail training
                self.failed = True
                print(f"WARNING sparkdeck tensorboard: {what} failed ({e!r}); no more event files", file=sys.stderr)

        def on_train_begin(self, logs=None):
            def begin():
                path = os.path.join(logdir, "train")
                os.makedirs(path, exist_ok=True)
                self.writer = tf.summary.create_file_writer(path)

            self._guard("creating the event file", begin)

        def on_epoch_end(self, epoch, logs=None):
            def write():
                values = {f"epoch_{k}": v for k, v in (logs or {}).items()}
                values.update(extra(epoch) if extra else {})
                with self.writer.as_default():
                    for tag, value in sorted(values.items()):
                        try:
                            value = float(value)
                        except (TypeError, ValueError):
                            continue
                        if math.isfinite(value):
                            tf.summary.write(tag, tf.constant(value, tf.float32), step=epoch, metadata=self.metadata)
                            self.written += 1
                self.writer.flush()  # readable (and downloadable) after every epoch, not only at the end

            if self.writer is not None:
                self._guard("writing epoch summaries", write)

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self._guard("closing the event file", self.writer.close)

    return EpochSummaries()


def safe_callback(keras, tf, logdir: str, extra=None):
    """make_callback, or None (with a warning) if even building it fails: training goes on without."""
    try:
        return make_callback(keras, tf, logdir, extra)
    except Exception as e:  # e.g. a TensorFlow without tf.summary.write
        print(f"WARNING sparkdeck tensorboard: no event files ({e!r})", file=sys.stderr)
        return None
