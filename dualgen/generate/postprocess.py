"""Cleaning decoded masks as the paper did (step 7, Fig. 11).

A raw mask is (H,W) in level units for the VQ-VAE's ``level`` mask encoding (the paper's) or (H,W,K), one score per
class, for ``onehot`` (``vqvae.mask_encoding``; ``mask_codec.MaskCodec``). Its first classification is the codec's
``classify``: k-means to the class levels for a level mask, the largest score for a one-hot one; an edge between two
classes of a one-hot mask then never turns into a third, so only the small objects and the smoothing below apply.

Level masks: the mask channel holds one level per class (class k -> k / (K - 1)), so a blurred edge between two
classes whose levels are not neighbours passes through the levels in between: k-means (or any nearest-level rule)
turns it into a thin rim of a class that is not there (e.g. oxide, level 1/3, along every matrix / nd_rich edge,
0 / 2/3). ``remove_rims`` gives such rims (runs of at most ``rim_px`` pixels along a row or column whose two
neighbours lie on either side of their level) to the neighbour whose level is nearer the raw value.
``remove_small_objects`` removes connected objects (8-connectivity) smaller than ``min_object_px`` and fills their
pixels from the nearest remaining pixel (the neighbouring class), so nothing is left unlabelled. ``smooth_classes``
(optional, ``postprocess.smooth_px``) then evens out the staircase edges the decoder leaves at its code-cell size: a
majority vote over a small window that keeps every class's area (so the phase fractions stay as sampled), thin
classes exempt.
"""

import numpy as np
from scipy import ndimage as ndi

from dualgen.core.errors import DualgenError
from dualgen.generate.mask_codec import mask_levels

EIGHT_CONNECTED = np.ones((3, 3), bool)
SMOOTH_ROUNDS = 30  # offset fits of smooth_classes (then a few pixels at most are placed one by one)
RIM_PX = 2  # in-between runs up to this long are edge blur, not a phase


def _remove_rims_along_rows(mask, raw, levels, rim_px):
    """One pass of ``remove_rims`` along the rows of ``mask``; returns (new mask, number of pixels changed)."""
    h, w = mask.shape
    padded = np.full((h, w + 2), -1, np.int64)  # a sentinel at both ends: no run crosses a row or touches nothing
    padded[:, 1:-1] = mask
    flat = padded.ravel()
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    lengths = np.diff(np.r_[starts, flat.size])
    values = flat[starts]
    prev_v, next_v = np.r_[-1, values[:-1]], np.r_[values[1:], -1]
    inner = (values >= 0) & (prev_v >= 0) & (next_v >= 0) & (lengths <= rim_px)
    lv = levels[np.clip(values, 0, None)]
    lp, ln = levels[np.clip(prev_v, 0, None)], levels[np.clip(next_v, 0, None)]
    rim = inner & (((lp < lv) & (lv < ln)) | ((ln < lv) & (lv < lp)))
    if not rim.any():
        return mask, 0
    pix = np.repeat(rim, lengths)  # per padded pixel
    prev_p, next_p = np.repeat(prev_v, lengths)[pix], np.repeat(next_v, lengths)[pix]
    r = np.pad(np.asarray(raw, np.float64), ((0, 0), (1, 1))).ravel()[pix]
    flat = flat.copy()
    flat[pix] = np.where(np.abs(r - levels[prev_p]) <= np.abs(r - levels[next_p]), prev_p, next_p)
    return flat.reshape(h, w + 2)[:, 1:-1], int(pix.sum())


def remove_rims(mask, raw_mask, num_classes, rim_px, max_passes=4):
    """Class mask (H,W) -> uint8 mask without in-between rims of at most ``rim_px`` pixels.

    A rim is a run of one class k along a row or a column, at most ``rim_px`` long and not touching the patch border,
    whose neighbours at its two ends are classes a and b with level(a) < level(k) < level(b) (levels as
    ``mask_levels``): what a blurred a / b edge looks like after nearest-level classification. Its pixels take a or b,
    whichever level is nearer the pixel's raw value (ties: a, the class before it). Rows, then columns, repeated
    until nothing changes (at most ``max_passes`` times). ``rim_px`` 0 switches it off."""
    mask = np.asarray(mask, dtype=np.uint8)
    raw = np.asarray(raw_mask, dtype=np.float64)
    if raw.shape != mask.shape:
        raise DualgenError(f"remove_rims: raw mask {raw.shape} and class mask {mask.shape} differ in shape")
    out = mask.astype(np.int64)
    if rim_px <= 0 or num_classes < 3:
        return mask.copy()
    levels = mask_levels(num_classes)
    for _ in range(max_passes):
        out, changed_rows = _remove_rims_along_rows(out, raw, levels, rim_px)
        out_t, changed_cols = _remove_rims_along_rows(out.T, raw.T, levels, rim_px)
        out = out_t.T
        if not changed_rows and not changed_cols:
            break
    return out.astype(np.uint8)


def _per_class(min_object_px, what="min_object_px"):
    """An int (every class) or a list (one per class id) -> a function class id -> threshold."""
    if isinstance(min_object_px, (list, tuple, np.ndarray)):
        values = [int(v) for v in min_object_px]
        if any(v < 0 for v in values):
            raise DualgenError(f"postprocess.{what} {list(min_object_px)}: sizes must be >= 0")

        def of(k):
            if k >= len(values):
                raise DualgenError(
                    f"postprocess.{what} has {len(values)} values but the mask holds class {k}: "
                    "give one value per class, in the order of classes"
                )
            return values[k]

        return of
    return lambda k: int(min_object_px)


def remove_small_objects(mask, min_object_px):
    """Class mask (H,W) -> uint8 mask without objects (8-connected, per class) smaller than ``min_object_px``.

    ``min_object_px``: one size for every class, or a list with one per class id (e.g. a class whose real objects
    are never that small, where a generator's specks are). Their pixels take the class of the nearest pixel that
    stays. If every object is small, the mask is kept."""
    mask = np.asarray(mask, dtype=np.uint8)
    threshold = _per_class(min_object_px)
    small = np.zeros(mask.shape, bool)
    for k in np.unique(mask):
        t = threshold(int(k))
        if t <= 1:
            continue
        objects, n = ndi.label(mask == k, structure=EIGHT_CONNECTED)
        sizes = np.bincount(objects.ravel(), minlength=n + 1)
        sizes[0] = t  # label 0 is "not class k", never small
        small |= sizes[objects] < t
    if small.all() or not small.any():
        return mask.copy()
    _, (iy, ix) = ndi.distance_transform_edt(small, return_indices=True)
    return mask[iy, ix]


def scaled_min_object_px(min_object_px_at_256, patch_size):
    """The paper's 200 px at 256-px patches, scaled with the patch area (at least 1; 0 switches it off); a list
    (one per class) gives the list of scaled sizes."""
    if isinstance(min_object_px_at_256, (list, tuple)):
        return [scaled_min_object_px(v, patch_size) for v in min_object_px_at_256]
    if min_object_px_at_256 <= 0:
        return 0
    return max(1, int(round(min_object_px_at_256 * (patch_size / 256.0) ** 2)))


def smooth_classes(mask, size, keep=(), rounds=SMOOTH_ROUNDS):
    """Majority smoothing that keeps each class's area exactly: uint8 mask (H,W).

    Every pixel not of a ``keep`` class takes the class with the largest share of its ``size`` x ``size`` window
    (edges: nearest pixel repeated) plus a per-class offset. The offsets are fitted (damped steps, ``rounds`` at
    most, the best round kept) so that each class keeps its pixel count; shares come in steps of 1 / size^2, so
    whole groups of pixels flip at once and a few may be left over: those go, class pair by class pair, to the
    pixels nearest to flipping (the largest score difference). A plain majority filter shaves the corners of small
    convex objects and so grows the background class; this one moves boundaries without moving phase fractions.
    ``keep`` classes (e.g. 1-2 px lines, which any window vote erases) neither lose nor gain a pixel. ``size`` 1
    returns the mask unchanged."""
    mask = np.asarray(mask, dtype=np.uint8)
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise DualgenError(f"postprocess.smooth_px {size}: use an odd window (1 = off, 3, 5, ...)")
    free = ~np.isin(mask, list(keep))
    classes = [int(k) for k in np.unique(mask[free])]
    if size == 1 or len(classes) < 2:
        return mask.copy()
    shares = np.stack(
        [ndi.uniform_filter((mask == k).astype(np.float64), size, mode="nearest")[free] for k in classes]
    )  # (classes, free pixels)
    target = np.array([np.count_nonzero(mask[free] == k) for k in classes])
    offsets = np.zeros(len(classes))
    best_error, best = None, None
    for _ in range(int(rounds)):
        label = (shares + offsets[:, None]).argmax(0)
        counts = np.bincount(label, minlength=len(classes))
        error = int(np.abs(counts - target).sum())
        if best_error is None or error < best_error:
            best_error, best, best_offsets = error, label, offsets.copy()
        if error == 0:
            break
        offsets += 0.5 * size * size * (target - counts) / free.sum()  # a count gap over the window's share steps
    label, score = best, shares + best_offsets[:, None]
    counts = np.bincount(label, minlength=len(classes))
    for i in range(len(classes)):  # the rest: from each class with too many to each with too few
        for j in range(len(classes)):
            m = min(counts[j] - target[j], target[i] - counts[i])
            if m <= 0:
                continue
            pixels = np.flatnonzero(label == j)
            nearest = pixels[np.argsort(score[j, pixels] - score[i, pixels], kind="stable")[:m]]
            label[nearest] = i
            counts[i] += m
            counts[j] -= m
    out = mask.copy()
    out[free] = np.asarray(classes, np.uint8)[label]
    return out


def cleaning_options(pp, class_names, patch_size):
    """clean_mask's keywords from the postprocess settings a rule passes: min_object_px scaled to the patch size,
    the smoothing window and the ids of the classes it leaves alone (smooth_keep, optional: the names of the classes
    marked thin in config; none when absent)."""
    keep = [class_names.index(name) for name in pp.get("smooth_keep", [])]
    return {
        "min_object_px": scaled_min_object_px(pp["min_object_px"], patch_size),
        "smooth_px": int(pp["smooth_px"]),
        "smooth_keep": keep,
    }


def clean_mask(raw_mask, codec, min_object_px, seed, smooth_px, smooth_keep, rim_px=RIM_PX):
    """Raw decoded mask -> (first mask, cleaned mask), both uint8 class indices (H,W). ``codec`` (a
    ``mask_codec.MaskCodec``) gives the first mask (``classify``). Level mask (H,W): the k-means mask without
    in-between rims (``remove_rims``), then without small objects; one-hot (H,W,K): the class of the largest score
    without small objects. With ``smooth_px`` > 1 then smoothed (``smooth_classes``, ``smooth_keep`` exempt) and rid
    of the small objects that leaves."""
    k = codec.classify(raw_mask, seed)
    if codec.encoding == "level":
        cleaned = remove_small_objects(remove_rims(k, raw_mask, codec.num_classes, rim_px), min_object_px)
    else:
        cleaned = remove_small_objects(k, min_object_px)
    if int(smooth_px) > 1:
        cleaned = remove_small_objects(smooth_classes(cleaned, smooth_px, smooth_keep), min_object_px)
    return k, cleaned
