"""Work around a slow tf.data teardown under MultiWorkerMirroredStrategy (TF 2.21).

The strategy reads each worker's dataset through a MultiDeviceIterator, which wraps every device's
stream in a new root dataset with default options, so tf.data's autotuning ("model") thread runs
for it. Destroying that iterator when ``model.fit`` returns waits for the model thread's current
sleep, whose period doubles up to a minute: fit returned 0, 5-6, 12-13 or 24-26 s after its last
epoch, more often the more epochs it trained (gdb: ``~LogicalThreadWrapper`` under
``RootDataset::Iterator::~Iterator`` while ``Model::OptimizeLoop`` sleeps). These streams only
copy ready batches, so they need no autotuning: turning it off there removes the wait.
"""

from __future__ import annotations

_PATCHED = "_sparkdeck_no_autotune"


def disable_device_autotune() -> bool:
    """Make the per-device datasets of MultiDeviceIterator run without autotuning.

    Idempotent. Returns False (and changes nothing) when this TensorFlow lacks the private
    function it wraps; training then still works, with the slow teardown.
    """
    import tensorflow as tf
    from tensorflow.python.data.ops import multi_device_iterator_ops as mdi

    original = getattr(mdi, "_create_device_dataset", None)
    if original is None:
        return False
    if getattr(original, _PATCHED, False):
        return True

    def create_device_dataset(*args, **kwargs):
        options = tf.data.Options()
        options.autotune.enabled = False
        return original(*args, **kwargs).with_options(options)

    setattr(create_device_dataset, _PATCHED, True)
    mdi._create_device_dataset = create_device_dataset
    return True
