"""Cleaning decoded masks as the paper did (step 7, Fig. 11).

Decoded masks have intermediate values at edges. ``kmeans_classes`` clusters the values into as many
clusters as classes (scikit-learn KMeans) and maps each cluster to the class whose level is nearest its
centre; ``remove_small_objects`` removes connected objects (8-connectivity) smaller than ``min_object_px`` and
fills their pixels from the nearest remaining pixel (the neighbouring class), so nothing is left unlabelled.
"""
import numpy as np
from scipy import ndimage as ndi

from dualgen.errors import DualgenError

KMEANS_N_INIT = 3  # k-means restarts (fixed, so a seed gives one answer)
EIGHT_CONNECTED = np.ones((3, 3), bool)


def mask_levels(num_classes):
    """The mask channel's value of each class, in [0, 1]: class k -> k / (num_classes - 1)."""
    return np.linspace(0.0, 1.0, int(num_classes))


def kmeans_classes(raw_mask, num_classes, seed):
    """Raw mask (H,W) in level units [0, 1] -> uint8 class indices (H,W).

    k-means (random_state=seed) on the pixel values into ``num_classes`` clusters; each cluster becomes the
    class whose level is nearest its centre (two clusters may land on one class). With no more distinct values
    than clusters each value is mapped to its nearest level directly."""
    raw = np.asarray(raw_mask, dtype=np.float64)
    if raw.ndim != 2:
        raise DualgenError(f"raw mask has shape {raw.shape}: expected one (H, W) mask")
    if not np.isfinite(raw).all():
        raise DualgenError("raw mask contains NaN/Inf values: the VQ-VAE decoder output is broken; retrain the VQ-VAE "
                           "with a lower vqvae.learning_rate")
    levels = mask_levels(num_classes)
    values = raw.reshape(-1)
    distinct, inverse = np.unique(values, return_inverse=True)
    if len(distinct) <= num_classes:  # nothing to cluster
        centres, labels = distinct, inverse.reshape(-1)
    else:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        # one thread: on a busy 2-core machine OpenMP threads made this 10x slower (0.3 s vs 0.03 s at 256 px)
        with threadpool_limits(limits=1):
            km = KMeans(n_clusters=num_classes, n_init=KMEANS_N_INIT, random_state=seed).fit(values[:, None])
        centres, labels = km.cluster_centers_[:, 0], km.labels_
    to_class = np.abs(np.asarray(centres)[:, None] - levels[None, :]).argmin(axis=1)
    return to_class[labels].reshape(raw.shape).astype(np.uint8)


def remove_small_objects(mask, min_object_px):
    """Class mask (H,W) -> uint8 mask without objects (8-connected, per class) smaller than ``min_object_px``.

    Their pixels take the class of the nearest pixel that stays. If every object is small, the mask is kept."""
    mask = np.asarray(mask, dtype=np.uint8)
    if min_object_px <= 1:
        return mask.copy()
    small = np.zeros(mask.shape, bool)
    for k in np.unique(mask):
        objects, n = ndi.label(mask == k, structure=EIGHT_CONNECTED)
        sizes = np.bincount(objects.ravel(), minlength=n + 1)
        sizes[0] = min_object_px  # label 0 is "not class k", never small
        small |= sizes[objects] < min_object_px
    if small.all() or not small.any():
        return mask.copy()
    _, (iy, ix) = ndi.distance_transform_edt(small, return_indices=True)
    return mask[iy, ix]


def scaled_min_object_px(min_object_px_at_256, patch_size):
    """The paper's 200 px at 256-px patches, scaled with the patch area (at least 1; 0 switches it off)."""
    if min_object_px_at_256 <= 0:
        return 0
    return max(1, int(round(min_object_px_at_256 * (patch_size / 256.0) ** 2)))


def clean_mask(raw_mask, num_classes, min_object_px, seed):
    """Raw decoded mask -> (k-means mask, cleaned mask), both uint8 class indices (H,W)."""
    k = kmeans_classes(raw_mask, num_classes, seed)
    return k, remove_small_objects(k, min_object_px)
