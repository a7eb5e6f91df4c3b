"""VQ-VAE on micrograph + mask stacked as one (C+1)-channel image (paper step 4), after DeepMind Sonnet's
example: encoder (two 4x4 stride-2 convs, a 3x3 conv, a residual stack, a 1x1 pre-quantiser conv), a vector
quantiser (snt.nets.VectorQuantizerEMA or VectorQuantizer), and a mirrored decoder. A 256-px patch becomes a
64x64 grid of code indices. Training keeps the checkpoint with the lowest validation reconstruction error
and resumes after a kill from the last checkpoint.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np

import dualgen  # noqa: F401  (environment before TensorFlow)
import sonnet as snt
import tensorflow as tf

from dualgen.errors import DualgenError
from dualgen.postprocess import mask_levels

DOWNSAMPLE = 4


def check_patch_size(patch_size):
    if patch_size % DOWNSAMPLE:
        raise DualgenError(
            f"patch size {patch_size} is not divisible by the VQ-VAE's downsampling factor {DOWNSAMPLE}: "
            f"use a multiple of {DOWNSAMPLE} (e.g. {patch_size - patch_size % DOWNSAMPLE})"
        )


def to_model_input(images, masks, num_classes):
    """uint8 images (N,H,W,C) + class masks (N,H,W) -> float32 (N,H,W,C+1) in [-0.5, 0.5]; the mask channel
    holds the class levels spread over the range."""
    img = np.asarray(images, np.float32) / 255.0 - 0.5
    lvl = mask_levels(num_classes).astype(np.float32)[np.asarray(masks, np.intp)] - 0.5
    return np.concatenate([img, lvl[..., None]], axis=-1)


def from_model_output(x, num_classes):
    """float (N,H,W,C+1) -> (uint8 images (N,H,W,C), raw mask float32 (N,H,W) in level units [0, 1])."""
    x = np.asarray(x, np.float32)
    images = np.clip(np.rint((x[..., :-1] + 0.5) * 255.0), 0, 255).astype(np.uint8)
    raw = np.clip(x[..., -1] + 0.5, 0.0, 1.0)
    return images, raw


class ResidualStack(snt.Module):
    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, name=None):
        super().__init__(name=name)
        self._layers = [(snt.Conv2D(num_residual_hiddens, 3, name=f"res3x3_{i}"), snt.Conv2D(num_hiddens, 1, name=f"res1x1_{i}"))
                        for i in range(num_residual_layers)]

    def __call__(self, h):
        for conv3, conv1 in self._layers:
            h = h + conv1(tf.nn.relu(conv3(tf.nn.relu(h))))
        return tf.nn.relu(h)


class Encoder(snt.Module):
    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, name=None):
        super().__init__(name=name)
        self._enc_1 = snt.Conv2D(num_hiddens // 2, 4, stride=2, name="enc_1")
        self._enc_2 = snt.Conv2D(num_hiddens, 4, stride=2, name="enc_2")
        self._enc_3 = snt.Conv2D(num_hiddens, 3, name="enc_3")
        self._residual = ResidualStack(num_hiddens, num_residual_layers, num_residual_hiddens)

    def __call__(self, x):
        h = tf.nn.relu(self._enc_1(x))
        h = tf.nn.relu(self._enc_2(h))
        return self._residual(self._enc_3(h))


class Decoder(snt.Module):
    def __init__(self, num_hiddens, num_residual_layers, num_residual_hiddens, out_channels, name=None):
        super().__init__(name=name)
        self._dec_1 = snt.Conv2D(num_hiddens, 3, name="dec_1")
        self._residual = ResidualStack(num_hiddens, num_residual_layers, num_residual_hiddens)
        self._dec_2 = snt.Conv2DTranspose(num_hiddens // 2, 4, stride=2, name="dec_2")
        self._dec_3 = snt.Conv2DTranspose(out_channels, 4, stride=2, name="dec_3")

    def __call__(self, z):
        h = self._residual(self._dec_1(z))
        return self._dec_3(tf.nn.relu(self._dec_2(h)))


class VQVAE(snt.Module):
    def __init__(self, channels, num_hiddens=128, num_residual_hiddens=32, num_residual_layers=2, embedding_dim=64,
                 num_embeddings=10, commitment_cost=0.25, decay=0.99, quantizer="ema", name=None):
        super().__init__(name=name)
        self.channels = channels
        self.encoder = Encoder(num_hiddens, num_residual_layers, num_residual_hiddens)
        self.pre_vq = snt.Conv2D(embedding_dim, 1, name="to_vq")
        if quantizer == "ema":
            self.vq = snt.nets.VectorQuantizerEMA(embedding_dim, num_embeddings, commitment_cost, decay)
        else:
            self.vq = snt.nets.VectorQuantizer(embedding_dim, num_embeddings, commitment_cost)
        self.decoder = Decoder(num_hiddens, num_residual_layers, num_residual_hiddens, channels)

    def __call__(self, x, is_training):
        z = self.pre_vq(self.encoder(x))
        vq = self.vq(z, is_training=is_training)
        return {"x_recon": self.decoder(vq["quantize"]), "vq_loss": vq["loss"], "perplexity": vq["perplexity"],
                "encoding_indices": vq["encoding_indices"]}

    def encode(self, x):
        """(N,H,W,C+1) -> int (N,H/4,W/4) code indices."""
        return self.vq(self.pre_vq(self.encoder(x)), is_training=False)["encoding_indices"]

    def decode(self, indices):
        """int code grids (N,h,w) -> (N,4h,4w,C+1)."""
        emb = tf.transpose(tf.convert_to_tensor(self.vq.embeddings))
        return self.decoder(tf.nn.embedding_lookup(emb, tf.cast(indices, tf.int32)))


def _build(model, size=16):
    model(tf.zeros([1, size, size, model.channels]), is_training=False)


def _write_checkpoint(folder, files=None, **objects):
    """Write a tf.train.Checkpoint (and small text files) into ``folder`` atomically (temp folder, rename)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.train.Checkpoint(**objects).write(str(tmp / "ckpt"))
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_vqvae(model, ckpt_dir):
    """Restore weights into ``model``; a missing, unreadable or mismatching checkpoint is one clear line."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / "ckpt.index").exists():
        raise DualgenError(f"{ckpt_dir}: no VQ-VAE checkpoint here: rerun train_vqvae")
    _build(model)
    try:
        tf.train.Checkpoint(model=model).read(str(ckpt_dir / "ckpt")).assert_existing_objects_matched().expect_partial()
    except (ValueError, AssertionError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise DualgenError(f"{ckpt_dir}: checkpoint does not match the VQ-VAE settings or is damaged ({first}): "
                           "retrain with train_vqvae or use the settings it was trained with")
    return model


def _mse(model, x, batch_size):
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = tf.constant(x[i:i + batch_size])
        total += float(tf.reduce_sum(tf.reduce_mean((model(xb, is_training=False)["x_recon"] - xb) ** 2, axis=[1, 2, 3])))
    return total / len(x)


def train_vqvae(model, train_x, val_x, *, steps, batch_size, learning_rate, seed, out_dir, eval_every,
                data_variance=None, log=print, monitor=None):
    """Train for ``steps`` updates; return the history (one dict per evaluation).

    out_dir/last: rolling checkpoint (model, optimizer, step) + history.json, for resuming;
    out_dir/best: the weights with the lowest validation reconstruction error (MSE).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(train_x)
    variance = float(np.var(train_x)) if data_variance is None else float(data_variance)
    _build(model, train_x.shape[1])
    opt = snt.optimizers.Adam(learning_rate)
    step_var = tf.Variable(0, dtype=tf.int64)
    history = []
    model.resumed_from_step = None
    if (out_dir / "last" / "ckpt.index").exists():
        # one update with zero gradients creates the optimizer's slots so the checkpoint can fill them
        opt.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
        tf.train.Checkpoint(model=model, opt=opt, step=step_var).read(str(out_dir / "last" / "ckpt")).assert_consumed()
        history = json.loads((out_dir / "last" / "history.json").read_text())
        model.resumed_from_step = int(step_var.numpy())
        log(f"resuming from step {model.resumed_from_step} (checkpoint {out_dir / 'last'})")

    @tf.function
    def train_step(x):
        with tf.GradientTape() as tape:
            out = model(x, is_training=True)
            recon = tf.reduce_mean((out["x_recon"] - x) ** 2) / variance
            loss = recon + out["vq_loss"]
        params = model.trainable_variables
        opt.apply(tape.gradient(loss, params), params)
        return loss, recon, out["perplexity"]

    best = min((h["val_recon"] for h in history), default=np.inf)
    last_finite = None
    losses = []
    start = int(step_var.numpy())
    for step in range(start + 1, steps + 1):
        idx = np.random.default_rng([seed, step]).choice(n, size=min(batch_size, n), replace=False)
        loss, recon, perplexity = train_step(tf.constant(train_x[np.sort(idx)]))
        loss = float(loss)
        if not np.isfinite(loss):
            raise DualgenError(f"VQ-VAE loss became NaN/Inf at step {step} (last finite loss {last_finite}): "
                               "lower vqvae.learning_rate or check the input patches")
        last_finite = loss
        losses.append((float(recon), float(perplexity)))
        if step % eval_every == 0 or step == steps:
            val = _mse(model, val_x, batch_size)
            train_recon = float(np.mean([r for r, _ in losses])) * variance
            entry = {"step": step, "train_recon": train_recon, "train_vq_loss": loss - float(recon),
                     "perplexity": float(np.mean([p for _, p in losses])), "val_recon": val}
            history.append(entry)
            losses = []
            improved = val < best
            if improved:
                best = val
                _write_checkpoint(out_dir / "best", model=model)
            step_var.assign(step)
            _write_checkpoint(out_dir / "last", files={"history.json": json.dumps(history)}, model=model, opt=opt,
                              step=step_var)
            if monitor is not None:
                monitor(step, model)
            log(f"step {step}/{steps}: reconstruction error {train_recon:.5f} (train), {val:.5f} (validation)"
                f"{' *best*' if improved else ''}, perplexity {entry['perplexity']:.2f}")
    return history
