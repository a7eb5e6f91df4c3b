"""Mixed precision (config ``unet.mixed_precision``, ``vqvae.mixed_precision``; off unless set; the default config sets
the U-Net's to ``auto``): float16 compute with float32 variables and float32 outputs, and dynamic loss scaling so
that small float16 gradients do not underflow to zero. Meant for GPUs with tensor cores (compute capability 7.0 or
higher); on a CPU float16 runs, but slower than float32 (``check`` says so in the log). The U-Net also takes
``bfloat16``: float32's range with 8 bits of mantissa, no loss scaling; faster than float32 on CPUs with AVX512_BF16
or AMX and on Ampere or newer GPUs, emulated (slower) on other AVX512 CPUs, impossible without
AVX512; and ``auto`` (the default config's): bfloat16 where the CPU computes it natively, float32 elsewhere
(``resolve``; the model's spec.json and the training's meta.json say which ran).

- Keras (the U-Net): ``keras_policy(True)`` builds layers under the ``mixed_float16`` policy (``"bfloat16"``:
  ``mixed_bfloat16``);
  ``float32_outputs(model)`` rebuilds the output activation (segmentation_models' final softmax) in float32, so
  the softmax and the loss are computed in float32; under float16 the optimizer is wrapped in
  ``tf.keras.mixed_precision.LossScaleOptimizer`` (``unet_train``), whose loss scale Keras' fit applies.
- Sonnet (the VQ-VAE's own training step): Sonnet has no dtype policy, so ``half_variables(model, keep)`` reads
  the float32 variables of the model's modules as float16 casts while the step is traced (the gradient of the
  cast brings float32 gradients back to the float32 variables); the modules in ``keep`` (the quantiser: its
  codebook and moving averages) stay float32. ``LossScale`` is a dynamic loss scale for such a step, as
  tf-keras' LossScaleOptimizer does it: multiply the loss by the scale, divide the gradients by it, skip an update
  whose gradients are not finite and halve the scale, double it after ``growth_steps`` finite updates in a row.
"""

import contextlib

import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)

MODES = {False: None, None: None, True: "float16", "float16": "float16", "bfloat16": "bfloat16"}


def mode(value):
    """A ``mixed_precision`` setting (false, true = "float16", "float16", "bfloat16") -> None, "float16" or
    "bfloat16"."""
    if isinstance(value, (bool, str, type(None))) and value in MODES:
        return MODES[value]
    raise ValueError(f"mixed_precision: {value!r} is none of false, true, float16, bfloat16")


def on_gpu():
    return bool(tf.config.list_physical_devices("GPU"))


def cpu_bfloat16(cpuinfo="/proc/cpuinfo"):
    """How this CPU runs TensorFlow's bfloat16 (x86 flags in Linux's /proc/cpuinfo): "native" (AVX512_BF16 or
    AMX), "emulated" (AVX512 without them: oneDNN converts, about 0.6x float32's speed), None (no AVX512: oneDNN
    has no bfloat16 kernels and training aborts) or "unknown" (no x86 flags to read)."""
    try:
        text = open(cpuinfo).read()
    except OSError:
        return "unknown"
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    if not lines:
        return "unknown"
    flags = set(lines[0].split(":", 1)[-1].split())
    if flags & {"avx512_bf16", "amx_bf16"}:
        return "native"
    return "emulated" if "avx512bw" in flags else None


def resolve(value):
    """A ``mixed_precision`` setting as the model is built with it: "auto" -> "bfloat16" on a CPU that computes
    bfloat16 natively (no GPU), false otherwise (float32; float16 for tensor cores is chosen explicitly); any
    other value as it is (checked by ``mode``)."""
    if value == "auto":
        return "bfloat16" if not on_gpu() and cpu_bfloat16() == "native" else False
    mode(value)
    return value


def check(log, what, value=True):
    """Mixed precision that cannot run here is a DualgenError (bfloat16 on a CPU without AVX512); one warning line
    where it runs slower than float32 (float16 without a GPU, bfloat16 emulated)."""
    m = mode(value)
    if m is None or on_gpu():
        return
    if m == "float16":
        log(
            f"warning: {what}: mixed precision (float16) is meant for GPUs with tensor cores; on this CPU it runs "
            "slower than float32 (set it to false for CPU runs)"
        )
        return
    cpu = cpu_bfloat16()
    if cpu is None:
        from dualgen.core.errors import DualgenError

        raise DualgenError(
            f"{what}: bfloat16 needs a CPU with AVX512 (TensorFlow has no bfloat16 kernels for this "
            "one) or a GPU: set it to auto or false"
        )
    if cpu == "emulated":
        log(
            f"warning: {what}: this CPU emulates bfloat16 (no AVX512_BF16 or AMX): slower than float32 (set it to "
            "auto or false)"
        )


# ---------------------------------------------------------------------------------------------- Keras


@contextlib.contextmanager
def keras_policy(value=True):
    """Keras layers created inside get the ``mixed_float16`` (``value`` true or "float16") or ``mixed_bfloat16``
    ("bfloat16") policy (half-precision compute, float32 variables); the global policy is restored afterwards.
    ``value`` false: nothing changes."""
    m = mode(value)
    if m is None:
        yield
        return
    old = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(f"mixed_{m}")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(old)


def float32_outputs(model):
    """The functional Keras ``model`` with float32 outputs: an ``Activation`` that makes an output is replaced by the
    same activation with the float32 policy (same name, no weights: weight files load either way); any other output
    layer gets a float32 ``linear`` Activation after it. Every other layer is the same object. Attributes named
    ``dualgen_*`` are carried over. A model whose outputs are float32 already is returned as it is."""
    outputs = tf.nest.flatten(model.outputs)
    if all(o.dtype == tf.float32 for o in outputs):
        return model
    makers = {id(o._keras_history.layer) for o in outputs}
    replaceable = {i for i in makers if isinstance(_layer(model, i), tf.keras.layers.Activation)}

    def clone(layer):
        if id(layer) in replaceable:
            return tf.keras.layers.Activation(layer.activation, name=layer.name, dtype="float32")
        return layer

    new = tf.keras.models.clone_model(model, clone_function=clone)
    if any(o.dtype != tf.float32 for o in tf.nest.flatten(new.outputs)):
        casts = [
            o if o.dtype == tf.float32 else tf.keras.layers.Activation("linear", dtype="float32")(o)
            for o in tf.nest.flatten(new.outputs)
        ]
        new = tf.keras.Model(new.inputs, tf.nest.pack_sequence_as(new.outputs, casts), name=new.name)
    for key, value in vars(model).items():
        if key.startswith("dualgen_"):
            setattr(new, key, value)
    return new


def _layer(model, layer_id):
    return next(layer for layer in model.layers if id(layer) == layer_id)


def loss_scale_optimizer(optimizer, value=True):
    """``optimizer`` wrapped in tf-keras' dynamic ``LossScaleOptimizer`` where ``value`` is float16 mixed precision
    (float16 gradients underflow without it; bfloat16 has float32's range and needs none)."""
    return tf.keras.mixed_precision.LossScaleOptimizer(optimizer) if mode(value) == "float16" else optimizer


# ---------------------------------------------------------------------------------------------- Sonnet


@contextlib.contextmanager
def half_variables(model, keep=(), dtype=tf.float16):
    """While active, the float32 variables of the Sonnet ``model`` and its submodules, except the modules in
    ``keep`` and their submodules, read as ``dtype`` casts: the layers compute in ``dtype`` on ``dtype`` inputs,
    the variables stay float32 (the cast's gradient is float32). A variable held directly in an attribute, or in a
    list / tuple attribute, is cast (Sonnet's layers hold theirs so: ``w``, ``b``). Use it around the forward pass
    inside a traced step: it patches the modules' classes' ``__getattribute__`` while active (as
    ``snt.custom_variable_getter`` does, without its dm-tree walk over every attribute). The variables must exist
    already (build the model first)."""
    kept = {id(m) for k in keep for m in (k, *k.submodules)}
    ids = {id(m) for m in (model, *model.submodules)} - kept

    def cast(value):
        if isinstance(value, tf.Variable) and value.dtype == tf.float32:
            return tf.cast(value, dtype)
        if isinstance(value, (list, tuple)) and value and any(isinstance(v, tf.Variable) for v in value):
            return type(value)(cast(v) for v in value)
        return value

    with contextlib.ExitStack() as stack:
        for cls in {type(m) for m in (model, *model.submodules) if id(m) in ids}:
            own = cls.__dict__.get("__getattribute__")  # None: inherited (restored by deleting the patch)
            original = cls.__getattribute__

            def patched(obj, name, original=original):
                value = original(obj, name)
                return cast(value) if id(obj) in ids else value

            cls.__getattribute__ = patched
            stack.callback(
                lambda cls=cls, own=own: (
                    setattr(cls, "__getattribute__", own) if own is not None else delattr(cls, "__getattribute__")
                )
            )
        yield


class LossScale(tf.Module):
    """A dynamic loss scale for a custom training step (float16 gradients), as tf-keras' LossScaleOptimizer:

        with tape: loss = ...; scaled = scale.scaled(loss)
        applied = scale.apply(optimizer, tape.gradient(scaled, params), params)

    ``apply`` divides the gradients by the scale; if all are finite the optimizer applies them (and after
    ``growth_steps`` such updates in a row the scale doubles), otherwise the update is skipped and the scale halves
    (not below 1). Its variables (``scale``, ``good_steps``) belong in the training checkpoint (attach it to the
    optimizer: ``opt.loss_scale = LossScale()``) so that a resumed run continues with the same scale."""

    def __init__(self, initial=2.0**15, growth_steps=2000, name="loss_scale"):
        super().__init__(name=name)
        self.scale = tf.Variable(float(initial), trainable=False, dtype=tf.float32, name="scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps")
        self.growth_steps = int(growth_steps)

    def scaled(self, loss):
        return loss * tf.cast(self.scale, loss.dtype)

    def apply(self, optimizer, grads, params):
        """Unscale ``grads``; apply them with ``optimizer.apply(grads, params)`` (Sonnet) if all are finite. Returns
        a bool tensor: whether the update was applied."""
        inverse = 1.0 / self.scale
        grads = [
            None
            if g is None
            else tf.IndexedSlices(g.values * tf.cast(inverse, g.dtype), g.indices, g.dense_shape)
            if isinstance(g, tf.IndexedSlices)
            else g * tf.cast(inverse, g.dtype)
            for g in grads
        ]
        finite = tf.reduce_all(
            [
                tf.reduce_all(tf.math.is_finite(g.values if isinstance(g, tf.IndexedSlices) else g))
                for g in grads
                if g is not None
            ]
        )

        def update():
            optimizer.apply(grads, params)
            grow = self.good_steps + 1 >= self.growth_steps
            doubled = self.scale * 2.0
            self.scale.assign(tf.where(grow & tf.math.is_finite(doubled), doubled, self.scale))
            self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), self.good_steps + 1))
            return tf.constant(True)

        def skip():
            self.scale.assign(tf.maximum(self.scale / 2.0, 1.0))
            self.good_steps.assign(0)
            return tf.constant(False)

        return tf.cond(finite, update, skip)
