"""Whole micrographs for inference: the study's test micrographs with their truth at the original resolution, and
a lab's new micrographs. Both go through ``patches.prepare_image``, the function ingest cuts its patches from, so
the network sees at inference what it saw in training.

The info band: the patches step decided per image how many rows to cut (``sources.csv``: ``rows_cut``; with
``data.crop_height: auto`` from the mask's height). A new micrograph has no mask, so ``crop_rule`` keeps what ingest
did: a fixed ``crop_height`` (a number) cuts down to that height; ``auto`` cuts the rows ingest cut from files of the
same size (microscopes write one band height per image size), and nothing from a size it never saw (one log line).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core.errors import DualgenError
from dualgen.data import io, patches


@dataclass
class Micrograph:
    name: str
    image: np.ndarray  # uint8 (h, w, C): prepared (band cut, scaled, channels of the model)
    size: tuple  # (H, W) of the micrograph without its band, before data.scale: the original resolution
    rows_cut: int
    truth: np.ndarray | None = None  # uint8 (H, W) class ids at the original resolution (test micrographs)
    original: np.ndarray | None = None  # uint8 (H, W, C) the file's pixels without the band (new micrographs)


def crop_rule(crop_height, sources):
    """preprocess.json's ``crop``: {"height": N} for a fixed crop_height, {"auto": [[file_height, file_width,
    rows_cut], ...]} (the sizes ingest saw, from sources.csv) for auto, {} for none."""
    if crop_height == "auto":
        seen = sources[["file_height", "file_width", "rows_cut"]].drop_duplicates()
        return {"auto": sorted(map(list, seen.astype(int).itertuples(index=False)))}
    return {"height": int(crop_height)} if crop_height else {}


def rows_to_cut(crop, file_height, file_width, name, log=print):
    """How many bottom rows of a new micrograph of this size are its info band, by ``crop_rule``."""
    if "height" in crop:
        if file_height < crop["height"]:
            raise DualgenError(
                f"{name}: {file_height} rows, fewer than the model's crop height {crop['height']} (data.crop_height)"
            )
        return file_height - crop["height"]
    if "auto" in crop:
        cuts = {(h, w): r for h, w, r in crop["auto"]}
        if (file_height, file_width) in cuts:
            return cuts[(file_height, file_width)]
        log(f"{name}: {file_width}x{file_height} px, a size the study never saw: no info band cut")
    return 0


def test_micrographs(data, classes, names, sources, log=print):
    """The test micrographs ``names`` of the study, prepared as ingest prepared them (the rows ``sources.csv`` says
    were cut, ``data.scale``, the set's channel count) with their truth at the original resolution: the HQ mask
    (``data.hq_masks``) where there is one, else ``data.masks``. ``data``: the patches step's data settings.
    A test micrograph without an HQ mask while HQ masks exist is left out with one log line. With
    ``data.simulate_lq`` the masks are the truth (as in the patches step)."""
    images = io.list_images(data["images"], "images")
    masks = io.list_images(data["masks"], "masks")
    hq_dir = None if data.get("simulate_lq") else data.get("hq_masks")
    hq = io.list_images(hq_dir, "hq_masks") if hq_dir else {}
    table = sources.set_index("source")
    out = []
    for name in names:
        if hq and name not in hq:
            log(f"{name}: no HQ mask in {hq_dir}: not scored whole")
            continue
        if name not in images or name not in table.index:
            raise DualgenError(f"{name}: a test micrograph the patches step did not read: rerun the patches step")
        raw = io.read_micrograph(images[name], data["max_pixels"], collapse_gray=False)
        truth = io.read_mask((hq or masks)[name], classes, data["mask_format"], data["max_pixels"])
        row = table.loc[name]
        image, _ = patches.prepare_image(raw, int(row["rows_cut"]), data["scale"], int(row["channels"]))
        out.append(Micrograph(name, image, truth.shape, int(row["rows_cut"]), truth))
    return out


def list_new(folder):
    """{stem: path} of the micrographs in a folder for the predict step, or one line saying why there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DualgenError(f"{folder}: no such folder of micrographs: check --images (predict.images)")
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in io.EXTENSIONS}
    if not files:
        raise DualgenError(f"{folder}: no PNG, TIFF or JPEG files to segment: add micrographs or fix --images")
    return files


def new_micrograph(path, preprocess, log=print):
    """A lab's micrograph prepared for the exported model (``preprocess.json``): band cut by ``crop_rule``,
    ``scale``, converted to the model's channels (one log line when converted)."""
    raw = io.read_micrograph(path, preprocess["max_pixels"], collapse_gray=False)
    rows = rows_to_cut(preprocess["crop"], raw.shape[0], raw.shape[1], Path(path).name, log)
    channels = int(preprocess["channels"])
    image, gray = patches.prepare_image(raw, rows, preprocess["scale"], channels)
    if gray != (channels == 1):
        log(
            f"{Path(path).name}: {'gray' if gray else 'colour'} micrograph, the model takes "
            f"{'gray' if channels == 1 else 'colour'}: converted as ingest converts"
        )
    original = raw[: raw.shape[0] - rows]
    return Micrograph(Path(path).stem, image, original.shape[:2], rows, original=original)


def write_test(micrographs, out_dir):
    """OUT/images/<name>.png (prepared), OUT/truth/<name>.png (class ids, original resolution), micrographs.csv."""
    out_dir = Path(out_dir)
    for sub in ("images", "truth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for m in micrographs:
        io.write_png(out_dir / "images" / f"{m.name}.png", m.image)
        io.write_png(out_dir / "truth" / f"{m.name}.png", m.truth)
        rows.append({"name": m.name, "height": m.size[0], "width": m.size[1], "rows_cut": m.rows_cut})
    pd.DataFrame(rows, columns=["name", "height", "width", "rows_cut"]).to_csv(out_dir / "micrographs.csv", index=False)


def read_test(folder):
    """The micrographs ``write_test`` wrote."""
    folder = Path(folder)
    out = []
    for row in pd.read_csv(folder / "micrographs.csv").itertuples(index=False):
        image = io.read_png(folder / "images" / f"{row.name}.png")
        image = image[..., None] if image.ndim == 2 else image
        truth = io.read_png(folder / "truth" / f"{row.name}.png")
        out.append(Micrograph(row.name, image, (int(row.height), int(row.width)), int(row.rows_cut), truth))
    return out
