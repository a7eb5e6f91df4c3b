"""Image-domain fidelity statistics: power spectrum, gradients and edges, each with a real-vs-real floor.

The statistics of ``fidelity`` judge the images only by the mean intensity of each class, so a blurred synthetic
micrograph (no grain boundaries, no 1-2 px lines) reads as faithful. The statistics here measure the fine
structure itself. Plain numpy / scipy, like ``fidelity``.

Inputs: images are uint8 (N, H, W, C), C = 1 or 3 ((N, H, W) is taken as C = 1; one (H, W) or (H, W, C) image is
not accepted: pass a stack), converted to gray luminance in [0, 1] (``gray``: the channel itself for C = 1,
0.299 R + 0.587 G + 0.114 B, ITU-R BT.601, for C = 3, then / 255). Masks are (N, H, W) integer class ids.

Statistics of a set of patches:

- ``radial_power_spectrum``: per patch the mean is subtracted, a 2-D Hann window (``np.hanning`` rows x columns)
  applied and |FFT|^2 taken, divided by sum(window^2) (so white noise of variance s^2 gives a flat spectrum of
  height about s^2); the power is averaged in integer-radius rings k = round(|f| L), L = min(H, W), at
  frequencies k / L cycles/pixel, k = 1..L // 2 (0 < f <= 0.5: the DC ring is dropped, its power is the mean
  that the intensity statistics already measure, removed here; the corners beyond 0.5 are dropped too), then
  the power is averaged over the patches and its log10 returned. Blur removes power at high frequencies first:
  a Gaussian of sigma pixels multiplies the power by exp(-(2 pi f sigma)^2), 1/8 of it at f = 1/8 for
  sigma = 1.5 and 1e-4 at f = 0.25. The uint8 rounding adds white noise of variance (1/255)^2 / 12, so a
  spectrum never falls below about 10^-5.9: that is where a blurred set's high rings end.
- ``spectrum_distance``: the mean absolute difference of two log10 spectra (decades), over all rings
  ("spectrum_all") and over the rings above ``high`` = 1/8 cycles/pixel ("spectrum_high": structure of
  wavelength under 8 px, the band where grain boundaries and thin lines live and that blur empties).
- ``gradient_magnitudes``: |grad I| = hypot(dI/dy, dI/dx) per pixel with ``np.gradient`` (central differences
  inside, one-sided at the patch border; gray levels of [0, 1] per pixel, at most sqrt(2)). A 1-px line of
  contrast c gives |grad I| = c / 2 on the pixels beside it (central differences do not see the line pixel
  itself); blur spreads and lowers these peaks. ``gradient_distance``: Wasserstein-1
  (scipy.stats.wasserstein_distance) between the pooled |grad I| of the two sets, on a fixed, seeded subsample
  of pixels (``gradient_sample``: the same number of random pixels from each patch, n_sample in all, so every
  patch counts alike and a subset of patches is a cheap selection).
- ``edge_density``: the share of the pixels of class ``cls`` whose |grad I| exceeds ``threshold``. The class is
  first eroded by 1 px (scipy.ndimage.binary_erosion, 4-connected cross; the patch border does not erode), which
  leaves exactly the pixels whose central differences see only pixels of the class: the class boundaries of the
  mask do not count, so for the matrix (class 0) what is measured is the edges inside it that no mask holds, the
  grain boundaries. The threshold must be the same for real and synthetic sets: ``edge_threshold`` of the REAL
  patches (the 90th percentile of their |grad I| subsample); with threshold=None ``edge_density`` takes that of
  the images it is given, which is only right for the real set itself. Distance: |difference|.

Floor and ratio (``image_family``), built as ``fidelity.compare`` builds them (and with the same splits for the
same seed and set sizes, ``splits``): the real patches are split at random into disjoint halves A and B
(seeded); floor = distance(A, B); the synthetic patches, subsampled (seeded, without replacement) to the size of
B, give distance(A, S); both are averaged over ``n_splits`` splits; ratio = distance / floor. With fewer
synthetic patches than a half, B is cut to the synthetic count: both sides are always the same size, so a
ratio is never a sample-size artefact (a W1 or a spectrum difference between small samples is larger than
between big ones). About 1 for a second sample of the source of the real patches, >> 1 for blurred images.
The edge threshold is that of all real patches, for every split.
"""

import numbers

import numpy as np
import pandas as pd
from scipy.ndimage import binary_erosion
from scipy.stats import wasserstein_distance

from dualgen.core.errors import DualgenError
from dualgen.generate import fidelity

IMAGE_STATISTICS = ("spectrum_all", "spectrum_high", "gradient", "edge_density")
HIGH = 1.0 / 8.0  # cycles/pixel: the lower edge of the high-frequency band (wavelengths under 8 px)
EDGE_PERCENTILE = 90.0  # the edge threshold: this percentile of the real patches' |grad I|
N_SAMPLE = 200_000  # pixels per set in the |grad I| subsample (W1 and the edge threshold)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luminance of R, G, B
_CHUNK = 64  # patches per FFT / gradient block (bounds the float64 working memory)
ALL = "all"  # the class column of a statistic of the whole image
COLUMNS = ["class", "statistic", "real_value", "synthetic_value", "distance", "floor", "ratio"]
_TINY = 1e-12  # the least power before log10 (only a set of constant patches gets near it)
_CROSS = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool)  # 4-connected, within each patch of a stack


# ---------------------------------------------------------------- inputs


def _as_images(images):
    """(N, H, W, C) stack, C = 1 or 3; (N, H, W) gets C = 1."""
    im = np.asarray(np.stack(images) if isinstance(images, (list, tuple)) else images)
    if im.ndim == 3:
        im = im[..., None]
    if im.ndim != 4 or im.shape[0] == 0 or im.shape[-1] not in (1, 3) or min(im.shape[1:3]) < 2:
        raise DualgenError(
            f"image_stats: images of shape {im.shape}: expected a non-empty (N, H, W, C) stack, C = 1 or 3, "
            "H and W >= 2"
        )
    return im


def _as_masks(masks, images):
    m = np.asarray(np.stack(masks) if isinstance(masks, (list, tuple)) else masks)
    if m.shape != images.shape[:3]:
        raise DualgenError(f"image_stats: masks {m.shape} do not match images {images.shape}: expected (N, H, W)")
    if not np.issubdtype(m.dtype, np.integer):
        raise DualgenError(f"image_stats: masks have dtype {m.dtype}: expected integer class ids")
    return m


def gray(images):
    """(N, H, W) float64 luminance in [0, 1] of uint8 (N, H, W, C) images (see the module docstring)."""
    im = _as_images(images)
    g = im[..., 0].astype(np.float64) if im.shape[-1] == 1 else im.astype(np.float64) @ LUMA
    return g / 255.0


def _chunks(n):
    return (slice(i, min(i + _CHUNK, n)) for i in range(0, n, _CHUNK))


# ---------------------------------------------------------------- power spectrum


def _rings(h, w):
    """Ring index (k - 1, or -1 outside k = 1..L // 2) of each FFT frequency, the ring sizes and frequencies."""
    size = min(h, w)
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    k = np.rint(f * size).astype(np.int64).ravel()
    ring = np.where((k >= 1) & (k <= size // 2), k - 1, -1)
    n_rings = size // 2
    return ring, np.bincount(ring[ring >= 0], minlength=n_rings), np.arange(1, n_rings + 1) / size


def hann_window(h, w):
    """The 2-D Hann window (``np.hanning`` rows x columns) every spectrum here is taken through."""
    return np.outer(np.hanning(h), np.hanning(w))


def _patch_power(images):
    """(frequencies, (N, R) ring-averaged power of each patch)."""
    im = _as_images(images)
    n, h, w = im.shape[:3]
    ring, counts, freqs = _rings(h, w)
    keep = ring >= 0
    window = hann_window(h, w)
    norm = (window**2).sum()
    out = np.empty((n, len(counts)))
    for sl in _chunks(n):
        g = gray(im[sl])
        g -= g.mean((1, 2), keepdims=True)
        spec = np.fft.fft2(g * window)
        power = (spec.real**2 + spec.imag**2).reshape(len(g), -1)[:, keep] / norm
        code = (np.arange(len(g))[:, None] * len(counts) + ring[keep][None, :]).ravel()
        out[sl] = np.bincount(code, weights=power.ravel(), minlength=len(g) * len(counts)).reshape(len(g), -1)
    return freqs, out / counts


def _log_mean(power):
    return np.log10(np.maximum(power.mean(0), _TINY))


def radial_power_spectrum(images):
    """(frequencies in cycles/pixel, log10 of the mean ring-averaged power): see the module docstring."""
    freqs, power = _patch_power(images)
    return freqs, _log_mean(power)


def _spectrum_gap(freqs, log_a, log_b, high):
    diff = np.abs(log_a - log_b)
    band = freqs > high
    return float(diff.mean()), float(diff[band].mean()) if band.any() else float("nan")


def spectrum_distance(a, b, high=HIGH):
    """(all, high): the mean |difference| of the log10 spectra of image sets ``a`` and ``b`` over all rings and over
    the rings above ``high`` cycles/pixel (NaN if none is). The sets must have the same patch size."""
    fa, la = radial_power_spectrum(a)
    fb, lb = radial_power_spectrum(b)
    if len(fa) != len(fb) or not np.allclose(fa, fb):
        raise DualgenError("image_stats: the two image sets differ in patch size: their spectra do not align")
    return _spectrum_gap(fa, la, lb, high)


# ---------------------------------------------------------------- gradients and edges


def gradient_magnitudes(images):
    """(N, H, W) |grad I| of the gray images, ``np.gradient`` (central differences; one-sided at the border)."""
    g = gray(images)
    gy, gx = np.gradient(g, axis=(1, 2))
    return np.hypot(gy, gx)


def gradient_sample(images, n_sample=N_SAMPLE, seed=0):
    """(N, m) |grad I| at m = min(H W, ceil(n_sample / N)) random pixels of each patch (seeded; without replacement
    within a patch; all pixels when m = H W)."""
    im = _as_images(images)
    n, h, w = im.shape[:3]
    m = int(min(h * w, max(1, -(-int(n_sample) // n))))
    rng = np.random.default_rng(seed)
    out = np.empty((n, m))
    for sl in _chunks(n):
        mag = gradient_magnitudes(im[sl]).reshape(-1, h * w)
        for j, row in enumerate(mag):
            out[sl.start + j] = row if m == h * w else row[rng.choice(h * w, m, replace=False)]
    return out


def gradient_distance(a, b, n_sample=N_SAMPLE, seed=0):
    """Wasserstein-1 between the |grad I| of image sets ``a`` and ``b`` (``gradient_sample`` of each, same seed)."""
    return float(
        wasserstein_distance(gradient_sample(a, n_sample, seed).ravel(), gradient_sample(b, n_sample, seed).ravel())
    )


def edge_threshold(real_images, percentile=EDGE_PERCENTILE, n_sample=N_SAMPLE, seed=0):
    """The ``percentile`` of the |grad I| subsample (``gradient_sample``) of the real patches: the edge threshold."""
    return float(np.percentile(gradient_sample(real_images, n_sample, seed), percentile))


def _edge_counts(images, masks, cls, threshold):
    """(N,) pixels of eroded class ``cls`` above the threshold and (N,) pixels of eroded class ``cls``."""
    im = _as_images(images)
    m = _as_masks(masks, im)
    edges, area = np.empty(len(im), np.int64), np.empty(len(im), np.int64)
    for sl in _chunks(len(im)):
        region = binary_erosion(m[sl] == int(cls), structure=_CROSS, border_value=1)
        edges[sl] = ((gradient_magnitudes(im[sl]) > threshold) & region).sum((1, 2))
        area[sl] = region.sum((1, 2))
    return edges, area


def _share(edges, area):
    return float(edges.sum() / area.sum()) if area.sum() else float("nan")


def edge_density(images, masks, cls, threshold=None):
    """Share of the pixels of class ``cls`` (eroded by 1 px) whose |grad I| exceeds ``threshold`` (NaN where the
    eroded class is empty). threshold=None: ``edge_threshold`` of these images, right only when they are the real
    ones; for a synthetic set pass the real set's threshold."""
    if threshold is None:
        threshold = edge_threshold(images)
    return _share(*_edge_counts(images, masks, cls, threshold))


# ---------------------------------------------------------------- floor and ratio


class _Set:
    """Per-patch statistics of one set, so that any subset's statistic is a cheap selection."""

    def __init__(self, images, masks, cls, n_sample, seed, threshold=None):
        self.images = _as_images(images)
        self.n = len(self.images)
        self.freqs, self.power = _patch_power(self.images)
        self.grad = gradient_sample(self.images, n_sample, seed)
        self.threshold = float(np.percentile(self.grad, EDGE_PERCENTILE)) if threshold is None else threshold
        self.edges, self.area = _edge_counts(self.images, masks, cls, self.threshold)

    def values(self, idx):
        return _log_mean(self.power[idx]), self.grad[idx].ravel(), (self.edges[idx], self.area[idx])


def _distances(freqs, a, b, high):
    """{statistic: distance} between two ``_Set.values``."""
    spec_all, spec_high = _spectrum_gap(freqs, a[0], b[0], high)
    return {
        "spectrum_all": spec_all,
        "spectrum_high": spec_high,
        "gradient": float(wasserstein_distance(a[1], b[1])),
        "edge_density": abs(_share(*a[2]) - _share(*b[2])),
    }


def splits(n_real, n_synth, n_splits, seed):
    """[(A, B, S)] index arrays of ``n_splits`` random splits, as ``fidelity.compare`` draws them: A the first half of
    a permutation of the real patches, B the next min(n_real // 2, n_synth), S that many synthetic patches (sorted,
    without replacement)."""
    if not isinstance(n_splits, numbers.Integral) or n_splits < 1:
        raise DualgenError(f"image_stats: n_splits {n_splits!r} must be a positive integer")
    if n_real < 2:
        raise DualgenError(f"image_stats: {n_real} real patch(es): need at least 2 to split into halves")
    half = min(n_real // 2, n_synth)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(int(n_splits)):
        perm = rng.permutation(n_real)
        synth = np.sort(rng.choice(n_synth, half, replace=False))
        out.append((perm[: n_real // 2], perm[n_real // 2 : n_real // 2 + half], synth))
    return out


def _display(freqs, v, high):
    """{statistic: a scalar summary} of one ``_Set.values`` for the table."""
    band = freqs > high
    return {
        "spectrum_all": float(v[0].mean()),
        "spectrum_high": float(v[0][band].mean()) if band.any() else float("nan"),
        "gradient": float(v[1].mean()),
        "edge_density": _share(*v[2]),
    }


def image_family(
    real_images,
    real_masks,
    synth_images,
    synth_masks,
    n_splits=5,
    seed=0,
    cls=0,
    class_name="matrix",
    high=HIGH,
    n_sample=N_SAMPLE,
):
    """Image-domain fidelity table of a synthetic set against the real one (see the module docstring).

    One row per statistic: spectrum_all, spectrum_high, gradient (class "all": the whole image) and edge_density
    (class ``class_name``: the edges inside class ``cls``, thresholded at ``edge_threshold`` of all real patches).
    Columns: class, statistic; real_value, synthetic_value
    (scalar summaries of the full sets, for display: mean log10 power over all rings / over the rings above
    ``high``, mean |grad I|, edge density); distance (synthetic S vs real half A), floor (real half B vs half A),
    each averaged over ``n_splits`` seeded splits (``splits``); ratio = distance / floor.
    """
    real = _Set(real_images, real_masks, cls, n_sample, seed)
    synth = _Set(synth_images, synth_masks, cls, n_sample, seed, threshold=real.threshold)
    if real.images.shape[1:3] != synth.images.shape[1:3]:
        raise DualgenError(
            f"image_stats: real patches {real.images.shape[1:3]} and synthetic patches "
            f"{synth.images.shape[1:3]} differ in size"
        )
    floors, distances = {}, {}
    for a, b, s in splits(real.n, synth.n, n_splits, seed):
        ref = real.values(a)
        for k, v in _distances(real.freqs, ref, real.values(b), high).items():
            floors.setdefault(k, []).append(v)
        for k, v in _distances(real.freqs, ref, synth.values(s), high).items():
            distances.setdefault(k, []).append(v)
    real_value = _display(real.freqs, real.values(np.arange(real.n)), high)
    synth_value = _display(real.freqs, synth.values(np.arange(synth.n)), high)
    rows = []
    for k in floors:
        floor, distance = fidelity.nanmean(floors[k]), fidelity.nanmean(distances[k])
        rows.append(
            {
                "class": str(class_name) if k == "edge_density" else ALL,
                "statistic": k,
                "real_value": real_value[k],
                "synthetic_value": synth_value[k],
                "distance": distance,
                "floor": floor,
                "ratio": fidelity.ratio(distance, floor),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


# ---------------------------------------------------------------- learned features

FEATURE_SAMPLE = 64  # feature vectors per patch and encoder stage (seeded random locations)


def feature_sample(maps, per_patch=FEATURE_SAMPLE, seed=0):
    """(N, m, d) float64 feature vectors at m = min(h w, ``per_patch``) seeded random locations of each patch's
    (h, w, d) feature map (``maps``: (N, h, w, d); without replacement within a patch; all locations when
    m = h w, in raster order)."""
    f = np.asarray(maps, np.float64)
    if f.ndim != 4 or not len(f):
        raise DualgenError(f"image_stats: feature maps of shape {f.shape}: expected a non-empty (N, h, w, d) stack")
    n, h, w, d = f.shape
    flat = f.reshape(n, h * w, d)
    m = int(min(h * w, max(1, int(per_patch))))
    if m == h * w:
        return flat
    rng = np.random.default_rng(seed)
    return np.stack([flat[i, np.sort(rng.choice(h * w, m, replace=False))] for i in range(n)])


def _psd_sqrt(c):
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a, b):
    """The Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (n, d) (Heusel et al. 2017, as
    in FID): |mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)), the covariances with ``np.cov`` (n - 1).
    tr((C_a C_b)^(1/2)) is the sum of the square roots of the eigenvalues of the symmetric C_a^(1/2) C_b C_a^(1/2)
    (same eigenvalues, no complex rounding); the result is clipped at 0 (a set against itself is 0 up to rounding).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise DualgenError(
            f"image_stats: feature sets {a.shape} and {b.shape}: expected (n, d) arrays of the same d, n >= 2"
        )
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = _psd_sqrt(ca)
    inner = root @ cb @ root
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    mean_gap = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    return max(0.0, mean_gap + float(np.trace(ca) + np.trace(cb) - 2 * trace_root))


def feature_family(real_features, synth_features, n_splits=5, seed=0):
    """Learned-feature fidelity rows: for each stage name of the dicts ``real_features`` / ``synth_features``
    ({name: (N, m, d) vectors, ``feature_sample``}), statistic ``feature_<name>`` (class "all"): the Fréchet
    distance (``frechet_distance``) between the pooled vectors of the synthetic subset S and the real half A, the
    floor the same between the real halves B and A, over the same seeded ``splits`` as ``image_family`` (so as
    ``fidelity.compare``), averaged; ratio = distance / floor. real_value / synthetic_value: the mean norm of the
    vectors of the full sets (for display). Columns: ``COLUMNS``."""
    rows = []
    for name, real in real_features.items():
        real, synth = np.asarray(real, np.float64), np.asarray(synth_features[name], np.float64)
        if real.shape[2:] != synth.shape[2:]:
            raise DualgenError(f"image_stats: {name} features of width {real.shape[2:]} and {synth.shape[2:]} differ")
        floors, distances = [], []
        for a, b, s in splits(len(real), len(synth), n_splits, seed):
            ref = real[a].reshape(-1, real.shape[-1])
            floors.append(frechet_distance(ref, real[b].reshape(-1, real.shape[-1])))
            distances.append(frechet_distance(ref, synth[s].reshape(-1, real.shape[-1])))
        floor, distance = fidelity.nanmean(floors), fidelity.nanmean(distances)
        rows.append(
            {
                "class": ALL,
                "statistic": f"feature_{name}",
                "real_value": float(np.linalg.norm(real, axis=-1).mean()),
                "synthetic_value": float(np.linalg.norm(synth, axis=-1).mean()),
                "distance": distance,
                "floor": floor,
                "ratio": fidelity.ratio(distance, floor),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def encoder_vectors(features, images, strides, per_patch=FEATURE_SAMPLE, seed=0, batch_size=32):
    """{"s<stride>": (N, m, d) vectors} (``feature_sample``, seeded per stage) of uint8 images (N, H, W, C) through
    ``features`` (a function of float images in [0, 255] to the list of feature maps at ``strides``, in that order:
    ``dualgen.segment.unet.encoder_features``), in batches of ``batch_size``."""
    im = _as_images(images)
    maps = [[] for _ in strides]
    for i in range(0, len(im), int(batch_size)):
        for store, out in zip(maps, features(im[i : i + int(batch_size)].astype(np.float32))):
            store.append(np.asarray(out, np.float32))
    return {
        f"s{s}": feature_sample(np.concatenate(store), per_patch, seed + j)
        for j, (s, store) in enumerate(zip(strides, maps))
    }
