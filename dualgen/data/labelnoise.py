"""Simulated low-quality masks: the faults of a model-made segmentation, derived from a true mask.

A controlled label-noise study for users with one mask set (``data.simulate_lq``), and the LQ masks of the
demo phantom (``dualgen.data.phantom``), from the same code. ``simulate(mask, rng, ...)`` applies, in this order:

* boundary faults (``boundary_px`` = N): every class boundary displaced by a smooth random field (0.4 N px
  typical, at most N px; at most 1 px when N < 1), and some objects grown (8 %) or shrunk (8 % of the objects
  that are not small) by round(N) px (at least 1); 0 turns both off;
* small objects missed (``miss_small_px``): each object smaller than this many pixels is missed with
  probability 0.2; it takes the label around it;
* spurious small blobs (``blob_rate``): this many blobs per 10,000 px (100 x 100 px) of a random
  non-background class, discs of radius 0.32..1 x sqrt(miss_small_px / pi) px (at least 1 px);
* now and then a large region given the wrong class (``swap_rate``): the expected number of such regions per
  image (0.5: one region in about half of the images); a region is a rough disc of radius 12-22 % of the
  image's shorter side in which one class present there is given another class's id.

No fault creates a class id outside 0..num_classes-1. ``disagreement`` measures the result: the share of
pixels changed and, per class, the share of that class's true pixels given another label.
"""

import zlib

import numpy as np
from scipy import ndimage as ndi

KEYS = ("boundary_px", "blob_rate", "miss_small_px", "swap_rate", "seed")
DEFAULTS = {"boundary_px": 1.0, "blob_rate": 4.0, "miss_small_px": 30, "swap_rate": 0.5, "seed": 0}
MISS_PROB = 0.2  # share of the small objects that are missed
GROW_PROB = 0.08  # share of the objects grown by the boundary width
SHRINK_PROB = 0.08  # share of the (not small) objects shrunk by the boundary width
SWAP_RADIUS = (0.12, 0.22)  # wrong region: radius as a share of the shorter image side


def smooth_noise(rng, h, w, sigma):
    """Gaussian-filtered white noise with unit standard deviation in expectation (for any image size, so a
    small image looks like a crop of a large one). Wide fields are filtered on a coarser grid and
    interpolated (linear), which keeps large images fast."""
    sigma = max(float(sigma), 0.3)
    f = max(1, int(sigma // 3))  # coarse grid step: the filter stays >= 3 coarse cells wide
    sc = sigma / f
    radius = int(4.0 * sc + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sc) ** 2)
    k /= k.sum()
    hc, wc = (h - 1) // f + 2, (w - 1) // f + 2
    n = ndi.gaussian_filter(rng.standard_normal((hc, wc)), sc, mode="reflect") / np.sum(k**2)
    if f == 1:
        return n[:h, :w]
    t = np.arange(h) / f
    i0 = t.astype(np.intp)
    t = (t - i0)[:, None]
    n = n[i0] * (1 - t) + n[i0 + 1] * t
    t = np.arange(w) / f
    i0 = t.astype(np.intp)
    t = t - i0
    return n[:, i0] * (1 - t) + n[:, i0 + 1] * t


def _disc(shape, cy, cx, r):
    y0, y1 = max(0, int(cy - r)), min(shape[0], int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r)), min(shape[1], int(cx + r) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return (slice(y0, y1), slice(x0, x1)), (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _fill_from_outside(lq, region):
    """Give the pixels of ``region`` the label of the nearest pixel outside it (an object that disappears takes
    the label around it)."""
    if not region.any() or region.all():
        return
    _, (iy, ix) = ndi.distance_transform_edt(region, return_indices=True)
    lq[region] = lq[iy[region], ix[region]]


def simulate(
    mask, rng, boundary_px=1.0, blob_rate=4.0, miss_small_px=30, swap_rate=0.5, num_classes=None, background=0
):
    """A model-made version of ``mask`` (uint8 (H, W) class ids): see the module docstring for the faults.

    ``rng``: a ``numpy.random.Generator`` (the same generator state -> the same mask).
    """
    mask = np.asarray(mask, dtype=np.uint8)
    h, w = mask.shape
    k_classes = int(num_classes) if num_classes else int(mask.max()) + 1
    boundary_px, blob_rate = float(boundary_px), float(blob_rate)
    miss_small_px, swap_rate = float(miss_small_px), float(swap_rate)
    lq = mask.copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # boundaries displaced by a smooth random field: 0.4 N typical, at most N
    if boundary_px > 0:
        cap = max(boundary_px, 1.0)  # a pixel grid has no smaller shift
        dy = np.clip(0.4 * boundary_px * smooth_noise(rng, h, w, 8.0 * boundary_px), -cap, cap)
        dx = np.clip(0.4 * boundary_px * smooth_noise(rng, h, w, 8.0 * boundary_px), -cap, cap)
        lq = ndi.map_coordinates(
            mask, [np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)], order=0, mode="nearest"
        ).astype(np.uint8)
    # per object: grown or shrunk by the boundary width, or missed when small
    it = max(1, int(round(boundary_px)))
    for cls in range(k_classes):
        if cls == background:
            continue
        comp, k = ndi.label(lq == cls)
        if not k:
            continue
        sizes = np.bincount(comp.ravel(), minlength=k + 1)
        act = rng.random(k + 1)
        small = sizes < miss_small_px
        drop = (act < MISS_PROB) & small
        grow = (act > 1.0 - GROW_PROB) & (boundary_px > 0)
        shrink = (act >= MISS_PROB) & (act < MISS_PROB + SHRINK_PROB) & ~small & (boundary_px > 0)
        drop[0] = grow[0] = shrink[0] = False
        sel = shrink[comp]
        if sel.any():
            _fill_from_outside(lq, sel & ~ndi.binary_erosion(sel, iterations=it))
        sel = grow[comp]
        if sel.any():
            lq[ndi.binary_dilation(sel, iterations=it) & (lq != cls)] = cls
        _fill_from_outside(lq, drop[comp])
    # spurious small blobs of non-background classes
    others = [c for c in range(k_classes) if c != background]
    n_blobs = int(round(h * w * blob_rate / 1e4))
    if blob_rate > 0 and others:
        n_blobs = max(1, n_blobs)
        r_max = max(1.0, float(np.sqrt(miss_small_px / np.pi)))
        for cy, cx, r, c in zip(
            rng.uniform(0, h, n_blobs),
            rng.uniform(0, w, n_blobs),
            rng.uniform(0.32, 1.0, n_blobs) * r_max,
            rng.integers(0, len(others), n_blobs),
        ):
            win, disc = _disc(lq.shape, cy, cx, r)
            lq[win][disc] = others[c]
    # now and then a large region given the wrong class
    n_swaps = int(np.floor(swap_rate)) + int(rng.random() < swap_rate - np.floor(swap_rate))
    for _ in range(n_swaps if k_classes > 1 else 0):
        r = rng.uniform(*SWAP_RADIUS) * min(h, w)
        cy, cx = rng.uniform(r, max(r, h - r)), rng.uniform(r, max(r, w - r))
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2 + 0.3 * smooth_noise(rng, h, w, 0.15 * r) < 1.0
        present = [c for c in np.unique(lq[blob]) if c != background] or list(np.unique(lq[blob]))
        if not present:
            continue
        src = int(present[rng.integers(0, len(present))])
        targets = [c for c in range(k_classes) if c != src]
        lq[blob & (lq == src)] = targets[rng.integers(0, len(targets))]
    return lq


def rng_for(seed, name):
    """The generator of one image: from the seed and the image's name (adding an image changes no other's)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(name).encode())])


def disagreement(pairs, num_classes):
    """pairs: iterable of (true mask, simulated mask). Returns {"changed": share of pixels with another label,
    "per_class": [share of class k's true pixels given another label (None where the class is absent)]}."""
    total = changed = 0
    per_true = np.zeros(num_classes, np.int64)
    per_changed = np.zeros(num_classes, np.int64)
    for hq, lq in pairs:
        diff = hq != lq
        total += hq.size
        changed += int(diff.sum())
        per_true += np.bincount(hq.ravel(), minlength=num_classes)[:num_classes]
        per_changed += np.bincount(hq[diff].ravel(), minlength=num_classes)[:num_classes]
    return {
        "changed": changed / total if total else 0.0,
        "per_class": [float(c / t) if t else None for c, t in zip(per_changed, per_true)],
    }


def describe(stats, class_names):
    """One line: 5.3 % of pixels changed (matrix 2.1 %, oxide 12.0 %, ...)."""
    parts = [f"{n} {s:.1%}" if s is not None else f"{n} absent" for n, s in zip(class_names, stats["per_class"])]
    return f"{stats['changed']:.2%} of pixels changed ({', '.join(parts)})"


def phantom_settings(scale):
    """The fault settings of the demo phantom's LQ masks at a feature scale (4.7-6.1 % of pixels changed)."""
    return {
        "boundary_px": float(scale),
        "blob_rate": 4.0 / scale**2,
        "miss_small_px": 30.0 * scale**2,
        "swap_rate": 0.5,
    }
