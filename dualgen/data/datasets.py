"""The four base datasets of the paper (Table 1) as manifests over the patches.

SHQ: small set, HQ masks. SLQ: the same patches with LQ masks. BLQ: big set (contains the small set),
LQ masks. BMQ: BLQ with the small set's HQ masks swapped in. Test: HQ patches, never in any training or
validation set, drawn first from ``test_sources`` (images reserved for testing), as in the paper.

``data.splits`` instead gives list files of image names (train / val / test, as public sets ship them): then
training patches come only from the train images, validation patches only from the val images and test patches
only from the test images. Patches marked ``rare`` (``patches.keep_rare``) are drawn before the others, each
draw taking its share of them, so every one is used while the sets have room. ``class_shares`` is the table
of class shares per dataset and split (``class_shares.csv``), ``absent_classes`` what it lacks.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core.errors import DualgenError
from dualgen.data import io

BASES = ("SHQ", "SLQ", "BLQ", "BMQ")
SIZE_KEYS = ("small_train", "small_val", "big_train", "big_val", "test")
SPLITS = ("train", "val", "test")


def fit_sizes(sizes, n_usable):
    """Scale the five sizes by one factor so big + test uses the usable patches (paper proportions)."""
    total = sizes["big_train"] + sizes["big_val"] + sizes["test"]
    factor = n_usable / total
    return {k: max(1, int(np.floor(sizes[k] * factor))) for k in SIZE_KEYS}


def fit_split_sizes(sizes, n_train, n_val, n_test_hq, n_train_hq, n_val_hq):
    """The five sizes fitted to each split's own images (``data.splits`` lists): the test set takes every usable
    test patch with an HQ mask, the big sets every usable patch of the train / val images, and the small sets the
    paper's share of the big ones (small_train / big_train of ``sizes``, likewise for val), at least one patch and
    at most the HQ patches there are."""

    def small(n_big, n_hq, key, big_key):
        return max(1, min(n_hq, int(np.floor(n_big * sizes[key] / sizes[big_key]))))

    return {
        "small_train": small(n_train, n_train_hq, "small_train", "big_train"),
        "small_val": small(n_val, n_val_hq, "small_val", "big_val"),
        "big_train": n_train,
        "big_val": n_val,
        "test": n_test_hq,
    }


def _entry(line, known):
    """An image name from a list line: a stem, a file name or a path (extension dropped)."""
    name = line.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if name in known:
        return name
    stem, dot, ext = name.rpartition(".")
    return stem if dot and f".{ext.lower()}" in io.EXTENSIONS else name


def read_split_lists(splits, known):
    """{split: [image names]} from ``data.splits`` list files (one name per line; blank lines and # comments
    skipped). Unknown names, a missing file, an empty list or an image in two lists: one line."""
    known = sorted(set(known))
    out, where = {}, {}
    for split in SPLITS:
        path = (splits or {}).get(split)
        if not path:
            continue
        try:
            lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
        except FileNotFoundError:
            raise DualgenError(f"{path}: list file not found: check data.splits.{split} in your config")
        except (OSError, UnicodeDecodeError) as err:
            raise DualgenError(f"{path}: not a readable text list ({type(err).__name__}): one image name per line")
        names = []
        for i, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name = _entry(line, set(known))
            if name not in known:
                shown = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
                raise DualgenError(
                    f"{path}: line {i}: '{line.strip()}' is not one of the images ({len(known)}: {shown}): "
                    f"fix data.splits.{split} or data.images"
                )
            if name in where and where[name] != split:
                raise DualgenError(
                    f"{path}: line {i}: '{name}' is also in the {where[name]} list: an image belongs to one split"
                )
            where[name] = split
            if name not in names:
                names.append(name)
        if not names:
            raise DualgenError(f"{path}: no image names in data.splits.{split}: one image name per line")
        out[split] = names
    return out


def split(table, sizes, test_sources=(), seed=0, fit_to_data=False, lists=None, log=print):
    """Return {name: manifest DataFrame(patch_id, split, mask)} for SHQ, SLQ, BLQ, BMQ, and the sizes used.

    ``lists``: {split: image names} from ``read_split_lists`` (replaces ``test_sources``). A ``rare`` column in
    ``table`` marks patches to keep (``patches.keep_rare``)."""
    rng = np.random.default_rng(seed)
    lists = {k: list(v) for k, v in (lists or {}).items() if v}
    by_list = "train" in lists and "val" in lists
    src = table["source"]
    in_lists = src.isin([n for names in lists.values() for n in names]).to_numpy()
    if by_list:
        unused = sorted(set(src[~in_lists]))
        if unused:
            log(
                f"data.splits: {len(unused)} image(s) in no list, not used: {', '.join(unused[:5])}"
                f"{' ...' if len(unused) > 5 else ''}"
            )
    ids = table["patch_id"].to_numpy()
    has_hq = table["has_hq"].to_numpy(bool)
    if fit_to_data and by_list and "test" in lists:
        part = {k: src.isin(lists[k]).to_numpy() for k in SPLITS}
        sizes = fit_split_sizes(
            sizes,
            n_train=int(part["train"].sum()),
            n_val=int(part["val"].sum()),
            n_test_hq=int((part["test"] & has_hq).sum()),
            n_train_hq=int((part["train"] & has_hq).sum()),
            n_val_hq=int((part["val"] & has_hq).sum()),
        )
        log(f"datasets.fit_to_data: sizes fitted to the split lists' images: {sizes}")
    elif fit_to_data:
        sizes = fit_sizes(sizes, int(in_lists.sum()) if by_list else len(table))
    rare = table["rare"].to_numpy(bool) if "rare" in table else np.zeros(len(table), bool)
    test_names = lists.get("test", list(test_sources))
    in_test_src = src.isin(test_names).to_numpy()
    if "test" not in lists:
        unknown = sorted(set(test_sources) - set(src))
        if unknown:
            raise DualgenError(
                f"data.test_sources: '{unknown[0]}' has no usable patches (sources: {', '.join(sorted(set(src)))})"
            )
    train_img = src.isin(lists.get("train", [])).to_numpy()
    val_img = src.isin(lists.get("val", [])).to_numpy()
    usable = in_lists if by_list else np.ones(len(table), bool)
    taken = np.zeros(len(ids), bool)
    index = {p: i for i, p in enumerate(ids)}

    def draw(mask, n, later=0):
        """n patches of the pool ``mask`` at random; rare ones first, this draw's share of the pool's rare
        patches (n / (n + later): ``later`` = what later draws from the same pool take; 0: all it can)."""
        pool = ids[mask]
        perm = rng.permutation(pool)
        is_rare = rare[[index[p] for p in perm]] if len(perm) else np.zeros(0, bool)
        if not is_rare.any():
            out = list(perm[:n])
        else:
            rare_pool, other_pool = perm[is_rare], perm[~is_rare]
            quota = min(n, int(np.ceil(len(rare_pool) * n / max(n + later, 1))))
            n_other = min(n - min(quota, len(rare_pool)), len(other_pool))
            picked = rare_pool[: n - n_other]  # more than the quota when the others run out
            out = list(rng.permutation(np.concatenate([picked, other_pool[:n_other]])))
        taken[[index[p] for p in out]] = True
        return out

    n_test = sizes["test"]
    n_big = sizes["big_train"] + sizes["big_val"]
    test = draw(in_test_src & has_hq, n_test, later=0 if in_test_src.any() else n_big)
    if len(test) < n_test and "test" not in lists:
        test += draw(~in_test_src & has_hq & ~np.isin(ids, test), n_test - len(test), later=n_big)
    if not test:
        raise DualgenError(
            "no test patches: no patch with an HQ mask is left after filtering: add HQ masks (data.hq_masks) "
            "or relax patches.drop_background_only / patches.exclude"
            if "test" not in lists
            else "no test patches: the images of data.splits.test have no usable patch with an HQ mask: list other "
            "images, add HQ masks, or relax patches.drop_background_only / patches.exclude"
        )
    if len(test) < n_test:
        where = "in the data.splits.test images" if "test" in lists else "with HQ masks"
        raise DualgenError(
            f"only {len(test)} patches {where} for the test set, datasets.test asks for {n_test}: "
            "lower datasets.test, add HQ masks, or set datasets.fit_to_data: true"
        )
    if sizes["big_train"] < sizes["small_train"] or sizes["big_val"] < sizes["small_val"]:
        raise DualgenError(
            "datasets: big_train/big_val must be at least small_train/small_val (the small set is part of the big one)"
        )
    free = ~in_test_src & ~np.isin(ids, test)
    if by_list:
        small_train = _need(
            draw(free & train_img & has_hq, sizes["small_train"], later=sizes["big_train"] - sizes["small_train"]),
            sizes["small_train"],
            "with HQ masks in the data.splits.train images",
            "datasets.small_train",
        )
        small_val = _need(
            draw(free & val_img & has_hq, sizes["small_val"], later=sizes["big_val"] - sizes["small_val"]),
            sizes["small_val"],
            "with HQ masks in the data.splits.val images",
            "datasets.small_val",
        )
        small = small_train + small_val
        big_train = small_train + _need(
            draw(free & train_img & ~np.isin(ids, small), sizes["big_train"] - sizes["small_train"]),
            sizes["big_train"] - sizes["small_train"],
            "more in the data.splits.train images",
            "datasets.big_train - small_train",
        )
        big_val = small_val + _need(
            draw(free & val_img & ~np.isin(ids, small), sizes["big_val"] - sizes["small_val"]),
            sizes["big_val"] - sizes["small_val"],
            "more in the data.splits.val images",
            "datasets.big_val - small_val",
        )
    else:
        n_small = sizes["small_train"] + sizes["small_val"]
        small = draw(free & has_hq, n_small, later=n_big - n_small)
        if len(small) < n_small:
            raise DualgenError(
                f"only {len(small)} usable patches with HQ masks outside the test set, the small sets need {n_small} "
                "(datasets.small_train + small_val): lower them, add images, or set datasets.fit_to_data: true"
            )
        extra_needed = n_big - n_small
        extra = draw(free & ~np.isin(ids, small), extra_needed)
        if len(extra) < extra_needed:
            raise DualgenError(
                f"fewer usable patches ({n_small + len(extra)}) outside the test set than the big sets need ({n_big} = "
                "datasets.big_train + big_val): lower them, add images, or set datasets.fit_to_data: true"
            )
        small_train, small_val = small[: sizes["small_train"]], small[sizes["small_train"] :]
        n_extra_train = sizes["big_train"] - sizes["small_train"]
        big_train = small_train + extra[:n_extra_train]
        big_val = small_val + extra[n_extra_train:]
    if rare.any():
        n_rare, used = int((rare & usable).sum()), int((rare & taken).sum())
        log(
            f"patches.keep_rare: {used} of {n_rare} patches with a rare class are in the datasets"
            + (
                ""
                if used == n_rare
                else f" ({n_rare - used} left out: the sets are full or the split lists exclude them)"
            )
        )

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


def _need(drawn, n, what, key):
    if len(drawn) < n:
        raise DualgenError(
            f"only {len(drawn)} usable patches {what}, {key} needs {n}: lower it, list more images, or set "
            "datasets.fit_to_data: true"
        )
    return drawn


def class_shares(manifests, table, class_names):
    """Pixel share of every class in every split: DataFrame(dataset, split, n_patches, <class>...), from the
    class fractions of patches.csv (``frac_k`` of the HQ mask, ``lq_frac_k`` of the LQ mask). The test set,
    the same in every dataset, is one row (dataset ``test``)."""
    t = table.set_index("patch_id")
    k = len(class_names)
    hq = t[[f"frac_{i}" for i in range(k)]].to_numpy(float)
    lq_cols = [f"lq_frac_{i}" for i in range(k)]
    lq = t[lq_cols].to_numpy(float) if all(c in t for c in lq_cols) else hq
    pos = {p: i for i, p in enumerate(t.index)}
    rows = []
    parts = [(name, sp) for name in manifests for sp in ("train", "val")] + [("test", "test")]
    for name, sp in parts:
        m = manifests["SHQ" if name == "test" else name]
        m = m[m["split"] == sp]
        idx = np.array([pos[p] for p in m["patch_id"]], dtype=np.intp)
        which = (m["mask"] == "hq").to_numpy()
        fr = np.where(which[:, None], hq[idx], lq[idx]) if len(idx) else np.zeros((0, k))
        shares = fr.mean(axis=0) if len(idx) else np.full(k, np.nan)
        rows.append({"dataset": name, "split": sp, "n_patches": len(idx), **dict(zip(class_names, shares))})
    return pd.DataFrame(rows, columns=["dataset", "split", "n_patches", *class_names])


def absent_classes(shares, class_names):
    """{class: ["SHQ val", ..., "test"]}: the validation and test splits (with patches) that lack the class."""
    out = {}
    for row in shares.to_dict("records"):
        if row["split"] == "train" or not row["n_patches"]:
            continue
        where = "test" if row["dataset"] == "test" else f"{row['dataset']} {row['split']}"
        for name in class_names:
            if not row[name] > 0:
                out.setdefault(name, []).append(where)
    return out


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
        rows += [
            ("real", p, "train", q) for p, q in m.loc[m.split == "train", ["patch_id", "mask"]].itertuples(index=False)
        ]
    rows += [("synth", p, "train", "synth") for p in pool_ids[: mix.n_synth]]
    v = base_manifests[mix.val_from]
    rows += [("real", p, "val", q) for p, q in v.loc[v.split == "val", ["patch_id", "mask"]].itertuples(index=False)]
    return pd.DataFrame(rows, columns=["origin", "id", "split", "mask"])


def real_manifest(mix, base_manifests, has_hq):
    """The manifest of a real-only learning-curve mix (``mix.real_only``): the first ``mix.n_real`` real HQ training
    patches in a fixed order (SHQ's training patches, then the big training set's patches that have an HQ mask, in
    BMQ's order; nested prefixes, so a bigger size contains the smaller ones), validated on SHQ's validation patches.
    ``has_hq``: the ids of patches with an HQ mask. Returns (manifest, number of HQ training patches there are)."""
    shq, big = base_manifests["SHQ"], base_manifests["BMQ"]
    order = list(shq.loc[shq.split == "train", "patch_id"])
    order += [p for p in big.loc[big.split == "train", "patch_id"] if p in has_hq and p not in set(order)]
    rows = [("real", p, "train", "hq") for p in order[: mix.n_real]]
    rows += [
        ("real", p, "val", q) for p, q in shq.loc[shq.split == "val", ["patch_id", "mask"]].itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=["origin", "id", "split", "mask"]), len(order)


DECODED = "decoded"  # a pool's micrographs as the decoder made them, where postprocess changed them (image_noise)


def write_pool(pool_dir, ids, masks, n_classes, images_from=None, images=None):
    """Write a synthetic pool in the layout ``read_pool`` and ``pool_fractions`` read: images/<id>.png (copied from
    the folder ``images_from``, or written from the uint8 arrays ``images``, one per id), masks/<id>.png (class ids),
    pool.csv (synth_id and the class fractions ``frac_k`` of each mask). With both ``images`` and ``images_from``,
    the folder's micrographs are kept as decoded/<id>.png (``DECODED``: what the decoder made, before a filter or
    noise changed it; ``read_decoded``). Returns the (N, n_classes) fractions."""
    pool_dir = Path(pool_dir)
    if images is None:
        shutil.copytree(images_from, pool_dir / "images")
    else:
        if images_from is not None:
            shutil.copytree(images_from, pool_dir / DECODED)
        (pool_dir / "images").mkdir()
        for i, image in zip(ids, images, strict=True):
            io.write_png(pool_dir / "images" / f"{i}.png", image[..., 0] if image.shape[-1] == 1 else image)
    (pool_dir / "masks").mkdir()
    for i, mask in zip(ids, masks, strict=True):
        io.write_png(pool_dir / "masks" / f"{i}.png", mask)
    fractions = np.stack([np.bincount(m.ravel(), minlength=int(n_classes)) / m.size for m in masks])
    table = pd.DataFrame({"synth_id": list(ids)})
    for k in range(int(n_classes)):
        table[f"frac_{k}"] = fractions[:, k]
    table.to_csv(pool_dir / "pool.csv", index=False)
    return fractions


def pool_fractions(pool_dir, n_classes):
    """(N, n_classes) class fractions of the synthetic pool's cleaned masks, in pool.csv order (its ``frac_k``
    columns, written by postprocess): what the masks hold, without reading them."""
    table = pd.read_csv(Path(pool_dir) / "pool.csv")
    return table[[f"frac_{k}" for k in range(int(n_classes))]].to_numpy(float)


def _stack_images(folder, ids):
    images = [io.read_png(Path(folder) / f"{i}.png") for i in ids]
    return [img[..., None] if img.ndim == 2 else img for img in images]


def read_pool(pool_dir, ids=None):
    """The synthetic pool (postprocess output): (ids, images uint8 (N,H,W,C), masks uint8 (N,H,W)); all pairs in
    pool.csv order, or the given ids. The one reader of the pool's layout: images/<id>.png, masks/<id>.png."""
    pool_dir = Path(pool_dir)
    ids = list(pd.read_csv(pool_dir / "pool.csv")["synth_id"]) if ids is None else list(ids)
    images = _stack_images(pool_dir / "images", ids)
    masks = [io.read_png(pool_dir / "masks" / f"{i}.png") for i in ids]
    if not ids:
        return [], np.zeros((0, 0, 0, 0), np.uint8), np.zeros((0, 0, 0), np.uint8)
    return ids, np.stack(images), np.stack(masks)


def read_decoded(pool_dir, ids):
    """uint8 (N, H, W, C): the pool's micrographs ``ids`` as decoded (decoded/<id>.png, ``write_pool``: before
    postprocess.image_noise changed them); None where the pool has no such copy (its images are the decoded ones)."""
    folder = Path(pool_dir) / DECODED
    return np.stack(_stack_images(folder, ids)) if folder.is_dir() and len(ids) else None


def load_mix(manifest, patches_dir, synth_dir, split_name):
    """(ids, images, masks) of one split of a mix manifest (real patches and synthetic pairs)."""
    if isinstance(manifest, (str, Path)):
        manifest = pd.read_csv(manifest)
    rows = manifest[manifest["split"] == split_name]
    images, masks = [], []
    for origin, pid, which in zip(rows["origin"], rows["id"], rows["mask"]):
        if origin == "synth":
            _, img, mask = read_pool(synth_dir, [pid])
            img, mask = img[0], mask[0]
        else:
            img = io.read_png(Path(patches_dir) / "images" / f"{pid}.png")
            img = img[..., None] if img.ndim == 2 else img
            mask = io.read_png(Path(patches_dir) / which / f"{pid}.png")
        images.append(img)
        masks.append(mask)
    return list(rows["id"]), np.stack(images), np.stack(masks)
