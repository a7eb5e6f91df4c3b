"""Training the VQ-VAE (``train_vqvae``): Adam on reconstruction MSE / data variance + VQ loss (as in Sonnet's example),
each of the mask's channels weighted so that the mask weighs ``mask_weight`` (1: the plain MSE of all channels; the
level mask is only one of them, so at 1 an RGB micrograph outweighs its mask 3:1).

``train_vqvae`` keeps the model with the lowest validation reconstruction error (out_dir/best, a ``persist.save``
folder) and a rolling checkpoint with the optimizer state (out_dir/last), each replaced as a whole
(``artifacts.atomic_dir``), so a killed run continues where it stopped; it returns its history, the best step and
the step it resumed from. ``snapshot_monitor`` saves a validation patch's reconstruction at each checkpoint;
``save_snapshots`` gathers them into one file.
"""

import json
import time
from pathlib import Path

import numpy as np
import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core import env
from dualgen.core.artifacts import atomic_dir, recover
from dualgen.core.errors import DualgenError
from dualgen.generate.vqvae import data
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
):
    """Train ``model`` up to update ``steps`` with Adam. Returns a dict: ``history`` (one dict per evaluation:
    step, train_recon, train_vq_loss, perplexity, val_recon, earlier calls' included), ``best_step`` and
    ``best_val_recon`` (the model in out_dir/best), ``resumed_from_step`` (None unless this call resumed).

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
    """
    train_x = np.asarray(train_x, np.float32)
    val_x = np.asarray(val_x, np.float32)
    _check_data(model, train_x, val_x, steps, batch_size, eval_every, float(mask_weight))
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
    history, resumed_from = [], None
    last = out_dir / "last"
    if (last / "ckpt.index").exists():
        # an update with zero gradients creates Adam's slots (a no-op on the weights) so the checkpoint can fill them
        opt.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
        try:
            tf.train.Checkpoint(model=model, opt=opt, step=step_var).read(str(last / "ckpt")).assert_consumed()
            history = json.loads((last / "history.json").read_text())
        except Exception as err:  # noqa: BLE001  (as in persist._restore)
            raise DualgenError(
                f"{last}: cannot resume from this checkpoint ({first_line(err)}): it was written with "
                f"other VQ-VAE settings or is damaged; delete {out_dir} to start afresh"
            )
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
        total = sum(
            float(squared_error(tf.constant(val_x[i : i + batch_size]))) for i in range(0, len(val_x), batch_size)
        )
        return total / len(val_x)

    best = min((h["val_recon"] for h in history), default=np.inf)
    best_step = next((h["step"] for h in history if h["val_recon"] == best), None)
    batches = _Batches(len(train_x), int(batch_size), seed)
    start = int(step_var.numpy())
    if start >= steps:
        log(f"already trained to step {start} (>= {steps} steps): nothing to do")
    last_finite, window, timed, seconds = None, [], 0, 0.0
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
        loss, recon, vq_loss, perplexity = (float(t) for t in train_step(next(stream)))
        if step > start + 1:  # the speed shown leaves out the first step (it builds the graph)
            timed, seconds = timed + 1, seconds + time.perf_counter() - tick
        if not np.isfinite(loss):
            raise DualgenError(
                f"VQ-VAE loss became NaN/Inf at step {step} (last finite loss "
                f"{'none yet' if last_finite is None else f'{last_finite:.6g}'}): lower vqvae.learning_rate "
                f"(now {learning_rate:g}) and rerun; the best checkpoint so far in {out_dir / 'best'} is kept"
            )
        last_finite = loss
        window.append((recon * variance, vq_loss, perplexity))
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
        log(
            f"step {step}/{steps}: reconstruction error {entry['train_recon']:.5f} (train), {val:.5f} (validation)"
            f"{' *best*' if improved else ''}, perplexity {entry['perplexity']:.2f}{speed}"
        )
        window, timed, seconds = [], 0, 0.0
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
