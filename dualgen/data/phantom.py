"""Demo micrographs with exact masks: the paper's Fe14Nd2B magnet (brightfield, RGB; ``generate``, data.demo.kind
rgb) and a gray SEM-like steel with an info band (``generate_sem``, kind sem; described at its code below).

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

from dualgen.core.errors import DualgenError
from dualgen.data import labelnoise
from dualgen.data.labelnoise import smooth_noise as _smooth_noise

CLASS_NAMES = ("matrix", "oxide", "nd_rich", "eta")
TARGET = {1: 0.080, 2: 0.056, 3: 0.076}  # paper's test set (Table 2); matrix gets the rest (78.8 %)
GRAIN_PX = 22.0  # mean grain diameter at scale 1
COLORS = np.array(
    [
        [121, 106, 83],  # matrix: brownish olive gray
        [176, 188, 206],  # oxide: light bluish gray
        [240, 236, 224],  # Nd-rich: near white
        [142, 142, 140],  # Eta: neutral mid gray
    ],
    dtype=np.float64,
)


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


def _grains(rng, h, w, scale, grain_px=GRAIN_PX):
    """Voronoi grains ``grain_px`` across at scale 1: label of the nearest seed and the distances to the 3 nearest
    seeds (warped plane)."""
    s = grain_px * scale
    ny, nx = int(np.ceil(h / s)) + 2, int(np.ceil(w / s)) + 2
    gy, gx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    seeds = np.stack(
        [(gy.ravel() - 1 + rng.uniform(0.1, 0.9, gy.size)) * s, (gx.ravel() - 1 + rng.uniform(0.1, 0.9, gx.size)) * s],
        1,
    )
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
    mean_r2 = (4.6 * scale) ** 2 * np.exp(2 * 0.35**2)
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
    eta_score = (
        _smooth_noise(rng, h, w, 2.5 * scale)
        + np.where(host[label], 4.0, 0.0)
        - 0.6 * region
        + 0.25 * np.minimum(gb / scale, 4)
    )  # a little away from the grain boundaries
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


def _checked(height, width, scale):
    height, width, scale = int(height), int(width), float(scale)
    if height < 1 or width < 1:
        raise ValueError(f"phantom: height and width must be positive, got {height} x {width}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"phantom: scale must be a positive number, got {scale}")
    return height, width, scale


def generate(seed: int, height: int, width: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (image uint8 (H, W, 3), hq_mask uint8 (H, W), lq_mask uint8 (H, W)). Same args -> identical bytes.

    ``scale`` multiplies all feature sizes (grains, inclusions, bands, boundary lines); 1.0 suits 64 px patches.
    Masks hold class indices 0..3 in the order of ``CLASS_NAMES``.
    """
    height, width, scale = _checked(height, width, scale)
    rng = np.random.default_rng(seed)
    hq, label, boundary, n = _masks(rng, height, width, scale)
    image = _render(rng, hq, label, boundary, n, scale)
    lq = _model_made(rng, hq, scale)
    return image, hq, lq


# ---- the SEM flavour (data.demo.kind: sem) ----------------------------------------------------------------------
# A steel as a public SEM set shows it: classes 0 matrix (ferrite grains), 1 lath (packets of bainite/martensite
# laths), 2 island (a third phase), 3 precipitate, 4 inclusion (or pore). Microstructure: Voronoi grains ~44 px
# across at scale 1; the lath packets are whole grains, each with its own lath direction and a lath period of ~5 px;
# islands are elongated along the laths inside packets and rounder at the matrix grains' boundaries; precipitates
# are dots of ~5 px in clusters; inclusions rough blobs of ~100 px anywhere. Shares as the public set's, exactly
# (SEM_TARGET: 34.1 / 56 / 9 / 0.2 / 0.7 %). Appearance: matrix and laths at about the same gray level (each grain
# its own shade), told apart by the laths' stripes; light islands and precipitates, dark inclusions; dark grain
# boundaries, bright phase edges (the SEM edge effect), blur, a brightness gradient, the session's gain and offset,
# scan-line and shot noise. The image is stored as three nearly equal channels with an info band below it.

SEM_CLASS_NAMES = ("matrix", "lath", "island", "precipitate", "inclusion")
SEM_TARGET = {4: 0.007, 2: 0.090, 3: 0.002, 1: 0.560}  # filled in this order; matrix gets the rest (34.1 %)
SEM_GRAIN_PX = 44.0  # mean grain (packet) diameter at scale 1
LATH_PX = 5.0  # lath period at scale 1
BAND_SHARE = 0.07  # info band rows below the micrograph, as a share of its height
SEM_LEVELS = np.array([100.0, 106.0, 150.0, 215.0, 45.0])  # gray level per class before texture and optics
SEM_RELIEF = np.array([0.0, 0.25, 1.0, 1.2, -1.0])  # per class "height": phase edges light up (SEM edge effect)
SCALE_BAR_RGB = (60, 200, 255)  # the info band's coloured scale bar


def band_rows(height):
    """Rows of the SEM demo's info band below a micrograph of ``height`` rows (about 7 %, at least 4)."""
    return max(4, int(round(BAND_SHARE * height)))


def _oriented_noise(rng, theta, sigma, elong):
    """Smooth unit noise whose features are ``elong`` times longer along the direction ``theta`` (radians, per
    pixel) than across it: one field sampled on coordinates rotated by each pixel's ``theta``."""
    h, w = theta.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = np.cos(theta), np.sin(theta)
    r = int(np.ceil(np.hypot(h, w))) + 2
    field = _smooth_noise(rng, 2 * r + 1, int(2 * r / elong) + 3, sigma)
    coords = [-xx * s + yy * c + r, (xx * c + yy * s) / elong + r / elong + 1]
    return ndi.map_coordinates(field, coords, order=1, mode="nearest")


def _dots(rng, h, w, k, radius, where, sigma_log, rough):
    """Score of round objects (higher = more inside): ``k`` centres drawn from the pixels ``where`` (anywhere
    when it is empty), log-normal radii around ``radius``, edges roughened by ``rough``."""
    pool = np.flatnonzero(where.ravel())
    pick = pool[rng.integers(0, pool.size, k)] if pool.size else rng.integers(0, h * w, k)
    centres = np.stack([pick // w + rng.uniform(-0.5, 0.5, k), pick % w + rng.uniform(-0.5, 0.5, k)], 1)
    rad = np.clip(rng.lognormal(np.log(radius), sigma_log, k), 0.5 * radius, 2.0 * radius)
    yy, xx = np.mgrid[0:h, 0:w]
    dist, which = cKDTree(centres).query(np.stack([yy.ravel(), xx.ravel()], 1))
    rel = (dist / rad[which]).reshape(h, w)
    return -(rel + rough * _smooth_noise(rng, h, w, max(radius, 1.0)))


def _sem_masks(rng, h, w, scale):
    """Exact 5-class mask and what rendering needs: grain labels, grain boundaries, lath orientation, stripes."""
    idx, d, n = _grains(rng, h, w, scale, SEM_GRAIN_PX)
    label = idx[..., 0]
    gb = d[..., 1] - d[..., 0]
    boundary = gb < 1.5 * scale
    # lath packets: whole grains ranked by a per-grain value, the last one cut by smooth noise
    lath_score = rng.random(n)[label] + 0.12 * _smooth_noise(rng, h, w, 0.4 * SEM_GRAIN_PX * scale)
    lath_like = np.zeros((h, w), bool)
    _fill_to(lath_like.view(np.uint8), lath_score, True, SEM_TARGET[1] + 0.06, 1)
    theta = rng.uniform(0, np.pi, n)[label] + 0.08 * _smooth_noise(rng, h, w, SEM_GRAIN_PX * scale)  # bent a little
    period = (LATH_PX * scale * rng.uniform(0.8, 1.25, n))[label]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    across = -xx * np.sin(theta) + yy * np.cos(theta) + 0.6 * scale * _smooth_noise(rng, h, w, 3.0 * scale)
    stripes = np.cos(2 * np.pi * across / period + rng.uniform(0, 2 * np.pi, n)[label])
    mask = np.zeros((h, w), np.uint8)
    area = h * w
    # inclusions / pores: small rough blobs anywhere (in about a fifth of the 64 px patches at scale 1)
    r_inc = 5.5 * scale
    k = max(1, int(round(area * SEM_TARGET[4] / (np.pi * r_inc**2) * 1.3)))
    _fill_to(mask, _dots(rng, h, w, k, r_inc, np.zeros((h, w), bool), 0.3, 0.12), True, SEM_TARGET[4], 4)
    # islands: elongated between the laths of packets, rounder at the boundaries of matrix grains
    along = _oriented_noise(rng, theta, 1.3 * scale, 4.0)
    blob = _smooth_noise(rng, h, w, 2.2 * scale)
    island_score = np.where(lath_like, along + 0.35 * stripes, blob + 1.6 * np.exp(-gb / (3.0 * scale)) - 0.4)
    _fill_to(mask, island_score, mask == 0, SEM_TARGET[2], 2)
    # precipitates: tiny dots in clusters (about a third of the area), most inside matrix grains, some on the
    # laths' boundaries
    r_pre = 1.1 * scale
    k = max(1, int(round(area * SEM_TARGET[3] / (np.pi * r_pre**2))))
    cluster = _smooth_noise(rng, h, w, 1.5 * SEM_GRAIN_PX * scale) > 0.45
    sites = cluster & ((~lath_like & ~boundary) | (lath_like & (stripes > 0.8)))
    _fill_to(mask, _dots(rng, h, w, k, r_pre, sites & (mask == 0), 0.25, 0.0), mask == 0, SEM_TARGET[3], 3)
    # laths: the packets
    _fill_to(mask, lath_score, mask == 0, SEM_TARGET[1], 1)
    return mask, label, boundary, n, theta, stripes


def _sem_render(rng, mask, label, boundary, n, theta, stripes, scale):
    """Gray SEM-like image (float) of the mask: matrix and laths at about the same level, told apart by texture."""
    h, w = mask.shape
    img = SEM_LEVELS[mask].copy()
    # channelling contrast: each grain its own shade, matrix and laths alike (so their levels overlap)
    img += rng.normal(0, 9.0, n)[label] * np.array([1.0, 1.0, 0.4, 0.0, 0.0])[mask]
    lath, matrix = mask == 1, mask == 0
    # laths: parallel stripes, light lath boundaries (carbide films), streaky texture along the laths
    streak = _oriented_noise(rng, theta, 1.0 * scale, 5.0)
    img += np.where(lath, 14.0 * stripes + 12.0 * np.clip(stripes - 0.85, 0, None) / 0.15 + 5.0 * streak, 0.0)
    # matrix: smooth with fine grain; islands mottled
    fine = _smooth_noise(rng, h, w, 0.8)
    mottle = _smooth_noise(rng, h, w, 2.0 * scale)
    img += np.array([3.0, 2.0, 4.0, 3.0, 3.0])[mask] * fine + np.array([3.0, 0.0, 7.0, 0.0, 4.0])[mask] * mottle
    # etched grain boundaries: dark grooves between matrix grains and along packet boundaries
    img[boundary & (matrix | lath)] *= 0.72
    # edge effect: phase edges light up with the local slope of the relief
    relief = ndi.gaussian_filter(SEM_RELIEF[mask], 0.8 * scale)
    gy, gx = np.gradient(relief)
    img += 45.0 * np.hypot(gy, gx) / max(scale, 0.5)
    # optics and detector: blur, brightness/contrast of the session, a gradient, scan-line and shot noise
    img = ndi.gaussian_filter(img, 0.7)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * (xx / max(w - 1, 1) - 0.5) + np.sin(ang) * (yy / max(h - 1, 1) - 0.5)
    img = img * rng.normal(1.0, 0.05) * (1.0 + rng.uniform(0.05, 0.12) * ramp) + rng.normal(0, 5.0)
    img += rng.normal(0, 1.5, (h, 1)) + rng.normal(0, 1.0, (h, w)) * np.sqrt(np.clip(img, 1, None)) * 0.55
    return np.clip(img, 0, 255)


def _text(rng, white, y, x, count, cell, stop):
    """Stamp ``count`` pseudo-characters (5 x 3 blocks of ``cell`` px) into ``white`` from (y, x), left to right,
    up to column ``stop``; returns the column after the last one."""
    bits = rng.random((count, 5, 3)) < 0.55
    bits[:, :, 1] |= bits[:, :, 0] & bits[:, :, 2]  # closed strokes
    for b in bits:
        g = np.kron(b, np.ones((cell, cell), bool))
        gh, gw = g.shape
        if y < 0 or y + gh > white.shape[0] or x + gw > stop:
            break
        white[y : y + gh, x : x + gw] |= g
        x += gw + cell
    return x


def _info_band(rng, rows, width):
    """The info band below an SEM micrograph: black, white text fields (voltage, distance, magnification...) and a
    coloured scale bar with its label, uint8 (rows, width, 3)."""
    band = np.zeros((rows, width, 3), np.float64) + rng.uniform(0, 6, (rows, width, 1))
    white = np.zeros((rows, width), bool)
    cell = max(1, rows // 15)  # characters a third of the band high
    x = max(1, width // 64)
    for _ in range(4):  # text fields in the left 70 %
        x = _text(rng, white, (rows - 5 * cell) // 2, x, int(rng.integers(4, 8)), cell, int(0.7 * width))
        x += 9 * cell
    bar_h, bar_w = max(1, rows // 6), max(2, int(0.12 * width))
    bx = width - bar_w - max(1, width // 32)
    band[rows // 2 + 1 : rows // 2 + 1 + bar_h, bx : bx + bar_w] = SCALE_BAR_RGB
    _text(rng, white, rows // 2 - 1 - 5 * cell, bx, 3, cell, width)  # the bar's label above it
    band[white] = 235.0
    return np.clip(np.rint(band), 0, 255).astype(np.uint8)


def _as_stored_rgb(rng, gray):
    """A gray image stored as RGB the way JPEG files hold it: three nearly equal channels (chroma noise of a few
    levels, well inside ``dualgen.data.io.is_gray``'s tolerance)."""
    rgb = np.rint(gray)[..., None] + rng.integers(-2, 3, gray.shape + (3,))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def sem_lq_settings(scale):
    """The labelnoise fault settings of the SEM demo's LQ masks (those of the RGB demo)."""
    return labelnoise.phantom_settings(scale)


def generate_sem(seed: int, height: int, width: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (image uint8 (H + band, W, 3), hq_mask uint8 (H, W), lq_mask uint8 (H, W)) of an SEM-like steel
    micrograph. Same args -> identical bytes.

    The image is gray, stored as three nearly equal channels, with an info band of ``band_rows(H)`` rows below
    the micrograph; the masks cover the micrograph only (cut the band with ``data.crop_height: auto``).
    ``scale`` multiplies all feature sizes; 1.0 suits 64 px patches. Masks hold class indices 0..4 in the order
    of ``SEM_CLASS_NAMES``.
    """
    height, width, scale = _checked(height, width, scale)
    rng = np.random.default_rng(seed)
    hq, label, boundary, n, theta, stripes = _sem_masks(rng, height, width, scale)
    gray = _sem_render(rng, hq, label, boundary, n, theta, stripes, scale)
    image = np.concatenate([_as_stored_rgb(rng, gray), _info_band(rng, band_rows(height), width)], 0)
    lq = labelnoise.simulate(hq, rng, num_classes=len(SEM_CLASS_NAMES), **sem_lq_settings(scale))
    return image, hq, lq


# data.demo.kind -> (class names, generator, the LQ masks' labelnoise settings at a scale)
KINDS = {
    "rgb": (CLASS_NAMES, generate, labelnoise.phantom_settings),
    "sem": (SEM_CLASS_NAMES, generate_sem, sem_lq_settings),
}


def check_classes(kind, n_classes):
    """The config's classes must be as many as the demo's (data.source: demo): raise DualgenError otherwise."""
    names = KINDS[kind][0]
    if n_classes != len(names):
        hint = "the default classes" if kind == "rgb" else "the classes of presets/sem.yaml"
        raise DualgenError(
            f"config: classes has {n_classes} entries but the {kind} demo data has {len(names)} classes "
            f"({', '.join(names)}): use {hint} with data.source: demo and data.demo.kind: {kind}"
        )
