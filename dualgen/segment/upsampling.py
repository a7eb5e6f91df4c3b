"""Nearest-neighbour upsampling that is deterministic on a GPU, for the U-Net.

``UpSampling2D(interpolation="nearest")``'s gradient is ``ResizeNearestNeighborGrad``, which raises on a GPU under op
determinism (``env.setup_tensorflow``). ``DeterministicUpSampling2D`` computes the same values from reshape +
broadcast only; ``replace_upsampling`` swaps it into a functional Keras model (``unet.build_unet`` does). The list of
kernels that raise under op determinism, and the tools that search a traced step for them, are test tooling:
tests/determinism_tools.py.
"""

import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)


def _dim(x, i):
    static = x.shape[i]
    return int(static) if static is not None else tf.shape(x)[i]


def upsample_nearest(x, size, data_format="channels_last"):
    """Nearest-neighbour upsampling by integer factors (sh, sw), from reshape + broadcast only: the same values as
    ``UpSampling2D(interpolation="nearest")`` (every pixel repeated into an sh x sw block); the gradient is the sum
    over each block (BroadcastTo's gradient: a Sum reduction), deterministic on every device."""
    sh, sw = (int(s) for s in size)
    if data_format == "channels_first":
        n, c, h, w = (_dim(x, i) for i in range(4))
        y = tf.broadcast_to(tf.reshape(x, [n, c, h, 1, w, 1]), [n, c, h, sh, w, sw])
        return tf.reshape(y, [n, c, h * sh, w * sw])
    n, h, w, c = (_dim(x, i) for i in range(4))
    y = tf.broadcast_to(tf.reshape(x, [n, h, 1, w, 1, c]), [n, h, sh, w, sw, c])
    return tf.reshape(y, [n, h * sh, w * sw, c])


@tf.keras.utils.register_keras_serializable(package="dualgen")
class DeterministicUpSampling2D(tf.keras.layers.Layer):
    """Drop-in for ``tf.keras.layers.UpSampling2D(size, interpolation="nearest")`` whose gradient has no
    ResizeNearestNeighborGrad (which raises on a GPU under op determinism). No weights."""

    def __init__(self, size=(2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"DeterministicUpSampling2D: size must be 1 or 2 positive integers, got {size}")
        self.size = tuple(int(s) for s in size)
        self.data_format = data_format or tf.keras.backend.image_data_format()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"DeterministicUpSampling2D: unknown data_format {self.data_format!r}")
        self.input_spec = tf.keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        return upsample_nearest(inputs, self.size, self.data_format)

    def compute_output_shape(self, input_shape):
        s = tf.TensorShape(input_shape).as_list()
        hi = 2 if self.data_format == "channels_first" else 1
        for i, f in zip((hi, hi + 1), self.size):
            s[i] = None if s[i] is None else s[i] * f
        return tf.TensorShape(s)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format}


def _is_nearest_upsampling(layer):
    return isinstance(layer, tf.keras.layers.UpSampling2D) and str(
        getattr(layer, "interpolation", "nearest")
    ).lower() in ("nearest", "resizemethod.nearest_neighbor")


def replace_upsampling(model):
    """The functional Keras ``model`` with every nearest ``UpSampling2D`` (any integer size) replaced by a
    ``DeterministicUpSampling2D`` of the same name, size and data format; every other layer is the same object
    (its weights are shared, not copied: outputs identical bit for bit, layer names and weight order unchanged, so
    weight files of either model load into the other). Nested functional models are handled recursively.
    Attributes named ``dualgen_*`` are carried over. A model without such layers is returned as it is."""
    if not any(_is_nearest_upsampling(layer) for layer in model.submodules):
        return model
    if not getattr(model, "_is_graph_network", False):
        raise TypeError(
            f"replace_upsampling: {type(model).__name__} '{model.name}' is not a functional Keras model: "
            "use DeterministicUpSampling2D in its code instead of UpSampling2D"
        )

    def clone(layer):
        if _is_nearest_upsampling(layer):
            return DeterministicUpSampling2D(
                size=layer.size,
                data_format=layer.data_format,
                name=layer.name,
                dtype=layer.dtype_policy,
                trainable=layer.trainable,
            )
        if isinstance(layer, tf.keras.Model) and getattr(layer, "_is_graph_network", False):
            return replace_upsampling(layer)
        return layer

    new = tf.keras.models.clone_model(model, clone_function=clone)
    for key, value in vars(model).items():
        if key.startswith("dualgen_"):
            setattr(new, key, value)
    return new
