"""PixelCNN prior over VQ-VAE code grids (paper step 6): the network.

Two kinds:
- "plain" (van den Oord et al. 2016, as in the paper): 7x7 mask-A conv, residual blocks of
  1x1 conv, 3x3 mask-B conv, 1x1 conv, then a 1x1 head. Has the well-known blind spot.
- "gated" (Gated PixelCNN): a vertical stack that sees the rows above and a horizontal stack that sees
  the pixels to the left in the current row, joined by gated tanh * sigmoid units: no blind spot.

Dilations (``dilations``, pixelcnn.dilations): block i's 3x3 masked conv may space its taps d_i cells apart
(WaveNet-style dilated convolutions), so the receptive field grows to 3 + sum(d_i) cells with the same weights:
[1, 2, 4, 8] reaches 18 cells (a grain of the demo at 2 px per cell) where the paper's 4 blocks reach 7, without the
parameters (and the overfitting on a few dozen grids) of 15 blocks. None: 1 each, the paper's network.

Every masked conv is stored as a kernel over the taps it may see (``up`` rows above, ``left``/``right``
columns beside) and always runs with VALID padding. On the whole grid (``model(grids)``) each conv's input
is zero padded first, so the grid keeps its size: the ordinary network. A pixel's logits depend only on a bounded
window (``receptive_rows`` rows above, ``receptive_cols`` columns each side), so ``window_logits`` runs the same
layers on that window only (``sample.sample_fast``): the VALID convs shrink it layer by layer to the target pixel,
and cells outside the grid are zeroed before each conv, exactly what zero padding does. The logits equal those of
the whole network up to float rounding.

Conditioning (conditional PixelCNN, van den Oord et al. 2016): with ``cond_dim > 0`` every grid has a global vector
c of ``cond_dim`` floats (e.g. the class fractions of its patch's mask). A learned linear map without bias, one per
layer, projects c and adds it, the same at every position, to that layer's pre-activation: the first masked conv,
the plain blocks' three convs, the gated layers' vertical and horizontal pre-activations (before the gate:
tanh(W_f*x + V_f c) * sigmoid(W_g*x + V_g c)), the head and the logits. Every call then takes ``cond`` (B, cond_dim),
row i conditioning grid i. The term is spatially constant, so adding it inside a window is what the whole
network does: the window stays exact. ``cond_dim = 0`` creates no conditioning variables (the unconditioned
PixelCNN); the compiled functions then take a (B, 0) ``cond`` and ignore it.

Position (``grid_shape`` given): the logits of the cells of the last row get a learned bias of their own,
``LAST_ROW_SCALE * last_row_bias`` (K values, zero at first; the scale gives Adam a larger step on it). The masked
convs only ever see the rows above and zero padding around the grid, so without it the model cannot tell the last
row from any other, yet a VQ-VAE encodes the patch border differently. The top row and the side columns need
nothing: zero padding there is inside the receptive field. The position is known before any cell is sampled, so the
term keeps the model autoregressive, and the window stays exact (it passes each cell's (r, c)). ``grid_shape``
None: no position variables.

Dropout (``Dropout``, pixelcnn.dropout; training only): each block's new features (the plain block's residual branch,
the gated layer's gated horizontal features before their 1x1 output conv) are dropped at the given rate with
stateless seeds, so training stays reproducible. A regulariser for a prior trained on a few hundred grids, which
otherwise overfits within tens of epochs; the network's weights and its inference (sampling, validation) do not
change.
"""

import itertools

import numpy as np
import sonnet as snt
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError

KINDS = ("plain", "gated")
FIRST_REACH = 3  # the first layer is a 7x7 kernel: 3 rows above, 3 columns each side
BLOCK_REACH = 1  # every later layer is 3x3
LAST_ROW_SCALE = 10.0  # the last row's logit bias is this times its variable (a larger step for Adam)
COND_SEED = 1 << 20  # the conditioning projections draw from their own seed stream: the other weights stay the same


class MaskedConv(snt.Module):
    """A conv that sees ``up`` rows above and ``left``/``right`` columns beside; in its own row it sees
    ``row`` = "A" (left of the centre), "B" (left + centre), "all" or "none". ``dilation`` d: its taps lie d cells
    apart (it reaches d times as far with the same weights); ``self.up``, ``self.left``, ``self.right`` are the reach
    in cells. Always VALID: the output of an (h, w) input is (h - up, w - left - right), the output cell (i, j)
    sitting at input (i + up, j + left).
    ``cond_dim > 0``: a (cond_dim, out_channels) projection without bias, ``cond_w``, adds cond @ cond_w (the same at
    every position) to the output; ``cond_dim = 0`` creates no such variable and ignores ``cond``."""

    def __init__(
        self,
        in_channels,
        out_channels,
        up=0,
        left=0,
        right=0,
        row="B",
        seed=(0, 0),
        cond_dim=0,
        cond_seed=(0, COND_SEED),
        dilation=1,
        name=None,
    ):
        super().__init__(name=name)
        self.dilation = int(dilation)
        self.up, self.left, self.right = up * self.dilation, left * self.dilation, right * self.dilation  # in cells
        mask = np.ones((up + 1, left + right + 1, 1, 1), np.float32)
        mask[up, {"A": left, "B": left + 1, "all": left + right + 1, "none": 0}[row] :] = 0.0
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
        if self.dilation == 1:
            y = tf.nn.conv2d(x, w, strides=1, padding="VALID")
        else:  # conv2d's dilations have no gradient on a CPU; the atrous conv (space to batch) has, same numbers
            y = tf.nn.atrous_conv2d(x, w, self.dilation, padding="VALID")
        y = tf.nn.bias_add(y, self.b)
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
        return x[:, up:, left : x.shape[2] - right]

    def shrink(self, up, left, right):
        if self.inside is not None:
            self.inside = self.crop(self.inside, up, left, right)


class Dropout:
    """Training-time dropout at ``rate`` with the stateless ``seed`` (int32 (2,), e.g. (pixelcnn.seed, update)); each
    call site (``layer``, an int) folds its own number into the seed, so the masks differ between layers and
    updates and are the same on a rerun."""

    def __init__(self, rate, seed):
        self.rate, self.seed = float(rate), seed

    def __call__(self, x, layer):
        if self.rate <= 0:
            return x
        seed = tf.random.experimental.stateless_fold_in(self.seed, layer)
        return tf.nn.experimental.stateless_dropout(x, self.rate, seed)


class PlainBlock(snt.Module):
    """Residual block: 1x1 conv, 3x3 mask-B conv (half the filters; its taps ``dilation`` cells apart), 1x1 conv,
    ReLU, + input. Each conv adds the conditioning term to its pre-activation."""

    def __init__(self, filters, seeds, cond_dim=0, cond_seeds=None, dilation=1, name=None):
        super().__init__(name=name)
        r, f, c = BLOCK_REACH, filters, cond_dim
        cond_seeds = itertools.repeat((0, COND_SEED)) if cond_seeds is None else cond_seeds
        self.reduce = MaskedConv(f, f // 2, seed=next(seeds), cond_dim=c, cond_seed=next(cond_seeds), name="reduce_1x1")
        self.conv = MaskedConv(
            f // 2,
            f // 2,
            r,
            r,
            r,
            "B",
            seed=next(seeds),
            cond_dim=c,
            cond_seed=next(cond_seeds),
            dilation=dilation,
            name="mask_b_3x3",
        )
        self.expand = MaskedConv(f // 2, f, seed=next(seeds), cond_dim=c, cond_seed=next(cond_seeds), name="expand_1x1")

    def __call__(self, h, frame, cond=None, dropout=None, layer=0):
        r = self.conv.up  # the 3x3 conv's reach in cells
        t = tf.nn.relu(self.reduce(h, cond))
        t = tf.nn.relu(frame.conv(self.conv, t, cond))
        t = tf.nn.relu(self.expand(t, cond))
        if dropout is not None:
            t = dropout(t, layer)
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

    def __init__(self, in_channels, filters, reach, first, seeds, cond_dim=0, cond_seeds=None, dilation=1, name=None):
        super().__init__(name=name)
        self.reach, self.first = reach * dilation, first  # reach: in cells
        cond_seeds = itertools.repeat((0, COND_SEED)) if cond_seeds is None else cond_seeds
        self.v_conv = MaskedConv(
            in_channels,
            2 * filters,
            reach,
            reach,
            reach,
            "none" if first else "all",
            seed=next(seeds),
            cond_dim=cond_dim,
            cond_seed=next(cond_seeds),
            dilation=dilation,
            name="v_conv",
        )
        self.h_conv = MaskedConv(
            in_channels,
            2 * filters,
            0,
            reach,
            0,
            "A" if first else "B",
            seed=next(seeds),
            cond_dim=cond_dim,
            cond_seed=next(cond_seeds),
            dilation=dilation,
            name="h_conv",
        )
        self.v_to_h = MaskedConv(2 * filters, 2 * filters, seed=next(seeds), name="v_to_h_1x1")
        self.h_out = MaskedConv(filters, filters, seed=next(seeds), name="h_out_1x1")

    def __call__(self, v, h, frame, cond=None, dropout=None, layer=0):
        r = self.reach
        v_pre = frame.conv(self.v_conv, v, cond)
        h_pre = frame.crop(frame.conv(self.h_conv, h, cond), r, 0, r) + self.v_to_h(v_pre)
        frame.shrink(r, r, r)
        gated = _gate(h_pre)
        h_new = self.h_out(gated if dropout is None or self.first else dropout(gated, layer))
        if not self.first:
            h_new += frame.crop(h, r, r, r)  # residual connection
        return _gate(v_pre), h_new


class PixelCNN(snt.Module):
    """Autoregressive prior over (B, H, W) integer code grids (values 0..K-1): ``model(grids)`` gives
    (B, H, W, K) logits, cell (r, c) conditioned on the cells before it in raster order. With ``cond_dim > 0``
    also on a global vector per grid: ``model(grids, cond)``, cond (B, cond_dim) float32."""

    label = "PixelCNN"  # in error messages

    def __init__(
        self, num_embeddings, filters, num_blocks, kind, seed, cond_dim=0, grid_shape=None, *, dilations, name=None
    ):
        super().__init__(name=name)
        if kind not in KINDS:
            raise DualgenError(f"pixelcnn.kind {kind!r} is unknown: use one of {', '.join(KINDS)}")
        if num_embeddings < 2 or filters < 2 or num_blocks < 0:
            raise DualgenError(
                f"PixelCNN needs num_embeddings >= 2, filters >= 2 and num_blocks >= 0 "
                f"(got {num_embeddings}, {filters}, {num_blocks}): fix the pixelcnn settings"
            )
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, (int, np.integer)) or cond_dim < 0:
            raise DualgenError(f"PixelCNN cond_dim must be an integer >= 0 (0: unconditioned), got {cond_dim!r}")
        self.num_embeddings, self.filters, self.num_blocks, self.kind = num_embeddings, filters, num_blocks, kind
        self.cond_dim = int(cond_dim)
        self.dilations = check_dilations(dilations, num_blocks)
        seeds = ((seed, i) for i in itertools.count())  # one stateless seed per layer
        cseeds = ((seed, COND_SEED + i) for i in itertools.count())  # and per conditioning projection
        k, f, r0, c = num_embeddings, filters, FIRST_REACH, self.cond_dim
        if kind == "plain":
            self.first = MaskedConv(
                k, f, r0, r0, r0, "A", seed=next(seeds), cond_dim=c, cond_seed=next(cseeds), name="mask_a_7x7"
            )
            self.blocks = [
                PlainBlock(f, seeds, c, cseeds, dilation=d, name=f"block_{i}") for i, d in enumerate(self.dilations)
            ]
        else:
            self.first = GatedLayer(k, f, r0, True, seeds, c, cseeds, name="gated_0")
            self.blocks = [
                GatedLayer(f, f, BLOCK_REACH, False, seeds, c, cseeds, dilation=d, name=f"gated_{i + 1}")
                for i, d in enumerate(self.dilations)
            ]
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
        return FIRST_REACH + BLOCK_REACH * sum(self.dilations)

    @property
    def receptive_cols(self):
        """Columns left and right of a cell that its logits can depend on."""
        return FIRST_REACH + BLOCK_REACH * sum(self.dilations)

    def __call__(self, grids, cond=None, dropout=None):
        """(B, H, W, K) logits of the whole grids; ``dropout``: a ``Dropout`` while training, None otherwise."""
        return self.forward(grids, Frame(), cond, dropout=dropout)

    def _cond_tensor(self, cond, batch):
        return cond_tensor(self, cond, batch)

    def _position(self, frame, x, pos):
        """The position term added to the logits: (1, H, 1, K) on the whole grid, (1, 1, 1, K) for the window of
        the cell ``pos`` = (r, c); 0 without position."""
        if self.grid_shape is None:
            return 0.0
        if frame.inside is None:
            shape = tuple(x.shape[1:3])
            if None not in shape and shape != self.grid_shape:
                raise DualgenError(
                    f"PixelCNN with position: grids of {tuple(x.shape[1:3])} but the model was built for "
                    f"{self.grid_shape}: sample grids of the spec's grid_shape"
                )
            last = tf.one_hot(self.grid_shape[0] - 1, self.grid_shape[0])[None, :, None, None]
            return last * (LAST_ROW_SCALE * self.last_row_bias)
        if pos is None:
            raise DualgenError("PixelCNN with position: a window needs the position (r, c) of its cell")
        last = tf.cast(tf.equal(pos[0], self.grid_shape[0] - 1), tf.float32)
        return (last * (LAST_ROW_SCALE * self.last_row_bias))[None, None, None, :]

    def forward(self, codes, frame, cond=None, pos=None, dropout=None):
        """Logits over the frame's output region; codes of -1 (outside the grid) become zero vectors. ``pos``: the
        (r, c) of a window's cell (a model with position only); ``dropout``: a ``Dropout`` (training only)."""
        x = tf.one_hot(tf.cast(codes, tf.int32), self.num_embeddings, dtype=tf.float32)
        cond = self._cond_tensor(cond, x.shape[0])
        r0 = FIRST_REACH
        if self.kind == "plain":
            h = tf.nn.relu(frame.conv(self.first, x, cond))
            frame.shrink(r0, r0, r0)
            for i, block in enumerate(self.blocks):
                h = block(h, frame, cond, dropout, i)
        else:
            v, h = self.first(x, x, frame, cond)
            for i, block in enumerate(self.blocks):
                v, h = block(v, h, frame, cond, dropout, i)
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


def check_dilations(dilations, num_blocks):
    """The blocks' dilations as a tuple of ints >= 1, one per block (None: 1 each, the paper's PixelCNN)."""
    if dilations is None:
        return (1,) * num_blocks
    if (
        not isinstance(dilations, (list, tuple))
        or len(dilations) != num_blocks
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dilations)
    ):
        raise DualgenError(
            f"pixelcnn.dilations {dilations!r}: give one integer >= 1 per block ({num_blocks} blocks, "
            "pixelcnn.num_blocks), e.g. [1, 2, 4, 8], or null for 1 each"
        )
    return tuple(int(d) for d in dilations)


def _cond_message(model, what, n, got):
    rows, cond_dim = "B" if n is None else n, model.cond_dim
    if cond_dim == 0:
        return (
            f"{model.label} {what}: the model is unconditioned (cond_dim 0): pass no cond (None or a ({rows}, 0) "
            f"array), got {got}"
        )
    return (
        f"{model.label} {what}: expected a ({rows}, {cond_dim}) float array (one row of {cond_dim} conditioning "
        f"values per grid), got {got}"
    )


def cond_tensor(model, cond, batch):
    """``cond`` as float32 (B, cond_dim) for a call of ``model`` (a PixelCNN or a MaskGIT: ``cond_dim``,
    ``label``), checked where its shape is known; None when unconditioned."""
    if cond is None:
        if model.cond_dim:
            raise DualgenError(_cond_message(model, "cond", batch, "None"))
        return None
    cond = tf.cast(cond, tf.float32)
    shape = cond.shape
    if shape.rank != 2 or any(
        n is not None and want is not None and n != want for n, want in zip(shape, (batch, model.cond_dim))
    ):
        raise DualgenError(_cond_message(model, "cond", batch, tuple(shape)))
    return cond if model.cond_dim else None


def check_cond(model, cond, n, what):
    """``cond`` for ``n`` grids as a float32 (n, cond_dim) array ((n, 0) for an unconditioned model given None);
    missing (conditional model), of the wrong shape or not finite: one DualgenError naming ``what`` (the model: a
    PixelCNN or a MaskGIT)."""
    if cond is None:
        if model.cond_dim:
            raise DualgenError(_cond_message(model, what, n, "None"))
        return np.zeros((n, 0), np.float32)
    array = np.asarray(cond)
    if array.shape != (n, model.cond_dim) or array.dtype.kind not in "biuf":
        raise DualgenError(_cond_message(model, what, n, f"{array.dtype} {array.shape}"))
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DualgenError(f"{model.label} {what}: holds NaN/Inf values: check the conditioning vectors")
    return array
