"""Sampling the PixelCNN prior: the exact fast sampler (``sample_fast``: the network on each cell's window only,
``PixelCNN.window_logits``), the whole-network reference (``sample_naive``) and the calibration of per-code logit
offsets (``calibrate``). A MaskGIT prior (``maskgit``, kind "maskgit") goes the same way: ``sample_fast`` and
``calibrate`` hand it to ``maskgit.sample_maskgit`` (its spec's decoding steps)."""

import numpy as np
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError
from dualgen.generate.pixelcnn.model import check_cond


class Canvas:
    """Grids padded with outside cells (code -1): ``receptive_rows`` above, ``receptive_cols`` left and right,
    so every cell's window has the same shape (one compiled function for all cells)."""

    def __init__(self, model, grids):
        grids = np.asarray(grids, np.int32)
        self.rows, self.cols = model.receptive_rows, model.receptive_cols
        n, height, width = grids.shape
        self.codes = np.full((n, height + self.rows, width + 2 * self.cols), -1, np.int32)
        self.codes[:, self.rows :, self.cols : self.cols + width] = grids
        self.inside = (self.codes[:1] >= 0).astype(np.float32)[..., None]

    def window(self, r, c):
        rows, cols = slice(r, r + self.rows + 1), slice(c, c + 2 * self.cols + 1)
        return self.codes[:, rows, cols], self.inside[:, rows, cols]

    def set(self, r, c, values):
        self.codes[:, self.rows + r, self.cols + c] = values

    def grids(self):
        return self.codes[:, self.rows :, self.cols : self.codes.shape[2] - self.cols].copy()


def _pos(r, c):
    return tf.constant([r, c], tf.int32)


def logits_at(model, grids, r, c, fast, cond=None):
    """(B, K) logits of cell (r, c): ``fast`` runs the network on its window only, else on the whole grid."""
    grids = np.asarray(grids, np.int32)
    cond = check_cond(model, cond, len(grids), "cond")
    if fast:
        return model.window_logits(*Canvas(model, grids).window(r, c), cond, _pos(r, c)).numpy()
    return model.grid_logits(tf.constant(grids), tf.constant(cond)).numpy()[:, r, c]


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


def check_bias(model, bias):
    """``bias`` as a float64 (K,) array of finite logit offsets (None stays None); otherwise one DualgenError."""
    if bias is not None:
        bias = np.asarray(bias, np.float64)
        if bias.shape != (model.num_embeddings,) or not np.isfinite(bias).all():
            raise DualgenError(
                f"sample: a calibration bias of shape {bias.shape} for a prior of "
                f"{model.num_embeddings} codes (finite values needed): rerun sample"
            )
    return bias


def _is_maskgit(model):
    return getattr(model, "kind", None) == "maskgit"


def _sample(fill, model, n, height, width, seed, temperature, batch_size, rows, cond, bias=None, stream=()):
    if temperature <= 0:
        raise DualgenError(f"sample.temperature {temperature} must be > 0: use e.g. 1.0")
    if n < 0 or height < 1 or width < 1 or batch_size < 1:
        raise DualgenError(
            f"sample: cannot draw {n} grids of {height}x{width} in batches of {batch_size}: use positive sizes"
        )
    cond = check_cond(model, cond, n, "sample cond")
    bias = check_bias(model, bias)
    rows = height if rows is None else min(rows, height)
    out = np.zeros((n, height, width), np.int32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        # one generator per grid: the grids do not depend on batch_size
        u = np.stack([np.random.default_rng([*stream, seed, i]).random((height, width)) for i in range(start, stop)])
        out[start:stop] = fill(model, u, temperature, rows, cond[start:stop], bias)
    return out


def sample_naive(model, n, height, width, *, seed, temperature, batch_size, rows=None, cond=None, bias=None):
    """n grids (n, H, W) int32, pixel by pixel in raster order, running the whole network on the whole grid
    for every pixel: a deliberate reference implementation, what ``sample_fast`` must equal (tests,
    bench/sampling.py). ``rows``: fill only the first rows (the rest stay 0), for timing. ``cond``:
    (n, cond_dim) float32, row i conditions grid i (required for a conditional model). ``bias``: (K,) logit offsets
    added after the temperature (``calibrate``). A PixelCNN's only: a MaskGIT prior has no raster order."""
    if _is_maskgit(model):
        raise DualgenError(
            "sample_naive: a MaskGIT prior (kind maskgit) has no raster-order reference: sample it with sample_fast "
            "(or maskgit.sample_maskgit)"
        )
    return _sample(_fill_naive, model, n, height, width, seed, temperature, batch_size, rows, cond, bias)


def sample_fast(model, n, height, width, *, seed, temperature, batch_size, rows=None, cond=None, bias=None):
    """Same grids as ``sample_naive`` (same seed, cond and bias), running the network only on each pixel's window.
    A MaskGIT prior: ``maskgit.sample_maskgit`` with its spec's steps (same seed, temperature, batch_size, cond, bias;
    ``rows`` must be None, the prior has no raster order)."""
    if _is_maskgit(model):
        if rows is not None:
            raise DualgenError(
                f"sample: rows={rows} fills the first rows of a PixelCNN's grids; a MaskGIT prior has none"
            )
        return _sample_maskgit(model, n, height, width, seed, temperature, batch_size, cond, bias)
    return _sample(_fill_fast, model, n, height, width, seed, temperature, batch_size, rows, cond, bias)


def _sample_maskgit(model, n, height, width, seed, temperature, batch_size, cond, bias, stream=()):
    from dualgen.generate.pixelcnn import maskgit  # it imports this module (draw, check_bias)

    return maskgit.sample_maskgit(
        model,
        n,
        height,
        width,
        seed=seed,
        temperature=temperature,
        batch_size=batch_size,
        cond=cond,
        bias=bias,
        stream=stream,
    )


def _calibration_draws(model, n, height, width, seed, temperature, batch_size, bias, stream):
    """The grids of one calibration round (unconditioned), by the prior's own sampler."""
    if _is_maskgit(model):
        return _sample_maskgit(model, n, height, width, seed, temperature, batch_size, None, bias, stream)
    return _sample(_fill_fast, model, n, height, width, seed, temperature, batch_size, None, None, bias, stream=stream)


CALIBRATION_GRIDS = 64  # grids sampled per calibration round
CALIBRATION_ROUNDS = 6
CALIBRATION_STEP = 0.3  # share of the log-ratio applied per round: a code's share reacts several-fold to its offset
CALIBRATION_FLOOR = 1e-4  # frequencies below this count as this (a code the training grids never use)
CLASS_ROUNDS = 8  # rounds on decoded class fractions, after the code shares (sample.calibrate: classes)
CLASS_STEP = 0.2  # smaller: a class's share moves with several codes' offsets at once
CALIBRATIONS = ("classes", "codes", "none")


def calibration_mode(value):
    """sample.calibrate as one of CALIBRATIONS: true is ``codes``, false ``none``."""
    if value is True:
        return "codes"
    if value is False:
        return "none"
    if value not in CALIBRATIONS:
        raise DualgenError(f"sample.calibrate is {value!r}: use one of {', '.join(CALIBRATIONS)}")
    return value


def code_frequencies(grids, num_embeddings):
    """(K,) share of the cells holding each code."""
    grids = np.asarray(grids)
    return np.bincount(grids.ravel(), minlength=int(num_embeddings))[: int(num_embeddings)] / max(1, grids.size)


def share_distance(a, b):
    """Total variation distance between two (K,) code-share vectors: half the summed absolute difference."""
    return 0.5 * float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


def calibrate(
    model,
    target,
    height,
    width,
    *,
    seed,
    temperature,
    batch_size,
    grids=CALIBRATION_GRIDS,
    rounds=CALIBRATION_ROUNDS,
    step=CALIBRATION_STEP,
    log=print,
    measure=None,
    features=None,
    start=None,
    stream=1,
    what="code shares",
):
    """Per-code logit offsets b (K,) so that the sampler's code frequencies come near ``target`` (K,), the code
    frequencies of the prior's training grids. Sampling from softmax(logits / T + b) is the exponential tilt of the
    prior, p(x) exp(sum_k b_k n_k(x)) / Z: of all distributions with the tilted code frequencies the one closest to
    the prior (least Kullback-Leibler divergence), so what the prior learned about arrangement is kept and only its
    share of each code is corrected (a prior trained on a few dozen grids may draw a code at up to twice or half its
    share, and the class fractions of its pairs follow).

    Fitted by ``rounds`` rounds of ``grids`` draws (random streams of their own, not the pool's): round r draws with
    the offsets so far and adds ``step`` x log(target / drawn frequency). The step is damped because the prior feeds
    its own draws back: a code drawn more often makes its neighbours likelier too, so its share moves several times
    as much as its offset. Returns (b, history): b the offsets of the round whose
    draws were nearest the target (total variation distance; round 0 has the ``start`` offsets, zeros by default,
    so the result is never farther than where it started), history a list of (offsets, drawn frequencies, distance)
    per round.

    Other statistics of the draws: ``measure(grids)`` gives the (D,) frequencies ``target`` holds (e.g. the class
    fractions of the decoded pairs) and ``features`` (K, D) how each code counts towards them (e.g. the share of
    each class in the cells of each code): the step adds ``features @ log(target / drawn)``, the tilt by the
    expected class counts. ``stream`` keeps each stage's draws apart; ``what`` names the statistic in the log. A
    MaskGIT prior draws with ``maskgit.sample_maskgit`` (the bias enters its code draws and their confidences)."""
    k = int(model.num_embeddings)
    target = np.asarray(target, np.float64)
    measure = measure or (lambda g: code_frequencies(g, k))
    features = np.eye(k) if features is None else np.asarray(features, np.float64)
    if features.shape != (k, target.shape[0]) or target.ndim != 1:
        raise DualgenError(
            f"sample: calibration target of shape {target.shape} for a prior of {k} codes (features {features.shape})"
        )
    floor = np.maximum(target, CALIBRATION_FLOOR)
    bias = np.zeros(k) if start is None else np.asarray(start, np.float64).copy()
    history = []
    for r in range(int(rounds)):
        drawn = np.asarray(
            measure(
                _calibration_draws(
                    model, int(grids), height, width, seed, temperature, batch_size, bias, (int(stream), r)
                )
            ),
            np.float64,
        )
        distance = share_distance(drawn, target)
        history.append((bias, drawn, distance))
        log(f"calibration round {r + 1}/{rounds}: {what} {distance:.3f} (total variation) from the training data's")
        bias = bias + float(step) * features @ np.log(floor / np.maximum(drawn, CALIBRATION_FLOOR))
    best = min(range(len(history)), key=lambda r: history[r][2])
    return history[best][0], history
