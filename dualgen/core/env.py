"""The one place for the environment variables TensorFlow, segmentation_models and albumentations need.

Imported by ``dualgen/__init__`` so every script, test and notebook that imports dualgen gets them
before TensorFlow is loaded.

Determinism (config key ``determinism``, docs/gpu.md): ``setup_tensorflow(threads, seed, mode)``
with ``strict`` (the default) turns TensorFlow's op determinism on (``TF_DETERMINISTIC_OPS=1`` and
``tf.config.experimental.enable_op_determinism()``): same config -> same numbers on the same machine / GPU type;
``fast`` turns it off and lets cuDNN autotune (``TF_DETERMINISTIC_OPS=0``, ``TF_CUDNN_USE_AUTOTUNE=1``): faster on
a GPU, results may differ in the last digits between runs. ``mode`` records what this process set up
(None before ``setup_tensorflow``); ``artifacts.meta`` writes it into every meta.json ("n/a" without TensorFlow).
"""

import os

ENVIRONMENT = {
    "TF_USE_LEGACY_KERAS": "1",  # segmentation_models needs the Keras 2 API (tf-keras)
    "SM_FRAMEWORK": "tf.keras",  # ... and must be told to use it
    "NO_ALBUMENTATIONS_UPDATE": "1",  # no network check at import
    "TF_CPP_MIN_LOG_LEVEL": "2",  # keep TensorFlow's C++ start-up chatter out of the logs
    "TF_DETERMINISTIC_OPS": "1",  # same config -> same numbers (determinism: strict; setup_tensorflow sets the mode)
    "PYTHONHASHSEED": "0",
}

# determinism mode -> the variables setup_tensorflow sets for it (over ENVIRONMENT and the user's: the config decides)
DETERMINISM = {
    "strict": {"TF_DETERMINISTIC_OPS": "1"},
    "fast": {"TF_DETERMINISTIC_OPS": "0", "TF_CUDNN_USE_AUTOTUNE": "1"},
}
MODES = tuple(DETERMINISM)

mode = None  # the determinism mode setup_tensorflow set up in this process (None: not called)


def apply():
    """Set the variables (without overriding what the user set explicitly)."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def setup_tensorflow(threads=1, seed=None, determinism="strict"):
    """Import TensorFlow with its thread pools sized to the rule's ``threads`` and the ``determinism`` mode
    (``strict``: op determinism on; ``fast``: off, cuDNN autotuning on; see the module docstring).

    Must run before any TensorFlow op executes. Returns the ``tf`` module.
    """
    global mode
    if determinism not in DETERMINISM:
        from dualgen.core.errors import DualgenError

        raise DualgenError(f"config: determinism: {determinism!r} is not one of {list(MODES)}")
    apply()
    os.environ.update(DETERMINISM[determinism])  # before TensorFlow reads them (and for any child process)
    from dualgen.core import devices

    device = devices.claim()  # before TensorFlow initialises CUDA
    print(
        f"device: {'GPU ' + device if device is not None else 'CPU'}, {threads} thread(s), determinism {determinism}",
        flush=True,
    )
    threads = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # already initialised (e.g. a second call in one test process)
        pass
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    if determinism == "strict":
        tf.config.experimental.enable_op_determinism()
    else:  # TF 2.21 has no public switch-off; this one overrides TF_DETERMINISTIC_OPS, as enable does
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    mode = determinism
    if seed is not None:
        tf.keras.utils.set_random_seed(int(seed))
    return tf


def without_autotune(dataset):
    """``dataset`` with tf.data autotuning off: for pipelines sized by hand (no parallel map, a fixed prefetch).
    With it on, deleting an iterator (at the end of every Keras ``fit``) waits for the autotuner's thread to wake
    from its sleep (up to ~20 s)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
