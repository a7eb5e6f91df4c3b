"""VQ-VAE on micrograph + mask stacked as one (C+1)-channel image (paper step 4), after DeepMind Sonnet's
example (sonnet/examples/vqvae_example.ipynb). ``mask_encoding`` ``onehot`` stacks one channel per class instead
of the mask's one channel of class levels (C+K channels): a blurred edge between two classes then never passes
through a third class's level (``postprocess``: no k-means, no in-between rims).

Encoder: two 4x4 stride-2 convolutions (ReLU), a 3x3 convolution (ReLU, as in Sonnet's example), a residual
stack, a 1x1 convolution to the embedding dimension. Quantiser: ``snt.nets.VectorQuantizerEMA`` (codebook updated
by moving averages) or ``snt.nets.VectorQuantizer`` (codebook learned by gradient). Decoder: the mirror image,
ending in two 4x4 stride-2 transposed convolutions, the last one to C+1 channels. A 256-px patch becomes a 64x64
grid of code indices (``downsample`` = 4, the paper's). With ``downsample`` = 2 the second convolution of the
encoder and the first transposed convolution of the decoder keep the size (stride 1; same layers otherwise): a
64-px patch becomes a 32x32 grid, one code per 2x2 pixels, fine enough for one-pixel boundaries.

Training loss (as in Sonnet's example): reconstruction MSE / data variance + VQ loss, where the mask channel's
squared error is weighted by ``mask_weight`` (1: the plain MSE of all C+1 channels; the mask is only one of them,
so at 1 an RGB micrograph outweighs its mask 3:1).

Persistence: ``save(model, folder, spec)`` writes the weights (a tf.train.Checkpoint) and ``spec.json`` (the
constructor's arguments, ``make_spec``) into a folder; ``load(folder)`` rebuilds the model from them.
``train_vqvae`` keeps the model with the lowest validation reconstruction error (out_dir/best, a ``save``
folder) and a rolling checkpoint with the optimizer state (out_dir/last), each replaced as a whole
(``artifacts.atomic_dir``), so a killed run continues where it stopped; it returns its history, the best step
and the step it resumed from.
"""
import json
import time
from pathlib import Path

import numpy as np

import dualgen  # noqa: F401  (environment before TensorFlow)
import sonnet as snt
import tensorflow as tf

from dualgen.core import env
from dualgen.core.artifacts import atomic_dir, read_spec, recover, write_spec
from dualgen.core.errors import DualgenError
from dualgen.generate.postprocess import mask_levels  # noqa: F401  (part of this module's API)

DOWNSAMPLE = 4  # the default (and the paper's) factor: two stride-2 convolutions
DOWNSAMPLES = (2, 4)  # patch pixels per code cell along each side
MASK_ENCODINGS = ("level", "onehot")  # the mask as one channel of class levels (the paper), or one channel per class
# the constructor's arguments a spec holds (channels: the model's, i.e. the micrograph's C + the mask's channels)
SPEC_KEYS = ("channels", "num_hiddens", "num_residual_hiddens", "num_residual_layers", "embedding_dim",
             "num_embeddings", "commitment_cost", "decay", "quantizer", "downsample", "mask_encoding")
# keys a spec written before they existed may lack: their old value
OPTIONAL_SPEC = {"downsample": DOWNSAMPLE, "mask_encoding": "level"}


def check_patch_size(patch_size, downsample=DOWNSAMPLE):
    """The encoder shrinks a patch by ``downsample`` and the decoder grows it back: the size must divide by it."""
    if int(patch_size) % int(downsample):
        fit = max(int(downsample), int(patch_size) - int(patch_size) % int(downsample))
        raise DualgenError(
            f"patch size {patch_size} is not divisible by the VQ-VAE's downsampling factor {downsample}: "
            f"use a multiple of {downsample} (e.g. {fit})"
        )


# --- data <-> model ------------------------------------------------------------------------------------------

def check_mask_encoding(encoding):
    if encoding not in MASK_ENCODINGS:
        raise DualgenError(f"vqvae.mask_encoding is {encoding!r}: use one of {', '.join(MASK_ENCODINGS)}")


def mask_channels(num_classes, encoding="level"):
    """How many channels the mask takes in the model's input: 1 (``level``) or one per class (``onehot``)."""
    check_mask_encoding(encoding)
    return 1 if encoding == "level" else int(num_classes)


def to_model_input(images, masks, num_classes, encoding="level"):
    """uint8 images (N,H,W,C) + class masks (N,H,W) -> float32 (N,H,W,C+M) in [-0.5, 0.5], M = ``mask_channels``.

    Image channels: value / 255 - 0.5. Mask, ``encoding`` ``level`` (the paper's): one channel, class k ->
    k / (num_classes - 1) - 0.5, so the class levels are spread evenly over the range (class 0, the matrix, is the
    lowest). ``onehot``: one channel per class, 0.5 where the pixel is of that class, else -0.5."""
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim == 3:  # (N,H,W) gray
        images = images[..., None]
    if images.ndim != 4 or masks.shape != images.shape[:3]:
        raise DualgenError(f"VQ-VAE input: images {images.shape} and masks {masks.shape} do not pair up: "
                           "expected images (N,H,W,C) and masks (N,H,W) of the same N, H, W")
    if num_classes < 2:
        raise DualgenError(f"VQ-VAE input: {num_classes} class(es): the classes list needs at least 2")
    if masks.size and (masks.min() < 0 or masks.max() >= num_classes):
        raise DualgenError(f"VQ-VAE input: mask value {int(masks.max())} is not a class index 0..{num_classes - 1}: "
                           "check the classes list in the config against the masks")
    img = images.astype(np.float32) / 255.0 - 0.5
    if mask_channels(num_classes, encoding) == 1:
        mask = mask_levels(num_classes).astype(np.float32)[masks.astype(np.intp)][..., None] - 0.5
    else:
        mask = np.eye(int(num_classes), dtype=np.float32)[masks.astype(np.intp)] - 0.5
    return np.concatenate([img, mask], axis=-1)


def from_model_output(x, num_classes, encoding="level"):
    """float (N,H,W,C+M) -> (uint8 images (N,H,W,C), raw masks float32).

    Raw masks, not yet classes (``postprocess.clean_mask`` turns them into class indices): ``level``: (N,H,W) in
    level units [0, 1]; ``onehot``: (N,H,W,K), one score per class (about 1 for the pixel's class, 0 for the
    others; not clipped, so the largest stays the largest)."""
    x = np.asarray(x, np.float32)
    m = mask_channels(num_classes, encoding)
    if x.shape[-1] <= m:
        raise DualgenError(f"VQ-VAE output has {x.shape[-1]} channels: expected the micrograph's and {m} for the mask "
                           f"({encoding} encoding of {num_classes} classes)")
    images = np.clip(np.rint((x[..., :-m] + 0.5) * 255.0), 0, 255).astype(np.uint8)
    if m == 1:
        return images, np.clip(x[..., -1] + 0.5, 0.0, 1.0).astype(np.float32)
    return images, (x[..., -m:] + 0.5).astype(np.float32)


# --- the model -----------------------------------------------------------------------------------------------

class ResidualStack(snt.Module):
    """num_residual_layers x (ReLU, 3x3 conv, ReLU, 1x1 conv) added to the input, then a ReLU."""

    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, name=None):
        super().__init__(name=name)
        self._layers = [(snt.Conv2D(num_residual_hiddens, 3, name=f"res3x3_{i}"),
                         snt.Conv2D(num_hiddens, 1, name=f"res1x1_{i}")) for i in range(num_residual_layers)]

    def __call__(self, h):
        for conv3, conv1 in self._layers:
            h = h + conv1(tf.nn.relu(conv3(tf.nn.relu(h))))
        return tf.nn.relu(h)


class Encoder(snt.Module):
    """Sonnet's example encoder: conv 4x4 /2, ReLU, conv 4x4 /2 (/1 at downsample 2), ReLU, conv 3x3, ReLU,
    residual stack."""

    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, downsample=DOWNSAMPLE, name=None):
        super().__init__(name=name)
        self._enc_1 = snt.Conv2D(num_hiddens // 2, 4, stride=2, name="enc_1")
        self._enc_2 = snt.Conv2D(num_hiddens, 4, stride=downsample // 2, name="enc_2")
        self._enc_3 = snt.Conv2D(num_hiddens, 3, name="enc_3")
        self._residual = ResidualStack(num_hiddens, num_residual_layers, num_residual_hiddens)

    def __call__(self, x):
        h = tf.nn.relu(self._enc_1(x))
        h = tf.nn.relu(self._enc_2(h))
        h = tf.nn.relu(self._enc_3(h))
        return self._residual(h)


class Decoder(snt.Module):
    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, out_channels, downsample=DOWNSAMPLE,
                 name=None):
        super().__init__(name=name)
        self._dec_1 = snt.Conv2D(num_hiddens, 3, name="dec_1")
        self._residual = ResidualStack(num_hiddens, num_residual_layers, num_residual_hiddens)
        self._dec_2 = snt.Conv2DTranspose(num_hiddens // 2, 4, stride=downsample // 2, name="dec_2")
        self._dec_3 = snt.Conv2DTranspose(out_channels, 4, stride=2, name="dec_3")

    def __call__(self, z):
        h = self._residual(self._dec_1(z))
        return self._dec_3(tf.nn.relu(self._dec_2(h)))


class VQVAE(snt.Module):
    """``channels`` is the model's channel count: the micrograph's C plus the mask's (``mask_channels``: 1 for the
    ``level`` encoding, so 4 for RGB; one per class for ``onehot``). ``spec`` keeps the constructor's arguments
    (``SPEC_KEYS``)."""

    def __init__(self, channels, num_hiddens=128, num_residual_hiddens=32, num_residual_layers=2, embedding_dim=64,
                 num_embeddings=10, commitment_cost=0.25, decay=0.99, quantizer="ema", downsample=DOWNSAMPLE,
                 mask_encoding="level", name=None):
        super().__init__(name=name)
        if quantizer not in ("ema", "vq"):
            raise DualgenError(f"vqvae.quantizer is {quantizer!r}: use 'ema' (VectorQuantizerEMA) or 'vq' (VectorQuantizer)")
        if downsample not in DOWNSAMPLES:
            raise DualgenError(f"vqvae.downsample is {downsample!r}: use one of {', '.join(map(str, DOWNSAMPLES))} "
                               "(patch pixels per code cell along each side)")
        check_mask_encoding(mask_encoding)
        self.channels = int(channels)
        self.downsample = int(downsample)
        self.mask_encoding = mask_encoding
        self.spec = {"channels": self.channels, "num_hiddens": num_hiddens, "num_residual_hiddens": num_residual_hiddens,
                     "num_residual_layers": num_residual_layers, "embedding_dim": embedding_dim,
                     "num_embeddings": num_embeddings, "commitment_cost": commitment_cost, "decay": decay,
                     "quantizer": quantizer, "downsample": self.downsample, "mask_encoding": mask_encoding}
        self.encoder = Encoder(num_hiddens, num_residual_layers, num_residual_hiddens, self.downsample)
        self.pre_vq = snt.Conv2D(embedding_dim, 1, name="to_vq")
        if quantizer == "ema":
            self.vq = snt.nets.VectorQuantizerEMA(embedding_dim, num_embeddings, commitment_cost, decay)
        else:
            self.vq = snt.nets.VectorQuantizer(embedding_dim, num_embeddings, commitment_cost)
        self.decoder = Decoder(num_hiddens, num_residual_layers, num_residual_hiddens, self.channels, self.downsample)

    def __call__(self, x, is_training):
        z = self.pre_vq(self.encoder(x))  # float16 under mixed precision (train_vqvae), else float32
        vq = self.vq(tf.cast(z, tf.float32), is_training=is_training)  # codebook + its updates: always float32
        x_recon = tf.cast(self.decoder(tf.cast(vq["quantize"], z.dtype)), tf.float32)  # casts: no-ops in float32
        return {"x_recon": x_recon, "vq_loss": vq["loss"], "perplexity": vq["perplexity"],
                "encoding_indices": vq["encoding_indices"]}

    def encode(self, x):
        """(N,H,W,C+1) -> int32 (N,H/d,W/d) code indices (d = downsample)."""
        out = self.vq(self.pre_vq(self.encoder(x)), is_training=False)
        return tf.cast(out["encoding_indices"], tf.int32)

    def decode(self, indices):
        """int code grids (N,h,w) -> float32 (N,d*h,d*w,C+1) (d = downsample)."""
        return self.decoder(self.vq.quantize(tf.cast(indices, tf.int32)))


def _build(model, size=16):
    """Create the lazily built variables (Sonnet makes convolution weights on the first call)."""
    model(tf.zeros([1, size, size, model.channels]), is_training=False)


def _describe(model):
    return ", ".join(f"{k}={v}" for k, v in model.spec.items())


# --- persistence ---------------------------------------------------------------------------------------------

def make_spec(settings, image_channels, num_classes):
    """The spec of a VQ-VAE for micrographs of ``image_channels`` (1 or 3) and masks of ``num_classes`` classes from
    config's ``vqvae`` settings."""
    encoding = settings.get("mask_encoding", OPTIONAL_SPEC["mask_encoding"])
    return {"channels": int(image_channels) + mask_channels(num_classes, encoding),
            **{k: settings.get(k, OPTIONAL_SPEC.get(k)) if k in OPTIONAL_SPEC else settings[k]
               for k in SPEC_KEYS if k != "channels"}}


def build(spec):
    """A fresh (untrained) VQ-VAE from a spec."""
    return VQVAE(**{k: spec.get(k, OPTIONAL_SPEC.get(k)) for k in SPEC_KEYS})


def save(model, folder, spec):
    """Write the weights (``ckpt.*``) and ``spec.json`` into ``folder`` (made if missing). For a folder that appears
    whole or not at all, save into ``artifacts.atomic_dir`` (or ``artifact_dir``)."""
    _build(model)
    Path(folder).mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(model=model).write(str(Path(folder) / "ckpt"))
    write_spec(folder, spec)


def load(folder):
    """(model, spec) from a folder ``save`` wrote; a missing or damaged one is a DualgenError naming it."""
    spec = read_spec(folder, "VQ-VAE", [k for k in SPEC_KEYS if k not in OPTIONAL_SPEC], "train_vqvae")
    spec = {**OPTIONAL_SPEC, **spec}
    return _restore(build(spec), folder), spec


def _first_line(err):
    text = str(err).strip()
    return (text.splitlines()[0][:200] if text else type(err).__name__)


def _restore(model, folder):
    """Read the weights in ``folder`` into ``model``. A missing, unreadable or mismatching checkpoint (other K, D,
    hidden sizes, layers, quantiser, channels) raises a DualgenError naming the folder."""
    folder = Path(folder)
    if not (folder / "ckpt.index").exists():
        raise DualgenError(f"{folder}: no VQ-VAE checkpoint (ckpt.index) there: train the VQ-VAE first "
                           "(rule train_vqvae) or point to its checkpoint folder")
    _build(model)
    try:
        tf.train.Checkpoint(model=model).read(str(folder / "ckpt")).assert_consumed()
    except Exception as err:  # noqa: BLE001  (mismatch: ValueError/AssertionError; damage: OpError, IndexError, ...)
        raise DualgenError(
            f"{folder}: the VQ-VAE checkpoint does not match a model with {_describe(model)} or is damaged "
            f"({_first_line(err)}): use the vqvae settings it was trained with, or retrain (rule train_vqvae)")
    return model


# --- training ------------------------------------------------------------------------------------------------

class _Batches:
    """The samples of update ``step`` (1-based): consecutive slices of one seeded permutation per epoch, so every
    patch is seen once per epoch. Depends only on (n, batch_size, seed, step): a resumed run sees the same batches."""

    def __init__(self, n, batch_size, seed):
        self.n, self.b, self.seed, self._perm = n, batch_size, seed, {}

    def __call__(self, step):
        start = (step - 1) * self.b
        out = np.empty(self.b, np.intp)
        for j, pos in enumerate(range(start, start + self.b)):
            epoch, i = divmod(pos, self.n)
            if epoch not in self._perm:
                self._perm = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
            out[j] = self._perm[epoch][i]
        return out


def _check_data(model, train_x, val_x, steps, batch_size, eval_every, mask_weight):
    for name, x in (("training", train_x), ("validation", val_x)):
        if x.ndim != 4 or x.shape[-1] != model.channels:
            raise DualgenError(f"VQ-VAE {name} data has shape {x.shape}: expected (N,H,W,{model.channels}) "
                               "from to_model_input")
        if len(x) == 0:
            raise DualgenError(f"VQ-VAE: no {name} patches: raise the number of patches or lower vqvae.val_images")
        check_patch_size(x.shape[1], model.downsample)
        check_patch_size(x.shape[2], model.downsample)
        if not np.isfinite(x).all():
            raise DualgenError(f"VQ-VAE {name} data contains NaN/Inf values: check the input patches")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        if int(value) < 1:
            raise DualgenError(f"vqvae.{name} is {value}: it must be at least 1")
    if not (np.isfinite(mask_weight) and mask_weight > 0):
        raise DualgenError(f"vqvae.mask_weight is {mask_weight}: it must be a positive number (1: plain MSE)")


def channel_weights(channels, mask_weight=1.0, n_mask=1):
    """(channels,) float32 loss weights: 1 for each micrograph channel, ``mask_weight`` for the mask (its ``n_mask``
    channels, the last, share it: ``mask_weight / n_mask`` each, so the mask weighs as much in either encoding)."""
    w = np.ones(int(channels), np.float32)
    w[-int(n_mask):] = float(mask_weight) / int(n_mask)
    return w


def train_vqvae(model, train_x, val_x, *, steps, batch_size, learning_rate, seed, out_dir, eval_every,
                mask_weight=1.0, n_mask=1, data_variance=None, log=print, monitor=None, mixed_precision=False):
    """Train ``model`` up to update ``steps`` with Adam. Returns a dict: ``history`` (one dict per evaluation:
    step, train_recon, train_vq_loss, perplexity, val_recon, earlier calls' included), ``best_step`` and
    ``best_val_recon`` (the model in out_dir/best), ``resumed_from_step`` (None unless this call resumed).

    Loss = reconstruction MSE / data variance + VQ loss (as in Sonnet's example), the mask channel's squared error
    weighted by ``mask_weight`` (``channel_weights``: shared by the last ``n_mask`` channels, the mask's; 1 = plain
    MSE for the one-channel mask). Every ``eval_every`` steps (and at the last
    step): validation reconstruction error (the same weighted MSE, the loss the model is trained for); out_dir/best
    gets the model (``save``) if it is the lowest so far; out_dir/last gets model, optimizer, step and history
    (history.json) so that a rerun with the same out_dir resumes. ``monitor(step, model)`` is called after each evaluation. The caller seeds the
    weight initialisation (``env.setup_tensorflow(threads, seed)``); ``seed`` fixes the batch order. The batches
    are gathered on the host (tf.data, prefetched) while the device trains.

    ``mixed_precision``: the training step computes in float16 with float32 variables (``precision.half_variables``),
    the quantiser (codebook, moving averages), losses and outputs in float32, and a dynamic loss scale
    (``precision.LossScale``, kept in out_dir/last with the optimizer). Validation, encoding, decoding: float32.
    """
    train_x = np.asarray(train_x, np.float32)
    val_x = np.asarray(val_x, np.float32)
    _check_data(model, train_x, val_x, steps, batch_size, eval_every, float(mask_weight))
    weights = tf.constant(channel_weights(model.channels, mask_weight, n_mask))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recover(out_dir / "best")
    recover(out_dir / "last")
    variance = float(np.var(train_x)) if data_variance is None else float(data_variance)
    if not np.isfinite(variance) or variance <= 0:
        variance = 1.0  # constant data: plain MSE
    _build(model)
    opt = snt.optimizers.Adam(learning_rate)
    if mixed_precision:  # float16 gradients underflow without it; an attribute: checkpointed with the optimizer
        from dualgen.core import precision

        precision.check(log, "vqvae.mixed_precision")
        opt.loss_scale = precision.LossScale()
    step_var = tf.Variable(0, dtype=tf.int64)
    history, resumed_from = [], None
    last = out_dir / "last"
    if (last / "ckpt.index").exists():
        # an update with zero gradients creates Adam's slots (a no-op on the weights) so the checkpoint can fill them
        opt.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
        try:
            tf.train.Checkpoint(model=model, opt=opt, step=step_var).read(str(last / "ckpt")).assert_consumed()
            history = json.loads((last / "history.json").read_text())
        except Exception as err:  # noqa: BLE001  (as in _restore)
            raise DualgenError(f"{last}: cannot resume from this checkpoint ({_first_line(err)}): it was written with "
                               f"other VQ-VAE settings or is damaged; delete {out_dir} to start afresh")
        resumed_from = int(step_var.numpy())
        log(f"resuming from step {resumed_from} (checkpoint {last})")

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            if mixed_precision:
                with precision.half_variables(model, keep=[model.vq]):
                    out = model(tf.cast(x, tf.float16), is_training=True)
            else:
                out = model(x, is_training=True)
            recon = tf.reduce_mean(tf.square(out["x_recon"] - x) * weights) / variance
            loss = recon + out["vq_loss"]
            scaled = opt.loss_scale.scaled(loss) if mixed_precision else loss
        params = model.trainable_variables
        if mixed_precision:
            opt.loss_scale.apply(opt, tape.gradient(scaled, params), params)  # skipped if not finite
        else:
            opt.apply(tape.gradient(loss, params), params)
        return loss, recon, out["vq_loss"], out["perplexity"]

    @tf.function(reduce_retracing=True)
    def squared_error(x):
        error = tf.square(model(x, is_training=False)["x_recon"] - x) * weights
        return tf.reduce_sum(tf.reduce_mean(error, axis=[1, 2, 3]))

    def val_recon():
        total = sum(float(squared_error(tf.constant(val_x[i:i + batch_size]))) for i in range(0, len(val_x), batch_size))
        return total / len(val_x)

    best = min((h["val_recon"] for h in history), default=np.inf)
    best_step = next((h["step"] for h in history if h["val_recon"] == best), None)
    batches = _Batches(len(train_x), int(batch_size), seed)
    start = int(step_var.numpy())
    if start >= steps:
        log(f"already trained to step {start} (>= {steps} steps): nothing to do")
    last_finite, window, timed, seconds = None, [], 0, 0.0
    stream = iter(env.without_autotune(tf.data.Dataset.from_generator(  # batches of steps start+1.., gathered ahead
        lambda: (train_x[batches(s)] for s in range(start + 1, steps + 1)),
        output_signature=tf.TensorSpec((int(batch_size),) + train_x.shape[1:], tf.float32)).prefetch(2)))
    for step in range(start + 1, steps + 1):
        tick = time.perf_counter()
        loss, recon, vq_loss, perplexity = (float(t) for t in train_step(next(stream)))
        if step > start + 1:  # the speed shown leaves out the first step (it builds the graph)
            timed, seconds = timed + 1, seconds + time.perf_counter() - tick
        if not np.isfinite(loss):
            raise DualgenError(
                f"VQ-VAE loss became NaN/Inf at step {step} (last finite loss "
                f"{'none yet' if last_finite is None else f'{last_finite:.6g}'}): lower vqvae.learning_rate "
                f"(now {learning_rate:g}) and rerun; the best checkpoint so far in {out_dir / 'best'} is kept")
        last_finite = loss
        window.append((recon * variance, vq_loss, perplexity))
        if step % eval_every and step != steps:
            continue
        val = val_recon()
        if not np.isfinite(val):
            raise DualgenError(f"VQ-VAE validation reconstruction error became NaN/Inf at step {step}: lower "
                               f"vqvae.learning_rate (now {learning_rate:g}) and rerun")
        mean = np.mean(window, axis=0)
        entry = {"step": step, "train_recon": float(mean[0]), "train_vq_loss": float(mean[1]),
                 "perplexity": float(mean[2]), "val_recon": float(val)}
        history.append(entry)
        improved = val < best
        if improved:
            best, best_step = val, step
            with atomic_dir(out_dir / "best") as tmp:
                save(model, tmp, model.spec)
        step_var.assign(step)
        with atomic_dir(last) as tmp:
            tf.train.Checkpoint(model=model, opt=opt, step=step_var).write(str(tmp / "ckpt"))
            (tmp / "history.json").write_text(json.dumps(history))
        if monitor is not None:
            monitor(step, model)
        speed = f", {timed / seconds:.1f} steps/s" if timed and seconds > 0 else ""
        log(f"step {step}/{steps}: reconstruction error {entry['train_recon']:.5f} (train), {val:.5f} (validation)"
            f"{' *best*' if improved else ''}, perplexity {entry['perplexity']:.2f}{speed}")
        window, timed, seconds = [], 0, 0.0
    return {"history": history, "best_step": best_step, "best_val_recon": float(best) if history else None,
            "resumed_from_step": resumed_from}
