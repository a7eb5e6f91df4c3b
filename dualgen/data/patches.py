"""Source micrographs -> a grid of patches that keep their source and position.

Sources pair an image with its mask (model-made or hand-made; "LQ") and, where the user has one, a
corrected mask ("HQ"). Without an HQ folder the masks are taken as the truth (HQ = LQ), unless
``data.simulate_lq`` derives LQ masks from them (``dualgen.data.labelnoise``).

Per image, in this order: read; cut the info band (``data.crop_height``: a number of rows, or ``auto`` = the
mask's height); check the sizes; decide gray or colour on what is left; resize (``data.scale``: area
averaging for the micrograph, the majority class for masks); then, over the set, one channel count (the
majority; the others converted, one log line). The micrograph's steps are ``prepare_image``, which
whole-micrograph inference (``dualgen.segment.whole``) calls too. Images of several sizes are fine: patches come
from each image's own grid.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dualgen.core.errors import DualgenError
from dualgen.data import io, labelnoise

DEFAULT_MAX_BAND = 0.2  # data.max_band: crop_height auto cuts at most this share of an image's rows


@dataclass
class Source:
    name: str
    image: np.ndarray  # uint8 (H, W, C)
    lq: np.ndarray  # uint8 (H, W) class ids
    hq: np.ndarray | None  # uint8 (H, W) or None when this image has no corrected mask
    files: tuple
    info: dict = field(default_factory=dict)  # file size, rows cut, size used, gray/colour (sources.csv)


def _check_pairs(images, masks, what, masks_key):
    lonely = sorted(set(masks) - set(images))
    if lonely:
        raise DualgenError(
            f"{masks[lonely[0]]}: {what} without a micrograph (no '{lonely[0]}.*' among the images): "
            f"add the image or remove the mask from data.{masks_key}"
        )


def _crop(ipath, image, mpath, mask, crop_height, max_band):
    """The micrograph without its info band: (image, rows cut)."""
    if crop_height == "auto":
        (h, w), (mh, mw) = image.shape[:2], mask.shape
        band = h - mh
        if w == mw and 0 < band <= max_band * h:
            return image[:mh], band
        if w == mw and band > 0:
            raise DualgenError(
                f"{ipath} is {w}x{h} px but its mask {mpath} is {mw}x{mh} px: {band} rows more than the mask, above "
                f"data.max_band ({max_band:.0%} of the height, {int(max_band * h)} rows): raise data.max_band if the "
                "info band is that tall, or fix the mask"
            )
        return image, 0  # same size, or a mismatch _check_size names
    if crop_height:
        if image.shape[0] < crop_height:
            raise DualgenError(f"{ipath}: {image.shape[0]} rows, fewer than data.crop_height {crop_height}: lower it")
        return image[:crop_height], image.shape[0] - crop_height
    return image, 0


def scaled_size(height, width, scale):
    """(height, width) after ``data.scale`` (rounded, at least 1 px)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize_image(image, height, width):
    """uint8 (H, W, C) -> (height, width, C): area averaging when shrinking, bilinear when enlarging."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    method = Image.Resampling.BOX if height <= h and width <= w else Image.Resampling.BILINEAR
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize((width, height), method))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, -1).astype(np.uint8)


def prepare_image(image, rows_cut=0, scale=1.0, channels=None):
    """The micrograph as the study sees it, from uint8 (H, W, C) as io.read_micrograph(collapse_gray=False) reads
    it: the bottom ``rows_cut`` rows (the info band) cut, gray or colour decided on what is left (io.is_gray; gray
    -> 1 channel), resized by ``scale`` (scaled_size + resize_image: area averaging), and, when ``channels`` (1 or
    3) is given, converted to it (io.to_gray / io.to_rgb, as _one_channel_count does). Returns (image, gray).

    Ingest (``load_sources``) and whole-micrograph inference (``dualgen.segment.whole``) both call it, so a model
    sees the same pixels at inference as in training."""
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, not {channels!r}")
    image = image[: image.shape[0] - int(rows_cut)]
    gray = io.is_gray(image)
    image = io.to_gray(image) if gray else image
    image = resize_image(image, *scaled_size(*image.shape[:2], float(scale or 1.0)))
    if channels is not None:
        image = io.to_gray(image) if channels == 1 else io.to_rgb(image)
    return image, gray


def resize_mask(mask, height, width):
    """uint8 (H, W) class ids -> (height, width): each new pixel takes the class covering most of its area
    (the nearest one when enlarging; a tie goes to the rarer class), so no new class id appears."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    present, counts = np.unique(mask, return_counts=True)
    if len(present) == 1:
        return np.full((height, width), present[0], np.uint8)
    best = np.full((height, width), -1.0, np.float32)
    out = np.zeros((height, width), np.uint8)
    for cls in present[np.argsort(counts, kind="stable")]:  # rarest first: a tie goes to the rarer class
        area = np.asarray(
            Image.fromarray((mask == cls).astype(np.float32)).resize((width, height), Image.Resampling.BOX)
        )
        better = area > best
        out[better], best[better] = cls, area[better]
    return out


def load_sources(
    images_dir,
    masks_dir,
    hq_dir,
    classes,
    mask_format,
    crop_height=None,
    max_pixels=io.DEFAULT_MAX_PIXELS,
    log=print,
    max_band=DEFAULT_MAX_BAND,
    scale=1.0,
):
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
    scale = float(scale or 1.0)
    sources = []
    for stem, ipath in images.items():
        raw = io.read_micrograph(ipath, max_pixels, collapse_gray=False)
        file_h, file_w = raw.shape[:2]
        lq = io.read_mask(masks[stem], classes, mask_format, max_pixels)
        cropped, cut_rows = _crop(ipath, raw, masks[stem], lq, crop_height, max_band)
        _check_size(ipath, cropped, masks[stem], lq, crop_height)
        hq = None
        if stem in hq_files:
            hq = io.read_mask(hq_files[stem], classes, mask_format, max_pixels)
            _check_size(ipath, cropped, hq_files[stem], hq, crop_height)
        image, gray = prepare_image(raw, cut_rows, scale)
        h, w = image.shape[:2]  # scaled_size(*lq.shape, scale)
        lq = resize_mask(lq, h, w)
        hq = None if hq is None else resize_mask(hq, h, w)
        info = {
            "source": stem,
            "file": ipath.name,
            "file_width": file_w,
            "file_height": file_h,
            "rows_cut": cut_rows,
            "width": w,
            "height": h,
            "gray": gray,
        }
        sources.append(Source(stem, image, lq, hq if hq_dir else lq, (ipath, masks[stem], hq_files.get(stem)), info))
        band = f", {cut_rows} rows cut (info band)" if cut_rows else ""
        resized = f", scaled to {w}x{h} px" if (h, w) != (file_h - cut_rows, file_w) else ""
        log(f"read {ipath.name}: {file_w}x{file_h} px{band}{resized}, {'gray' if gray else 'colour'}")
    _one_channel_count(sources, log)
    return sources


def _one_channel_count(sources, log):
    """All micrographs gray or all colour: the majority wins (a tie: colour, which loses nothing); the others are
    converted (gray -> three equal channels, colour -> luminance) with one log line."""
    gray = [s for s in sources if s.info["gray"]]
    colour = [s for s in sources if not s.info["gray"]]
    if not gray or not colour:
        return
    to_gray = len(gray) > len(colour)
    convert = colour if to_gray else gray
    names = ", ".join(s.files[0].name for s in convert[:5])
    names += f" and {len(convert) - 5} more" if len(convert) > 5 else ""
    for s in convert:
        s.image = io.to_gray(s.image) if to_gray else io.to_rgb(s.image)
        s.info["converted"] = True
    log(
        f"{len(gray)} gray and {len(colour)} colour micrographs: converted {len(convert)} to "
        f"{'gray' if to_gray else 'colour'} (the majority): {names}"
    )


def simulate_lq(sources, settings, num_classes, class_names, log=print):
    """Replace each source's LQ mask by a simulated one derived from its HQ mask (``dualgen.data.labelnoise``); every
    source then has an HQ mask. Returns the disagreement (share of pixels changed, per class)."""
    params = {k: settings.get(k, labelnoise.DEFAULTS[k]) for k in labelnoise.KEYS if k != "seed"}
    seed = settings.get("seed", labelnoise.DEFAULTS["seed"])
    for src in sources:
        truth = src.hq if src.hq is not None else src.lq
        src.hq = truth
        src.lq = labelnoise.simulate(truth, labelnoise.rng_for(seed, src.name), num_classes=num_classes, **params)
        one = labelnoise.disagreement([(truth, src.lq)], num_classes)
        src.info["lq_changed"] = one["changed"]
    stats = labelnoise.disagreement(((s.hq, s.lq) for s in sources), num_classes)
    stats["per_class"] = dict(zip(class_names, stats["per_class"]))
    log(
        f"simulated LQ masks ({', '.join(f'{k} {v}' for k, v in params.items())}, seed {seed}): "
        + labelnoise.describe(
            {"changed": stats["changed"], "per_class": list(stats["per_class"].values())}, class_names
        )
    )
    return stats


def _check_size(ipath, image, mpath, mask, crop_height):
    if image.shape[:2] != mask.shape:
        hint = (
            "set data.crop_height: auto (or the mask height) if the micrograph has an info band"
            if image.shape[0] > mask.shape[0] and image.shape[1] == mask.shape[1] and not crop_height
            else "image and mask must have the same size"
        )
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


def cut(sources, size, stride, drop_background_only=True, exclude=(), num_classes=2, log=print, keep_rare=()):
    """Yield (record dict, image, lq, hq) for every kept patch; raise on impossible settings.

    ``keep_rare``: class ids; a patch showing any of them is never dropped as background-only and is marked
    ``rare`` in the table (the datasets step then keeps every such patch it can). Explicit ``exclude`` ids
    stay excluded.
    """
    exclude = set(exclude)
    rare_ids = sorted(set(int(k) for k in keep_rare))
    all_ids = set()
    kept, dropped_bg = [], 0
    for src in sources:
        h, w = src.lq.shape
        if size > h or size > w:
            raise DualgenError(
                f"{src.files[0]}: patches.size {size} is larger than the image ({w}x{h} px"
                f"{', after data.scale' if src.info.get('width', w) != src.info.get('file_width', w) else ''}): "
                "lower patches.size"
            )
        for y, x in grid_positions(h, w, size, stride):
            pid = patch_id(src.name, y, x)
            all_ids.add(pid)
            if pid in exclude:
                continue
            lq = src.lq[y : y + size, x : x + size]
            hq = None if src.hq is None else src.hq[y : y + size, x : x + size]
            truth = hq if hq is not None else lq
            counts = np.bincount(truth.ravel(), minlength=num_classes)[:num_classes]
            rare = bool(rare_ids) and bool(counts[rare_ids].any())
            if drop_background_only and not truth.any() and not rare:
                dropped_bg += 1
                continue
            lq_counts = np.bincount(lq.ravel(), minlength=num_classes)[:num_classes]
            record = {"patch_id": pid, "source": src.name, "y": y, "x": x, "has_hq": hq is not None, "rare": rare}
            record.update({f"frac_{k}": float(f) for k, f in enumerate(counts / truth.size)})
            record.update({f"lq_frac_{k}": float(f) for k, f in enumerate(lq_counts / lq.size)})
            kept.append((record, src.image[y : y + size, x : x + size], lq, hq))
    unknown = sorted(exclude - all_ids)
    if unknown:
        example = next(iter(sorted(all_ids)), "?")
        raise DualgenError(f"patches.exclude: '{unknown[0]}' is not a patch id (ids look like {example})")
    n_rare = sum(r["rare"] for r, *_ in kept)
    rare_note = f", {n_rare} show a patches.keep_rare class" if rare_ids else ""
    log(f"{len(kept)} patches kept, {dropped_bg} background-only dropped, {len(exclude)} excluded{rare_note}")
    if not kept:
        raise DualgenError(
            f"no usable patches: all {len(all_ids)} patches show only the background class or are excluded: "
            "check that the masks contain the other classes, or set patches.drop_background_only: false"
        )
    return kept


def write(kept, out_dir, sources=None):
    """OUT/images, lq, hq (a PNG per patch), patches.csv, and sources.csv (one row per source image: file size,
    rows cut, size used, gray, patches kept)."""
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
    if sources is not None:
        counts = table["source"].value_counts()
        rows = [
            dict(s.info, source=s.name, channels=int(s.image.shape[2]), n_patches=int(counts.get(s.name, 0)))
            for s in sources
        ]
        pd.DataFrame(rows).to_csv(out_dir / "sources.csv", index=False)
    return table


def class_ids(names, classes, key="patches.keep_rare"):
    """Class names -> ids, or one line naming the unknown name and the known ones."""
    known = [c["name"] for c in classes]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DualgenError(f"config: {key}: '{unknown[0]}' is not a class (classes: {', '.join(known)})")
    return [known.index(n) for n in names]
