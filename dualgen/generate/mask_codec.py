"""The mask's encoding in the VQ-VAE's input (``vqvae.mask_encoding``), in one object: ``MaskCodec(encoding, K)``.

``level`` (the paper's): one channel, class k -> level k / (K - 1) (``mask_levels``), so the class levels are spread
evenly over [0, 1] (class 0, the matrix, is the lowest). A raw (decoded) mask is (H,W) in level units; its first
classification is ``kmeans_classes``: k-means on the values, each cluster mapped to the class whose level is nearest
its centre.

``onehot``: one channel per class (K channels). A raw mask is (H,W,K), one score per class; its first classification
is the class of the largest score, so a blurred edge between two classes never passes through a third class's level.
"""

import numpy as np

from dualgen.core.errors import DualgenError

ENCODINGS = ("level", "onehot")  # the mask as one channel of class levels (the paper), or one channel per class
KMEANS_N_INIT = 3  # k-means restarts (fixed, so a seed gives one answer)


def check_encoding(encoding):
    """One clear error for an unknown ``vqvae.mask_encoding``."""
    if encoding not in ENCODINGS:
        raise DualgenError(f"vqvae.mask_encoding is {encoding!r}: use one of {', '.join(ENCODINGS)}")


def mask_levels(num_classes):
    """The level encoding's value of each class, in [0, 1]: class k -> k / (num_classes - 1)."""
    return np.linspace(0.0, 1.0, int(num_classes))


def check_finite(raw):
    """One clear error for a raw mask with NaN/Inf values."""
    if not np.isfinite(raw).all():
        raise DualgenError(
            "raw mask contains NaN/Inf values: the VQ-VAE decoder output is broken; retrain the VQ-VAE "
            "with a lower vqvae.learning_rate"
        )


def kmeans_classes(raw_mask, num_classes, seed):
    """Raw level mask (H,W) in level units [0, 1] -> uint8 class indices (H,W).

    k-means (random_state=seed) on the pixel values into ``num_classes`` clusters; each cluster becomes the
    class whose level is nearest its centre (two clusters may land on one class). With no more distinct values
    than clusters each value is mapped to its nearest level directly."""
    raw = np.asarray(raw_mask, dtype=np.float64)
    if raw.ndim != 2:
        raise DualgenError(f"raw mask has shape {raw.shape}: expected one (H, W) mask")
    check_finite(raw)
    levels = mask_levels(num_classes)
    values = raw.reshape(-1)
    distinct, inverse = np.unique(values, return_inverse=True)
    if len(distinct) <= num_classes:  # nothing to cluster
        centres, labels = distinct, inverse.reshape(-1)
    else:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # one thread: OpenMP threads slow a small fit down on a busy machine
            km = KMeans(n_clusters=num_classes, n_init=KMEANS_N_INIT, random_state=seed).fit(values[:, None])
        centres, labels = km.cluster_centers_[:, 0], km.labels_
    to_class = np.abs(np.asarray(centres)[:, None] - levels[None, :]).argmin(axis=1)
    return to_class[labels].reshape(raw.shape).astype(np.uint8)


class MaskCodec:
    """How a mask of ``num_classes`` classes enters and leaves the VQ-VAE under ``encoding`` (``ENCODINGS``)."""

    def __init__(self, encoding, num_classes):
        check_encoding(encoding)
        self.encoding = encoding
        self.num_classes = int(num_classes)

    @property
    def channels(self):
        """The mask's channels in the model's input: 1 (``level``) or one per class (``onehot``)."""
        return 1 if self.encoding == "level" else self.num_classes

    @property
    def first_step(self):
        """What ``classify`` does, in words."""
        return "k-means" if self.encoding == "level" else "largest class score"

    def levels(self):
        """The class levels (``mask_levels``)."""
        return mask_levels(self.num_classes)

    def encode(self, masks):
        """Class masks (N,H,W) -> float32 (N,H,W,channels) in [-0.5, 0.5]: ``level``: class k -> level k - 0.5;
        ``onehot``: 0.5 in the channel of the pixel's class, -0.5 in the others."""
        if self.encoding == "level":
            return mask_levels(self.num_classes).astype(np.float32)[masks.astype(np.intp)][..., None] - 0.5
        return np.eye(self.num_classes, dtype=np.float32)[masks.astype(np.intp)] - 0.5

    def decode(self, x):
        """The model's mask channels (N,H,W,channels) -> raw masks float32, not yet classes: ``level``: (N,H,W) in
        level units [0, 1] (clipped); ``onehot``: (N,H,W,K), one score per class (about 1 for the pixel's class, 0
        for the others; not clipped, so the largest stays the largest)."""
        if self.encoding == "level":
            return np.clip(x[..., 0] + 0.5, 0.0, 1.0).astype(np.float32)
        return (x + 0.5).astype(np.float32)

    def classify(self, raw_mask, seed):
        """One raw mask's first classification, uint8 (H,W): ``kmeans_classes`` of a level mask (H,W), the class of
        the largest score of a one-hot one (H,W,K)."""
        if self.encoding == "level":
            return kmeans_classes(raw_mask, self.num_classes, seed)
        raw = np.asarray(raw_mask)
        if raw.ndim != 3:
            raise DualgenError(f"raw mask has shape {raw.shape}: expected one (H, W, {self.num_classes}) one-hot mask")
        if raw.shape[-1] != self.num_classes:
            raise DualgenError(
                f"raw mask has {raw.shape[-1]} class scores but the config has {self.num_classes} "
                "classes: decode with the VQ-VAE trained on these classes"
            )
        check_finite(raw)
        return raw.argmax(-1).astype(np.uint8)

    def nearest(self, raw_masks):
        """Raw masks (N,H,W) or (N,H,W,K) -> uint8 class ids (N,H,W): the nearest level or the largest score. The
        quick look (training snapshots, calibration), without k-means or cleaning."""
        raw = np.asarray(raw_masks, np.float64)
        if self.encoding == "onehot":
            return raw.argmax(-1).astype(np.uint8)
        return np.abs(raw[..., None] - mask_levels(self.num_classes)).argmin(-1).astype(np.uint8)

    def display(self, raw_masks):
        """Raw masks -> (N,H,W) in [0, 1] to look at: a level mask as it is (clipped); a one-hot one as the class
        levels weighted by its scores (clipped at 0, normalised), so that it reads like a level mask."""
        raw = np.asarray(raw_masks, np.float64)
        if self.encoding == "level":
            return np.clip(raw, 0.0, 1.0)
        p = np.clip(raw, 0.0, None)
        total = p.sum(-1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / raw.shape[-1])
        return (p * mask_levels(self.num_classes)).sum(-1)
