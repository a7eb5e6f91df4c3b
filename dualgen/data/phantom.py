"""Demo micrographs that resemble the paper's Fe14Nd2B magnet (brightfield, RGB) with exact masks.

``generate(seed, height, width, scale)`` returns the image, the exact (HQ) mask and a "model-made" (LQ)
mask with the faults of an imperfect segmentation model. Classes: 0 matrix (Phi grains), 1 oxide,
2 Nd-rich, 3 Eta. Same arguments -> same bytes (one ``numpy.random.default_rng(seed)``, no global state).

Microstructure (the mask is drawn first, the image is rendered from it):

* matrix: a Voronoi tessellation of jittered-grid seeds on slightly warped coordinates (curved grain
  boundaries), grains ~22 px across at ``scale=1`` (so a 64 px patch shows several grains);
* oxide: rounded blobs of log-normal radii, half of them at triple junctions;
* Nd-rich: small triangular pockets at some triple junctions and thin bands along some grain boundaries;
* Eta: irregular patches (thresholded smooth noise) inside some grains, clipped to those grains.

Each phase is grown by ranking a score and taking the best pixels until its target share is met, so the
class shares are those of the paper's test set (Table 2: oxide 8.0 %, Nd-rich 5.6 %, Eta 7.6 %,
matrix 78.8 %) for every seed and size. Appearance: brownish/olive matrix grains of different shades with
thin dark boundaries, light bluish-gray oxide, near-white Nd-rich, neutral mid-gray Eta (brightness
matrix < Eta < oxide < Nd-rich), then fine texture, faint polishing scratches, gaussian blur, an
illumination gradient, colour fringes (per-channel shift and blur) and sensor noise, so no single
threshold separates the classes.
"""
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from dualgen.data import labelnoise
from dualgen.data.labelnoise import smooth_noise as _smooth_noise

CLASS_NAMES = ("matrix", "oxide", "nd_rich", "eta")
TARGET = {1: 0.080, 2: 0.056, 3: 0.076}  # paper's test set (Table 2); matrix gets the rest (78.8 %)
GRAIN_PX = 22.0  # mean grain diameter at scale 1
COLORS = np.array([
    [121, 106, 83],   # matrix: brownish olive gray
    [176, 188, 206],  # oxide: light bluish gray
    [240, 236, 224],  # Nd-rich: near white
    [142, 142, 140],  # Eta: neutral mid gray
], dtype=np.float64)


def _fill_to(mask, score, allowed, fraction, value):
    """Set ``value`` on the highest-scoring allowed pixels until ``fraction`` of the image is covered."""
    n = int(round(fraction * mask.size))
    flat = np.where(allowed, score, -np.inf).ravel()
    n = min(n, int(np.isfinite(flat).sum()))
    if n <= 0:
        return
    idx = np.argpartition(-flat, n - 1)[:n]
    mask.ravel()[idx] = value


def _pair_value(u, v, i, j):
    """A symmetric pseudo-random value in [0, 1) per unordered grain pair (i, j)."""
    return np.mod(u[i] * u[j] * 97.1 + (v[i] + v[j]) * 13.3, 1.0)


def _triple_value(u, v, i, j, k):
    """A symmetric pseudo-random value in [0, 1) per unordered grain triple (i, j, k)."""
    return np.mod(u[i] * u[j] * u[k] * 211.7 + (v[i] + v[j] + v[k]) * 31.9, 1.0)


def _grains(rng, h, w, scale):
    """Voronoi grains: label of the nearest seed and the distances to the 3 nearest seeds (warped plane)."""
    s = GRAIN_PX * scale
    ny, nx = int(np.ceil(h / s)) + 2, int(np.ceil(w / s)) + 2
    gy, gx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    seeds = np.stack([(gy.ravel() - 1 + rng.uniform(0.1, 0.9, gy.size)) * s,
                      (gx.ravel() - 1 + rng.uniform(0.1, 0.9, gx.size)) * s], 1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    amp = 1.6 * scale  # gently curved boundaries
    py = yy + amp * _smooth_noise(rng, h, w, 0.35 * s)
    px = xx + amp * _smooth_noise(rng, h, w, 0.35 * s)
    d, idx = cKDTree(seeds).query(np.stack([py.ravel(), px.ravel()], 1), k=3)
    d = d.reshape(h, w, 3)
    idx = idx.reshape(h, w, 3)
    return idx, d, len(seeds)


def _masks(rng, h, w, scale):
    idx, d, n = _grains(rng, h, w, scale)
    label = idx[..., 0]
    gb = d[..., 1] - d[..., 0]  # ~2x the distance to the grain boundary
    tj = d[..., 2] - d[..., 0]  # small near triple junctions
    boundary = gb < 1.3 * scale
    u, v = rng.random(n), rng.random(n)
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    # large-scale heterogeneity: some regions richer in oxide / Eta than others
    region = _smooth_noise(rng, h, w, 2.0 * GRAIN_PX * scale)

    # oxide: rounded blobs; half of the centres at triple junctions (where oxides tend to sit)
    mean_r2 = (4.6 * scale) ** 2 * np.exp(2 * 0.35 ** 2)
    k = max(1, int(round(h * w * TARGET[1] / (np.pi * mean_r2) * 1.25)))
    rad = np.clip(rng.lognormal(np.log(4.6 * scale), 0.35, k), 2.2 * scale, 11.0 * scale)
    centres = rng.uniform(0, 1, (k, 2)) * [h, w]
    junction_px = np.flatnonzero((tj < 1.0 * scale).ravel())
    at_tj = rng.random(k) < 0.5
    if junction_px.size:
        pick = junction_px[rng.integers(0, junction_px.size, k)]
        centres[at_tj] = np.stack([pick // w, pick % w], 1)[at_tj]
    dist, which = cKDTree(centres).query(np.stack([yy.ravel(), xx.ravel()], 1))
    rel = (dist / rad[which]).reshape(h, w) + 0.18 * _smooth_noise(rng, h, w, 1.6 * scale) - 0.15 * region
    _fill_to(mask, -rel, True, TARGET[1], 1)

    # Nd-rich: triangular pockets at some triple junctions, thin bands along some grain boundaries
    jun_on = _triple_value(u, v, idx[..., 0], idx[..., 1], idx[..., 2]) < 0.45
    band_on = _pair_value(u, v, idx[..., 0], idx[..., 1]) < 0.16
    nd_score = np.maximum(np.where(jun_on, -tj / 3.2, -np.inf), np.where(band_on, -gb / 1.0 - 1.0 * scale, -np.inf))
    nd_score = nd_score + 0.25 * scale * _smooth_noise(rng, h, w, 1.5 * scale)
    _fill_to(mask, nd_score, mask == 0, TARGET[2], 2)

    # Eta: irregular patches inside host grains (thresholded smooth noise, clipped to the host grains)
    host = rng.random(n) < 0.30
    eta_score = (_smooth_noise(rng, h, w, 2.5 * scale) + np.where(host[label], 4.0, 0.0) - 0.6 * region
                 + 0.25 * np.minimum(gb / scale, 4))  # a little away from the grain boundaries
    _fill_to(mask, eta_score, (mask == 0) & ~boundary, TARGET[3], 3)
    return mask, label, boundary, n


def _render(rng, mask, label, boundary, n, scale):
    h, w = mask.shape
    img = COLORS[mask].copy()
    # each matrix grain its own shade (brightness and a little hue); other phases vary less
    shade = rng.normal(0, 10, n)[label]
    tint = rng.normal(0, 3, (n, 3))[label]
    weight = np.where(mask == 0, 1.0, 0.25)[..., None]
    img += (shade[..., None] + tint) * weight
    # fine texture: grainy inside the matrix, mottled in Eta and oxide
    fine = _smooth_noise(rng, h, w, 0.7)
    mottle = _smooth_noise(rng, h, w, 1.8 * scale)
    amp_fine = np.array([4.5, 7.0, 4.0, 5.0])[mask]
    amp_mottle = np.array([3.0, 6.0, 2.0, 12.0])[mask]
    img += (amp_fine * fine + amp_mottle * mottle)[..., None]
    # thin dark grain boundaries (only where the grain boundary is not covered by another phase)
    img[boundary & (mask == 0)] *= 0.62
    # oxide rims slightly darker (relief at the inclusion edge)
    ox = mask == 1
    rim = ox & ~ndi.binary_erosion(ox, iterations=max(1, int(round(scale))))
    img[rim] *= 0.88
    # faint polishing scratches
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for _ in range(rng.integers(2, 6)):
        a = rng.uniform(0, np.pi)
        c = rng.uniform(-0.5, 0.5) * (h + w)
        dist = np.abs(np.cos(a) * (xx - w / 2) + np.sin(a) * (yy - h / 2) - c)
        img *= (1.0 - rng.uniform(0.03, 0.07) * np.exp(-0.5 * (dist / (0.6 * scale)) ** 2))[..., None]
    # optics: blur, colour fringes (red shifted, blue blurred more), illumination gradient, noise
    img = np.stack([ndi.gaussian_filter(img[..., c], 1.0) for c in range(3)], -1)
    img[..., 0] = ndi.shift(img[..., 0], (0.0, 0.8), order=1, mode="nearest")
    img[..., 2] = ndi.shift(ndi.gaussian_filter(img[..., 2], 0.7), (0.6, -0.4), order=1, mode="nearest")
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * (xx / max(w - 1, 1) - 0.5) + np.sin(ang) * (yy / max(h - 1, 1) - 0.5)
    r2 = ((xx - rng.uniform(0, w)) / max(w, 1)) ** 2 + ((yy - rng.uniform(0, h)) / max(h, 1)) ** 2
    light = 1.0 + rng.uniform(0.14, 0.24) * ramp - 0.10 * r2
    img *= (light / light.mean())[..., None]
    img += rng.normal(0, 2.5, (h, w))[..., None] + rng.normal(0, 4.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _model_made(rng, hq, scale):
    """An imperfect expert model's mask: the faults of ``dualgen.data.labelnoise`` (the same code as
    ``data.simulate_lq``) at the phantom's feature scale: jittered boundaries, grown/shrunk objects, missed
    small objects, spurious blobs and, in about half of the images, one large wrongly labelled region."""
    return labelnoise.simulate(hq, rng, num_classes=len(CLASS_NAMES), **labelnoise.phantom_settings(scale))


def generate(seed: int, height: int, width: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (image uint8 (H, W, 3), hq_mask uint8 (H, W), lq_mask uint8 (H, W)). Same args -> identical bytes.

    ``scale`` multiplies all feature sizes (grains, inclusions, bands, boundary lines); 1.0 suits 64 px patches.
    Masks hold class indices 0..3 in the order of ``CLASS_NAMES``.
    """
    height, width, scale = int(height), int(width), float(scale)
    if height < 1 or width < 1:
        raise ValueError(f"phantom: height and width must be positive, got {height} x {width}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"phantom: scale must be a positive number, got {scale}")
    rng = np.random.default_rng(seed)
    hq, label, boundary, n = _masks(rng, height, width, scale)
    image = _render(rng, hq, label, boundary, n, scale)
    lq = _model_made(rng, hq, scale)
    return image, hq, lq
