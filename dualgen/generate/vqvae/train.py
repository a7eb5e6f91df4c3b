"""Training the VQ-VAE (``train_vqvae``): Adam on reconstruction MSE / data variance + VQ loss (as in Sonnet's example),
each of the mask's channels weighted so that the mask weighs ``mask_weight`` (1: the plain MSE of all channels; the
level mask is only one of them, so at 1 an RGB micrograph outweighs its mask 3:1).

``train_vqvae`` keeps the model with the lowest validation reconstruction error (out_dir/best, a ``persist.save``
folder) and a rolling checkpoint with the optimizer state (out_dir/last), each replaced as a whole
(``artifacts.atomic_dir``), so a killed run continues where it stopped; it returns its history, the best step and
the step it resumed from. ``snapshot_monitor`` saves a validation patch's reconstruction at each checkpoint;
``save_snapshots`` gathers them into one file.

Edge-keeping options (``training_options``; all off by default, and off the training is today's, update for update):
``adversarial`` (a PatchGAN discriminator on the reconstruction, VQGAN's hinge loss and adaptive weight, after
``start_step``), ``perceptual`` (the distance of a frozen network's feature maps, the caller's ``features``) and
``mask_head`` ``xent`` (the one-hot mask channels as logits under softmax cross-entropy instead of squared error).
The discriminator and its optimizer live in out_dir/last (a resumed run is the uninterrupted one), not in
out_dir/best (``losses``).
"""

import json
import math
import numbers
import time
from pathlib import Path

import numpy as np
import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core import env
from dualgen.core.artifacts import atomic_dir, recover
from dualgen.core.errors import DualgenError
from dualgen.generate.vqvae import data, losses
from dualgen.generate.vqvae.model import build_variables, check_patch_size
from dualgen.generate.vqvae.persist import first_line, save


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
            raise DualgenError(
                f"VQ-VAE {name} data has shape {x.shape}: expected (N,H,W,{model.channels}) from data.to_model_input"
            )
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


ADVERSARIAL = {  # vqvae.adversarial: its keys and defaults (weight 0: off)
    "weight": 0.0,  # the adversarial term's factor on top of the adaptive weight (VQGAN: 0.8; 0: off)
    "start_step": 1000,  # the term (and the discriminator's training) starts after this update
    "disc_layers": 3,  # the discriminator's stride-2 convolutions (3: 70 px patches)
    "disc_filters": 32,  # the discriminator's first width (then x2, x4, x8)
    "lr": None,  # the discriminator's Adam learning rate (betas 0.5, 0.9, VQGAN's); None: vqvae.learning_rate
    "with_mask": False,  # the discriminator also sees the mask (False: the micrograph's channels only)
}
PERCEPTUAL = {  # vqvae.perceptual: its keys and defaults (weight 0: off)
    "weight": 0.0,  # factor of the perceptual distance in the loss (0: off; needs ``features``)
    "strides": None,  # the caller's feature maps (scripts/train_vqvae.py: U-Net strides; None: unet's default)
}
MASK_HEADS = ("mse", "xent")  # vqvae.mask_head: weighted squared error (the paper's), softmax cross-entropy


def _number(value, what, minimum=0.0, integer=False, none=False, positive=False):
    """``value`` as a float (int with ``integer``) >= ``minimum`` (> 0 with ``positive``; None allowed with
    ``none``); else one DualgenError line."""
    if value is None and none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= minimum) and (not integer or float(value).is_integer())
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = "> 0" if positive else f">= {minimum:g}"
        raise DualgenError(f"{what} is {value!r}: it must be {kind} {bound}{' (or null)' if none else ''}")
    return int(value) if integer else float(value)


def _section(given, defaults, name):
    """A settings section (dict or None) with its defaults filled in; unknown keys: one DualgenError line."""
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise DualgenError(f"vqvae.{name} is {given!r}: give a mapping with keys {', '.join(defaults)}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise DualgenError(f"vqvae.{name} has unknown key(s) {', '.join(unknown)}: use {', '.join(defaults)}")
    return {**defaults, **given}


def training_options(adversarial=None, perceptual=None, mask_head="mse"):
    """The edge-keeping options as ``train_vqvae`` runs them: (adversarial dict, perceptual dict, mask head), the
    dicts with ``ADVERSARIAL`` / ``PERCEPTUAL``'s defaults filled in and checked (one DualgenError line each)."""
    adv = _section(adversarial, ADVERSARIAL, "adversarial")
    adv["weight"] = _number(adv["weight"], "vqvae.adversarial.weight")
    adv["start_step"] = _number(adv["start_step"], "vqvae.adversarial.start_step", integer=True)
    adv["disc_layers"] = _number(adv["disc_layers"], "vqvae.adversarial.disc_layers", 1, integer=True)
    adv["disc_filters"] = _number(adv["disc_filters"], "vqvae.adversarial.disc_filters", 1, integer=True)
    adv["lr"] = _number(adv["lr"], "vqvae.adversarial.lr", none=True, positive=True)
    if not isinstance(adv["with_mask"], bool):
        raise DualgenError(f"vqvae.adversarial.with_mask is {adv['with_mask']!r}: use true or false")
    perc = _section(perceptual, PERCEPTUAL, "perceptual")
    perc["weight"] = _number(perc["weight"], "vqvae.perceptual.weight")
    if mask_head not in MASK_HEADS:
        raise DualgenError(
            f"vqvae.mask_head is {mask_head!r}: use mse (weighted squared error) or xent (softmax cross-entropy, "
            "mask_encoding onehot)"
        )
    return adv, perc, mask_head


def channel_weights(channels, mask_weight, n_mask):
    """(channels,) float32 loss weights: 1 for each micrograph channel, ``mask_weight`` for the mask (its ``n_mask``
    channels, the last, share it: ``mask_weight / n_mask`` each, so the mask weighs as much in either encoding)."""
    w = np.ones(int(channels), np.float32)
    w[-int(n_mask) :] = float(mask_weight) / int(n_mask)
    return w


def train_vqvae(
    model,
    train_x,
    val_x,
    *,
    steps,
    batch_size,
    learning_rate,
    seed,
    out_dir,
    eval_every,
    mask_weight,
    n_mask,
    mixed_precision,
    log=print,
    monitor=None,
    adversarial=None,
    perceptual=None,
    mask_head="mse",
    features=None,
):
    """Train ``model`` up to update ``steps`` with Adam. Returns a dict: ``history`` (one dict per evaluation:
    step, train_recon, train_vq_loss, perplexity, val_recon, earlier calls' included; with the options on also
    train_g_loss, train_d_loss, adv_weight (the means over the window's adversarial updates, None before
    ``start_step``) and train_perceptual), ``best_step`` and ``best_val_recon`` (the model in out_dir/best),
    ``resumed_from_step`` (None unless this call resumed).

    Loss = reconstruction MSE / data variance + VQ loss (as in Sonnet's example), the mask channel's squared error
    weighted by ``mask_weight`` (``channel_weights``: shared by the last ``n_mask`` channels, the mask's; 1 = plain
    MSE for the one-channel mask). Every ``eval_every`` steps (and at the last
    step): validation reconstruction error (the same weighted MSE, the loss the model is trained for); out_dir/best
    gets the model (``save``) if it is the lowest so far; out_dir/last gets model, optimizer, step and history
    (history.json) so that a rerun with the same out_dir resumes. ``monitor(step, model)`` is called after each
    evaluation. The caller seeds the weight initialisation (``env.setup_tensorflow(threads, seed)``); ``seed``
    fixes the batch order. The batches are gathered on the host (tf.data, prefetched) while the device trains.

    ``mixed_precision``: the training step computes in float16 with float32 variables (``precision.half_variables``),
    the quantiser (codebook, moving averages), losses and outputs in float32, and a dynamic loss scale
    (``precision.LossScale``, kept in out_dir/last with the optimizer). Validation, encoding, decoding: float32.

    Edge-keeping options (``training_options``; the defaults leave all off, and the training as it was):

    - ``adversarial`` (dict, ``ADVERSARIAL``'s keys): with ``weight`` > 0, from update ``start_step`` + 1 on a
      ``losses.PatchDiscriminator`` sees the micrograph's channels (all channels with ``with_mask``; a mask of
      logits (``mask_head`` xent) as softmax - 0.5) of the batch and of its reconstruction; it learns by the hinge
      loss with its own Adam (``lr``, betas 0.5 and 0.9), and the VQ-VAE's loss gains ``weight`` x
      ``losses.adaptive_weight`` x (-mean D(reconstruction)), the adaptive weight taken at the decoder's last layer
      against the reconstruction (+ perceptual) loss. Until ``start_step`` the updates are those of a run without
      it (the discriminator is untouched). The discriminator and its optimizer are in out_dir/last, not in
      out_dir/best.
    - ``perceptual`` (dict, ``PERCEPTUAL``'s keys): with ``weight`` > 0 the loss gains ``weight`` x
      ``losses.perceptual_loss`` of the micrograph channels (in [0, 255]) under ``features`` (a callable: float32
      (N,H,W,C) images in [0, 255] -> list of feature maps; frozen: only the VQ-VAE's variables are updated).
    - ``mask_head`` ``xent`` (``mask_encoding`` onehot only): the mask channels are logits; their term is
      ``mask_weight`` / channels x the mean softmax cross-entropy against the one-hot mask (in place of the weighted
      squared error of those channels, which would divide by ``channels`` as well); the micrograph's squared error
      stays. The validation error (and so the best checkpoint) uses the same term, times the data variance so that
      it stays in the squared error's units. The one-hot decoding takes the largest channel either way.
    """
    train_x = np.asarray(train_x, np.float32)
    val_x = np.asarray(val_x, np.float32)
    _check_data(model, train_x, val_x, steps, batch_size, eval_every, float(mask_weight))
    adv, perc, mask_head = training_options(adversarial, perceptual, mask_head)
    use_adv, use_perc, xent = adv["weight"] > 0, perc["weight"] > 0, mask_head == "xent"
    if use_perc and not callable(features):
        raise DualgenError(
            f"vqvae.perceptual.weight is {perc['weight']:g} but no feature network was given: pass the real-only "
            "U-Net (scripts/train_vqvae.py --features-model) or set the weight to 0"
        )
    if xent and model.mask_encoding != "onehot":
        raise DualgenError(
            f"vqvae.mask_head xent needs vqvae.mask_encoding onehot (now {model.mask_encoding}): the cross-entropy "
            "is over one channel per class"
        )
    n_image = model.channels - int(n_mask)
    weights = tf.constant(channel_weights(model.channels, mask_weight, n_mask))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recover(out_dir / "best")
    recover(out_dir / "last")
    variance = float(np.var(train_x))
    if not np.isfinite(variance) or variance <= 0:
        variance = 1.0  # constant data: plain MSE
    build_variables(model)
    opt = snt.optimizers.Adam(learning_rate)
    if mixed_precision:  # float16 gradients underflow without it; an attribute: checkpointed with the optimizer
        from dualgen.core import precision

        precision.check(log, "vqvae.mixed_precision")
        opt.loss_scale = precision.LossScale()
    step_var = tf.Variable(0, dtype=tf.int64)
    parts = {"model": model, "opt": opt, "step": step_var}
    if use_adv:  # built after the VQ-VAE (its initial weights are those of a run without it)
        d_channels = model.channels if adv["with_mask"] else n_image
        disc = losses.PatchDiscriminator(adv["disc_layers"], adv["disc_filters"], name="discriminator")
        disc(tf.zeros((1,) + train_x.shape[1:3] + (d_channels,)))
        disc_opt = snt.optimizers.Adam(learning_rate if adv["lr"] is None else adv["lr"], beta1=0.5, beta2=0.9)
        disc_opt.apply([tf.zeros_like(v) for v in disc.trainable_variables], disc.trainable_variables)  # its slots
        disc_opt.step.assign(0)  # (a zero update leaves the weights; the step count starts afresh)
        parts.update(disc=disc, disc_opt=disc_opt)
    history, resumed_from = [], None
    last = out_dir / "last"
    if (last / "ckpt.index").exists():
        # an update with zero gradients creates Adam's slots (a no-op on the weights) so the checkpoint can fill them
        opt.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
        try:
            tf.train.Checkpoint(**parts).read(str(last / "ckpt")).assert_consumed()
            history = json.loads((last / "history.json").read_text())
        except Exception as err:  # noqa: BLE001  (as in persist._restore)
            raise DualgenError(
                f"{last}: cannot resume from this checkpoint ({first_line(err)}): it was written with "
                f"other VQ-VAE settings or is damaged; delete {out_dir} to start afresh"
            )
        resumed_from = int(step_var.numpy())
        log(f"resuming from step {resumed_from} (checkpoint {last})")

    if xent:
        image_weights = tf.constant(np.where(np.arange(model.channels) < n_image, 1.0, 0.0).astype(np.float32))
        mask_share = float(mask_weight) / model.channels

        def error(x, x_recon, axis=None):
            """The squared error of the micrograph + the mask's cross-entropy (x variance), in data units."""
            image = tf.reduce_mean(tf.square(x_recon - x) * image_weights, axis=axis)
            mask = losses.mask_xent(x[..., n_image:], x_recon[..., n_image:])
            return image + tf.reduce_mean(mask, axis=None if axis is None else axis[:-1]) * (mask_share * variance)

    def forward(x):
        if mixed_precision:
            with precision.half_variables(model, keep=[model.vq]):
                return model(tf.cast(x, tf.float16), is_training=True)
        return model(x, is_training=True)

    def reconstruction_terms(x, out):
        """(recon, perceptual or None, recon + weighted perceptual)."""
        if xent:
            recon = error(x, out["x_recon"]) / variance
        else:
            recon = tf.reduce_mean(tf.square(out["x_recon"] - x) * weights) / variance
        if not use_perc:
            return recon, None, recon
        p = losses.perceptual_loss(
            features, losses.to_pixels(x[..., :n_image]), losses.to_pixels(out["x_recon"][..., :n_image])
        )
        return recon, p, recon + perc["weight"] * p

    def update(scaled, tape):
        """Apply the gradient of ``scaled`` (the loss, times the loss scale under mixed precision)."""
        params = model.trainable_variables
        if mixed_precision:
            opt.loss_scale.apply(opt, tape.gradient(scaled, params), params)  # skipped if not finite
        else:
            opt.apply(tape.gradient(scaled, params), params)

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            out = forward(x)
            recon, p, nll = reconstruction_terms(x, out)
            loss = nll + out["vq_loss"]
            scaled = opt.loss_scale.scaled(loss) if mixed_precision else loss
        update(scaled, tape)
        extra = {} if p is None else {"perceptual": p}
        return loss, recon, out["vq_loss"], out["perplexity"], extra

    def discriminated(x_recon):
        """What the discriminator sees of a reconstruction: its micrograph channels (with_mask: and the mask, under
        mask_head xent as softmax - 0.5, in the one-hot input's range)."""
        if xent and adv["with_mask"]:
            return tf.concat([x_recon[..., :n_image], tf.nn.softmax(x_recon[..., n_image:]) - 0.5], axis=-1)
        return x_recon[..., :d_channels]

    @tf.function
    def adversarial_step(x):
        last_layer = model.decoder.last_weights
        with tf.GradientTape() as tape:
            with tf.GradientTape(persistent=True) as inner:
                out = forward(x)
                recon, p, nll = reconstruction_terms(x, out)
                real_logits = disc(x[..., :d_channels])
                fake_logits = disc(discriminated(out["x_recon"]))
                g_loss = losses.generator_loss(fake_logits)
                d_loss = losses.hinge_d_loss(real_logits, fake_logits)
                if mixed_precision:  # the adaptive weight is a ratio: from the scaled gradients, epsilon scaled too
                    scale = opt.loss_scale.scale
                    nll_s, g_s = opt.loss_scale.scaled(nll), opt.loss_scale.scaled(g_loss)
                else:
                    scale, nll_s, g_s = 1.0, nll, g_loss
            lam = adv["weight"] * losses.adaptive_weight(
                inner.gradient(nll_s, last_layer), inner.gradient(g_s, last_layer), scale
            )
            loss = nll + out["vq_loss"] + lam * g_loss
            scaled = opt.loss_scale.scaled(loss) if mixed_precision else loss
        update(scaled, tape)
        disc_opt.apply(inner.gradient(d_loss, disc.trainable_variables), disc.trainable_variables)
        extra = {"g_loss": g_loss, "d_loss": d_loss, "adv_weight": lam}
        if p is not None:
            extra["perceptual"] = p
        return loss, recon, out["vq_loss"], out["perplexity"], extra

    if xent:

        @tf.function(reduce_retracing=True)
        def squared_error(x):
            return tf.reduce_sum(error(x, model(x, is_training=False)["x_recon"], axis=[1, 2, 3]))

    else:

        @tf.function(reduce_retracing=True)
        def squared_error(x):
            error = tf.square(model(x, is_training=False)["x_recon"] - x) * weights
            return tf.reduce_sum(tf.reduce_mean(error, axis=[1, 2, 3]))

    def val_recon():
        total = sum(
            float(squared_error(tf.constant(val_x[i : i + batch_size]))) for i in range(0, len(val_x), batch_size)
        )
        return total / len(val_x)

    extra_keys = (("train_g_loss", "g_loss"), ("train_d_loss", "d_loss"), ("adv_weight", "adv_weight"))
    extra_keys = (extra_keys if use_adv else ()) + ((("train_perceptual", "perceptual"),) if use_perc else ())
    best = min((h["val_recon"] for h in history), default=np.inf)
    best_step = next((h["step"] for h in history if h["val_recon"] == best), None)
    batches = _Batches(len(train_x), int(batch_size), seed)
    start = int(step_var.numpy())
    if start >= steps:
        log(f"already trained to step {start} (>= {steps} steps): nothing to do")
    last_finite, window, extras, timed, seconds, traced = None, [], [], 0, 0.0, set()
    stream = iter(
        env.without_autotune(
            tf.data.Dataset.from_generator(  # batches of steps start+1.., gathered ahead
                lambda: (train_x[batches(s)] for s in range(start + 1, steps + 1)),
                output_signature=tf.TensorSpec((int(batch_size),) + train_x.shape[1:], tf.float32),
            ).prefetch(2)
        )
    )
    for step in range(start + 1, steps + 1):
        tick = time.perf_counter()
        step_fn = adversarial_step if use_adv and step > adv["start_step"] else train_step
        loss, recon, vq_loss, perplexity, extra = step_fn(next(stream))
        loss, recon, vq_loss, perplexity = (float(t) for t in (loss, recon, vq_loss, perplexity))
        if step_fn in traced:  # the speed shown leaves out each step function's first call (it builds the graph)
            timed, seconds = timed + 1, seconds + time.perf_counter() - tick
        traced.add(step_fn)
        if not np.isfinite(loss):
            raise DualgenError(
                f"VQ-VAE loss became NaN/Inf at step {step} (last finite loss "
                f"{'none yet' if last_finite is None else f'{last_finite:.6g}'}): lower vqvae.learning_rate "
                f"(now {learning_rate:g}) and rerun; the best checkpoint so far in {out_dir / 'best'} is kept"
            )
        last_finite = loss
        window.append((recon * variance, vq_loss, perplexity))
        extras.append({k: float(v) for k, v in extra.items()})
        if step % eval_every and step != steps:
            continue
        val = val_recon()
        if not np.isfinite(val):
            raise DualgenError(
                f"VQ-VAE validation reconstruction error became NaN/Inf at step {step}: lower "
                f"vqvae.learning_rate (now {learning_rate:g}) and rerun"
            )
        mean = np.mean(window, axis=0)
        entry = {
            "step": step,
            "train_recon": float(mean[0]),
            "train_vq_loss": float(mean[1]),
            "perplexity": float(mean[2]),
            "val_recon": float(val),
        }
        for key, name in extra_keys:
            seen = [e[name] for e in extras if name in e]
            entry[key] = float(np.mean(seen)) if seen else None
        history.append(entry)
        improved = val < best
        if improved:
            best, best_step = val, step
            with atomic_dir(out_dir / "best") as tmp:
                save(model, tmp, model.spec)
        step_var.assign(step)
        with atomic_dir(last) as tmp:
            tf.train.Checkpoint(**parts).write(str(tmp / "ckpt"))
            (tmp / "history.json").write_text(json.dumps(history))
        if monitor is not None:
            monitor(step, model)
        speed = f", {timed / seconds:.1f} steps/s" if timed and seconds > 0 else ""
        terms = "".join(
            f", {key.replace('_', ' ')} {entry[key]:.4g}" for key, _ in extra_keys if entry[key] is not None
        )
        log(
            f"step {step}/{steps}: reconstruction error {entry['train_recon']:.5f} (train), {val:.5f} (validation)"
            f"{' *best*' if improved else ''}, perplexity {entry['perplexity']:.2f}{terms}{speed}"
        )
        window, extras, timed, seconds = [], [], 0, 0.0
    return {
        "history": history,
        "best_step": best_step,
        "best_val_recon": float(best) if history else None,
        "resumed_from_step": resumed_from,
    }


def snapshot_monitor(folder, probe):
    """A ``train_vqvae`` monitor: at each checkpoint, the reconstruction of ``probe`` (one model input, (1, H, W, C))
    saved as folder/step_<step>.npy (float32)."""

    def monitor(step, model):
        out = model(tf.constant(probe), is_training=False)["x_recon"].numpy()
        np.save(folder / f"step_{step:07d}.npy", out[0].astype(np.float32), allow_pickle=False)

    return monitor


def save_snapshots(folder, codec, path, real_image, real_mask):
    """The ``snapshot_monitor`` files of ``folder`` gathered into the npz ``path``: steps, images (uint8), masks (the
    nearest class, ``codec.nearest``), and the real patch they reconstruct (real_image, real_mask)."""
    files = sorted(folder.glob("step_*.npy"))
    rec_images, rec_masks = data.from_model_output(np.stack([np.load(f, allow_pickle=False) for f in files]), codec)
    np.savez(
        path,
        steps=np.array([int(f.stem.split("_")[1]) for f in files], np.int64),
        images=rec_images.astype(np.uint8),
        masks=codec.nearest(rec_masks),
        real_image=real_image,
        real_mask=real_mask,
    )
