"""Demo micrographs that resemble the paper's Fe14Nd2B magnet (brightfield, RGB) with exact masks.

``generate(seed, height, width, scale)`` returns the image, the exact (HQ) mask and a "model-made" (LQ)
mask with the faults of an imperfect segmentation model. Classes: 0 matrix (Phi grains), 1 oxide,
2 Nd-rich, 3 Eta. Class shares are calibrated to the paper's test set (79 / 8 / 6 / 8 %).
Same arguments -> same bytes (one numpy Generator, no global state).
"""
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

CLASS_NAMES = ("matrix", "oxide", "nd_rich", "eta")
TARGET = {1: 0.08, 2: 0.06, 3: 0.08}  # oxide, Nd-rich, Eta; the rest is matrix
COLORS = np.array([
    [122, 108, 86],   # matrix: brownish olive gray
    [178, 186, 198],  # oxide: light bluish gray
    [236, 230, 212],  # Nd-rich: near white
    [166, 164, 160],  # Eta: mid gray, more neutral than the matrix
], dtype=np.float64)


def _grains(rng, h, w, size):
    n = max(4, int(h * w / size ** 2))
    seeds = rng.uniform(0, 1, size=(n, 2)) * [h, w]
    yy, xx = np.mgrid[0:h, 0:w]
    _, label = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
    label = label.reshape(h, w)
    boundary = np.zeros((h, w), bool)
    boundary[:-1] |= label[:-1] != label[1:]
    boundary[:, :-1] |= label[:, :-1] != label[:, 1:]
    return label, n, boundary


def _smooth_noise(rng, h, w, sigma):
    return ndi.gaussian_filter(rng.standard_normal((h, w)), sigma, mode="wrap")


def _fill_to(mask, candidate_score, allowed, fraction, value):
    """Set ``value`` where the score is highest among allowed pixels until ``fraction`` of the image is covered."""
    n = int(round(fraction * mask.size))
    scores = np.where(allowed, candidate_score, -np.inf).ravel()
    if n <= 0:
        return
    idx = np.argpartition(-scores, n - 1)[:n]
    idx = idx[np.isfinite(scores[idx])]
    mask.ravel()[idx] = value


def _masks(rng, h, w, scale):
    grain = 22.0 * scale
    label, n, boundary = _grains(rng, h, w, grain)
    mask = np.zeros((h, w), np.uint8)
    # oxide: rounded blobs (distance to random centres, slightly elliptical)
    k = max(1, int(h * w * TARGET[1] / (np.pi * (5.0 * scale) ** 2)))
    centres = rng.uniform(0, 1, (k, 2)) * [h, w]
    radii = rng.uniform(3.0, 8.0, k) * scale
    yy, xx = np.mgrid[0:h, 0:w]
    dist, which = cKDTree(centres).query(np.stack([yy.ravel(), xx.ravel()], 1))
    rel = (dist / radii[which]).reshape(h, w) + _smooth_noise(rng, h, w, 1.5 * scale) * 0.8
    _fill_to(mask, -rel, rel < 1.6, TARGET[1], 1)
    # Nd-rich: thin bright bands along some grain boundaries, thicker at triple junctions
    lab_max = ndi.maximum_filter(label, 3)
    lab_min = ndi.minimum_filter(label, 3)
    mid = ndi.median_filter(label, 3)
    junction = (lab_max != lab_min) & (mid != lab_max) & (mid != lab_min)
    chosen = rng.random(n) < 0.3
    near_boundary = ndi.distance_transform_edt(~boundary)
    near_junction = ndi.distance_transform_edt(~junction)
    nd_score = -np.minimum(near_boundary + 1.5 * (~chosen[label]) * 10, near_junction * 0.45)
    nd_score += _smooth_noise(rng, h, w, 2.0 * scale) * 0.3
    _fill_to(mask, nd_score, (mask != 1), TARGET[2], 2)
    # Eta: irregular patches from smooth noise, favouring some grains, on what is still matrix
    grain_pref = rng.uniform(-1, 1, n)[label] * 0.6
    eta_score = _smooth_noise(rng, h, w, 3.0 * scale) * 8 + grain_pref
    _fill_to(mask, eta_score, mask == 0, TARGET[3], 3)
    return mask, label, boundary


def _render(rng, mask, label, boundary, scale):
    h, w = mask.shape
    n = label.max() + 1
    img = COLORS[mask].copy()
    shade = rng.normal(0, 9, n)[label]  # each grain its own shade
    img += np.where(mask == 0, shade, shade * 0.3)[..., None]
    texture = ndi.gaussian_filter(rng.standard_normal((h, w)), 0.8) * 10
    img += texture[..., None]
    img[boundary & (mask == 0)] *= 0.62  # thin dark grain boundaries
    img = np.stack([ndi.gaussian_filter(img[..., c], 1.0) for c in range(3)], -1)
    # colour bleeding: red shifted by a pixel, blue blurred a little more
    img[..., 0] = ndi.shift(img[..., 0], (0.0, 1.0), order=1, mode="nearest")
    img[..., 2] = ndi.gaussian_filter(img[..., 2], 1.6)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    img *= (1.0 + 0.18 * (ramp - ramp.mean()))[..., None]  # illumination gradient
    img += rng.normal(0, 5, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _model_made(rng, hq, scale):
    """An imperfect expert model's mask: jittered boundaries, spurious blobs, missed objects, a wrong region."""
    h, w = hq.shape
    dy = _smooth_noise(rng, h, w, 4.0 * scale) * 8 * scale
    dx = _smooth_noise(rng, h, w, 4.0 * scale) * 8 * scale
    yy, xx = np.mgrid[0:h, 0:w]
    lq = ndi.map_coordinates(hq, [np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)], order=0).astype(np.uint8)
    # missed small objects
    for cls in (1, 2, 3):
        comp, k = ndi.label(lq == cls)
        if k:
            sizes = np.bincount(comp.ravel())
            small = np.flatnonzero((sizes < 25 * scale ** 2) & (np.arange(len(sizes)) > 0))
            drop = small[rng.random(len(small)) < 0.3]
            lq[np.isin(comp, drop)] = 0
    # spurious small blobs of wrong classes
    k = max(1, int(h * w / (90 * scale) ** 2 * 4))
    cy, cx = rng.integers(0, h, k), rng.integers(0, w, k)
    r = rng.uniform(1.0, 3.0, k) * scale
    cls = rng.integers(1, 4, k)
    for y, x, rad, c in zip(cy, cx, r, cls):
        y0, y1, x0, x1 = max(0, int(y - rad)), min(h, int(y + rad) + 1), max(0, int(x - rad)), min(w, int(x + rad) + 1)
        sub = (yy[y0:y1, x0:x1] - y) ** 2 + (xx[y0:y1, x0:x1] - x) ** 2 <= rad ** 2
        lq[y0:y1, x0:x1][sub] = c
    # now and then a large wrong region: Eta labelled as oxide inside a box
    if rng.random() < 0.5:
        bh, bw = int(h * rng.uniform(0.15, 0.3)), int(w * rng.uniform(0.15, 0.3))
        y0, x0 = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        box = lq[y0:y0 + bh, x0:x0 + bw]
        box[box == 3] = 1
    return lq


def generate(seed, height, width, scale=1.0):
    """Return (image uint8 (H, W, 3), hq_mask uint8 (H, W), lq_mask uint8 (H, W))."""
    rng = np.random.default_rng(seed)
    hq, label, boundary = _masks(rng, height, width, scale)
    image = _render(rng, hq, label, boundary, scale)
    lq = _model_made(rng, hq, scale)
    return image, hq, lq
