"""Reading the user's micrographs and masks (PNG, TIFF, JPEG; gray or RGB) and writing PNGs.

Masks come as class ids ("index") or as the pixel values of a palette (gray levels or RGB colours,
``classes[].value`` in config). Every reader error is one DualgenError line naming the file.
"""

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from dualgen.core.artifacts import atomic_path
from dualgen.core.errors import DualgenError

EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
DEFAULT_MAX_PIXELS = 100_000_000


def list_images(folder, what):
    """Map file stem -> path for the image files in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DualgenError(f"{folder}: {what} folder not found: check data.{what} in your config")
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in EXTENSIONS:
            if p.stem in files:
                raise DualgenError(
                    f"{folder}: two files share the name '{p.stem}' ({files[p.stem].name}, {p.name}): keep one"
                )
            files[p.stem] = p
    if not files:
        raise DualgenError(f"{folder}: no PNG, TIFF or JPEG files in the {what} folder: add files or fix data.{what}")
    return files


def _open(path, max_pixels):
    Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding
    try:
        img = Image.open(path)
        w, h = img.size
        if w * h > max_pixels:
            raise DualgenError(
                f"{path}: {w}x{h} = {w * h} pixels is more than data.max_pixels ({max_pixels}): "
                "crop the image or raise data.max_pixels"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
        return img
    except DualgenError:
        raise
    except Exception as err:  # PIL raises many types for broken files
        raise DualgenError(f"{path}: not a readable image ({type(err).__name__}: {err}): replace the file")


GRAY_TOLERANCE = 8  # channel spread (levels) still counted as gray: JPEG chroma noise
GRAY_OUTLIERS = 0.01  # share of pixels allowed beyond it (a coloured mark, JPEG ringing at a band edge)


def read_micrograph(path, max_pixels=DEFAULT_MAX_PIXELS, collapse_gray=True):
    """Return uint8 (H, W, C) with C = 1 (gray) or 3 (RGB). ``collapse_gray``: an RGB file holding a gray image
    (``is_gray``) comes back with 1 channel; False keeps the file's channels (decide after cropping)."""
    img = _open(path, max_pixels)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)[..., None]
    elif img.mode in ("L", "1"):
        arr = np.asarray(img.convert("L"), dtype=np.uint8)[..., None]
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.zeros(arr.shape, np.uint8) if hi <= lo else np.round((arr - lo) / (hi - lo) * 255).astype(np.uint8)
        arr = arr[..., None]
    else:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
        if collapse_gray and is_gray(arr):
            arr = to_gray(arr)  # an RGB file holding a gray image
    return np.ascontiguousarray(arr)


def is_gray(image):
    """True for 1 channel, or 3 channels that agree within GRAY_TOLERANCE levels on all but GRAY_OUTLIERS of the
    pixels (a gray micrograph stored as RGB JPEG, perhaps with a small coloured mark)."""
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    a = image.astype(np.int16)
    spread = np.maximum(np.abs(a[..., 0] - a[..., 1]), np.abs(a[..., 1] - a[..., 2]))
    return float((spread > GRAY_TOLERANCE).mean()) <= GRAY_OUTLIERS


def to_gray(image):
    """uint8 (H, W, 1): the image itself when gray, else its luminance (ITU-R 601, as PIL's "L")."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 1:
        return image
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]):
        return np.ascontiguousarray(image[..., :1])
    return np.asarray(Image.fromarray(np.ascontiguousarray(image[..., :3])).convert("L"), dtype=np.uint8)[..., None]


def to_rgb(image):
    """uint8 (H, W, 3): a gray image repeated on three channels (lossless)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    return image if image.shape[2] == 3 else np.ascontiguousarray(np.repeat(image[..., :1], 3, axis=2))


def read_mask(path, classes, mask_format, max_pixels=DEFAULT_MAX_PIXELS):
    """Return uint8 (H, W) class ids, mapping palette values to classes."""
    img = _open(path, max_pixels)
    values = [c["value"] for c in classes]
    rgb = isinstance(values[0], list)
    if mask_format == "index" or not rgb:
        raw = np.asarray(img if img.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1") else img.convert("RGB"))
        if raw.ndim == 3:
            if not (np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 0], raw[..., 2])):
                raise DualgenError(
                    f"{path}: colour mask, but classes[].value are gray levels: give [r, g, b] values in config"
                )
            raw = raw[..., 0]
        raw = raw.astype(np.int64)
        lut_keys = np.array(values if mask_format != "index" else list(range(len(classes))), dtype=np.int64)
        flat = raw.ravel()
    else:
        raw = np.asarray(img.convert("RGB")).astype(np.int64)
        flat = (raw[..., 0] << 16 | raw[..., 1] << 8 | raw[..., 2]).ravel()
        lut_keys = np.array([(v[0] << 16) | (v[1] << 8) | v[2] for v in values], dtype=np.int64)
    order = np.argsort(lut_keys)
    pos = np.searchsorted(lut_keys[order], flat)
    pos = np.clip(pos, 0, len(lut_keys) - 1)
    ok = lut_keys[order][pos] == flat
    if not ok.all():
        bad = np.unique(flat[~ok])
        shown = [
            (f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" if rgb and mask_format != "index" else str(v)) for v in bad[:6]
        ]
        more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
        allowed = "class ids 0..%d" % (len(classes) - 1) if mask_format == "index" else f"classes[].value {values}"
        raise DualgenError(
            f"{path}: {int((~ok).sum())} pixels have values not in the palette ({', '.join(shown)}{more}): "
            f"allowed are {allowed}; fix the mask or the config"
        )
    ids = order[pos].astype(np.uint8).reshape(raw.shape[:2])
    return ids


def write_png(path, array):
    """Write uint8 (H, W) or (H, W, C) as PNG atomically (``artifacts.atomic_path``)."""
    path = Path(path)
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def read_png(path):
    with Image.open(path) as img:
        arr = np.asarray(img)
    return arr
