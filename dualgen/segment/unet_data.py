"""The U-Net's input pipeline: which image goes into which batch (a plan that depends only on the seed), and the
tf.data pipeline that turns the plan into preprocessed, augmented batches.

A training is ``periods`` validation periods of ``steps`` optimizer updates each (budget ``updates``: periods of
``unet.validate_every`` updates; budget ``epochs``: one period = one pass over the training set). The images of
the run are one stream of seeded permutations of the training set: data epoch ``e`` is
``default_rng([seed, e]).permutation(n)``; batch ``b`` takes stream positions ``b*batch .. (b+1)*batch-1``. With
the pretrain arm, the first ``pretrain_periods`` periods draw from the synthetic images (their own stream) and
the rest from the real ones. Augmentation is reseeded per sample from (seed, data epoch, stream position). So a
batch depends on nothing but (seed, its index): a resumed run computes what an uninterrupted one would.
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


def batch_plan(
    n_images, batch_size, periods, steps, seed, *, first_period=0, pretrain=None, pretrain_periods=0, epoch_mode=False
):
    """(batches, batch_size, 3) rows (data epoch, position, image index) for periods ``first_period ..``.

    ``pretrain``: indices of the images to train on during the first ``pretrain_periods`` periods (the rest of the
    images afterwards). ``epoch_mode``: each period is one pass (a permutation filled up to ``steps * batch``
    from its own start, as a Keras epoch is), else one continuous stream across periods.
    """
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
                order = idx[np.random.default_rng([int(seed), p]).permutation(len(idx))]
                order = np.resize(order, steps * batch_size)
                plans.append(
                    np.stack([np.full_like(order, p), np.arange(len(order)), order], 1).reshape(steps, batch_size, 3)
                )
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
