"""How close synthetic image+mask pairs are to real ones: per-class statistics and a real-vs-real floor.

A synthetic set is "real-like" when its statistics differ from the real ones no more than two random halves
of the real set differ from each other. Each distance below is therefore divided by that real-vs-real
*floor*, giving a ratio near 1 for a sample as good as a second real sample and >> 1 for a visibly different
one. Plain numpy FFTs, scipy and scikit-image only (no porespy, which pulls pyvista/VTK, numba and dask; no
TensorFlow: the learned features come in as arrays), so this runs anywhere the reports are built.

Inputs: masks are integer class-id arrays, one (H, W) patch or a list / (N, H, W) stack, ids 0..K-1; images
are uint8 (H, W, C) (C = 1 or 3; (H, W) is taken as C = 1), a list or an (N, H, W, C) stack of the same size.

Statistics of class k over a set of patches:

- ``phase_fractions``: area fraction of each class in each patch.
- ``two_point_correlation`` S2_k(r): the probability that two pixels a distance r apart both belong to k.
  Non-periodic: the zero-padded FFT autocorrelation of the indicator counts the pairs at each displacement,
  divided by the number of pixel pairs at that displacement ((H - |dy|)(W - |dx|)); the displacement vectors
  with round(|d|) = r are averaged (unweighted), r = 0..floor(min(H, W) / 2); then the mean over patches.
  S2(0) is the phase fraction; in an uncorrelated medium S2(r > 0) -> fraction^2.
- ``chord_lengths``: lengths of the runs of k along rows (axis=1 / "rows") or columns (axis=0 / "cols").
  Chords touching the patch border are cut by it (their length is unknown), so they are dropped, as is
  standard; if that leaves none (the class spans whole rows) the border chords are returned instead.
- ``object_sizes``: pixel counts of the connected components of k, 8-connectivity (skimage.measure.label,
  connectivity=2: pixels touching diagonally form one object, so the staircase edges of generated masks do
  not split objects). Objects cut by the patch border are kept (at their visible size).
- ``boundary_density``: pixel edges between k and another class inside the patches (the patch border does not
  count), per pixel of patch area: a s x s square in an H x W patch gives 4 s / (H W).
- ``class_intensities``: the pooled pixel values of one image channel inside class k (the image given the mask).
- ``nearest_distances`` / ``memorisation``: the distance of each pair to its nearest training pair, with
  d^2 = (MSE of the images scaled to [0, 1] + share of pixels whose class differs) / 2; the second term is the
  squared one-hot mask difference summed over classes, halved, per pixel. Both terms lie in [0, 1], so d does.
  Computed with matrix products (|x|^2 + |y|^2 - 2 x.y) in chunks. Memorisation compares the synthetic
  distances with the 1st percentile of the real validation pairs' distances to the same training pairs (and to
  their mirror images: a flipped copy is a copy).

Distances between two sets (``compare``): |difference| of the mean phase fraction; RMS difference of the S2
curves; Wasserstein-1 (scipy.stats.wasserstein_distance) between the chord-length, object-size and intensity
distributions (computed from per-patch integer histograms, which gives the same value as the pooled values and
keeps ``compare`` fast); |difference| of the boundary density. A distance is NaN where a set has nothing to
measure (e.g. no chord of a class that is absent).

Floor and ratio: the real patches are split at random into disjoint halves A and B (seeded); floor =
distance(A, B); the synthetic sample, subsampled (seeded, without replacement) to the size of B, gives
distance(A, S); both are averaged over ``n_splits`` splits (NaN splits skipped); ratio = distance / floor.
With fewer synthetic patches than a half, B is cut to the synthetic count so both sides have the same size:
a ratio is never a sample-size artefact. A floor of 0 (the halves agree exactly, e.g. a class absent from all
real patches) gives ratio inf where the synthetic distance is > 0 and NaN where it is 0 too.
Reading a ratio: for a second sample of the same source it is |noise| / mean |noise|, so about 1 but, for one
scalar, up to ~3 now and then; a source that differs gives >> 1.

Image-domain statistics (``dualgen.generate.image_stats``, family "image", class "all" but for the edges inside
class 0): the radially averaged power spectrum (all rings, and the rings above 1/8 cycles/pixel), the |grad I|
distribution, the density of strong edges inside class 0 (grain boundaries no mask holds) and, given an encoder,
the Fréchet distance of learned features (the study's real-only U-Net); they join the table with the same splits,
floor and ratio (``compare``'s image and features arguments). The per-class statistics above cannot see a blurred
micrograph; these can.

The fidelity step (scripts/fidelity.py) scores each generator variant's pool with ``score_variants``
(``score_variant`` each), a second real sample with ``reference_sample`` and the HQ vs LQ masks with
``label_agreement``; ``step_meta`` picks the ``closest_variant`` and gathers meta.json.
"""

import numbers

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance
from skimage.measure import label

from dualgen.core.errors import DualgenError
from dualgen.data import datasets

STATISTICS = ("phase_fraction", "s2", "chord_rows", "chord_cols", "object_size", "boundary_density")
TARGET_RATIO = 2.0  # the most a target family's ratio to the real-vs-real floor may be
TARGET_FAMILIES = ("phase_fraction", "s2", "chord", "image")  # the families (``family``) the generator is held to:
#   ratio <= 2
_CHUNK = 256  # query pairs per distance block in nearest_distances (bounds memory at ~_CHUNK x N_ref)


# ---------------------------------------------------------------- inputs


def _as_masks(masks):
    """(N, H, W) int64 stack from one (H, W) mask, a list of them or a stack."""
    m = np.asarray(np.stack(masks) if isinstance(masks, (list, tuple)) else masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] == 0:
        raise DualgenError(
            f"fidelity: masks of shape {m.shape}: expected (H, W) or a non-empty (N, H, W) stack of class ids"
        )
    if not np.issubdtype(m.dtype, np.integer):
        raise DualgenError(f"fidelity: masks have dtype {m.dtype}: expected integer class ids")
    return m.astype(np.int64, copy=False)


def _check_ids(m, n_classes):
    if m.min() < 0 or m.max() >= n_classes:
        raise DualgenError(
            f"fidelity: masks have class ids {int(m.min())}..{int(m.max())}, outside "
            f"0..{n_classes - 1}: masks must hold class indices (check the class list)"
        )


def _as_pairs(images, masks):
    """(N, H, W, C) images and (N, H, W) int64 masks; images without a channel axis get C = 1."""
    single = not isinstance(masks, (list, tuple)) and np.ndim(masks) == 2  # one patch, not a stack
    m = _as_masks(masks)
    im = np.asarray(np.stack(images) if isinstance(images, (list, tuple)) else images)
    if im.ndim == 2 or (im.ndim == 3 and single):
        im = im[None]  # one image, (H, W) or (H, W, C)
    if im.ndim == 3:
        im = im[..., None]  # a stack of single-channel images without a channel axis
    if im.ndim != 4 or im.shape[:3] != m.shape:
        raise DualgenError(
            f"fidelity: images {im.shape} do not match masks {m.shape}: expected (N, H, W, C) "
            "images with (N, H, W) masks of the same patches"
        )
    return im, m


def _indicator(masks, k):
    return _as_masks(masks) == int(k)


# ---------------------------------------------------------------- statistics


def phase_fractions(masks, n_classes):
    """(N, K) area fraction of each class in each patch."""
    m = _as_masks(masks)
    k = int(n_classes)
    _check_ids(m, k)
    n = m.shape[0]
    counts = np.bincount((m + k * np.arange(n)[:, None, None]).ravel(), minlength=n * k).reshape(n, k)
    return counts / float(m.shape[1] * m.shape[2])


def _radial_bins(h, w, r_max):
    """Displacements (dy, dx) with round(|d|) <= r_max: their bin, indices into the padded FFT grid, overlaps."""
    if r_max is None:
        r_max = min(h, w) // 2
    r_max = int(r_max)
    if not 0 <= r_max <= min(h, w) - 1:
        raise DualgenError(f"fidelity: r_max {r_max} outside 0..{min(h, w) - 1} for {h}x{w} patches")
    d = np.arange(-r_max, r_max + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    r = np.rint(np.hypot(dy, dx)).astype(np.int64)  # |d| is never exactly n + 0.5 for integer vectors
    keep = r <= r_max
    dy, dx, r = dy[keep], dx[keep], r[keep]
    overlap = ((h - np.abs(dy)) * (w - np.abs(dx))).astype(np.float64)
    return r, dy % (2 * h), dx % (2 * w), overlap, r_max


def _s2_per_patch(ind, r_max=None):
    """(N, R + 1) S2 curve of each patch of the boolean (N, H, W) indicator stack."""
    n, h, w = ind.shape
    r, iy, ix, overlap, r_max = _radial_bins(h, w, r_max)
    spec = np.fft.rfft2(ind.astype(np.float64), s=(2 * h, 2 * w))
    pairs = np.rint(np.fft.irfft2(spec.real**2 + spec.imag**2, s=(2 * h, 2 * w)))  # exact pair counts
    prob = pairs[:, iy, ix] / overlap  # (N, n_displacements)
    weights = np.zeros((len(r), r_max + 1))
    weights[np.arange(len(r)), r] = 1.0
    weights /= weights.sum(0)
    return prob @ weights


def two_point_correlation(mask_or_masks, k, r_max=None):
    """S2_k(r), r = 0..r_max (default floor(min(H, W) / 2)), averaged over the patches of a stack."""
    return _s2_per_patch(_indicator(mask_or_masks, k), r_max).mean(0)


def _axis_name(axis):
    names = {1: "rows", "rows": "rows", "row": "rows", 0: "cols", "cols": "cols", "col": "cols", "columns": "cols"}
    if isinstance(axis, (bool, np.bool_)) or axis not in names:
        raise DualgenError(f"fidelity: chord axis {axis!r}: use 1 or 'rows' (along rows), 0 or 'cols' (along columns)")
    return names[axis]


def _chords(ind, axis):
    """Every run of True along ``axis`` of the (N, H, W) stack: lengths, patch index, touches-the-border flag."""
    n, h, w = ind.shape
    if _axis_name(axis) == "rows":
        lines, per = ind.reshape(n * h, w), h
    else:
        lines, per = ind.transpose(0, 2, 1).reshape(n * w, h), w
    padded = np.zeros((lines.shape[0], lines.shape[1] + 2), np.int8)
    padded[:, 1:-1] = lines
    step = np.diff(padded, axis=1)
    line, start = np.nonzero(step == 1)  # row-major order: starts and ends pair up
    _, end = np.nonzero(step == -1)
    border = (start == 0) | (end == lines.shape[1])
    return end - start, line // per, border


def _drop_border(lengths, border):
    inner = lengths[~border]
    return inner if len(inner) or not len(lengths) else lengths


def chord_lengths(masks, k, axis):
    """Chord lengths (runs of class k) pooled over the patches, along rows (axis=1 / 'rows') or columns
    (axis=0 / 'cols'). Chords touching the patch border are dropped, unless all chords do (then all are kept)."""
    lengths, _, border = _chords(_indicator(masks, k), axis)
    return _drop_border(lengths, border).astype(np.int64)


def _objects(ind):
    """Sizes and patch index of the 8-connected components of the (N, H, W) stack (labelled in one call)."""
    n, h, w = ind.shape
    tall = np.zeros((n, h + 1, w), bool)  # one empty row after each patch keeps the patches apart
    tall[:, :h] = ind
    labels = label(tall.reshape(n * (h + 1), w), connectivity=2)
    flat = labels.ravel()
    sizes = np.bincount(flat)[1:]
    patch = np.repeat(np.arange(n), (h + 1) * w)
    first = np.bincount(flat, weights=patch)[1:]  # all pixels of an object lie in one patch
    return sizes.astype(np.int64), np.rint(first / np.maximum(sizes, 1)).astype(np.int64)


def object_sizes(masks, k):
    """Pixel counts of the 8-connected objects of class k, pooled over the patches. A deliberate reference
    implementation: ``compare`` computes the same per patch (``_SetStats``); the tests hold both to known answers."""
    return _objects(_indicator(masks, k))[0]


def _boundary_edges(masks, k):
    """(N,) number of pixel edges between class k and another class in each patch."""
    m = _as_masks(masks)
    ind = m == int(k)
    across = (m[:, :, 1:] != m[:, :, :-1]) & (ind[:, :, 1:] | ind[:, :, :-1])
    down = (m[:, 1:, :] != m[:, :-1, :]) & (ind[:, 1:, :] | ind[:, :-1, :])
    return across.sum((1, 2)) + down.sum((1, 2))


def boundary_density(masks, k):
    """Pixel edges between class k and another class per pixel of patch area (patch borders not counted). A
    deliberate reference implementation: ``compare`` computes the same per patch (``_SetStats``)."""
    m = _as_masks(masks)
    return float(_boundary_edges(m, k).sum() / m.size)


def class_intensities(images, masks, k, channel=0):
    """The pooled values of image channel ``channel`` at the pixels of class k. A deliberate reference implementation:
    ``compare`` and ``profile`` use per-patch histograms of the same values."""
    im, m = _as_pairs(images, masks)
    if not 0 <= int(channel) < im.shape[-1]:
        raise DualgenError(f"fidelity: channel {channel} outside 0..{im.shape[-1] - 1}")
    return im[..., int(channel)][m == int(k)]


# ---------------------------------------------------------------- memorisation


def _features(images, masks, n_classes):
    """(N, D) float64 vectors whose Euclidean distance is d of the module docstring."""
    im, m = _as_pairs(images, masks)
    _check_ids(m, int(n_classes))
    n, h, w, c = im.shape
    pix = im.reshape(n, -1).astype(np.float64) / (255.0 * np.sqrt(2.0 * h * w * c))
    onehot = (m.reshape(n, -1, 1) == np.arange(int(n_classes))).reshape(n, -1) / (2.0 * np.sqrt(h * w))
    return np.concatenate([pix, onehot], axis=1)


def nearest_distances(query_images, query_masks, ref_images, ref_masks, n_classes):
    """(N_query,) distance of each query pair to its nearest reference pair (d of the module docstring)."""
    q = _features(query_images, query_masks, n_classes)
    ref = _features(ref_images, ref_masks, n_classes)
    if q.shape[1] != ref.shape[1]:
        raise DualgenError("fidelity: query and reference pairs differ in patch size or channels")
    ref_sq = (ref**2).sum(1)
    out = np.empty(len(q))
    for i in range(0, len(q), _CHUNK):
        block = q[i : i + _CHUNK]
        d2 = (block**2).sum(1)[:, None] + ref_sq[None, :] - 2.0 * block @ ref.T
        out[i : i + _CHUNK] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


MEMO_PERCENTILE = 1.0  # the threshold: this percentile of the real validation pairs' nearest-training distances


def novel_share_bounds(n_val, percentile=MEMO_PERCENTILE):
    """(lo, hi): the share_closer a sample exactly as novel as real data has on average, with ``n_val`` real
    validation pairs. Its distances and the n_val real ones are then exchangeable, and the percentile (numpy's
    linear interpolation) lies between the j-th and (j+1)-th smallest real distance, j = 1 + floor((n_val - 1) p),
    so one more draw falls below it with a probability between j / (n_val + 1) and (j + 1) / (n_val + 1), whatever
    the distribution. With few validation pairs this is far from ``percentile`` itself: 12 pairs -> 0.077 .. 0.154."""
    n = int(n_val)
    if n < 1:
        return float("nan"), float("nan")
    j = _order_below(n, percentile)
    return j / (n + 1), min(1.0, (j + 1) / (n + 1))


def _order_below(n_val, percentile=MEMO_PERCENTILE):
    """j: the percentile of n_val values lies between the j-th and (j+1)-th smallest (numpy's linear rule)."""
    return 1 + int(np.floor((int(n_val) - 1) * percentile / 100.0))


def novel_share_limit(n_val, n_synth, level=0.975, percentile=MEMO_PERCENTILE):
    """The ``level`` quantile of share_closer for ``n_synth`` pairs exactly as novel as real data (so a higher share
    copies more than real data would), distribution-free: the chance that one pair falls below the (j+1)-th
    smallest of n_val real distances is Beta(j + 1, n_val - j) distributed over the validation draws, and the share
    of n_synth pairs then beta-binomial (the upper order statistic: a conservative limit). Both the few validation
    pairs behind the threshold and the synthetic sample's size count: 12 and 144 -> 0.40; 200 and 200 -> 0.045."""
    from scipy.stats import betabinom

    n, m = int(n_val), int(n_synth)
    if n < 1 or m < 1:
        return float("nan")
    j = min(_order_below(n, percentile), n - 1)
    return float(betabinom.ppf(level, m, j + 1, n - j) / m) if n > 1 else 1.0


def memorisation(synth, train, val, n_classes):
    """Does the generator copy its training pairs? ``synth``, ``train``, ``val`` are (images, masks) pairs.

    Training pairs count with their mirror images and 90-degree turns (``generation.symmetric_copies``; a prior may
    train on them, pixelcnn.augment), for the real validation pairs as for the synthetic ones.
    share_closer: the share of synthetic pairs nearer to a training pair than ``threshold``, the 1st percentile
    of the real validation pairs' nearest-training distances (1 for copies); novel_lo / novel_hi: what a sample as
    novel as real data scores on average (``novel_share_bounds``); novel_limit: the 97.5 % quantile of that share
    (``novel_share_limit``: a share above it copies more than real data would, beyond the noise of so few
    validation pairs and of len(synth) pairs); synth_median / val_median: the median nearest-training distances.
    """
    from dualgen.generate.common import symmetric_copies

    images, masks = _as_pairs(*train)  # the training pairs, mirrored and turned: a flipped or turned copy is a copy too
    train = symmetric_copies(images), symmetric_copies(masks)
    d_synth = nearest_distances(*synth, *train, n_classes)
    d_val = nearest_distances(*val, *train, n_classes)
    threshold = float(np.percentile(d_val, MEMO_PERCENTILE))
    lo, hi = novel_share_bounds(len(d_val))
    limit = novel_share_limit(len(d_val), len(d_synth))
    return {
        "share_closer": float(np.mean(d_synth < threshold)),
        "threshold": threshold,
        "novel_lo": lo,
        "novel_hi": hi,
        "novel_limit": float(limit),
        "synth_median": float(np.median(d_synth)),
        "val_median": float(np.median(d_val)),
    }


def copies_more_than_real(memo):
    """Whether a memorisation result (``memorisation``'s dict) shows more near-copies than real data would have:
    share_closer above novel_limit (False where there were no validation pairs to compare with: NaN)."""
    return bool(memo["share_closer"] > memo["novel_limit"])


# ---------------------------------------------------------------- compare


class _SetStats:
    """Per-patch statistics of one set, so that any subset's statistic is a cheap selection."""

    def __init__(self, images, masks, n_classes):
        self.images, self.masks = _as_pairs(images, masks)
        _check_ids(self.masks, n_classes)
        self.n = self.masks.shape[0]
        self.fractions = phase_fractions(self.masks, n_classes)
        self.s2 = [_s2_per_patch(self.masks == k) for k in range(n_classes)]
        self.chords = {a: [_chords(self.masks == k, a) for k in range(n_classes)] for a in ("rows", "cols")}
        self.objects = [_objects(self.masks == k) for k in range(n_classes)]
        self.edges = np.stack([_boundary_edges(self.masks, k) for k in range(n_classes)], 1)
        self.area = self.masks.shape[1] * self.masks.shape[2]
        self.uint8 = (
            np.issubdtype(self.images.dtype, np.integer) and self.images.min() >= 0 and self.images.max() <= 255
        )
        if self.uint8:  # per-patch histograms of each channel in each class: (N, K, C, 256)
            n, h, w, c = self.images.shape
            code = (
                (np.arange(n)[:, None, None, None] * n_classes + self.masks[..., None]) * c + np.arange(c)
            ) * 256 + self.images.astype(np.int64)
            self.hist = np.bincount(code.ravel(), minlength=n * n_classes * c * 256).reshape(n, n_classes, c, 256)

    def values(self, statistic, k, idx):
        """The statistic of class k over the patches ``idx``: a scalar, a curve or a distribution as
        (values, weights)."""
        if statistic == "phase_fraction":
            return float(self.fractions[idx, k].mean())
        if statistic == "s2":
            return self.s2[k][idx].mean(0)
        if statistic == "boundary_density":
            return float(self.edges[idx, k].sum() / (len(idx) * self.area))
        member = np.zeros(self.n, bool)
        member[idx] = True
        if statistic in ("chord_rows", "chord_cols"):
            lengths, patch, border = self.chords[statistic[6:]][k]
            sel = member[patch]
            return _histogram(_drop_border(lengths[sel], border[sel]))
        if statistic == "object_size":
            sizes, patch = self.objects[k]
            return _histogram(sizes[member[patch]])
        channel = int(statistic.rsplit("c", 1)[1])  # intensity_c<channel>
        if self.uint8:
            return np.arange(256), self.hist[idx, k, channel].sum(0)
        pooled = self.images[idx, ..., channel][self.masks[idx] == k]
        return pooled, np.ones(len(pooled))


def _histogram(values):
    """(support, counts) of non-negative integers: scipy's W1 on these weights equals W1 on the raw values and is
    far faster than sorting the pooled values at every split."""
    return np.arange(values.max() + 1 if len(values) else 1), np.bincount(values, minlength=1)


def _distance(statistic, a, b):
    if statistic in ("phase_fraction", "boundary_density"):
        return abs(a - b)
    if statistic == "s2":
        return float(np.sqrt(np.mean((a - b) ** 2)))
    (va, wa), (vb, wb) = a, b
    if not wa.sum() or not wb.sum():
        return float("nan")  # nothing to measure on one side
    return float(wasserstein_distance(va, vb, wa, wb))


def _display(statistic, v):
    """A scalar summary (mean) of a statistic for the table."""
    if statistic in ("phase_fraction", "boundary_density"):
        return float(v)
    if statistic == "s2":
        return float(np.mean(v))
    values, weights = v
    return float(np.average(values, weights=weights)) if weights.sum() else float("nan")


def ratio(distance, floor):
    """distance / floor: NaN when either is NaN or both are 0, inf for a distance over a 0 floor."""
    if np.isnan(distance) or np.isnan(floor):
        return float("nan")
    if floor == 0:
        return float("inf") if distance > 0 else float("nan")
    return float(distance / floor)


def nanmean(values):
    """The mean of the finite values, NaN when there is none."""
    values = np.asarray(values, np.float64)
    return float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any() else float("nan")


def compare(
    real_images,
    real_masks,
    synth_images,
    synth_masks,
    class_names,
    seed=0,
    n_splits=5,
    variant="synthetic",
    image=True,
    features=None,
):
    """Per-class fidelity table of a synthetic set against the real one (see the module docstring).

    Columns: variant, class, statistic, real_value, synthetic_value (mean summaries of the full sets, for
    display), distance (synthetic vs real half A), floor (real half B vs half A), ratio = distance / floor.
    ``image``: also the image-domain rows (``image_stats.image_family``: spectrum, gradients, the edges inside class
    0, on the same splits); ``features``: (real, synthetic) learned-feature vectors ({stage: (N, m, d)},
    ``image_stats.encoder_vectors``) for the rows of ``image_stats.feature_family``, or None.
    """
    names = [str(c) for c in class_names]
    n_classes = len(names)
    if n_classes < 1:
        raise DualgenError("fidelity: no class names given")
    if not isinstance(n_splits, numbers.Integral) or n_splits < 1:
        raise DualgenError(f"fidelity: n_splits {n_splits!r} must be a positive integer")
    real = _SetStats(real_images, real_masks, n_classes)
    synth = _SetStats(synth_images, synth_masks, n_classes)
    if real.images.shape[1:] != synth.images.shape[1:]:
        raise DualgenError(
            f"fidelity: real patches {real.images.shape[1:]} and synthetic patches "
            f"{synth.images.shape[1:]} differ in size or channels"
        )
    if real.n < 2:
        raise DualgenError(f"fidelity: {real.n} real patch(es): need at least 2 to split into halves")
    stats = list(STATISTICS) + [f"intensity_c{c}" for c in range(real.images.shape[-1])]
    half = min(real.n // 2, synth.n)
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(int(n_splits)):
        perm = rng.permutation(real.n)
        splits.append(
            (
                perm[: real.n // 2],
                perm[real.n // 2 : real.n // 2 + half],
                np.sort(rng.choice(synth.n, half, replace=False)),
            )
        )
    all_real, all_synth = np.arange(real.n), np.arange(synth.n)
    rows = []
    for k, name in enumerate(names):
        for statistic in stats:
            floors, distances = [], []
            for a, b, s in splits:
                ref = real.values(statistic, k, a)
                floors.append(_distance(statistic, ref, real.values(statistic, k, b)))
                distances.append(_distance(statistic, ref, synth.values(statistic, k, s)))
            floor, distance = nanmean(floors), nanmean(distances)
            rows.append(
                {
                    "variant": variant,
                    "class": name,
                    "statistic": statistic,
                    "real_value": _display(statistic, real.values(statistic, k, all_real)),
                    "synthetic_value": _display(statistic, synth.values(statistic, k, all_synth)),
                    "distance": distance,
                    "floor": floor,
                    "ratio": ratio(distance, floor),
                }
            )
    columns = ["variant", "class", "statistic", "real_value", "synthetic_value", "distance", "floor", "ratio"]
    parts = [pd.DataFrame(rows, columns=columns)]
    if image or features is not None:
        from dualgen.generate import image_stats  # it imports this module

        if image:
            parts.append(
                image_stats.image_family(
                    real.images, real.masks, synth.images, synth.masks, n_splits, seed, cls=0, class_name=names[0]
                )
            )
        if features is not None:
            parts.append(image_stats.feature_family(features[0], features[1], n_splits, seed))
        for part in parts[1:]:
            part.insert(0, "variant", variant)
    return pd.concat(parts, ignore_index=True)


def summary(table):
    """The worst (largest) ratio of a ``compare`` table with its class / statistic, and the worst per statistic.

    NaN ratios are skipped; inf counts as the largest. Returns worst_ratio, worst_class, worst_statistic,
    worst_variant, per_statistic ({statistic: {"class": ..., "ratio": ...}}) and line, e.g.
    "fidelity ratios: eta/chord_rows 3.1" (worst_* None and ratio NaN where no ratio is defined).
    """
    t = table[~pd.isna(table["ratio"])]
    if t.empty:
        return {
            "worst_ratio": float("nan"),
            "worst_class": None,
            "worst_statistic": None,
            "worst_variant": None,
            "per_statistic": {},
            "line": "fidelity ratios: none defined",
        }
    worst = t.loc[t["ratio"].astype(float).idxmax()]
    per = {}
    for statistic, group in t.groupby("statistic", sort=False):
        row = group.loc[group["ratio"].astype(float).idxmax()]
        per[statistic] = {"class": row["class"], "ratio": float(row["ratio"])}
    return {
        "worst_ratio": float(worst["ratio"]),
        "worst_class": worst["class"],
        "worst_statistic": worst["statistic"],
        "worst_variant": worst["variant"],
        "per_statistic": per,
        "line": f"fidelity ratios: {worst['class']}/{worst['statistic']} {float(worst['ratio']):.1f}",
    }


# ---------------------------------------------------------------- what the figures draw


def profile(images, masks, n_classes):
    """The statistics of one set as the fidelity figures draw them (a dict of arrays):

    fractions (N, K): phase fraction of each class in each patch; s2 (K, R + 1): S2 curves (``two_point_correlation``);
    chords (K, L + 1): counts of chord lengths 0..L (L = the patch size), rows and columns pooled, border chords
    dropped as in ``chord_lengths``; intensity (K, C, 256): counts of the uint8 values of each channel inside each
    class."""
    im, m = _as_pairs(images, masks)
    k = int(n_classes)
    _check_ids(m, k)
    size = max(m.shape[1], m.shape[2])
    chords = np.zeros((k, size + 1), np.int64)
    for c in range(k):
        for axis in ("rows", "cols"):
            chords[c] += np.bincount(chord_lengths(m, c, axis), minlength=size + 1)[: size + 1]
    values = np.clip(im, 0, 255).astype(np.int64)
    n_ch = im.shape[-1]
    code = (m[..., None] * n_ch + np.arange(n_ch)) * 256 + values
    intensity = np.bincount(code.ravel(), minlength=k * n_ch * 256).reshape(k, n_ch, 256)
    return {
        "fractions": phase_fractions(m, k),
        "s2": np.stack([two_point_correlation(m, c) for c in range(k)]),
        "chords": chords,
        "intensity": intensity,
    }


FAMILIES = {
    "phase_fraction": "phase fraction",
    "s2": "S2",
    "chord": "chord lengths",
    "object_size": "object sizes",
    "boundary_density": "boundary density",
    "intensity": "intensities",
    "image": "image (spectrum, gradients, edges, features)",
}
IMAGE_PREFIXES = ("spectrum_", "gradient", "edge_density", "feature_")  # image_stats' statistics: family "image"


def family(statistic):
    """The family of a statistic of ``compare``: chord_rows / chord_cols -> chord, intensity_c<k> -> intensity, the
    image-domain statistics (``IMAGE_PREFIXES``: spectrum_all, spectrum_high, gradient, edge_density,
    feature_s<stride>) -> image."""
    if statistic.startswith("chord_"):
        return "chord"
    if statistic.startswith("intensity_"):
        return "intensity"
    return "image" if statistic.startswith(IMAGE_PREFIXES) else statistic


def worst_by_family(table):
    """{variant: {family: {"class", "statistic", "ratio", "floor", "distance"}}}: the largest ratio of each family of
    statistics (``FAMILIES``) per variant of a ``compare`` table (NaN ratios skipped; none defined: ratio NaN)."""
    out = {}
    for variant, rows in table.groupby("variant", sort=False):
        fam = rows["statistic"].map(family)
        out[variant] = {}
        for name in FAMILIES:
            group = rows[(fam == name) & ~pd.isna(rows["ratio"])]
            if group.empty:
                out[variant][name] = {
                    "class": None,
                    "statistic": None,
                    "ratio": float("nan"),
                    "floor": float("nan"),
                    "distance": float("nan"),
                }
                continue
            row = group.loc[group["ratio"].astype(float).idxmax()]
            out[variant][name] = {
                "class": row["class"],
                "statistic": row["statistic"],
                "ratio": float(row["ratio"]),
                "floor": float(row["floor"]),
                "distance": float(row["distance"]),
            }
    return out


# ---------------------------------------------------------------- the fidelity step

REFERENCE = "real_test"  # the second real sample's variant name in reference.csv
MEMO_KEYS = ("share_closer", "threshold", "novel_lo", "novel_hi", "novel_limit", "synth_median", "val_median")


def _learned(features, images):
    """``compare``'s features argument from (the real vectors, an encoding function) or None."""
    return None if features is None else (features[0], features[1](images))


def score_variant(variant, images, masks, real, val, class_names, seed, n_splits, features=None, decoded=None):
    """(table, memorisation row, profiles) of one generator variant's cleaned pairs (``images``, ``masks``) against
    the real training pairs ``real`` and validation pairs ``val`` ((images, masks) each). ``variant``: a dict with
    name, kind, temperature and pool. table: ``compare`` with kind, temperature, pool and n_synthetic inserted after
    the variant; row: variant, n_synthetic, n_train, n_val, ``memorisation`` (NaN without validation pairs) and
    judged_on (images or decoded, below);
    profiles: ``profile`` under "<name>__<statistic>". ``features``: (the real pairs' learned-feature vectors, the
    function that makes them from images: ``image_stats.encoder_vectors`` bound to an encoder) or None.
    ``decoded``: the micrographs as decoded, where postprocess filtered them or added noise (the pool's decoded/):
    memorisation judges those, since new noise or a sharpening filter moves every pair away from its training
    pair and would hide a copy."""
    n = len(class_names)
    table = compare(
        real[0],
        real[1],
        images,
        masks,
        class_names,
        seed=seed,
        n_splits=n_splits,
        variant=variant["name"],
        features=_learned(features, images),
    )
    table.insert(1, "kind", variant["kind"])
    table.insert(2, "temperature", float(variant["temperature"]))
    table.insert(3, "pool", bool(variant["pool"]))
    table.insert(4, "n_synthetic", len(masks))
    copies = (images if decoded is None else decoded, masks)
    memo = memorisation(copies, real, val, n) if len(val[1]) else {k: float("nan") for k in MEMO_KEYS}
    row = {"variant": variant["name"], "n_synthetic": len(masks), "n_train": len(real[1]), "n_val": len(val[1]), **memo}
    row["judged_on"] = "images" if decoded is None else "decoded"
    return table, row, {f"{variant['name']}__{k}": a for k, a in profile(images, masks, n).items()}


def score_variants(variants, paths, real, val, class_names, seed, n_splits, features=None):
    """(table, memorisation rows, profiles) of every variant (``score_variant``, in the order of ``variants``) from
    the cleaned pairs of its postprocess folder ``paths[name]`` (pool.csv); table: the variants' tables concatenated;
    ``features`` as in ``score_variant``.
    Raises DualgenError for an empty pool or pairs of another shape than the real ones."""
    tables, memo, profiles = [], [], {}
    for v in variants:
        ids, images, masks = datasets.read_pool(paths[v["name"]])
        if not ids:
            raise DualgenError(f"{paths[v['name']]}: no synthetic pairs in pool.csv: rerun its postprocess step")
        if images.shape[1:] != real[0].shape[1:]:
            raise DualgenError(
                f"{paths[v['name']]}: synthetic pairs of shape {images.shape[1:]} but real patches of "
                f"{real[0].shape[1:]}: the pool is from another study; rerun its steps"
            )
        print(f"variant {v['name']}: {len(ids)} synthetic pairs vs {len(real[1])} real training patches", flush=True)
        decoded = datasets.read_decoded(paths[v["name"]], ids)
        table, row, curves = score_variant(
            v, images, masks, real, val, class_names, seed, n_splits, features, decoded=decoded
        )
        tables.append(table)
        memo.append(row)
        profiles.update(curves)
        print(f"  {summary(table)['line']}; memorisation share {row['share_closer']:.3f}", flush=True)
    return pd.concat(tables, ignore_index=True), memo, profiles


def step_meta(variants, table, memo, reference, n_real, n_real_val, agreement):
    """meta.json's record of the fidelity step: the pool's variant, the closest one (``closest_variant``), the
    variants, each variant's worst ratio per family (``worst_by_family``) and overall (``summary``), the memorisation
    rows, the real sample sizes, the HQ vs LQ ``agreement`` (``label_agreement``) and the ``reference`` meta of
    ``reference_sample``. Prints the pool's line."""
    worst = worst_by_family(table)
    closest = closest_variant(worst, memo)
    pool = next(v["name"] for v in variants if v["pool"])
    summaries = {name: summary(table[table["variant"] == name]) for name in worst}
    print(
        f"pool ({pool}): {summaries[pool]['line']}; closest to real data on phase fraction, S2, chords and the "
        f"image family: {closest}",
        flush=True,
    )
    return {
        "pool_variant": pool,
        "closest_variant": closest,
        "variants": variants,
        "worst_by_family": worst,
        "worst": {
            k: {x: v[x] for x in ("worst_ratio", "worst_class", "worst_statistic", "line")}
            for k, v in summaries.items()
        },
        "memorisation": {r["variant"]: r for r in memo},
        "n_real": n_real,
        "n_real_val": n_real_val,
        "label_agreement_hq_vs_lq": agreement,
        "reference": reference,
    }


def closest_variant(worst, memo):
    """The variant (of a ``worst_by_family`` dict) with the lowest worst ratio over ``TARGET_FAMILIES`` among those
    that copy no more than real data would (``copies_more_than_real`` of its row in ``memo``; all variants when
    every one does)."""
    novel = [v for v in worst if not copies_more_than_real(next(r for r in memo if r["variant"] == v))] or list(worst)
    return min(
        novel,
        key=lambda name: max(
            (worst[name][f]["ratio"] for f in TARGET_FAMILIES if not np.isnan(worst[name][f]["ratio"])), default=0.0
        ),
    )


def reference_sample(real_images, real_masks, images, masks, class_names, seed, n_splits, features=None):
    """(table, meta) of a second real sample (``images``, ``masks``: e.g. the test patches) scored against the real
    training pairs exactly as a variant is (``compare``, variant ``REFERENCE``; ``features`` as in
    ``score_variant``); an empty table and None when it has fewer than 2 pairs."""
    if len(masks) < 2:
        return pd.DataFrame(columns=["variant", "class", "statistic", "ratio"]), None
    table = compare(
        real_images,
        real_masks,
        images,
        masks,
        class_names,
        seed=seed,
        n_splits=n_splits,
        variant=REFERENCE,
        features=_learned(features, images),
    )
    line = summary(table[table["statistic"].map(family).isin(TARGET_FAMILIES)])["line"]
    return table, {
        "variant": REFERENCE,
        "source": "test patches",
        "n": len(masks),
        "line": line,
        "worst_by_family": worst_by_family(table)[REFERENCE],
    }


def label_agreement(patches_dir, n_classes):
    """mIoU and Missing Class IoU of the LQ masks against the HQ masks of the patches that have both (None if none
    has, or they agree everywhere because no LQ masks were made)."""
    from pathlib import Path

    from dualgen.data import io
    from dualgen.segment import metrics

    folder = Path(patches_dir)
    table = pd.read_csv(folder / "patches.csv")
    ids = list(table.loc[table["has_hq"].astype(bool), "patch_id"])
    if not ids or not (folder / "lq").is_dir() or not (folder / "hq").is_dir():
        return None
    rows = [
        metrics.image_metrics(
            io.read_png(folder / "hq" / f"{i}.png"), io.read_png(folder / "lq" / f"{i}.png"), n_classes
        )
        for i in ids
    ]
    agg = metrics.aggregate(rows)
    return {"miou": agg["miou"], "missing_class_iou": agg["missing_class_iou"], "n": len(ids)}
