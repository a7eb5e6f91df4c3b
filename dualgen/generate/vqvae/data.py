"""Patches <-> the VQ-VAE: model input and output as arrays (``to_model_input``, ``from_model_output``, the mask's
channels by a ``mask_codec.MaskCodec``), and the trained model run over many patches or code grids in batches of
``BATCH`` (``encode``, ``reconstruct``, ``decode``)."""

import numpy as np
import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.errors import DualgenError

BATCH = 16  # patches or code grids per call of the model


def to_model_input(images, masks, codec):
    """uint8 images (N,H,W,C) + class masks (N,H,W) -> float32 (N,H,W,C+M) in [-0.5, 0.5], M = ``codec.channels``.

    Image channels: value / 255 - 0.5. Mask channels: ``codec.encode`` (``level``, the paper's: one channel, class
    k -> k / (num_classes - 1) - 0.5; ``onehot``: one channel per class, 0.5 where the pixel is of that class, else
    -0.5)."""
    images, masks = np.asarray(images), np.asarray(masks)
    num_classes = codec.num_classes
    if images.ndim == 3:  # (N,H,W) gray
        images = images[..., None]
    if images.ndim != 4 or masks.shape != images.shape[:3]:
        raise DualgenError(
            f"VQ-VAE input: images {images.shape} and masks {masks.shape} do not pair up: "
            "expected images (N,H,W,C) and masks (N,H,W) of the same N, H, W"
        )
    if num_classes < 2:
        raise DualgenError(f"VQ-VAE input: {num_classes} class(es): the classes list needs at least 2")
    if masks.size and (masks.min() < 0 or masks.max() >= num_classes):
        raise DualgenError(
            f"VQ-VAE input: mask value {int(masks.max())} is not a class index 0..{num_classes - 1}: "
            "check the classes list in the config against the masks"
        )
    img = images.astype(np.float32) / 255.0 - 0.5
    return np.concatenate([img, codec.encode(masks)], axis=-1)


def from_model_output(x, codec):
    """float (N,H,W,C+M) -> (uint8 images (N,H,W,C), raw masks float32: ``codec.decode`` of the last M channels).

    Raw masks, not yet classes (``postprocess.clean_mask`` turns them into class indices): ``level``: (N,H,W) in
    level units [0, 1]; ``onehot``: (N,H,W,K), one score per class."""
    x = np.asarray(x, np.float32)
    m = codec.channels
    if x.shape[-1] <= m:
        raise DualgenError(
            f"VQ-VAE output has {x.shape[-1]} channels: expected the micrograph's and {m} for the mask "
            f"({codec.encoding} encoding of {codec.num_classes} classes)"
        )
    images = np.clip(np.rint((x[..., :-m] + 0.5) * 255.0), 0, 255).astype(np.uint8)
    return images, codec.decode(x[..., -m:])


def encode(model, x):
    """Model input (N,H,W,C+M) -> int32 code grids (N,h,w), ``BATCH`` patches at a time."""
    return np.concatenate(
        [model.encode(tf.constant(x[i : i + BATCH])).numpy().astype(np.int32) for i in range(0, len(x), BATCH)]
    )


def reconstruct(model, x):
    """Model input (N,H,W,C+M) -> the model's reconstructions float32 (N,H,W,C+M), ``BATCH`` patches at a time."""
    return np.concatenate(
        [model(tf.constant(x[i : i + BATCH]), is_training=False)["x_recon"].numpy() for i in range(0, len(x), BATCH)]
    )


def decode(model, grids, codec):
    """Code grids (N,h,w) -> per batch of ``BATCH`` grids in order: (grids done so far, uint8 images, raw masks
    float32) (``from_model_output`` of the decoder's output)."""
    for i in range(0, len(grids), BATCH):
        images, raws = from_model_output(model.decode(tf.constant(grids[i : i + BATCH], tf.int32)).numpy(), codec)
        yield min(i + BATCH, len(grids)), images, raws
