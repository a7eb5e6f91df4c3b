"""A VQ-VAE's spec (the constructor's arguments), saved and loaded with its weights.

``save(model, folder, spec)`` writes the weights (a tf.train.Checkpoint) and ``spec.json`` (``make_spec``) into a
folder; ``load(folder)`` rebuilds the model from them. A spec holds ``SPEC_KEYS``, and ``fsq_levels`` where the
quantizer is fsq (only there: the specs of ema / vq models, saved before fsq existed or after, are unchanged).
Training-only settings (``vqvae.adversarial``, ``perceptual``, ``mask_head``) are not part of it: the saved model
is the VQ-VAE alone.
"""

from pathlib import Path

import tensorflow as tf

import dualgen  # noqa: F401  (environment before TensorFlow)
from dualgen.core.artifacts import read_spec, write_spec
from dualgen.core.errors import DualgenError
from dualgen.generate.mask_codec import MaskCodec
from dualgen.generate.vqvae.model import VQVAE, build_variables, check_fsq_levels, describe, fsq_codes

# the constructor's arguments a spec holds (channels: the model's, i.e. the micrograph's C + the mask's channels)
SPEC_KEYS = (
    "channels",
    "num_hiddens",
    "num_residual_hiddens",
    "num_residual_layers",
    "embedding_dim",
    "num_embeddings",
    "commitment_cost",
    "decay",
    "quantizer",
    "downsample",
    "mask_encoding",
)
FSQ_KEYS = ("fsq_levels",)  # what a spec holds besides SPEC_KEYS where its quantizer is fsq


def make_spec(settings, image_channels, num_classes):
    """The spec of a VQ-VAE for micrographs of ``image_channels`` (1 or 3) and masks of ``num_classes`` classes from
    config's ``vqvae`` settings. With ``quantizer`` fsq the spec adds ``fsq_levels`` and its ``num_embeddings`` is
    their product (the settings' num_embeddings may be null, else it must equal the product: the PixelCNN prior's K
    is the spec's)."""
    codec = MaskCodec(settings["mask_encoding"], num_classes)
    if settings["quantizer"] != "fsq":
        return {
            "channels": int(image_channels) + codec.channels,
            **{k: settings[k] for k in SPEC_KEYS if k != "channels"},
        }
    levels = check_fsq_levels(settings.get("fsq_levels"))
    codes, given = fsq_codes(levels), settings.get("num_embeddings")
    if given is not None and int(given) != codes:
        raise DualgenError(
            f"vqvae.num_embeddings is {given} but vqvae.fsq_levels {levels} make {codes} codes: "
            f"set num_embeddings to {codes} (or null) with quantizer fsq"
        )
    rest = {k: settings.get(k) for k in SPEC_KEYS if k not in ("channels", "num_embeddings")}
    return {"channels": int(image_channels) + codec.channels, "num_embeddings": codes, **rest, "fsq_levels": levels}


def build(spec):
    """A fresh (untrained) VQ-VAE from a spec."""
    return VQVAE(**{k: spec[k] for k in SPEC_KEYS}, **{k: spec.get(k) for k in FSQ_KEYS})  # None: not fsq


def save(model, folder, spec):
    """Write the weights (``ckpt.*``) and ``spec.json`` into ``folder`` (made if missing). For a folder that appears
    whole or not at all, save into ``artifacts.atomic_dir`` (or ``artifact_dir``)."""
    build_variables(model)
    Path(folder).mkdir(parents=True, exist_ok=True)
    tf.train.Checkpoint(model=model).write(str(Path(folder) / "ckpt"))
    write_spec(folder, spec)


def load(folder):
    """(model, spec) from a folder ``save`` wrote; a missing or damaged one is a DualgenError naming it."""
    spec = read_spec(folder, "VQ-VAE", SPEC_KEYS, "train_vqvae")
    if spec["quantizer"] == "fsq":
        spec = read_spec(folder, "VQ-VAE", SPEC_KEYS + FSQ_KEYS, "train_vqvae")
    return _restore(build(spec), folder), spec


def first_line(err):
    """The first line of an exception's message (at most 200 characters), or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _restore(model, folder):
    """Read the weights in ``folder`` into ``model``. A missing, unreadable or mismatching checkpoint (other K, D,
    hidden sizes, layers, quantiser, channels) raises a DualgenError naming the folder."""
    folder = Path(folder)
    if not (folder / "ckpt.index").exists():
        raise DualgenError(
            f"{folder}: no VQ-VAE checkpoint (ckpt.index) there: train the VQ-VAE first "
            "(rule train_vqvae) or point to its checkpoint folder"
        )
    build_variables(model)
    try:
        tf.train.Checkpoint(model=model).read(str(folder / "ckpt")).assert_consumed()
    except Exception as err:  # noqa: BLE001  (mismatch: ValueError/AssertionError; damage: OpError, IndexError, ...)
        raise DualgenError(
            f"{folder}: the VQ-VAE checkpoint does not match a model with {describe(model)} or is damaged "
            f"({first_line(err)}): use the vqvae settings it was trained with, or retrain (rule train_vqvae)"
        )
    return model
