"""Glue of the generation stage shared by its scripts: the VQ-VAE's data, the artifacts' meta.json, loading the
trained models of artifacts (the models themselves save and load through their ``persist`` modules) and the mask
codec of an artifact's raw masks."""

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.generate.mask_codec import MaskCodec


def generator_patches(patches_dir, datasets_dir, base="BMQ"):
    """The generator's training data, as in the paper: all of BMQ's training + validation patches."""
    manifest = pd.read_csv(Path(datasets_dir) / f"{base}.csv")
    ids, images, masks = [], [], []
    for split in ("train", "val"):
        i, im, m = datasets.load(patches_dir, manifest, split)
        ids += i
        images.append(im)
        masks.append(m)
    return ids, np.concatenate(images), np.concatenate(masks)


class Encoded(NamedTuple):
    """The generator's patches as the encode step saw them, in its order: ``split`` (N,) "train" / "val" (the
    VQ-VAE's held-out patches), the real ``images`` and ``masks``, and their reconstructions (``recon_images`` uint8,
    ``recon_masks``: the raw masks, as the decode step writes them)."""

    split: np.ndarray
    images: np.ndarray
    masks: np.ndarray
    recon_images: np.ndarray
    recon_masks: np.ndarray

    @property
    def train(self):
        """(N,) bool: the VQ-VAE's training patches."""
        return self.split == "train"


def encoded_patches(codes_dir, patches_dir, datasets_dir):
    """``Encoded`` from the encode step's folder (codes.csv, recon.npz) and the patches it encoded
    (``generator_patches``). Raises DualgenError when the patches are not the ones encode saw (rerun encode)."""
    codes = Path(codes_dir)
    table = pd.read_csv(codes / "codes.csv", dtype={"patch_id": str})
    ids, images, masks = generator_patches(patches_dir, datasets_dir)
    if list(table["patch_id"]) != [str(i) for i in ids]:
        raise DualgenError(f"{codes / 'codes.csv'}: not the generator patches of {datasets_dir}: rerun encode")
    recon = np.load(codes / "recon.npz", allow_pickle=False)
    return Encoded(table["split"].to_numpy(), images, masks, recon["images"], recon["raw_masks"])


def code_class_composition(grids, masks, num_embeddings, num_classes):
    """(K, C) float: the share of each class among the mask pixels under the cells that hold each code (rows sum to
    1; a code no cell holds: a row of zeros). ``grids`` (N, h, w) codes of ``masks`` (N, H, W) class ids, H / h = W / w
    pixels per cell."""
    grids, masks = np.asarray(grids), np.asarray(masks)
    if (
        grids.ndim != 3
        or masks.ndim != 3
        or len(grids) != len(masks)
        or masks.shape[1] % grids.shape[1]
        or masks.shape[2] % grids.shape[2]
        or masks.shape[1] // grids.shape[1] != masks.shape[2] // grids.shape[2]
    ):
        raise DualgenError(
            f"code grids {grids.shape} do not tile masks {masks.shape}: expected one code per d x d "
            "pixels of the same patches"
        )
    d = masks.shape[1] // grids.shape[1]
    cell_codes = np.repeat(np.repeat(grids, d, axis=1), d, axis=2).astype(np.int64)  # each pixel's code
    counts = np.bincount(
        cell_codes.ravel() * int(num_classes) + masks.astype(np.int64).ravel(),
        minlength=int(num_embeddings) * int(num_classes),
    ).reshape(int(num_embeddings), int(num_classes))
    total = counts.sum(1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), 0.0)


def condition_vectors(mode, patches_dir, datasets_dir, n_classes):
    """(ids, (N, dim) conditioning vectors) of the generator's patches, in the order encode used
    (dualgen.generate.conditioning.vectors of their masks and images)."""
    from dualgen.generate import conditioning

    ids, images, masks = generator_patches(patches_dir, datasets_dir)
    return ids, conditioning.vectors(mode, masks, images, n_classes)


FLIPS = ("left-right", "up-down", "both")  # the mirror images of a patch, in the order of encode's flips.npy
TURNS = ("transposed", "turned right", "turned left", "anti-transposed")  # encode's turns.npy: the transpose, its FLIPS
# pixelcnn.augment -> the encode step's files of the copies of each training patch that a prior also trains on
AUGMENTS = {"none": (), "flips": ("flips.npy",), "dihedral": ("flips.npy", "turns.npy")}


def flips(x):
    """(3, N, ...) the mirror images (``FLIPS``) of (N, H, W, ...) patches, axes kept: rows stay rows, so an
    anisotropic microstructure (rolled, textured) keeps its direction, which a 90-degree rotation would turn."""
    x = np.asarray(x)
    return np.stack([x[:, :, ::-1], x[:, ::-1, :], x[:, ::-1, ::-1]])


def turns(x):
    """(4, N, ...) the other half of the square patches' eight symmetries (``TURNS``): each (N, H, W, ...) patch
    transposed, and that transpose's mirror images (``flips``): the 90-degree turns. Rows become columns, so only
    for a microstructure without a direction."""
    xt = np.swapaxes(np.asarray(x), 1, 2)
    return np.concatenate([xt[None], flips(xt)])


def symmetric_copies(x):
    """(N * S, ...) every (N, H, W, ...) patch followed by its other symmetries, block by block: the mirror images
    (``flips``) and, for square patches, the 90-degree turns (``turns``); S = 8 (square) or 4."""
    x = np.asarray(x)
    return np.concatenate([x, *flips(x), *(turns(x) if x.shape[1] == x.shape[2] else [])])


def _augment_files(augment):
    if augment not in AUGMENTS:
        raise DualgenError(f"config: pixelcnn.augment: unknown '{augment}' (one of {', '.join(AUGMENTS)})")
    return AUGMENTS[augment]


def augment_copies(codes_dir, augment, rows):
    """{file name: (c, n, h, w) codes} of the copies a prior trains on with ``augment``: exactly the encode files
    ``AUGMENTS`` names for it (none for "none"), each cut to the patches ``rows`` (a boolean mask or indices of
    codes.csv's rows). A missing file is one error ("rerun encode"); files of other modes are not read."""
    copies = {}
    for name in _augment_files(augment):
        path = Path(codes_dir) / name
        if not path.exists():
            raise DualgenError(f"pixelcnn.augment {augment}: {path} is missing: rerun encode")
        copies[name] = np.load(path, allow_pickle=False)[:, rows]
    return copies


def training_grids(grids, cond, augment, copies):
    """The prior's training grids and their cond rows: ``grids`` (N, h, w) followed by the codes of each patch's
    copies that ``AUGMENTS[augment]`` names, in its order (``copies``: {file name: (c, N, h, w)}, e.g.
    ``augment_copies``; the VQ-VAE encodes each copy itself, since a code is not mirror-symmetric): "flips" the
    3 mirror images (4x the grids), "dihedral" also the 4 90-degree turns (8x); "none": as given. The cond rows are
    repeated (class fractions and mean intensity do not change under a flip or turn)."""
    stacked = [grids]
    for name in _augment_files(augment):
        codes = copies.get(name)
        if codes is None or codes.shape[1:] != grids.shape:
            raise DualgenError(
                f"pixelcnn.augment {augment}: the codes folder has no {name} for these grids: rerun encode"
            )
        stacked.extend(codes)
    if len(stacked) == 1:
        return grids, cond
    return np.concatenate(stacked), np.concatenate([cond] * len(stacked))


def holdout(n, n_val, seed):
    """Indices (train, val) with n_val held out for choosing the best checkpoint (paper: 56 / 6)."""
    if n_val >= n:
        raise DualgenError(f"vqvae.val_images {n_val} leaves no training patches (only {n} patches): lower it")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def load_vqvae(vqvae_dir):
    """(model, spec) of a train_vqvae artifact: its meta.json checked, its checkpoint folder loaded."""
    from dualgen.generate.vqvae import persist

    read_meta(vqvae_dir, "train_vqvae")
    return persist.load(Path(vqvae_dir) / "checkpoint")


def load_pixelcnn(pixelcnn_dir):
    """(model, spec) of a train_pixelcnn artifact: its meta.json checked, its checkpoint folder loaded."""
    from dualgen.generate.pixelcnn import persist

    read_meta(pixelcnn_dir, "train_pixelcnn")
    return persist.load(Path(pixelcnn_dir) / "checkpoint")


def mask_codec(folder, step, num_classes):
    """The ``MaskCodec`` of the raw masks in an artifact of ``step`` (encode, decode): its meta.json's mask_encoding
    (the VQ-VAE's), checked like ``read_meta``."""
    return MaskCodec(read_meta(folder, step)["mask_encoding"], num_classes)


def read_meta(folder, step=None):
    """An input artifact's meta.json; with ``step``, also check it was made by that step of this dualgen."""
    from dualgen import __version__

    path = Path(folder) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DualgenError(f"{path}: missing: run the step that makes {folder} first")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DualgenError(f"{path}: damaged (not JSON): delete {folder} and rerun its step")
    if step is not None:
        if meta.get("step") != step:
            raise DualgenError(
                f"{folder}: made by step '{meta.get('step')}', expected '{step}': point to the {step} output"
            )
        made = str(meta.get("dualgen_version", "?")).split(".")[:2]
        if made != __version__.split(".")[:2]:
            raise DualgenError(
                f"{folder}: made by dualgen {meta.get('dualgen_version')}, this is {__version__}: "
                "delete the folder (or run with --forcerun) so it is rebuilt"
            )
    return meta


def resume_dir(root, settings):
    """A working folder for checkpoints that survives a killed job, reset when the settings change."""
    root = Path(root)
    stamp = root / "settings.json"
    text = json.dumps(settings, sort_keys=True)
    if root.exists() and (not stamp.exists() or stamp.read_text() != text):
        print(f"{root}: settings changed since the last run: starting afresh", flush=True)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(text)
    return root
