"""PixelCNN prior over VQ-VAE code grids (paper step 6), with an exact fast sampler.

Two kinds share one API:
- "plain" (van den Oord et al. 2016, as in the paper): 7x7 mask-A conv, residual blocks of
  1x1 conv, 3x3 mask-B conv, 1x1 conv, then a 1x1 head. Has the well-known blind spot.
- "gated" (Gated PixelCNN): a vertical stack that sees the rows above and a horizontal stack that sees
  the pixels to the left in the current row, joined by gated tanh * sigmoid units: no blind spot.

Every masked conv is stored as a kernel over the taps it may see (``up`` rows above, ``left``/``right``
columns beside) and always runs with VALID padding. On the whole grid (``model(grids)``) each conv's input
is zero padded first, so the grid keeps its size: the ordinary network. For sampling, a pixel's logits
depend only on a bounded window (``receptive_rows`` rows above, ``receptive_cols`` columns each side), so
``sample_fast`` runs the same layers on that window only: the VALID convs shrink it layer by layer to the
target pixel, and cells outside the grid are zeroed before each conv, exactly what zero padding does.
The logits equal those of the whole network (``sample_naive``) up to float rounding, at a fraction of the work.

Conditioning (conditional PixelCNN, van den Oord et al. 2016): with ``cond_dim > 0`` every grid has a global vector
c of ``cond_dim`` floats (e.g. the class fractions of its patch's mask). A learned linear map without bias, one per
layer, projects c and adds it, the same at every position, to that layer's pre-activation: the first masked conv,
the plain blocks' three convs, the gated layers' vertical and horizontal pre-activations (before the gate:
tanh(W_f*x + V_f c) * sigmoid(W_g*x + V_g c)), the head and the logits. Every call then takes ``cond`` (B, cond_dim),
row i conditioning grid i. The term is spatially constant, so adding it inside a window is what the whole
network does: the fast sampler stays exact. ``cond_dim = 0`` (the default) creates no conditioning variables: the
model, its checkpoints and its samples are those of the unconditioned PixelCNN; the compiled functions then take
a (B, 0) ``cond`` and ignore it.

Position (``grid_shape`` given): the logits of the cells of the last row get a learned bias of their own,
``LAST_ROW_SCALE * last_row_bias`` (K values, zero at first; the scale lets Adam move it by ~0.01 a step instead of
0.001, so a few hundred steps reach the border code's log-odds of ~3). The masked convs
only ever see the rows above and zero padding around the grid, so without it the model cannot tell the last row (or
column) from any other, yet a VQ-VAE encodes the patch border differently (demo: 71 % of the last row's cells hold one
code that is 4 % of the interior): the prior then scatters that border code over the whole grid and never puts it on
the border. The top row and the side columns need nothing: zero padding there is inside the receptive field. Only
the last row gets a term, not every row and column: a bias per row and column (tried first) let the prior learn
where the 48 training grids hold what and raised the memorisation share (0.05 -> 0.12). The position is known before
any cell is sampled, so the term keeps the model autoregressive, and the fast sampler stays exact (it passes each
cell's (r, c)). ``grid_shape`` None: no position variables, the old model.

Persistence: ``save(model, folder, spec)`` writes the weights (a tf.train.Checkpoint) and ``spec.json`` (kind,
num_embeddings, filters, num_blocks, the code grid's shape, cond_dim and position, ``make_spec``) into a folder;
``load(folder)`` rebuilds the model from them (a spec without cond_dim, written before conditioning: unconditioned;
one without position, written before it: no position term).
"""
import itertools
from pathlib import Path

import numpy as np

import dualgen  # noqa: F401  (environment before TensorFlow)
import sonnet as snt
import tensorflow as tf

from dualgen.core.artifacts import read_spec, write_spec
from dualgen.core.errors import DualgenError

KINDS = ("plain", "gated")
SPEC_KEYS = ("kind", "num_embeddings", "filters", "num_blocks", "grid_shape")
FIRST_REACH = 3  # the first layer is a 7x7 kernel: 3 rows above, 3 columns each side
BLOCK_REACH = 1  # every later layer is 3x3
LAST_ROW_SCALE = 10.0  # the last row's logit bias is this times its variable (a larger step for Adam)
COND_SEED = 1 << 20  # the conditioning projections draw from their own seed stream: the other weights stay the same


class MaskedConv(snt.Module):
    """A conv that sees ``up`` rows above and ``left``/``right`` columns beside; in its own row it sees
    ``row`` = "A" (left of the centre), "B" (left + centre), "all" or "none". Always VALID: the output of
    an (h, w) input is (h - up, w - left - right), the output cell (i, j) sitting at input (i + up, j + left).
    ``cond_dim > 0``: a (cond_dim, out_channels) projection without bias, ``cond_w``, adds cond @ cond_w (the same at
    every position) to the output; ``cond_dim = 0`` creates no such variable and ignores ``cond``."""

    def __init__(self, in_channels, out_channels, up=0, left=0, right=0, row="B", seed=(0, 0), cond_dim=0,
                 cond_seed=(0, COND_SEED), name=None):
        super().__init__(name=name)
        self.up, self.left, self.right = up, left, right
        mask = np.ones((up + 1, left + right + 1, 1, 1), np.float32)
        mask[up, {"A": left, "B": left + 1, "all": left + right + 1, "none": 0}[row]:] = 0.0
        self._mask = None if mask.all() else tf.constant(mask)  # 1x1 convs see everything
        shape = mask.shape[:2] + (in_channels, out_channels)
        std = 1.0 / np.sqrt(mask.sum() * in_channels)  # fan-in of the visible taps
        self.w = tf.Variable(tf.random.stateless_truncated_normal(shape, seed=seed) * std, name="w")
        self.b = tf.Variable(tf.zeros([out_channels]), name="b")
        self.cond_dim = cond_dim
        if cond_dim:
            init = tf.random.stateless_truncated_normal((cond_dim, out_channels), seed=cond_seed) / np.sqrt(cond_dim)
            self.cond_w = tf.Variable(init, name="cond_w")

    def __call__(self, x, cond=None):
        w = self.w if self._mask is None else self.w * self._mask
        y = tf.nn.bias_add(tf.nn.conv2d(x, w, strides=1, padding="VALID"), self.b)
        if self.cond_dim:
            y += tf.matmul(cond, self.cond_w)[:, None, None, :]  # (B, 1, 1, C): the same at every position
        return y


class Frame:
    """Where a forward pass runs. ``inside=None``: the whole grid, convs zero pad so the size stays.
    Otherwise a window of the grid padded with outside cells; ``inside`` (1, h, w, 1) is 1 on grid cells.
    There convs shrink the window, and outside cells are zeroed before each conv (= zero padding)."""

    def __init__(self, inside=None):
        self.inside = inside

    def conv(self, layer, x, cond=None):
        if self.inside is None:
            return layer(tf.pad(x, [[0, 0], [layer.up, 0], [layer.left, layer.right], [0, 0]]), cond)
        return layer(x * self.inside, cond)

    def crop(self, x, up, left, right):
        """Cut ``x`` to the region a conv of that reach leaves (no-op on the whole grid)."""
        if self.inside is None:
            return x
        return x[:, up:, left:x.shape[2] - right]

    def shrink(self, up, left, right):
        if self.inside is not None:
            self.inside = self.crop(self.inside, up, left, right)


class PlainBlock(snt.Module):
    """Residual block: 1x1 conv, 3x3 mask-B conv (half the filters), 1x1 conv, ReLU, + input. Each conv adds
    the conditioning term to its pre-activation."""

    def __init__(self, filters, seeds, cond_dim=0, cond_seeds=None, name=None):
        super().__init__(name=name)
        r, f, c = BLOCK_REACH, filters, cond_dim
        cond_seeds = itertools.repeat((0, COND_SEED)) if cond_seeds is None else cond_seeds
        self.reduce = MaskedConv(f, f // 2, seed=next(seeds), cond_dim=c, cond_seed=next(cond_seeds),
                                 name="reduce_1x1")
        self.conv = MaskedConv(f // 2, f // 2, r, r, r, "B", seed=next(seeds), cond_dim=c,
                               cond_seed=next(cond_seeds), name="mask_b_3x3")
        self.expand = MaskedConv(f // 2, f, seed=next(seeds), cond_dim=c, cond_seed=next(cond_seeds),
                                 name="expand_1x1")

    def __call__(self, h, frame, cond=None):
        r = BLOCK_REACH
        t = tf.nn.relu(self.reduce(h, cond))
        t = tf.nn.relu(frame.conv(self.conv, t, cond))
        t = tf.nn.relu(self.expand(t, cond))
        frame.shrink(r, r, r)
        return frame.crop(h, r, r, r) + t


def _gate(x):
    a, b = tf.split(x, 2, axis=-1)
    return tf.tanh(a) * tf.sigmoid(b)


class GatedLayer(snt.Module):
    """Gated PixelCNN layer. The vertical stack sees only rows above the current one (the first layer's kernel
    leaves out its own row; later layers may use the row itself, which already sees only rows above), so it
    feeds the horizontal stack without a shift. The horizontal stack sees the current row up to the left
    neighbour (first layer, mask A) or up to the pixel itself (later layers, mask B). The conditioning term enters
    both stacks' pre-activations (``v_conv`` and ``h_conv``), before the gate."""

    def __init__(self, in_channels, filters, reach, first, seeds, cond_dim=0, cond_seeds=None, name=None):
        super().__init__(name=name)
        self.reach, self.first = reach, first
        cond_seeds = itertools.repeat((0, COND_SEED)) if cond_seeds is None else cond_seeds
        self.v_conv = MaskedConv(in_channels, 2 * filters, reach, reach, reach, "none" if first else "all",
                                 seed=next(seeds), cond_dim=cond_dim, cond_seed=next(cond_seeds), name="v_conv")
        self.h_conv = MaskedConv(in_channels, 2 * filters, 0, reach, 0, "A" if first else "B",
                                 seed=next(seeds), cond_dim=cond_dim, cond_seed=next(cond_seeds), name="h_conv")
        self.v_to_h = MaskedConv(2 * filters, 2 * filters, seed=next(seeds), name="v_to_h_1x1")
        self.h_out = MaskedConv(filters, filters, seed=next(seeds), name="h_out_1x1")

    def __call__(self, v, h, frame, cond=None):
        r = self.reach
        v_pre = frame.conv(self.v_conv, v, cond)
        h_pre = frame.crop(frame.conv(self.h_conv, h, cond), r, 0, r) + self.v_to_h(v_pre)
        frame.shrink(r, r, r)
        h_new = self.h_out(_gate(h_pre))
        if not self.first:
            h_new += frame.crop(h, r, r, r)  # residual connection
        return _gate(v_pre), h_new


class PixelCNN(snt.Module):
    """Autoregressive prior over (B, H, W) integer code grids (values 0..K-1): ``model(grids)`` gives
    (B, H, W, K) logits, cell (r, c) conditioned on the cells before it in raster order. With ``cond_dim > 0``
    also on a global vector per grid: ``model(grids, cond)``, cond (B, cond_dim) float32."""

    def __init__(self, num_embeddings, filters=64, num_blocks=4, kind="plain", seed=0, cond_dim=0, grid_shape=None,
                 name=None):
        super().__init__(name=name)
        if kind not in KINDS:
            raise DualgenError(f"pixelcnn.kind {kind!r} is unknown: use one of {', '.join(KINDS)}")
        if num_embeddings < 2 or filters < 2 or num_blocks < 0:
            raise DualgenError(f"PixelCNN needs num_embeddings >= 2, filters >= 2 and num_blocks >= 0 "
                               f"(got {num_embeddings}, {filters}, {num_blocks}): fix the pixelcnn settings")
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, (int, np.integer)) or cond_dim < 0:
            raise DualgenError(f"PixelCNN cond_dim must be an integer >= 0 (0: unconditioned), got {cond_dim!r}")
        self.num_embeddings, self.filters, self.num_blocks, self.kind = num_embeddings, filters, num_blocks, kind
        self.cond_dim = int(cond_dim)
        seeds = ((seed, i) for i in itertools.count())  # one stateless seed per layer
        cseeds = ((seed, COND_SEED + i) for i in itertools.count())  # and per conditioning projection
        k, f, r0, c = num_embeddings, filters, FIRST_REACH, self.cond_dim
        if kind == "plain":
            self.first = MaskedConv(k, f, r0, r0, r0, "A", seed=next(seeds), cond_dim=c, cond_seed=next(cseeds),
                                    name="mask_a_7x7")
            self.blocks = [PlainBlock(f, seeds, c, cseeds, name=f"block_{i}") for i in range(num_blocks)]
        else:
            self.first = GatedLayer(k, f, r0, True, seeds, c, cseeds, name="gated_0")
            self.blocks = [GatedLayer(f, f, BLOCK_REACH, False, seeds, c, cseeds, name=f"gated_{i + 1}")
                           for i in range(num_blocks)]
        self.head = MaskedConv(f, f, seed=next(seeds), cond_dim=c, cond_seed=next(cseeds), name="head_1x1")
        self.logits = MaskedConv(f, k, seed=next(seeds), cond_dim=c, cond_seed=next(cseeds), name="logits_1x1")
        self.grid_shape = None if grid_shape is None else tuple(int(n) for n in grid_shape)
        if self.grid_shape is not None:
            if len(self.grid_shape) != 2 or min(self.grid_shape) < 1:
                raise DualgenError(f"PixelCNN grid_shape must be (rows, cols) >= 1, got {grid_shape!r}")
            self.last_row_bias = tf.Variable(tf.zeros([k]), name="last_row_bias")

    @property
    def receptive_rows(self):
        """Rows above a cell that its logits can depend on."""
        return FIRST_REACH + BLOCK_REACH * self.num_blocks

    @property
    def receptive_cols(self):
        """Columns left and right of a cell that its logits can depend on."""
        return FIRST_REACH + BLOCK_REACH * self.num_blocks

    def __call__(self, grids, cond=None):
        return self.forward(grids, Frame(), cond)

    def _cond_tensor(self, cond, batch):
        """``cond`` as float32 (B, cond_dim), checked where its shape is known; None when unconditioned."""
        if cond is None:
            if self.cond_dim:
                raise DualgenError(_cond_message("cond", batch, self.cond_dim, "None"))
            return None
        cond = tf.cast(cond, tf.float32)
        shape = cond.shape
        if shape.rank != 2 or any(n is not None and want is not None and n != want
                                  for n, want in zip(shape, (batch, self.cond_dim))):
            raise DualgenError(_cond_message("cond", batch, self.cond_dim, tuple(shape)))
        return cond if self.cond_dim else None

    def _position(self, frame, x, pos):
        """The position term added to the logits: (1, H, 1, K) on the whole grid, (1, 1, 1, K) for the window of
        the cell ``pos`` = (r, c); 0 without position."""
        if self.grid_shape is None:
            return 0.0
        if frame.inside is None:
            shape = tuple(x.shape[1:3])
            if None not in shape and shape != self.grid_shape:
                raise DualgenError(f"PixelCNN with position: grids of {tuple(x.shape[1:3])} but the model was built for "
                                   f"{self.grid_shape}: sample grids of the spec's grid_shape")
            last = tf.one_hot(self.grid_shape[0] - 1, self.grid_shape[0])[None, :, None, None]
            return last * (LAST_ROW_SCALE * self.last_row_bias)
        if pos is None:
            raise DualgenError("PixelCNN with position: a window needs the position (r, c) of its cell")
        last = tf.cast(tf.equal(pos[0], self.grid_shape[0] - 1), tf.float32)
        return (last * (LAST_ROW_SCALE * self.last_row_bias))[None, None, None, :]

    def forward(self, codes, frame, cond=None, pos=None):
        """Logits over the frame's output region; codes of -1 (outside the grid) become zero vectors. ``pos``: the
        (r, c) of a window's cell (a model with position only)."""
        x = tf.one_hot(tf.cast(codes, tf.int32), self.num_embeddings, dtype=tf.float32)
        cond = self._cond_tensor(cond, x.shape[0])
        r0 = FIRST_REACH
        if self.kind == "plain":
            h = tf.nn.relu(frame.conv(self.first, x, cond))
            frame.shrink(r0, r0, r0)
            for block in self.blocks:
                h = block(h, frame, cond)
        else:
            v, h = self.first(x, x, frame, cond)
            for block in self.blocks:
                v, h = block(v, h, frame, cond)
        return self.logits(tf.nn.relu(self.head(tf.nn.relu(h), cond)), cond) + self._position(frame, x, pos)

    @tf.function(reduce_retracing=True)
    def grid_logits(self, grids, cond=None):
        """Compiled ``model(grids, cond)``. Pass cond (B, cond_dim) float32 always ((B, 0) when unconditioned), so
        one trace serves all calls."""
        return self(grids, cond)

    @tf.function(jit_compile=True)  # XLA: these small convs are dominated by per-op overhead otherwise (2x)
    def window_logits(self, codes, inside, cond=None, pos=None):
        """(B, K) logits of the bottom-centre cell of (B, receptive_rows + 1, 2 * receptive_cols + 1) windows;
        cond (B, cond_dim) float32 as for ``grid_logits``; pos: int32 (2,), that cell's (r, c) in the grid (always
        pass it: a model without position ignores it)."""
        return self.forward(codes, Frame(inside), cond, pos)[:, 0, 0]


def _cond_message(what, n, cond_dim, got):
    rows = "B" if n is None else n
    if cond_dim == 0:
        return (f"PixelCNN {what}: the model is unconditioned (cond_dim 0): pass no cond (None or a ({rows}, 0) "
                f"array), got {got}")
    return (f"PixelCNN {what}: expected a ({rows}, {cond_dim}) float array (one row of {cond_dim} conditioning "
            f"values per grid), got {got}")


def _check_cond(model, cond, n, what):
    """``cond`` for ``n`` grids as a float32 (n, cond_dim) array ((n, 0) for an unconditioned model given None);
    missing (conditional model), of the wrong shape or not finite: one DualgenError naming ``what``."""
    if cond is None:
        if model.cond_dim:
            raise DualgenError(_cond_message(what, n, model.cond_dim, "None"))
        return np.zeros((n, 0), np.float32)
    array = np.asarray(cond)
    if array.shape != (n, model.cond_dim) or array.dtype.kind not in "biuf":
        raise DualgenError(_cond_message(what, n, model.cond_dim, f"{array.dtype} {array.shape}"))
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DualgenError(f"PixelCNN {what}: holds NaN/Inf values: check the conditioning vectors")
    return array


class Canvas:
    """Grids padded with outside cells (code -1): ``receptive_rows`` above, ``receptive_cols`` left and right,
    so every cell's window has the same shape (one compiled function for all cells)."""

    def __init__(self, model, grids):
        grids = np.asarray(grids, np.int32)
        self.rows, self.cols = model.receptive_rows, model.receptive_cols
        n, height, width = grids.shape
        self.codes = np.full((n, height + self.rows, width + 2 * self.cols), -1, np.int32)
        self.codes[:, self.rows:, self.cols:self.cols + width] = grids
        self.inside = (self.codes[:1] >= 0).astype(np.float32)[..., None]

    def window(self, r, c):
        rows, cols = slice(r, r + self.rows + 1), slice(c, c + 2 * self.cols + 1)
        return self.codes[:, rows, cols], self.inside[:, rows, cols]

    def set(self, r, c, values):
        self.codes[:, self.rows + r, self.cols + c] = values

    def grids(self):
        return self.codes[:, self.rows:, self.cols:self.codes.shape[2] - self.cols].copy()


def _pos(r, c):
    return tf.constant([r, c], tf.int32)


def logits_at(model, grids, r, c, fast, cond=None):
    """(B, K) logits of cell (r, c): ``fast`` runs the network on its window only, else on the whole grid."""
    grids = np.asarray(grids, np.int32)
    cond = _check_cond(model, cond, len(grids), "cond")
    if fast:
        return model.window_logits(*Canvas(model, grids).window(r, c), cond, _pos(r, c)).numpy()
    return model.grid_logits(tf.constant(grids), tf.constant(cond)).numpy()[:, r, c]


# ------------------------------------------------------------------------------------------------- persistence

def make_spec(settings, kind, num_embeddings, grid_shape, cond_dim=0, position=True):
    """The spec of a PixelCNN of ``kind`` over (H, W) = ``grid_shape`` grids of ``num_embeddings`` codes, with
    config's ``pixelcnn`` settings (filters, num_blocks), conditioned on ``cond_dim`` values per grid (0: none),
    with the position term (``position``, see the module docstring)."""
    return {"kind": kind, "num_embeddings": int(num_embeddings), "filters": int(settings["filters"]),
            "num_blocks": int(settings["num_blocks"]), "grid_shape": [int(n) for n in grid_shape],
            "cond_dim": int(cond_dim), "position": bool(position)}


def build(spec):
    """A fresh (untrained) PixelCNN from a spec (initial weights: the constructor's default seed). A spec without
    cond_dim (written before conditioning existed) is an unconditioned model; one without position has no position
    term."""
    return PixelCNN(spec["num_embeddings"], filters=spec["filters"], num_blocks=spec["num_blocks"], kind=spec["kind"],
                    cond_dim=spec.get("cond_dim", 0), grid_shape=spec["grid_shape"] if spec.get("position") else None)


def save(model, folder, spec):
    """Write the weights (``ckpt.*``) and ``spec.json`` into ``folder`` (made if missing). For a folder that appears
    whole or not at all, save into ``artifacts.atomic_dir`` (or ``artifact_dir``)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(model=model).write(str(Path(folder) / "ckpt"))
    write_spec(folder, spec)


def load(folder):
    """(model, spec) from a folder ``save`` wrote; a missing or damaged one is a DualgenError naming it."""
    folder = Path(folder)
    spec = read_spec(folder, "PixelCNN", SPEC_KEYS, "train_pixelcnn")
    model = build(spec)
    try:
        tf.train.Checkpoint(model=model).read(str(folder / "ckpt")).assert_existing_objects_matched().expect_partial()
    except Exception as err:  # noqa: BLE001  (mismatch: AssertionError/ValueError; damage: OpError, ...)
        raise DualgenError(f"{folder}: cannot load the PixelCNN ({type(err).__name__}): delete the folder and rerun "
                           "train_pixelcnn") from None
    return model, spec


# ---------------------------------------------------------------------------------------------------- training

def nll(logits, grids):
    """Mean negative log-likelihood in nats per grid cell."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(grids, tf.int32), logits))


def _check_grids(model, grids, what):
    grids = np.asarray(grids)
    if grids.ndim != 3 or not np.issubdtype(grids.dtype, np.integer):
        raise DualgenError(f"PixelCNN {what}: expected integer code grids (N, H, W), got {grids.dtype} "
                           f"{grids.shape}: rerun the encode step")
    if grids.size and (grids.min() < 0 or grids.max() >= model.num_embeddings):
        raise DualgenError(f"PixelCNN {what}: codes {grids.min()}..{grids.max()} outside "
                           f"0..{model.num_embeddings - 1}: the grids and the model's num_embeddings disagree, "
                           "rerun the encode step")
    return grids.astype(np.int32)


def validation_nll(model, grids, batch_size=16, cond=None):
    """Mean NLL (nats per grid cell) over ``grids`` (row i of ``cond`` conditions grid i); NaN when there are none."""
    grids = _check_grids(model, grids, "validation grids")
    cond = _check_cond(model, cond, len(grids), "validation cond")
    if len(grids) == 0:
        return float("nan")
    total = 0.0
    for i in range(0, len(grids), batch_size):
        batch = tf.constant(grids[i:i + batch_size])
        total += float(nll(model.grid_logits(batch, tf.constant(cond[i:i + batch_size])), batch)) * len(batch)
    return total / len(grids)


def train_pixelcnn(model, train_grids, val_grids, *, epochs, batch_size, learning_rate, seed, log=print,
                   train_cond=None, val_cond=None):
    """Adam on the NLL, shuffled each epoch with ``seed`` (the cond rows move with their grids). Returns the history
    {"epoch", "train_nll", "val_nll"} (nats per grid cell; train = mean over the epoch's steps).

    With validation grids the model ends with the weights of the epoch of lowest validation NLL (the last such epoch
    on ties), not those of the last epoch: on a few dozen grids the prior overfits within tens of epochs, and an
    overfitted prior samples degenerate grids (demo: 160 epochs, validation NLL 1.05 -> 1.32, eta 38 % of the pool
    instead of 7 %). Without validation grids: the last epoch."""
    train = _check_grids(model, train_grids, "training grids")
    val = _check_grids(model, val_grids, "validation grids")
    if len(train) == 0:
        raise DualgenError("PixelCNN: no training grids: check the encode step's train/val split")
    train_cond = _check_cond(model, train_cond, len(train), "train_cond")
    val_cond = _check_cond(model, val_cond, len(val), "val_cond")
    optimizer = snt.optimizers.Adam(learning_rate)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.int32),
                                  tf.TensorSpec([None, model.cond_dim], tf.float32)])
    def train_step(batch, cond):
        with tf.GradientTape() as tape:
            loss = nll(model(batch, cond), batch)
        params = model.trainable_variables
        optimizer.apply(tape.gradient(loss, params), params)
        return loss

    rng = np.random.default_rng(seed)
    history = {"epoch": [], "train_nll": [], "val_nll": []}
    last_finite = None
    best_nll, best_epoch, best_weights = np.inf, None, None
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(train))
        losses = []
        for step, start in enumerate(range(0, len(train), batch_size), 1):
            rows = order[start:start + batch_size]
            loss = float(train_step(tf.constant(train[rows]), tf.constant(train_cond[rows])))
            if not np.isfinite(loss):
                raise DualgenError(f"PixelCNN loss became NaN/Inf at epoch {epoch} step {step} "
                                   f"(last finite loss {last_finite}): lower pixelcnn.learning_rate")
            last_finite = loss
            losses.append(loss)
        history["epoch"].append(epoch)
        history["train_nll"].append(float(np.mean(losses)))
        history["val_nll"].append(validation_nll(model, val, batch_size, val_cond))
        log(f"epoch {epoch}/{epochs}: NLL {history['train_nll'][-1]:.4f} (train), "
            f"{history['val_nll'][-1]:.4f} (validation) nats per cell")
        if history["val_nll"][-1] <= best_nll:  # NaN (no validation grids) is never <=
            best_nll, best_epoch = history["val_nll"][-1], epoch
            best_weights = None if epoch == epochs else [v.numpy() for v in model.variables]
    if best_weights is not None:
        for v, w in zip(model.variables, best_weights):
            v.assign(w)
        log(f"kept the weights of epoch {best_epoch} (lowest validation NLL {best_nll:.4f}), not of epoch {epochs}")
    return history


# ---------------------------------------------------------------------------------------------------- sampling

def draw(logits, u, temperature, bias=None):
    """Inverse-CDF draws from softmax(logits / temperature + bias): (B, K) logits, (B,) uniforms -> (B,) int32.
    ``bias``: (K,) logit offsets (``calibrate``), None: none."""
    z = np.asarray(logits, np.float64) / temperature
    if bias is not None:
        z = z + bias
    if not np.isfinite(z).all():
        raise DualgenError("PixelCNN gave NaN/Inf logits while sampling: its weights are broken, rerun train_pixelcnn")
    cdf = np.cumsum(np.exp(z - z.max(axis=-1, keepdims=True)), axis=-1)
    k = (cdf <= u[:, None] * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(k, z.shape[-1] - 1).astype(np.int32)


def _fill_naive(model, u, temperature, rows, cond, bias):
    grids = np.zeros(u.shape, np.int32)
    cond = tf.constant(cond)
    for r in range(rows):
        for c in range(u.shape[2]):
            logits = model.grid_logits(tf.constant(grids), cond).numpy()[:, r, c]
            grids[:, r, c] = draw(logits, u[:, r, c], temperature, bias)
    return grids


def _fill_fast(model, u, temperature, rows, cond, bias):
    canvas = Canvas(model, np.zeros(u.shape, np.int32))
    for r in range(rows):
        for c in range(u.shape[2]):
            logits = model.window_logits(*canvas.window(r, c), cond, _pos(r, c)).numpy()
            canvas.set(r, c, draw(logits, u[:, r, c], temperature, bias))
    return canvas.grids()


def _sample(fill, model, n, height, width, seed, temperature, batch_size, rows, cond, bias=None, stream=()):
    if temperature <= 0:
        raise DualgenError(f"sample.temperature {temperature} must be > 0: use e.g. 1.0")
    if n < 0 or height < 1 or width < 1 or batch_size < 1:
        raise DualgenError(f"sample: cannot draw {n} grids of {height}x{width} in batches of {batch_size}: "
                           "use positive sizes")
    cond = _check_cond(model, cond, n, "sample cond")
    if bias is not None:
        bias = np.asarray(bias, np.float64)
        if bias.shape != (model.num_embeddings,) or not np.isfinite(bias).all():
            raise DualgenError(f"sample: a calibration bias of shape {bias.shape} for a prior of "
                               f"{model.num_embeddings} codes (finite values needed): rerun sample")
    rows = height if rows is None else min(rows, height)
    out = np.zeros((n, height, width), np.int32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        # one generator per grid: the grids do not depend on batch_size
        u = np.stack([np.random.default_rng([*stream, seed, i]).random((height, width)) for i in range(start, stop)])
        out[start:stop] = fill(model, u, temperature, rows, cond[start:stop], bias)
    return out


def sample_naive(model, n, height, width, *, seed, temperature=1.0, batch_size=16, rows=None, cond=None, bias=None):
    """n grids (n, H, W) int32, pixel by pixel in raster order, running the whole network on the whole grid
    for every pixel (the reference). ``rows``: fill only the first rows (the rest stay 0), for timing. ``cond``:
    (n, cond_dim) float32, row i conditions grid i (required for a conditional model). ``bias``: (K,) logit offsets
    added after the temperature (``calibrate``)."""
    return _sample(_fill_naive, model, n, height, width, seed, temperature, batch_size, rows, cond, bias)


def sample_fast(model, n, height, width, *, seed, temperature=1.0, batch_size=16, rows=None, cond=None, bias=None):
    """Same grids as ``sample_naive`` (same seed, cond and bias), running the network only on each pixel's window."""
    return _sample(_fill_fast, model, n, height, width, seed, temperature, batch_size, rows, cond, bias)


CALIBRATION_GRIDS = 64  # grids sampled per calibration round
CALIBRATION_ROUNDS = 6
CALIBRATION_STEP = 0.3  # share of the log-ratio applied per round: a code's share reacts several-fold to its offset
CALIBRATION_FLOOR = 1e-4  # frequencies below this count as this (a code the training grids never use: -9.2 nats)
CLASS_ROUNDS = 8  # rounds on decoded class fractions, after the code shares (sample.calibrate: classes)
CLASS_STEP = 0.2  # smaller: a class's share moves with several codes' offsets at once (0.5 swung by +-0.02)
CALIBRATIONS = ("classes", "codes", "none")


def calibration_mode(value):
    """sample.calibrate as one of CALIBRATIONS: true (the setting before classes existed) is ``codes``, false
    ``none``."""
    if value is True:
        return "codes"
    if value is False or value is None:
        return "none"
    if value not in CALIBRATIONS:
        raise DualgenError(f"sample.calibrate is {value!r}: use one of {', '.join(CALIBRATIONS)}")
    return value


def code_frequencies(grids, num_embeddings):
    """(K,) share of the cells holding each code."""
    grids = np.asarray(grids)
    return np.bincount(grids.ravel(), minlength=int(num_embeddings))[:int(num_embeddings)] / max(1, grids.size)


def share_distance(a, b):
    """Total variation distance between two (K,) code-share vectors: half the summed absolute difference."""
    return 0.5 * float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


def calibrate(model, target, height, width, *, seed, temperature=1.0, batch_size=16, grids=CALIBRATION_GRIDS,
              rounds=CALIBRATION_ROUNDS, step=CALIBRATION_STEP, log=print, measure=None, features=None, start=None,
              stream=1, what="code shares"):
    """Per-code logit offsets b (K,) so that the sampler's code frequencies come near ``target`` (K,), the code
    frequencies of the prior's training grids. Sampling from softmax(logits / T + b) is the exponential tilt of the
    prior, p(x) exp(sum_k b_k n_k(x)) / Z: of all distributions with the tilted code frequencies the one closest to
    the prior (least Kullback-Leibler divergence), so what the prior learned about arrangement is kept and only its
    share of each code is corrected. A prior trained on a few dozen grids draws some codes at up to twice or half
    their share (demo: a matrix code at 12-36 % of the cells against 18.5 % in the training grids, depending on the
    training's seed), and the class fractions of its pairs follow.

    Fitted by ``rounds`` rounds of ``grids`` draws (random streams of their own, not the pool's): round r draws with
    the offsets so far and adds ``step`` x log(target / drawn frequency). The step is damped because the prior feeds
    its own draws back: a code drawn more often makes its neighbours likelier too, so its share moves several times
    as much as its offset (full steps diverged on the demo). Returns (b, history): b the offsets of the round whose
    draws were nearest the target (total variation distance; round 0 has the ``start`` offsets, zeros by default,
    so the result is never farther than where it started), history a list of (offsets, drawn frequencies, distance)
    per round.

    Other statistics of the draws: ``measure(grids)`` gives the (D,) frequencies ``target`` holds (e.g. the class
    fractions of the decoded pairs) and ``features`` (K, D) how each code counts towards them (e.g. the share of
    each class in the cells of each code): the step adds ``features @ log(target / drawn)``, the tilt by the
    expected class counts. ``stream`` keeps each stage's draws apart; ``what`` names the statistic in the log."""
    k = int(model.num_embeddings)
    target = np.asarray(target, np.float64)
    measure = measure or (lambda g: code_frequencies(g, k))
    features = np.eye(k) if features is None else np.asarray(features, np.float64)
    if features.shape != (k, target.shape[0]) or target.ndim != 1:
        raise DualgenError(f"sample: calibration target of shape {target.shape} for a prior of {k} codes "
                           f"(features {features.shape})")
    floor = np.maximum(target, CALIBRATION_FLOOR)
    bias = np.zeros(k) if start is None else np.asarray(start, np.float64).copy()
    history = []
    for r in range(int(rounds)):
        drawn = np.asarray(measure(_sample(_fill_fast, model, int(grids), height, width, seed, temperature,
                                           batch_size, None, None, bias, stream=(int(stream), r))), np.float64)
        distance = share_distance(drawn, target)
        history.append((bias, drawn, distance))
        log(f"calibration round {r + 1}/{rounds}: {what} {distance:.3f} (total variation) from the training data's")
        bias = bias + float(step) * features @ np.log(floor / np.maximum(drawn, CALIBRATION_FLOOR))
    best = min(range(len(history)), key=lambda r: history[r][2])
    return history[best][0], history
