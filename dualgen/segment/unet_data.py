"""The U-Net's input pipeline: which image goes into which batch (a plan that depends only on the seed), and the
tf.data pipeline that turns the plan into preprocessed, augmented batches.

A training is ``periods`` validation periods of ``steps`` optimizer updates each (budget ``updates``: periods of
``unet.validate_every`` updates; budget ``epochs``: one period = one pass over the training set). The images of
the run are one stream of seeded permutations of the training set: data epoch ``e`` is
``default_rng([seed, e]).permutation(n)``; batch ``b`` takes stream positions ``b*batch .. (b+1)*batch-1``. With
the pretrain arm, the first ``pretrain_periods`` periods draw from the synthetic images (their own stream) and
the rest from the real ones. Augmentation is reseeded per sample from (seed, data epoch, stream position). So a
batch depends on nothing but (seed, its index): a resumed run computes what an uninterrupted one would.

Rare classes (config ``unet.sampling``, ``unet.class_weights``): the ``balanced`` plan draws each sample by picking a
class uniformly among the classes present in the phase's images, then uniformly an image that contains it (seeded
by (seed, phase) or, per epoch, (seed, epoch)), so that each class is shown about equally often; ``class_weights``
turns the training masks' pixel shares into per-class loss weights.
"""

import math

import numpy as np
import tensorflow as tf

from dualgen.core import env
from dualgen.core.errors import DualgenError
from dualgen.segment import augment as _augment


def as_images(images):
    x = np.asarray(images)
    if x.ndim == 3:  # (N, H, W) gray
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DualgenError(f"U-Net images have shape {x.shape}: expected (N, H, W), (N, H, W, 1) or (N, H, W, 3)")
    return x


def _stream(indices, n_batches, batch_size, seed, phase):
    """Rows (data epoch, stream position, image index) of ``n_batches`` batches drawn from ``indices``."""
    indices = np.asarray(indices, np.int64)
    need, rows, e = n_batches * batch_size, [], 0
    while sum(len(r) for r in rows) < need:
        key = [int(seed), phase, e] if phase else [int(seed), e]  # the real phase keeps the plain (seed, epoch) key
        order = indices[np.random.default_rng(key).permutation(len(indices))]
        rows.append(np.stack([np.full(len(order), e), np.arange(len(order)), order], 1))
        e += 1
    table = np.concatenate(rows)[:need] if rows else np.zeros((0, 3), np.int64)
    return table.reshape(n_batches, batch_size, 3) if n_batches else np.zeros((0, batch_size, 3), np.int64)


BALANCED_KEY = 0xBA1A  # the seed sequences of balanced plans: (seed, phase, BALANCED_KEY) or (seed, epoch, ...)


def class_presence(masks, num_classes):
    """(N, num_classes) bool: which classes each (H, W) mask contains."""
    y = np.asarray(masks)
    return np.stack([(y == k).any(axis=(1, 2)) for k in range(int(num_classes))], 1)


def pixel_shares(masks, num_classes):
    """(num_classes,) share of each class among all pixels of ``masks`` (sums to 1)."""
    counts = np.bincount(np.asarray(masks, np.int64).ravel(), minlength=int(num_classes))[: int(num_classes)]
    return counts / max(int(counts.sum()), 1)


def class_weights(shares, mode, cap, names=None):
    """Per-class loss weights (a list of floats), or None for ``mode`` None (the unweighted loss).

    ``auto``: w_k = 1 / share_k over the classes present (share > 0), capped at ``cap`` times the smallest of them,
    then scaled to mean 1 over the present classes; an absent class gets 0 (it has no pixel to learn from; its dice
    term could only say "never predict it", which the present classes' terms already do). A dict {class name:
    weight} (``names``: the class names, in class-id order): those weights as given, classes not named 1.
    """
    if mode is None:
        return None
    shares = np.asarray(shares, np.float64)
    if isinstance(mode, dict):
        names = list(names) if names is not None else []
        if len(names) != len(shares):
            raise ValueError(f"class_weights: {len(names)} class names for {len(shares)} shares")
        unknown = sorted(set(mode) - set(names))
        if unknown:
            raise DualgenError(
                f"config: unet.class_weights: {', '.join(map(str, unknown))} not a class: use the names of "
                f"config classes ({', '.join(names)})"
            )
        return [float(mode.get(name, 1.0)) for name in names]
    if mode != "auto":
        raise DualgenError(f"config: unet.class_weights: unknown '{mode}' (null, auto, or {{class name: weight}})")
    present = shares > 0
    if not present.any():
        raise DualgenError("U-Net class weights: the training masks hold no pixel of any class")
    w = np.zeros_like(shares)
    w[present] = 1.0 / shares[present]
    w[present] = np.minimum(w[present], float(cap) * w[present].min())
    w[present] /= w[present].mean()
    return [float(v) for v in w]


def _balanced(indices, presence, n_slots, rng):
    """``n_slots`` image indices: a class uniformly among those present in ``indices``' images, then one of the
    images that contain it, uniformly."""
    indices = np.asarray(indices, np.int64)
    holders = [indices[presence[indices, k]] for k in range(presence.shape[1])]
    holders = [h for h in holders if len(h)]
    if not holders:
        raise DualgenError("balanced sampling: the training images hold no class")
    picked = rng.integers(len(holders), size=n_slots)
    u = rng.random(n_slots)
    out = np.empty(n_slots, np.int64)
    for k, h in enumerate(holders):
        rows = picked == k
        out[rows] = h[np.minimum((u[rows] * len(h)).astype(np.int64), len(h) - 1)]
    return out


def _balanced_stream(indices, n_batches, batch_size, seed, phase, presence):
    """``_stream``'s table for balanced sampling: data epoch = position // len(indices) (for augmentation seeds)."""
    need = n_batches * batch_size
    order = _balanced(indices, presence, need, np.random.default_rng([int(seed), phase, BALANCED_KEY]))
    pos = np.arange(need)
    table = np.stack([pos // max(len(indices), 1), pos, order], 1)
    return table.reshape(n_batches, batch_size, 3)


def batch_plan(
    n_images,
    batch_size,
    periods,
    steps,
    seed,
    *,
    first_period=0,
    pretrain=None,
    pretrain_periods=0,
    epoch_mode=False,
    sampling="uniform",
    presence=None,
):
    """(batches, batch_size, 3) rows (data epoch, position, image index) for periods ``first_period ..``.

    ``pretrain``: indices of the images to train on during the first ``pretrain_periods`` periods (the rest of the
    images afterwards). ``epoch_mode``: each period is one pass (a permutation filled up to ``steps * batch``
    from its own start, as a Keras epoch is), else one continuous stream across periods. ``sampling``:
    ``uniform`` (those permutations) or ``balanced`` (each sample: a class uniformly among the classes present in
    the phase's images, then an image containing it, uniformly; ``presence``: ``class_presence`` of the images).
    """
    if sampling not in ("uniform", "balanced"):
        raise DualgenError(f"config: unet.sampling: unknown '{sampling}' (uniform or balanced)")
    balanced = sampling == "balanced"
    if balanced:
        presence = np.asarray(presence, bool)
        if presence.ndim != 2 or len(presence) != n_images:
            raise ValueError("batch_plan: balanced sampling needs presence of shape (n_images, classes)")
    batch_size, periods, steps = int(batch_size), int(periods), int(steps)
    everything = np.arange(n_images)
    synth = np.asarray(pretrain if pretrain is not None else [], np.int64)
    real = np.setdiff1d(everything, synth) if len(synth) else everything
    if len(synth) == 0:
        pretrain_periods = 0
    if pretrain_periods and len(real) == 0:
        raise DualgenError("pretrain arm: the mix has no real training images to fine-tune on")
    plans = []
    for phase, idx, p0, p1 in ((1, synth, 0, pretrain_periods), (0, real, pretrain_periods, periods)):
        if p1 <= p0:
            continue
        if epoch_mode:
            for p in range(p0, p1):
                if balanced:
                    rng = np.random.default_rng([int(seed), p, BALANCED_KEY])
                    order = _balanced(idx, presence, steps * batch_size, rng)
                else:
                    order = idx[np.random.default_rng([int(seed), p]).permutation(len(idx))]
                    order = np.resize(order, steps * batch_size)
                plans.append(
                    np.stack([np.full_like(order, p), np.arange(len(order)), order], 1).reshape(steps, batch_size, 3)
                )
        elif balanced:
            plans.append(_balanced_stream(idx, (p1 - p0) * steps, batch_size, seed, phase, presence))
        else:
            plans.append(_stream(idx, (p1 - p0) * steps, batch_size, seed, phase))
    plan = np.concatenate(plans) if plans else np.zeros((0, batch_size, 3), np.int64)
    return plan[first_period * steps :]


def make_dataset(images, masks, num_classes, batch_size, *, plan=None, seed=0, augment=None, preprocess):
    """A tf.data pipeline of (float32 images, one-hot float32 masks) batches.

    ``plan`` (from ``batch_plan``): training batches in that order; None: one pass over the images in order,
    the last batch possibly smaller (validation). ``augment`` (an albumentations Compose from
    ``dualgen.segment.augment.build_augmentation``) runs on the uint8 image, reseeded per sample from (seed, data epoch,
    position). ``preprocess``: uint8 (N, H, W, C) -> float32 network input.
    """
    imgs = as_images(images).astype(np.uint8, copy=False)
    msks = np.asarray(masks).astype(np.uint8, copy=False)
    n, h, w = imgs.shape[:3]
    if plan is None:
        plan = np.stack([np.zeros(n, np.int64), np.arange(n), np.arange(n)], 1)
        plan = [plan[i : i + batch_size] for i in range(0, n, int(batch_size))]
        ds = tf.data.Dataset.from_generator(lambda: iter(plan), output_signature=tf.TensorSpec((None, 3), tf.int64))
    else:
        ds = tf.data.Dataset.from_tensor_slices(np.asarray(plan, np.int64))
    eye = np.eye(num_classes, dtype=np.float32)
    reseedable = augment is not None and hasattr(augment, "transforms")
    channels = preprocess(imgs[:1]).shape[-1]

    def load(batch_rows):
        images_out, masks_out = [], []
        for e, pos, i in batch_rows:
            image, mask = imgs[i], msks[i]
            if augment is not None:
                if reseedable:
                    _augment.reseed(augment, (int(seed), int(e), int(pos)))
                out = augment(image=image, mask=mask)
                image, mask = out["image"].reshape(imgs.shape[1:]), out["mask"]
            images_out.append(image)
            masks_out.append(mask)
        return preprocess(np.stack(images_out)), eye[np.stack(masks_out)]

    ds = ds.map(lambda r: tf.numpy_function(load, [r], (tf.float32, tf.float32)))
    ds = ds.map(
        lambda x, y: (tf.ensure_shape(x, (None, h, w, channels)), tf.ensure_shape(y, (None, h, w, num_classes)))
    )
    return env.without_autotune(ds.prefetch(2))


def periods_and_steps(budget, n_train, batch_size, *, updates=None, validate_every=None, epochs=None):
    """(periods, steps per period) of a budget: ``updates`` -> ceil(updates / validate_every) periods of
    validate_every updates; ``epochs`` -> epochs periods of ceil(n_train / batch) updates."""
    if budget == "updates":
        k = int(validate_every)
        return math.ceil(int(updates) / k), k
    if budget == "epochs":
        return int(epochs), math.ceil(int(n_train) / int(batch_size))
    raise DualgenError(f"config: unet.budget: unknown '{budget}' (updates or epochs)")
