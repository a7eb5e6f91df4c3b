"""MaskGIT prior over VQ-VAE code grids: a parallel alternative to the PixelCNN (Chang et al. 2022, "MaskGIT:
Masked Generative Image Transformer").

The network (``MaskGIT``): a bidirectional transformer over the h * w cells of a fixed (h, w) grid. Each cell's
token (a code 0..K-1, or the [MASK] token, id K = ``num_embeddings``) is embedded, a learned embedding of its
position (one per cell of the grid) is added, then ``depth`` pre-LayerNorm blocks (multi-head self-attention over all
cells, no causal mask; an MLP of 4 x ``dim`` with GELU; each a residual branch), a final LayerNorm and a linear head
give K logits per cell. Conditioning (``cond_dim > 0``): a global vector c (B, cond_dim) per grid, as the PixelCNN's
(e.g. the class fractions of its patch's mask). Learned linear maps without bias project it to ``dim`` values, which
are added, the same at every cell, to the token embeddings and again to the input of every block (``depth + 1``
projections; no extra token is prepended). ``cond_dim = 0`` creates no conditioning variables; calls then take None
or a (B, 0) ``cond``. The initial weights are stateless truncated normals seeded from ``seed`` (one seed per
variable, the conditioning projections from their own stream, as in ``model``): the same seed gives the same model.
Token and position embeddings start at std 1, linear maps at std 1 / sqrt(fan_in) (the residual branches' output
maps / sqrt(2 * depth) more), biases and LayerNorm offsets at 0, LayerNorm scales at 1.

Training (``train_maskgit``): each grid of a batch draws u ~ U(0, 1) and the cosine schedule's mask ratio
r = cos(pi/2 * u); ceil(r * N) of its N cells (at least 1), chosen at random, are replaced by [MASK]; the loss is the
cross-entropy of the true codes at the masked cells only (mean over the batch's masked cells). ``validation_nll``
gives the same cross-entropy on validation grids at fixed mask ratios, seeded: NOT the PixelCNN's NLL (a masked
cross-entropy is not a likelihood of the grid), shown beside it only as the number each prior is selected by.

Sampling (``sample_maskgit``): MaskGIT's iterative parallel decoding in ``steps`` steps T, from an all-[MASK] grid.
Step t (0-based) draws a code for every masked cell from softmax(logits / temperature + bias) (``sample.draw``;
``bias`` the calibration's per-code offsets, ``sample.calibrate``), scores each drawn cell by its log-probability
under that distribution plus Gumbel noise times ``CHOICE_TEMPERATURE`` * (1 - (t + 1) / T), and masks again the
floor(N * cos(pi/2 * (t + 1) / T)) least confident of the drawn cells (at least one fewer than were masked, so every
step fixes a cell; none at the last step). Cells once fixed stay fixed. The confidence order fixes likely codes
first, so the sampled code shares lean towards the likelier codes even for a model that knows the true marginals
(cells drawn independently 0.5 / 0.3 / 0.2 come out about 0.60 / 0.26 / 0.14 on 6x6 grids in 12 steps):
``sample.calibrate``'s offsets correct the shares as they do the PixelCNN's.
"""

import itertools
import math
import time

import numpy as np
import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError
from dualgen.generate.pixelcnn import sample as pixelcnn_sample
from dualgen.generate.pixelcnn.model import COND_SEED, check_cond, cond_tensor
from dualgen.generate.pixelcnn.train import BestEpoch

KIND = "maskgit"
DEFAULTS = {"dim": 64, "depth": 2, "heads": 4, "steps": 12}  # pixelcnn.maskgit.* when the config leaves them out
CHOICE_TEMPERATURE = 4.5  # scale of the Gumbel noise on the confidences at step 0 (MaskGIT's), annealed to 0
MLP_RATIO = 4
LN_EPSILON = 1e-5
EVAL_BATCH = 16  # grids per call of validation_nll unless a batch size is given
VAL_POINTS = 5  # validation_nll's mask ratios: cos(pi/2 * u) at the midpoints u = (j + 0.5) / VAL_POINTS
VAL_RATIOS = tuple(math.cos(math.pi / 2 * (j + 0.5) / VAL_POINTS) for j in range(VAL_POINTS))
VAL_SEED = 0  # validation_nll's masks (the same cells for every call: numbers comparable across epochs)


class Linear(snt.Module):
    """y = x @ w + b over the last axis; w a stateless truncated normal of std ``scale`` / sqrt(fan_in), b zero
    (``bias`` False: none)."""

    def __init__(self, n_in, n_out, seed, scale=1.0, bias=True, name=None):
        super().__init__(name=name)
        std = scale / np.sqrt(n_in)
        self.w = tf.Variable(tf.random.stateless_truncated_normal((n_in, n_out), seed=seed) * std, name="w")
        self.b = tf.Variable(tf.zeros([n_out]), name="b") if bias else None

    def __call__(self, x):
        shape = tf.shape(x)
        y = tf.matmul(tf.reshape(x, [-1, self.w.shape[0]]), self.w)
        if self.b is not None:
            y = tf.nn.bias_add(y, self.b)
        return tf.reshape(y, tf.concat([shape[:-1], [self.w.shape[1]]], 0))


class LayerNorm(snt.Module):
    """Normalisation over the last axis with a learned scale (ones) and offset (zeros)."""

    def __init__(self, dim, name=None):
        super().__init__(name=name)
        self.scale = tf.Variable(tf.ones([dim]), name="scale")
        self.offset = tf.Variable(tf.zeros([dim]), name="offset")

    def __call__(self, x):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + LN_EPSILON) * self.scale + self.offset


class Block(snt.Module):
    """Pre-LayerNorm transformer block: x + attention(LN(x)), then + MLP(LN(...)). Attention: ``heads`` heads of
    ``dim / heads`` channels over all cells (no mask). The residual branches' output projections start at std
    1 / sqrt(2 * depth * fan_in), so the stream keeps its scale at any depth."""

    def __init__(self, dim, heads, depth, seeds, name=None):
        super().__init__(name=name)
        self.heads = heads
        out_scale = 1.0 / np.sqrt(2.0 * depth)
        self.ln_attn = LayerNorm(dim, name="ln_attn")
        self.qkv = Linear(dim, 3 * dim, next(seeds), name="qkv")
        self.attn_out = Linear(dim, dim, next(seeds), scale=out_scale, name="attn_out")
        self.ln_mlp = LayerNorm(dim, name="ln_mlp")
        self.mlp_in = Linear(dim, MLP_RATIO * dim, next(seeds), name="mlp_in")
        self.mlp_out = Linear(MLP_RATIO * dim, dim, next(seeds), scale=out_scale, name="mlp_out")

    def __call__(self, x):
        b, n, dim = tf.shape(x)[0], x.shape[1], x.shape[2]
        dh = dim // self.heads
        qkv = tf.reshape(self.qkv(self.ln_attn(x)), [b, n, 3, self.heads, dh])
        q, k, v = (tf.transpose(qkv[:, :, i], [0, 2, 1, 3]) for i in range(3))  # (B, heads, N, dh)
        weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * (1.0 / np.sqrt(dh)), axis=-1)
        attended = tf.reshape(tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]), [b, n, dim])
        x = x + self.attn_out(attended)
        return x + self.mlp_out(tf.nn.gelu(self.mlp_in(self.ln_mlp(x))))


def _is_int(value, low):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= low


class MaskGIT(snt.Module):
    """Masked-token prior over (B, h, w) code grids of the fixed ``grid_shape`` (h, w): ``model(grids)`` gives
    (B, h, w, K) logits of every cell given all the cells that are not [MASK] (id K = ``num_embeddings``; grids hold
    0..K). With ``cond_dim > 0`` also given a global vector per grid: ``model(grids, cond)``, cond (B, cond_dim)
    float32. ``steps``: the sampler's default number of decoding steps (``sample_maskgit``; the spec's)."""

    kind = KIND
    label = "MaskGIT"  # in error messages

    def __init__(self, num_embeddings, grid_shape, dim, depth, heads, seed, cond_dim=0, steps=None, name=None):
        super().__init__(name=name)
        steps = DEFAULTS["steps"] if steps is None else steps
        if not _is_int(num_embeddings, 2):
            raise DualgenError(
                f"MaskGIT needs num_embeddings >= 2 codes, got {num_embeddings!r}: rerun the encode step"
            )
        shape = tuple(grid_shape) if isinstance(grid_shape, (tuple, list, np.ndarray)) else ()
        if len(shape) != 2 or not all(_is_int(n, 1) for n in shape):
            raise DualgenError(f"MaskGIT grid_shape must be (rows, cols) >= 1, got {grid_shape!r}")
        for key, value, low in (("dim", dim, 1), ("depth", depth, 1), ("heads", heads, 1), ("steps", steps, 1)):
            if not _is_int(value, low):
                raise DualgenError(f"pixelcnn.maskgit.{key} is {value!r}: use an integer >= {low}")
        if dim % heads:
            raise DualgenError(
                f"pixelcnn.maskgit.dim {dim} is not a multiple of pixelcnn.maskgit.heads {heads}: "
                "make dim a multiple of heads (e.g. dim 64, heads 4)"
            )
        if not _is_int(cond_dim, 0):
            raise DualgenError(f"MaskGIT cond_dim must be an integer >= 0 (0: unconditioned), got {cond_dim!r}")
        self.num_embeddings, self.mask_id = int(num_embeddings), int(num_embeddings)
        self.grid_shape = tuple(int(n) for n in shape)
        self.dim, self.depth, self.heads, self.steps = int(dim), int(depth), int(heads), int(steps)
        self.cond_dim = int(cond_dim)
        seeds = ((seed, i) for i in itertools.count())  # one stateless seed per variable
        cseeds = ((seed, COND_SEED + i) for i in itertools.count())  # and per conditioning projection
        cells, k = self.grid_shape[0] * self.grid_shape[1], self.num_embeddings
        self.token_embedding = tf.Variable(
            tf.random.stateless_truncated_normal((k + 1, self.dim), seed=next(seeds)), name="token_embedding"
        )
        self.position_embedding = tf.Variable(
            tf.random.stateless_truncated_normal((cells, self.dim), seed=next(seeds)), name="position_embedding"
        )
        self.blocks = [Block(self.dim, self.heads, self.depth, seeds, name=f"block_{i}") for i in range(self.depth)]
        self.ln_final = LayerNorm(self.dim, name="ln_final")
        self.head = Linear(self.dim, k, next(seeds), name="head")
        if self.cond_dim:
            self.cond_proj = [
                Linear(self.cond_dim, self.dim, next(cseeds), bias=False, name=f"cond_{i}")
                for i in range(self.depth + 1)
            ]

    @property
    def cells(self):
        return self.grid_shape[0] * self.grid_shape[1]

    def _cond_tensor(self, cond, batch):
        return cond_tensor(self, cond, batch)

    def __call__(self, grids, cond=None):
        grids = tf.cast(grids, tf.int32)
        if grids.shape.rank != 3 or (None not in grids.shape[1:] and tuple(grids.shape[1:]) != self.grid_shape):
            raise DualgenError(
                f"MaskGIT: grids of shape {tuple(grids.shape)} but the model was built for (B, {self.grid_shape[0]}, "
                f"{self.grid_shape[1]}) grids: sample and train on grids of the spec's grid_shape"
            )
        cond = self._cond_tensor(cond, grids.shape[0])
        h, w = self.grid_shape
        tokens = tf.reshape(grids, [-1, h * w])
        x = tf.gather(self.token_embedding, tokens) + self.position_embedding[None]
        if cond is not None:
            x += self.cond_proj[0](cond)[:, None, :]
        for i, block in enumerate(self.blocks):
            if cond is not None:
                x += self.cond_proj[i + 1](cond)[:, None, :]
            x = block(x)
        logits = self.head(self.ln_final(x))
        return tf.reshape(logits, [-1, h, w, self.num_embeddings])

    @tf.function(reduce_retracing=True)
    def grid_logits(self, grids, cond=None):
        """Compiled ``model(grids, cond)``. Pass cond (B, cond_dim) float32 always ((B, 0) when unconditioned), so
        one trace serves all calls."""
        return self(grids, cond)


def check_grids(model, grids, what):
    """``grids`` as int32 (N, h, w) of codes 0..K-1 of the model's grid_shape; otherwise one DualgenError."""
    grids = np.asarray(grids)
    if grids.ndim != 3 or not np.issubdtype(grids.dtype, np.integer):
        raise DualgenError(
            f"MaskGIT {what}: expected integer code grids (N, H, W), got {grids.dtype} {grids.shape}: rerun the "
            "encode step"
        )
    if tuple(grids.shape[1:]) != model.grid_shape:
        raise DualgenError(
            f"MaskGIT {what}: grids of {grids.shape[1]}x{grids.shape[2]} but the model was built for "
            f"{model.grid_shape[0]}x{model.grid_shape[1]}: build it from these grids' shape (persist.make_spec)"
        )
    if grids.size and (grids.min() < 0 or grids.max() >= model.num_embeddings):
        raise DualgenError(
            f"MaskGIT {what}: codes {grids.min()}..{grids.max()} outside 0..{model.num_embeddings - 1}: the grids "
            "and the model's num_embeddings disagree, rerun the encode step"
        )
    return grids.astype(np.int32)


def masked_cross_entropy(logits, targets, weights):
    """Mean cross-entropy (nats) of ``targets`` (B, h, w) under ``logits`` (B, h, w, K) over the cells where
    ``weights`` (B, h, w) is 1 (the masked cells)."""
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(targets, tf.int32), logits)
    return tf.reduce_sum(ce * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _mask_cells(scores, counts):
    """(B, N) bool: in each row the ``counts[i]`` cells of lowest score (ties: the first)."""
    ranks = np.argsort(np.argsort(scores, axis=1, kind="stable"), axis=1, kind="stable")
    return ranks < np.asarray(counts)[:, None]


def training_masks(rng, n, cells):
    """(n, cells) bool masks of the training objective: per grid u ~ U(0, 1), ratio cos(pi/2 * u), ceil(ratio *
    cells) cells (at least 1) chosen at random. Draws u then the cell scores from ``rng``."""
    ratios = np.cos(np.pi / 2 * rng.random(n))
    counts = np.clip(np.ceil(ratios * cells), 1, cells).astype(np.int64)
    return _mask_cells(rng.random((n, cells)), counts)


def validation_nll(model, grids, batch_size=EVAL_BATCH, cond=None, seed=VAL_SEED):
    """Mean masked-token cross-entropy (nats per masked cell) on ``grids``: NOT a negative log-likelihood and not
    comparable in value with the PixelCNN's ``train.validation_nll`` (a masked cell is predicted from the visible
    cells on all sides, and no product of these terms is the probability of a grid).

    For each mask ratio r of ``VAL_RATIOS`` (cos(pi/2 * u) at u = 0.1, 0.3, ..., 0.9: the midpoint rule for the
    training objective's expectation over u) every grid i masks ceil(r * N) cells (at least 1) drawn by
    numpy's default_rng([seed, j, i]) (j the ratio's index), the same cells on every call and for any batch size;
    the cross-entropy of the true codes at those cells is averaged over the cells and grids, then over the ratios.
    Row i of ``cond`` conditions grid i. NaN when there are no grids."""
    grids = check_grids(model, grids, "validation grids")
    cond = check_cond(model, cond, len(grids), "validation cond")
    if len(grids) == 0:
        return float("nan")
    n, cells = len(grids), model.cells
    flat = grids.reshape(n, cells)
    per_ratio = []
    for j, ratio in enumerate(VAL_RATIOS):
        count = min(cells, max(1, math.ceil(ratio * cells)))
        scores = np.stack([np.random.default_rng([seed, j, i]).random(cells) for i in range(n)])
        masks = _mask_cells(scores, np.full(n, count))
        tokens = np.where(masks, model.mask_id, flat).astype(np.int32).reshape(grids.shape)
        total = 0.0
        for s in range(0, n, batch_size):
            logits = model.grid_logits(tf.constant(tokens[s : s + batch_size]), tf.constant(cond[s : s + batch_size]))
            weights = tf.constant(masks[s : s + batch_size].reshape(-1, *model.grid_shape).astype(np.float32))
            total += float(masked_cross_entropy(logits, grids[s : s + batch_size], weights)) * len(logits)
        per_ratio.append(total / n)  # every grid masks the same number of cells: grid means weigh equally
    return float(np.mean(per_ratio))


def train_maskgit(
    model, grids, val_grids, *, epochs, batch_size, learning_rate, seed, cond=None, val_cond=None, log=print
):
    """Adam on the masked-token cross-entropy (the module docstring), shuffled each epoch with ``seed`` (the cond rows
    move with their grids); the masks come from the same numpy generator (default_rng(seed): the permutation, then
    per batch ``training_masks``), so the same seed trains the same model. Returns the history {"epoch", "train_nll",
    "val_nll"} as ``train.train_pixelcnn`` does, but both numbers are masked-token cross-entropies (nats per masked
    cell): train = the mean over the epoch's steps, validation = ``validation_nll``.

    With validation grids the model ends with the weights of the epoch of the lowest validation number (the last
    such epoch on ties), not those of the last epoch; without: the last epoch."""
    train = check_grids(model, grids, "training grids")
    val = check_grids(model, val_grids, "validation grids")
    if len(train) == 0:
        raise DualgenError("MaskGIT: no training grids: check the encode step's train/val split")
    if not _is_int(batch_size, 1) or not _is_int(epochs, 1):
        raise DualgenError(f"MaskGIT: epochs {epochs!r} and batch_size {batch_size!r} must be integers >= 1")
    train_cond = check_cond(model, cond, len(train), "train cond")
    val_cond = check_cond(model, val_cond, len(val), "val_cond")
    optimizer = snt.optimizers.Adam(learning_rate)
    h, w = model.grid_shape

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, h, w], tf.int32),
            tf.TensorSpec([None, h, w], tf.int32),
            tf.TensorSpec([None, h, w], tf.float32),
            tf.TensorSpec([None, model.cond_dim], tf.float32),
        ]
    )
    def train_step(tokens, targets, weights, cond):
        with tf.GradientTape() as tape:
            loss = masked_cross_entropy(model(tokens, cond), targets, weights)
        params = model.trainable_variables
        optimizer.apply(tape.gradient(loss, params), params)
        return loss

    rng = np.random.default_rng(seed)
    history = {"epoch": [], "train_nll": [], "val_nll": []}
    last_finite = None
    best = BestEpoch()
    steps = -(-len(train) // batch_size)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(train))
        losses = []
        for step, start in enumerate(range(0, len(train), batch_size), 1):
            rows = order[start : start + batch_size]
            masks = training_masks(rng, len(rows), model.cells).reshape(-1, h, w)
            tokens = np.where(masks, model.mask_id, train[rows]).astype(np.int32)
            loss = float(
                train_step(
                    tf.constant(tokens),
                    tf.constant(train[rows]),
                    tf.constant(masks.astype(np.float32)),
                    tf.constant(train_cond[rows]),
                )
            )
            if not np.isfinite(loss):
                raise DualgenError(
                    f"MaskGIT loss became NaN/Inf at epoch {epoch} step {step} "
                    f"(last finite loss {last_finite}): lower pixelcnn.learning_rate"
                )
            last_finite = loss
            losses.append(loss)
        history["epoch"].append(epoch)
        history["train_nll"].append(float(np.mean(losses)))
        history["val_nll"].append(validation_nll(model, val, batch_size, val_cond))
        log(
            f"epoch {epoch}/{epochs}: {steps}/{steps} steps - {time.perf_counter() - started:.1f}s - masked-token CE "
            f"{history['train_nll'][-1]:.4f} (train), {history['val_nll'][-1]:.4f} (validation) nats per masked cell"
        )
        best.update(model, history["val_nll"][-1], epoch, epochs)
    if best.restore(model):
        log(
            f"kept the weights of epoch {best.epoch} (lowest validation masked-token CE {best.value:.4f}), "
            f"not of epoch {epochs}"
        )
    return history


def schedule(cells, steps):
    """The number of cells still masked after each of ``steps`` decoding steps: floor(cells * cos(pi/2 * (t + 1) /
    steps)), at most one fewer than before the step (every step fixes a cell; the count reaches 0 early when steps >
    cells), 0 after the last."""
    counts, before = [], cells
    for t in range(steps):
        after = 0 if t == steps - 1 else int(math.floor(cells * math.cos(math.pi / 2 * (t + 1) / steps)))
        after = max(0, min(after, before - 1))
        counts.append(after)
        before = after
    return counts


def _log_prob(logits, codes, temperature, bias):
    """log softmax(logits / temperature + bias) at ``codes``: (M, K), (M,) -> (M,) float64."""
    z = np.asarray(logits, np.float64) / temperature
    if bias is not None:
        z = z + bias
    top = z.max(axis=-1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=-1))
    return z[np.arange(len(codes)), codes] - log_norm


def _fill(model, uniforms, gumbels, temperature, cond, bias, counts):
    """Decode one batch: (B, T, N) uniforms for the draws, (B, T, N) Gumbel noise, ``counts`` from ``schedule``."""
    b, steps, cells = uniforms.shape
    tokens = np.full((b, cells), model.mask_id, np.int32)
    cond = tf.constant(cond)
    for t in range(steps):
        masked = tokens == model.mask_id
        if not masked.any():
            break
        logits = model.grid_logits(tf.constant(tokens.reshape(b, *model.grid_shape)), cond).numpy()
        logits = logits.reshape(b, cells, -1)
        rows, cols = np.nonzero(masked)
        drawn = pixelcnn_sample.draw(logits[rows, cols], uniforms[rows, t, cols], temperature, bias)
        confidence = np.full((b, cells), np.inf)
        noise = CHOICE_TEMPERATURE * (1.0 - (t + 1) / steps)
        confidence[rows, cols] = (
            _log_prob(logits[rows, cols], drawn, temperature, bias) + noise * gumbels[rows, t, cols]
        )
        tokens[rows, cols] = drawn
        if counts[t]:
            least = np.argsort(confidence, axis=1, kind="stable")[:, : counts[t]]
            np.put_along_axis(tokens, least, model.mask_id, axis=1)
    return tokens.reshape(b, *model.grid_shape)


def sample_maskgit(
    model, n, height, width, *, seed, temperature, batch_size, steps=None, cond=None, bias=None, stream=()
):
    """n grids (n, height, width) int32 of codes 0..K-1 by MaskGIT's parallel decoding (the module docstring) in
    ``steps`` steps (None: the model's, i.e. the spec's ``steps``); (height, width) must be the model's grid_shape.
    ``cond``: (n, cond_dim) float32, row i conditions grid i (required for a conditional model). ``bias``: (K,) logit
    offsets added after the temperature (``sample.calibrate``).

    Seeding as ``sample.sample_fast``: grid i draws everything from numpy's default_rng([*stream, seed, i]) (first
    the (steps, N) uniforms of its code draws, then the (steps, N) uniforms of its Gumbel noise), so a grid does not
    depend on ``batch_size`` or on the other grids, as long as the network gives each grid the same logits in any
    batch (it does on CPU; a GPU's kernels may round differently per batch size). ``stream``: keeps other draws
    (the calibration's) apart."""
    if temperature <= 0:
        raise DualgenError(f"sample.temperature {temperature} must be > 0: use e.g. 1.0")
    if n < 0 or height < 1 or width < 1 or batch_size < 1:
        raise DualgenError(
            f"sample: cannot draw {n} grids of {height}x{width} in batches of {batch_size}: use positive sizes"
        )
    if (height, width) != model.grid_shape:
        raise DualgenError(
            f"sample: a MaskGIT prior draws grids of its spec's grid_shape {model.grid_shape[0]}x"
            f"{model.grid_shape[1]}, not {height}x{width}: sample grids of that size"
        )
    steps = model.steps if steps is None else steps
    if not _is_int(steps, 1):
        raise DualgenError(f"pixelcnn.maskgit.steps is {steps!r}: use an integer >= 1 (MaskGIT's: 12)")
    cond = check_cond(model, cond, n, "sample cond")
    bias = pixelcnn_sample.check_bias(model, bias)
    cells = model.cells
    counts = schedule(cells, int(steps))
    out = np.zeros((n, height, width), np.int32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        uniforms, gumbels = [], []
        for i in range(start, stop):  # one generator per grid: the grids do not depend on batch_size
            rng = np.random.default_rng([*stream, seed, i])
            uniforms.append(rng.random((steps, cells)))
            g = np.clip(rng.random((steps, cells)), 1e-12, 1.0 - 1e-12)
            gumbels.append(-np.log(-np.log(g)))
        out[start:stop] = _fill(
            model, np.stack(uniforms), np.stack(gumbels), temperature, cond[start:stop], bias, counts
        )
    return out
