"""Cleaning decoded masks as the paper did (step 7, Fig. 11).

Decoded masks have intermediate values at edges. ``kmeans_classes`` clusters the values into as many
clusters as classes (scikit-learn KMeans) and maps each cluster to the class whose level is nearest its
centre; ``remove_small_objects`` removes connected objects smaller than ``min_object_px`` and fills their
pixels from the nearest remaining pixel (the neighbouring class), so nothing is left unlabelled.
"""
import numpy as np
from scipy import ndimage as ndi


def mask_levels(num_classes):
    """The mask channel's value of each class, in [0, 1] (class k -> k / (K - 1))."""
    return np.linspace(0.0, 1.0, num_classes)


def kmeans_classes(raw_mask, num_classes, seed=0):
    from sklearn.cluster import KMeans

    raw = np.asarray(raw_mask, dtype=np.float64)
    values = raw.reshape(-1, 1)
    levels = mask_levels(num_classes)
    distinct = np.unique(values)
    if len(distinct) <= num_classes:  # nothing to cluster: map each value directly
        centres, labels = distinct, np.searchsorted(distinct, values[:, 0])
    else:
        km = KMeans(n_clusters=num_classes, n_init=3, random_state=seed).fit(values)
        centres, labels = km.cluster_centers_[:, 0], km.labels_
    to_class = np.abs(np.asarray(centres)[:, None] - levels[None, :]).argmin(1)
    return to_class[labels].reshape(raw.shape).astype(np.uint8)


def remove_small_objects(mask, min_object_px):
    mask = np.asarray(mask, dtype=np.uint8)
    if min_object_px <= 1:
        return mask.copy()
    small = np.zeros(mask.shape, bool)
    structure = np.ones((3, 3), bool)  # 8-connectivity
    for k in np.unique(mask):
        comp, n = ndi.label(mask == k, structure=structure)
        if n:
            sizes = np.bincount(comp.ravel())
            sizes[0] = min_object_px  # the background of this label image is not an object
            small |= sizes[comp] < min_object_px
    if small.all() or not small.any():
        return mask.copy()
    _, (iy, ix) = ndi.distance_transform_edt(small, return_indices=True)
    return mask[iy, ix]


def scaled_min_object_px(min_object_px_at_256, patch_size):
    """The paper's 200 px at 256-px patches, scaled with the patch area."""
    if min_object_px_at_256 <= 0:
        return 0
    return max(1, int(round(min_object_px_at_256 * (patch_size / 256.0) ** 2)))


def clean_mask(raw_mask, num_classes, min_object_px, seed=0):
    """(k-means mask, cleaned mask)."""
    k = kmeans_classes(raw_mask, num_classes, seed)
    return k, remove_small_objects(k, min_object_px)
