"""Source micrographs -> a grid of patches that keep their source and position.

Sources pair an image with its mask (model-made or hand-made; "LQ") and, where the user has one, a
corrected mask ("HQ"). Without an HQ folder the masks are taken as the truth (HQ = LQ).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen import io
from dualgen.errors import DualgenError


@dataclass
class Source:
    name: str
    image: np.ndarray  # uint8 (H, W, C)
    lq: np.ndarray  # uint8 (H, W) class ids
    hq: np.ndarray | None  # uint8 (H, W) or None when this image has no corrected mask
    files: tuple


def _check_pairs(images, masks, what, masks_key):
    lonely = sorted(set(masks) - set(images))
    if lonely:
        raise DualgenError(
            f"{masks[lonely[0]]}: {what} without a micrograph (no '{lonely[0]}.*' among the images): "
            f"add the image or remove the mask from data.{masks_key}"
        )


def load_sources(images_dir, masks_dir, hq_dir, classes, mask_format, crop_height=None,
                 max_pixels=io.DEFAULT_MAX_PIXELS, log=print):
    images = io.list_images(images_dir, "images")
    masks = io.list_images(masks_dir, "masks")
    _check_pairs(images, masks, "mask", "masks")
    missing = sorted(set(images) - set(masks))
    if missing:
        raise DualgenError(
            f"{images[missing[0]]}: micrograph without a mask (no '{missing[0]}.*' in {masks_dir}): "
            "add its mask or remove the image"
        )
    hq_files = io.list_images(hq_dir, "hq_masks") if hq_dir else {}
    _check_pairs(images, hq_files, "HQ mask", "hq_masks")
    sources, channels = [], {}
    for stem, ipath in images.items():
        image = io.read_micrograph(ipath, max_pixels)
        if crop_height:
            if image.shape[0] < crop_height:
                raise DualgenError(f"{ipath}: {image.shape[0]} rows, fewer than data.crop_height {crop_height}: lower it")
            image = image[:crop_height]
        lq = io.read_mask(masks[stem], classes, mask_format, max_pixels)
        _check_size(ipath, image, masks[stem], lq, crop_height)
        hq = None
        if stem in hq_files:
            hq = io.read_mask(hq_files[stem], classes, mask_format, max_pixels)
            _check_size(ipath, image, hq_files[stem], hq, crop_height)
        channels.setdefault(image.shape[2], ipath)
        sources.append(Source(stem, image, lq, hq if hq_dir else lq, (ipath, masks[stem], hq_files.get(stem))))
        log(f"read {ipath.name}: {image.shape[1]}x{image.shape[0]} px, {image.shape[2]} channel(s)")
    if len(channels) > 1:
        (c1, p1), (c2, p2) = list(channels.items())[:2]
        raise DualgenError(f"{p2}: {c2} channel(s) but {p1} has {c1}: use all gray or all RGB micrographs")
    return sources


def _check_size(ipath, image, mpath, mask, crop_height):
    if image.shape[:2] != mask.shape:
        hint = ("set data.crop_height to the mask height if the micrograph has an info band"
                if image.shape[0] > mask.shape[0] and image.shape[1] == mask.shape[1] and not crop_height
                else "image and mask must have the same size")
        raise DualgenError(
            f"{ipath} is {image.shape[1]}x{image.shape[0]} px but its mask {mpath} is "
            f"{mask.shape[1]}x{mask.shape[0]} px: {hint}"
        )


def grid_positions(height, width, size, stride):
    ys = range(0, height - size + 1, stride)
    xs = range(0, width - size + 1, stride)
    return [(y, x) for y in ys for x in xs]


def patch_id(source, y, x):
    return f"{source}_y{y:05d}_x{x:05d}"


def cut(sources, size, stride, drop_background_only=True, exclude=(), num_classes=2, log=print):
    """Yield (record dict, image, lq, hq) for every kept patch; raise on impossible settings."""
    exclude = set(exclude)
    all_ids = set()
    kept, dropped_bg = [], 0
    for src in sources:
        h, w = src.lq.shape
        if size > h or size > w:
            raise DualgenError(
                f"{src.files[0]}: patches.size {size} is larger than the image ({w}x{h} px): lower patches.size"
            )
        for y, x in grid_positions(h, w, size, stride):
            pid = patch_id(src.name, y, x)
            all_ids.add(pid)
            if pid in exclude:
                continue
            lq = src.lq[y:y + size, x:x + size]
            hq = None if src.hq is None else src.hq[y:y + size, x:x + size]
            truth = hq if hq is not None else lq
            if drop_background_only and not truth.any():
                dropped_bg += 1
                continue
            fractions = np.bincount(truth.ravel(), minlength=num_classes)[:num_classes] / truth.size
            record = {"patch_id": pid, "source": src.name, "y": y, "x": x, "has_hq": hq is not None}
            record.update({f"frac_{k}": float(f) for k, f in enumerate(fractions)})
            kept.append((record, src.image[y:y + size, x:x + size], lq, hq))
    unknown = sorted(exclude - all_ids)
    if unknown:
        example = next(iter(sorted(all_ids)), "?")
        raise DualgenError(f"patches.exclude: '{unknown[0]}' is not a patch id (ids look like {example})")
    log(f"{len(kept)} patches kept, {dropped_bg} background-only dropped, {len(exclude)} excluded")
    if not kept:
        raise DualgenError(
            f"no usable patches: all {len(all_ids)} patches show only the background class or are excluded: "
            "check that the masks contain the other classes, or set patches.drop_background_only: false"
        )
    return kept


def write(kept, out_dir):
    out_dir = Path(out_dir)
    for sub in ("images", "lq", "hq"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    for record, image, lq, hq in kept:
        pid = record["patch_id"]
        io.write_png(out_dir / "images" / f"{pid}.png", image)
        io.write_png(out_dir / "lq" / f"{pid}.png", lq)
        if hq is not None:
            io.write_png(out_dir / "hq" / f"{pid}.png", hq)
    table = pd.DataFrame([r for r, *_ in kept])
    table.to_csv(out_dir / "patches.csv", index=False)
    return table
