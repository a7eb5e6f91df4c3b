"""PixelCNN prior over VQ-VAE code grids (paper step 6), plain or gated, and a fast exact sampler.

plain (van den Oord et al. 2016, as in the paper): 7x7 mask-A conv, residual blocks (1x1, 3x3 mask-B, 1x1),
1x1 mask-B head, softmax over the K codes. gated (Gated PixelCNN): a vertical stack (rows above, full width)
and a horizontal stack (the current row, to the left), gated tanh x sigmoid units: no blind spot.

Sampling is pixel by pixel in raster order. The naive sampler runs the network on the whole grid for every
pixel. The fast sampler runs it only on the window a pixel can see (``receptive_rows`` rows above,
``receptive_cols`` columns to each side) of a padded canvas. Every layer multiplies its input by a validity
mask (1 inside the grid, 0 outside), which is exactly what zero padding does at the real grid edges, so all
windows have one shape (one compiled function) and the logits are the naive ones.
"""
import math

import numpy as np

import dualgen  # noqa: F401  (environment before TensorFlow)
import sonnet as snt
import tensorflow as tf

from dualgen.errors import DualgenError


def causal_mask(k, include_center, full_center_row=False):
    """(k, k) mask: rows above the centre; the centre row left of the centre (and the centre for mask B)."""
    m = np.zeros((k, k), np.float32)
    c = k // 2
    m[:c] = 1
    if full_center_row:
        m[c] = 1
    else:
        m[c, :c] = 1
        if include_center:
            m[c, c] = 1
    return m


class MaskedConv(snt.Module):
    def __init__(self, cin, cout, mask, name=None):
        super().__init__(name=name)
        kh, kw = mask.shape
        scale = 1.0 / math.sqrt(max(1.0, mask.sum() * cin))
        self.w = tf.Variable(tf.random.uniform([kh, kw, cin, cout], -scale, scale) * math.sqrt(3.0), name="w")
        self.b = tf.Variable(tf.zeros([cout]), name="b")
        self.mask = tf.constant(mask[:, :, None, None])

    def __call__(self, x, valid):
        return tf.nn.conv2d(x * valid, self.w * self.mask, 1, "SAME") + self.b


def _ones(k):
    return np.ones((k, k), np.float32)


class PixelCNN(snt.Module):
    def __init__(self, num_embeddings, filters=64, num_blocks=4, kind="plain", name=None):
        super().__init__(name=name)
        if kind not in ("plain", "gated"):
            raise DualgenError(f"config: pixelcnn.kind: '{kind}' is not plain or gated")
        self.num_embeddings, self.filters, self.num_blocks, self.kind = num_embeddings, filters, num_blocks, kind
        k, f = num_embeddings, filters
        if kind == "plain":
            self.first = MaskedConv(k, f, causal_mask(7, False), name="mask_a_7x7")
            self.blocks = [(MaskedConv(f, f // 2, _ones(1), name=f"b{i}_in"),
                            MaskedConv(f // 2, f // 2, causal_mask(3, True), name=f"b{i}_mask_b_3x3"),
                            MaskedConv(f // 2, f, _ones(1), name=f"b{i}_out")) for i in range(num_blocks)]
            self.receptive_rows = 3 + num_blocks
            self.receptive_cols = 3 + num_blocks
        else:
            self.v_first = MaskedConv(k, 2 * f, causal_mask(7, True, full_center_row=True), name="v_7x7")
            self.h_first = MaskedConv(k, 2 * f, causal_mask(7, False)[3:4], name="h_1x7")
            self.v_link_first = MaskedConv(2 * f, 2 * f, _ones(1), name="v_to_h_0")
            self.layers = [(MaskedConv(f, 2 * f, causal_mask(3, True, full_center_row=True), name=f"v{i}_3x3"),
                            MaskedConv(f, 2 * f, causal_mask(3, True)[1:2], name=f"h{i}_1x3"),
                            MaskedConv(2 * f, 2 * f, _ones(1), name=f"v_to_h_{i + 1}"),
                            MaskedConv(f, f, _ones(1), name=f"h{i}_res")) for i in range(num_blocks)]
            self.receptive_rows = 3 + num_blocks + 1
            self.receptive_cols = 3 + 2 * num_blocks
        self.head = MaskedConv(f, f, _ones(1), name="head_1x1")
        self.out = MaskedConv(f, k, _ones(1), name="logits")

    def __call__(self, grids, valid=None):
        """int grids (B,H,W) -> logits (B,H,W,K). ``valid`` (B,H,W,1): 1 inside the grid, 0 outside."""
        x = tf.one_hot(tf.cast(grids, tf.int32), self.num_embeddings)
        if valid is None:
            valid = tf.ones_like(x[..., :1])
        if self.kind == "plain":
            h = tf.nn.relu(self.first(x, valid))
            for c_in, c_mid, c_out in self.blocks:
                r = tf.nn.relu(c_in(h, valid))
                r = tf.nn.relu(c_mid(r, valid))
                h = h + c_out(r, valid)
            h = tf.nn.relu(h)
        else:
            v = self.v_first(x, valid)
            h = self.h_first(x, valid) + self.v_link_first(_down(v), valid)
            v, h = _gate(v), _gate(h)
            for v_conv, h_conv, link, res in self.layers:
                v_pre = v_conv(v, valid)
                h_new = _gate(h_conv(h, valid) + link(_down(v_pre), valid))
                v = _gate(v_pre)
                h = h + res(h_new, valid)
            h = tf.nn.relu(h)
        return self.out(tf.nn.relu(self.head(h, valid)), valid)


def _down(v):
    """Shift down by one row (row i gets row i-1): the horizontal stack only sees rows strictly above."""
    return tf.pad(v, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :-1]


def _gate(x):
    a, b = tf.split(x, 2, axis=-1)
    return tf.tanh(a) * tf.sigmoid(b)


def build(model, height, width):
    model(tf.zeros([1, height, width], tf.int32))
    return model


def _nll(model, grids):
    logits = model(grids)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(grids, tf.int32), logits=logits))


def validation_nll(model, grids, batch_size=32):
    """Mean negative log-likelihood in nats per grid cell."""
    if len(grids) == 0:
        return float("nan")
    total = sum(float(_nll(model, tf.constant(grids[i:i + batch_size]))) * len(grids[i:i + batch_size])
                for i in range(0, len(grids), batch_size))
    return total / len(grids)


def train_pixelcnn(model, train_grids, val_grids, *, epochs, batch_size, learning_rate, seed, log=print):
    build(model, *train_grids.shape[1:])
    opt = snt.optimizers.Adam(learning_rate)

    @tf.function
    def step(g):
        with tf.GradientTape() as tape:
            loss = _nll(model, g)
        params = model.trainable_variables
        opt.apply(tape.gradient(loss, params), params)
        return loss

    history, last_finite = [], None
    n = len(train_grids)
    for epoch in range(1, epochs + 1):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        losses = []
        for i in range(0, n, batch_size):
            loss = float(step(tf.constant(train_grids[order[i:i + batch_size]])))
            if not math.isfinite(loss):
                raise DualgenError(f"PixelCNN loss became NaN/Inf at epoch {epoch} step {i // batch_size + 1} (last finite "
                                   f"loss {last_finite}): lower pixelcnn.learning_rate")
            last_finite = loss
            losses.append(loss)
        entry = {"epoch": epoch, "train_nll": float(np.mean(losses)), "val_nll": validation_nll(model, val_grids)}
        history.append(entry)
        log(f"epoch {epoch}/{epochs}: NLL {entry['train_nll']:.4f} (train), {entry['val_nll']:.4f} (validation) nats per cell")
    return history


def _draw(logits, u, temperature):
    z = np.asarray(logits, np.float64) / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((cdf < u[:, None]).sum(axis=1), z.shape[1] - 1)


def sample_naive(model, n, height, width, *, seed, temperature=1.0, batch_size=16, log=None):
    """Whole network on the whole grid for every pixel (the reference)."""
    fn = tf.function(lambda g: model(g))
    return _sample(lambda canvas, r, c: fn(tf.constant(canvas))[:, r, c].numpy(), n, height, width, seed, temperature,
                   batch_size, pad=(0, 0), log=log)


class _Windows:
    """The padded canvas and the compiled window function of the fast sampler."""

    def __init__(self, model):
        self.R, self.C = model.receptive_rows, model.receptive_cols
        self.fn = tf.function(lambda g, v: model(g, v)[:, self.R, self.C])

    def logits(self, canvas, valid, r, c):
        # canvas row r + R, column c + C holds pixel (r, c); the window ends at that pixel's row
        win = canvas[:, r:r + self.R + 1, c:c + 2 * self.C + 1]
        vwin = valid[:, r:r + self.R + 1, c:c + 2 * self.C + 1]
        return self.fn(tf.constant(win), tf.constant(vwin)).numpy()


def sample_fast(model, n, height, width, *, seed, temperature=1.0, batch_size=16, log=None):
    """Same draws as ``sample_naive`` (same seed -> same grids), running the network only on each pixel's window."""
    w = _Windows(model)
    return _sample(None, n, height, width, seed, temperature, batch_size, pad=(w.R, w.C), windows=w, log=log)


def _sample(full_logits, n, height, width, seed, temperature, batch_size, pad, windows=None, log=None):
    R, C = pad
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        u = rng.random((height, width, b))  # one uniform per pixel per grid, drawn up front: chunking-independent order
        canvas = np.zeros((b, height + R, width + 2 * C), np.int32)
        valid = np.zeros((b, height + R, width + 2 * C, 1), np.float32)
        valid[:, R:, C:C + width] = 1.0
        for r in range(height):
            for c in range(width):
                if windows is not None:
                    logits = windows.logits(canvas, valid, r, c)
                else:
                    logits = full_logits(canvas, r, c)
                canvas[:, r + R, c + C] = _draw(logits, u[r, c], temperature)
        out.append(canvas[:, R:, C:C + width].copy())
        if log:
            log(f"sampled {start + b}/{n} grids")
    return np.concatenate(out).astype(np.int32)
