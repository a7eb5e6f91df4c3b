"""The four base datasets of the paper (Table 1) as manifests over the patches.

SHQ: small set, HQ masks. SLQ: the same patches with LQ masks. BLQ: big set (contains the small set),
LQ masks. BMQ: BLQ with the small set's HQ masks swapped in. Test: HQ patches, never in any training or
validation set, drawn first from ``test_sources`` (images reserved for testing), as in the paper.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen import io
from dualgen.errors import DualgenError

BASES = ("SHQ", "SLQ", "BLQ", "BMQ")
SIZE_KEYS = ("small_train", "small_val", "big_train", "big_val", "test")


def fit_sizes(sizes, n_usable):
    """Scale the five sizes by one factor so big + test uses the usable patches (paper proportions)."""
    total = sizes["big_train"] + sizes["big_val"] + sizes["test"]
    factor = n_usable / total
    return {k: max(1, int(np.floor(sizes[k] * factor))) for k in SIZE_KEYS}


def split(table, sizes, test_sources=(), seed=0, fit_to_data=False):
    """Return {name: manifest DataFrame(patch_id, split, mask)} for SHQ, SLQ, BLQ, BMQ, and the sizes used."""
    rng = np.random.default_rng(seed)
    if fit_to_data:
        sizes = fit_sizes(sizes, len(table))
    ids = table["patch_id"].to_numpy()
    has_hq = table["has_hq"].to_numpy(bool)
    in_test_src = table["source"].isin(list(test_sources)).to_numpy()
    unknown = sorted(set(test_sources) - set(table["source"]))
    if unknown:
        raise DualgenError(
            f"data.test_sources: '{unknown[0]}' has no usable patches (sources: {', '.join(sorted(set(table['source'])))})"
        )

    def draw(mask, n):
        pool = ids[mask]
        return list(rng.permutation(pool)[:n])

    n_test = sizes["test"]
    test = draw(in_test_src & has_hq, n_test)
    if len(test) < n_test:
        test += draw(~in_test_src & has_hq, n_test - len(test))
    if not test:
        raise DualgenError(
            "no test patches: no patch with an HQ mask is left after filtering: add HQ masks (data.hq_masks) "
            "or relax patches.drop_background_only / patches.exclude"
        )
    if len(test) < n_test:
        raise DualgenError(
            f"only {len(test)} patches with HQ masks for the test set, datasets.test asks for {n_test}: "
            "lower datasets.test, add HQ masks, or set datasets.fit_to_data: true"
        )
    free = ~in_test_src & ~np.isin(ids, test)
    n_small = sizes["small_train"] + sizes["small_val"]
    small = draw(free & has_hq, n_small)
    if len(small) < n_small:
        raise DualgenError(
            f"only {len(small)} usable patches with HQ masks outside the test set, the small sets need {n_small} "
            "(datasets.small_train + small_val): lower them, add images, or set datasets.fit_to_data: true"
        )
    n_big = sizes["big_train"] + sizes["big_val"]
    extra_needed = n_big - n_small
    extra = draw(free & ~np.isin(ids, small), extra_needed)
    if len(extra) < extra_needed:
        raise DualgenError(
            f"fewer usable patches ({n_small + len(extra)}) outside the test set than the big sets need ({n_big} = "
            "datasets.big_train + big_val): lower them, add images, or set datasets.fit_to_data: true"
        )
    small_train, small_val = small[:sizes["small_train"]], small[sizes["small_train"]:]
    n_extra_train = sizes["big_train"] - sizes["small_train"]
    if n_extra_train < 0 or sizes["big_val"] < sizes["small_val"]:
        raise DualgenError("datasets: big_train/big_val must be at least small_train/small_val (the small set is part of the big one)")
    big_train = small_train + extra[:n_extra_train]
    big_val = small_val + extra[n_extra_train:]

    def manifest(train, val, mask_of):
        rows = [(p, "train", mask_of(p)) for p in train] + [(p, "val", mask_of(p)) for p in val]
        rows += [(p, "test", "hq") for p in test]
        return pd.DataFrame(rows, columns=["patch_id", "split", "mask"])

    small_set = set(small)
    manifests = {
        "SHQ": manifest(small_train, small_val, lambda p: "hq"),
        "SLQ": manifest(small_train, small_val, lambda p: "lq"),
        "BLQ": manifest(big_train, big_val, lambda p: "lq"),
        "BMQ": manifest(big_train, big_val, lambda p: "hq" if p in small_set else "lq"),
    }
    return manifests, sizes


def load(patches_dir, manifest, split_name):
    """Read the patches of one split: (ids, images uint8 (N,H,W,C), masks uint8 (N,H,W))."""
    patches_dir = Path(patches_dir)
    if isinstance(manifest, (str, Path)):
        manifest = pd.read_csv(manifest)
    rows = manifest[manifest["split"] == split_name]
    images, masks = [], []
    for pid, which in zip(rows["patch_id"], rows["mask"]):
        img = io.read_png(patches_dir / "images" / f"{pid}.png")
        images.append(img[..., None] if img.ndim == 2 else img)
        masks.append(io.read_png(patches_dir / which / f"{pid}.png"))
    if not images:
        return [], np.zeros((0, 0, 0, 0), np.uint8), np.zeros((0, 0, 0), np.uint8)
    return list(rows["patch_id"]), np.stack(images), np.stack(masks)


def mix_manifest(mix, base_manifests, pool_ids):
    """The training manifest of one mix: real train/val patches of its base plus the first n_synth
    synthetic pairs of the pool (nested prefixes: a bigger mix contains the smaller ones' images)."""
    if mix.n_synth > len(pool_ids):
        raise DualgenError(
            f"mix {mix.name} needs {mix.n_synth} synthetic images but the pool has {len(pool_ids)}: "
            "rerun the sample step (its size follows mixes.levels) or lower the synthetic levels"
        )
    rows = []
    if mix.real_from:
        m = base_manifests[mix.real_from]
        rows += [("real", p, "train", q) for p, q in m.loc[m.split == "train", ["patch_id", "mask"]].itertuples(index=False)]
    rows += [("synth", p, "train", "synth") for p in pool_ids[:mix.n_synth]]
    v = base_manifests[mix.val_from]
    rows += [("real", p, "val", q) for p, q in v.loc[v.split == "val", ["patch_id", "mask"]].itertuples(index=False)]
    return pd.DataFrame(rows, columns=["origin", "id", "split", "mask"])


def load_mix(manifest, patches_dir, synth_dir, split_name):
    """(ids, images, masks) of one split of a mix manifest (real patches and synthetic pairs)."""
    if isinstance(manifest, (str, Path)):
        manifest = pd.read_csv(manifest)
    rows = manifest[manifest["split"] == split_name]
    images, masks = [], []
    for origin, pid, which in zip(rows["origin"], rows["id"], rows["mask"]):
        if origin == "synth":
            img = io.read_png(Path(synth_dir) / "images" / f"{pid}.png")
            mask = io.read_png(Path(synth_dir) / "masks" / f"{pid}.png")
        else:
            img = io.read_png(Path(patches_dir) / "images" / f"{pid}.png")
            mask = io.read_png(Path(patches_dir) / which / f"{pid}.png")
        images.append(img[..., None] if img.ndim == 2 else img)
        masks.append(mask)
    return list(rows["id"]), np.stack(images), np.stack(masks)
