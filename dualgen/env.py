"""The one place for the environment variables TensorFlow, segmentation_models and albumentations need.

Imported by ``dualgen/__init__`` so every script, test and notebook that imports dualgen gets them
before TensorFlow is loaded.
"""
import os

ENVIRONMENT = {
    "TF_USE_LEGACY_KERAS": "1",  # segmentation_models needs the Keras 2 API (tf-keras)
    "SM_FRAMEWORK": "tf.keras",  # ... and must be told to use it
    "NO_ALBUMENTATIONS_UPDATE": "1",  # no network check at import
    "TF_CPP_MIN_LOG_LEVEL": "2",  # keep TensorFlow's C++ start-up chatter out of the logs
    "TF_DETERMINISTIC_OPS": "1",  # same config -> same numbers
    "PYTHONHASHSEED": "0",
}


def apply():
    """Set the variables (without overriding what the user set explicitly)."""
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def setup_tensorflow(threads=1, seed=None):
    """Import TensorFlow with its thread pools sized to the rule's ``threads`` and determinism on.

    Must run before any TensorFlow op executes. Returns the ``tf`` module.
    """
    apply()
    from dualgen import devices

    device = devices.claim()  # before TensorFlow initialises CUDA
    print(f"device: {'GPU ' + device if device is not None else 'CPU'}, {threads} thread(s)", flush=True)
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
    tf.config.experimental.enable_op_determinism()
    if seed is not None:
        tf.keras.utils.set_random_seed(int(seed))
    return tf
