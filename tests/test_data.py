"""Data stage: reading every mask format, the palette, crop, patches, the base datasets, bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dualgen.core.errors import DualgenError
from dualgen.data import datasets, io, patches
from tests.conftest import CLASSES, assert_one_line_error, blocks_mask, make_user_data, run_script, tree_checksums


def settings(root, **over):
    s = {
        "classes": CLASSES,
        "data": {
            "images": f"{root}/images",
            "masks": f"{root}/masks",
            "hq_masks": f"{root}/hq_masks",
            "mask_format": "palette",
            "crop_height": None,
        },
        "patches": {"size": 32, "stride": 32, "drop_background_only": True, "exclude": []},
    }
    for key, value in over.items():
        section, _, name = key.partition("__")
        s[section][name] = value
    return s


def make_patches(tmp_path, s):
    return run_script("make_patches.py", "--out", tmp_path / "out" / "patches", "--settings", json.dumps(s))


# ---- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "tif", "jpg"])
def test_micrograph_formats_rgb_and_gray(tmp_path, fmt):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    gray = rng.integers(0, 255, (20, 30), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / f"rgb.{fmt}")
    Image.fromarray(gray).save(tmp_path / f"gray.{fmt}")
    a, g = io.read_micrograph(tmp_path / f"rgb.{fmt}"), io.read_micrograph(tmp_path / f"gray.{fmt}")
    assert a.shape == (20, 30, 3) and g.shape == (20, 30, 1)
    if fmt != "jpg":  # lossless formats round-trip exactly
        assert np.array_equal(a, rgb) and np.array_equal(g[..., 0], gray)


def test_16bit_tiff_is_scaled_to_8bit(tmp_path):
    arr = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "a.tif")
    out = io.read_micrograph(tmp_path / "a.tif")
    assert out.dtype == np.uint8 and out.shape == (20, 30, 1) and out.max() > 200


def test_mask_formats_index_gray_rgb(tmp_path):
    rng = np.random.default_rng(1)
    ids = blocks_mask(rng, 40, 40, block=8)
    Image.fromarray(ids).save(tmp_path / "index.png")
    gray = np.array([c["value"] for c in CLASSES], np.uint8)[ids]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    colors = [[0, 0, 0], [0, 0, 255], [255, 255, 0], [255, 0, 0]]
    Image.fromarray(np.array(colors, np.uint8)[ids]).save(tmp_path / "rgb.png")
    index_classes = [dict(c, value=i) for i, c in enumerate(CLASSES)]
    rgb_classes = [dict(c, value=v) for c, v in zip(CLASSES, colors)]
    assert np.array_equal(io.read_mask(tmp_path / "index.png", index_classes, "index"), ids)
    assert np.array_equal(io.read_mask(tmp_path / "gray.png", CLASSES, "palette"), ids)
    assert np.array_equal(io.read_mask(tmp_path / "rgb.png", rgb_classes, "palette"), ids)


def test_mask_values_not_in_palette_named(tmp_path):
    arr = np.zeros((10, 10), np.uint8)
    arr[0, :3] = 77
    Image.fromarray(arr).save(tmp_path / "m.png")
    with pytest.raises(DualgenError, match=r"m.png: 3 pixels have values not in the palette \(77\)"):
        io.read_mask(tmp_path / "m.png", CLASSES, "palette")


def test_decompression_bomb_guard(tmp_path):
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(DualgenError, match="max_pixels"):
        io.read_micrograph(tmp_path / "big.png", max_pixels=5000)


# ---- patches ---------------------------------------------------------------------------------------


def test_crop_option_cuts_info_band(tmp_path):
    root = make_user_data(tmp_path / "d", n=1, h=64, w=64)
    img = np.asarray(Image.open(root / "images" / "img0.png"))
    band = np.concatenate([img, np.full((16, 64, 3), 255, np.uint8)])
    Image.fromarray(band).save(root / "images" / "img0.png")
    with pytest.raises(DualgenError, match="set data.crop_height: auto"):
        patches.load_sources(root / "images", root / "masks", None, CLASSES, "palette")
    src = patches.load_sources(
        root / "images", root / "masks", None, CLASSES, "palette", crop_height=64, log=lambda *a: 0
    )
    assert src[0].image.shape == (64, 64, 3) and np.array_equal(src[0].image, img)
    lines = []
    src = patches.load_sources(
        root / "images", root / "masks", None, CLASSES, "palette", crop_height="auto", log=lines.append
    )
    assert src[0].image.shape == (64, 64, 3) and np.array_equal(src[0].image, img)
    assert lines == ["read img0.png: 64x80 px, 16 rows cut (info band), colour"]


def test_gray_rgb_jpeg_with_a_coloured_band_is_gray_after_cropping(tmp_path):
    """A gray micrograph saved as RGB JPEG, its info band holding a coloured scale bar: 1 channel."""
    root = make_user_data(tmp_path / "d", n=2, h=64, w=64, rgb=False)
    for i in range(2):
        gray = np.asarray(Image.open(root / "images" / f"img{i}.png"))
        band = np.zeros((12, 64, 3), np.uint8)
        band[4:9, 30:60] = (40, 200, 60)
        rgb = np.concatenate([np.repeat(gray[..., None], 3, axis=2), band])
        Image.fromarray(rgb).save(root / "images" / f"img{i}.jpg", quality=90)
        (root / "images" / f"img{i}.png").unlink()
    assert io.read_micrograph(root / "images" / "img0.jpg").shape == (76, 64, 3)  # the whole file: colour
    src = patches.load_sources(
        root / "images", root / "masks", None, CLASSES, "palette", crop_height="auto", log=lambda *a: 0
    )
    assert [s.image.shape for s in src] == [(64, 64, 1), (64, 64, 1)]


def test_mask_stored_as_equal_channel_rgb(tmp_path):
    root = make_user_data(tmp_path / "d", n=1, h=64, w=64)
    ids = io.read_mask(root / "masks" / "img0.png", CLASSES, "palette")
    gray = np.asarray(Image.open(root / "masks" / "img0.png"))
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(root / "masks" / "img0.png")
    src = patches.load_sources(root / "images", root / "masks", None, CLASSES, "palette", log=lambda *a: 0)
    assert np.array_equal(src[0].lq, ids) and len(np.unique(ids)) == 4


def test_patch_grid_keeps_source_position_and_filters(tmp_path):
    root = make_user_data(tmp_path / "d", n=1, h=64, w=96)
    mask = np.zeros((64, 96), np.uint8)
    mask[40:50, 70:80] = 255  # only one patch shows a non-background class
    Image.fromarray(mask).save(root / "hq_masks" / "img0.png")
    src = patches.load_sources(root / "images", root / "masks", root / "hq_masks", CLASSES, "palette", log=lambda *a: 0)
    assert patches.grid_positions(64, 96, 32, 32) == [(0, 0), (0, 32), (0, 64), (32, 0), (32, 32), (32, 64)]
    kept = patches.cut(src, 32, 32, True, (), 4, log=lambda *a: 0)
    assert [r["patch_id"] for r, *_ in kept] == ["img0_y00032_x00064"]
    record, image, lq, hq = kept[0]
    assert (record["y"], record["x"], record["source"]) == (32, 64, "img0")
    assert np.array_equal(image, src[0].image[32:64, 64:96]) and hq.max() == 2
    kept = patches.cut(src, 32, 32, False, ["img0_y00000_x00000"], 4, log=lambda *a: 0)
    assert len(kept) == 5
    with pytest.raises(DualgenError, match="not a patch id"):
        patches.cut(src, 32, 32, False, ["nope"], 4, log=lambda *a: 0)


def test_make_patches_script_writes_patches_and_meta(tmp_path, user_data):
    before = tree_checksums(user_data)
    proc = make_patches(tmp_path, settings(user_data))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out" / "patches"
    table = pd.read_csv(out / "patches.csv")
    assert len(table) == 27 and table["has_hq"].all()
    assert {"patch_id", "source", "y", "x", "frac_0", "frac_3"} <= set(table.columns)
    assert len(list((out / "images").glob("*.png"))) == 27
    meta = json.loads((out / "meta.json").read_text())
    for key in (
        "step",
        "dualgen_version",
        "git_commit",
        "settings",
        "seed",
        "inputs_sha256",
        "libraries",
        "wall_seconds",
    ):
        assert key in meta
    assert meta["step"] == "patches" and meta["settings"]["patches"]["size"] == 32
    assert meta["libraries"]["numpy"] == np.__version__ and len(meta["inputs_sha256"]) == 3
    assert not list((tmp_path / "out").glob(".*tmp*"))  # no temporary left behind
    assert tree_checksums(user_data) == before


# ---- datasets --------------------------------------------------------------------------------------


def fake_table(n_per_source=30, sources=("a", "b", "t"), hq=lambda s, i: True):
    rows = [{"patch_id": f"{s}_{i}", "source": s, "has_hq": hq(s, i)} for s in sources for i in range(n_per_source)]
    return pd.DataFrame(rows)


SIZES = {"small_train": 6, "small_val": 2, "big_train": 18, "big_val": 5, "test": 9}


def test_splits_sizes_no_leak_and_masks():
    m, used = datasets.split(fake_table(), SIZES, ["t"], seed=3)
    shq, slq, blq, bmq = (m[k] for k in datasets.BASES)
    for name, df in m.items():
        train, val, test = (set(df.loc[df.split == s, "patch_id"]) for s in ("train", "val", "test"))
        assert not (train & test) and not (val & test) and not (train & val), name
        assert all(p.startswith("t_") for p in test)  # test comes from the reserved image
        assert (df.loc[df.split == "test", "mask"] == "hq").all()
    assert (shq.split == "train").sum() == 6 and (shq.split == "val").sum() == 2 and (shq.split == "test").sum() == 9
    assert (blq.split == "train").sum() == 18 and (blq.split == "val").sum() == 5
    assert list(shq.patch_id) == list(slq.patch_id) and (slq.loc[slq.split != "test", "mask"] == "lq").all()
    small = set(shq.loc[shq.split != "test", "patch_id"])
    assert small <= set(blq.patch_id)
    bmq_hq = set(bmq.loc[(bmq.split != "test") & (bmq["mask"] == "hq"), "patch_id"])
    assert bmq_hq == small and (blq.loc[blq.split != "test", "mask"] == "lq").all()
    again, _ = datasets.split(fake_table(), SIZES, ["t"], seed=3)
    assert all(again[k].equals(m[k]) for k in m)


def test_splits_use_only_hq_patches_for_small_and_test():
    table = fake_table(hq=lambda s, i: i % 3 == 0)
    m, _ = datasets.split(
        table, {"small_train": 4, "small_val": 2, "big_train": 20, "big_val": 5, "test": 5}, ["t"], seed=0
    )
    hq_ids = set(table.loc[table.has_hq, "patch_id"])
    assert set(m["SHQ"].patch_id) <= hq_ids


def test_fit_to_data_keeps_paper_proportions():
    paper = {"small_train": 16, "small_val": 5, "big_train": 48, "big_val": 12, "test": 27}
    m, used = datasets.split(fake_table(n_per_source=15), paper, ["t"], seed=0, fit_to_data=True)
    assert used["big_train"] < 48 and used["test"] < 27
    assert abs(used["big_train"] / used["test"] - 48 / 27) < 0.3
    with pytest.raises(DualgenError, match="fit_to_data"):
        datasets.split(fake_table(n_per_source=15), paper, ["t"], seed=0)


def test_make_datasets_script(tmp_path, user_data):
    assert make_patches(tmp_path, settings(user_data)).returncode == 0
    s = {
        "classes": CLASSES,
        "test_sources": ["img2"],
        "datasets": {
            "small_train": 3,
            "small_val": 1,
            "big_train": 8,
            "big_val": 2,
            "test": 5,
            "seed": 0,
            "preview": 2,
        },
    }
    out = tmp_path / "out" / "datasets"
    proc = run_script(
        "make_datasets.py", "--patches", tmp_path / "out" / "patches", "--out", out, "--settings", json.dumps(s)
    )
    assert proc.returncode == 0, proc.stderr
    for name in datasets.BASES:
        assert (out / f"{name}.csv").exists()
    shares = pd.read_csv(out / "class_shares.csv")
    assert list(shares.columns) == ["dataset", "split", "n_patches", "matrix", "oxide", "nd_rich", "eta"]
    assert not (out / "preview.png").exists()  # figures are drawn by figure rules (scripts/figure.py datasets)
    ids, images, masks = datasets.load(tmp_path / "out" / "patches", out / "BMQ.csv", "train")
    assert images.shape == (8, 32, 32, 3) and masks.shape == (8, 32, 32) and masks.max() <= 3
    s["datasets"]["big_train"] = 40
    proc = run_script(
        "make_datasets.py", "--patches", tmp_path / "out" / "patches", "--out", out, "--settings", json.dumps(s)
    )
    assert_one_line_error(proc, "big sets need", "big_train")
    assert (out / "BMQ.csv").exists()  # the earlier result is not damaged


# ---- bad input: one line, exit != 0, no traceback, inputs unchanged ----------------------------------


def _missing_folder(root):
    return settings(root, data__images=f"{root}/nowhere"), ["nowhere", "images folder not found"]


def _empty_folder(root):
    (root / "empty").mkdir()
    return settings(root, data__images=f"{root}/empty"), ["no PNG, TIFF or JPEG files"]


def _not_an_image(root):
    (root / "images" / "img0.png").write_text("hello")
    return settings(root), ["img0.png: not a readable image"]


def _truncated(root):
    p = root / "images" / "img1.png"
    p.write_bytes(p.read_bytes()[:300])
    return settings(root), ["img1.png: not a readable image"]


def _mask_without_image(root):
    (root / "images" / "img2.png").unlink()
    return settings(root), ["img2.png: mask without a micrograph"]


def _image_without_mask(root):
    (root / "masks" / "img1.png").unlink()
    return settings(root), ["img1.png: micrograph without a mask"]


def _size_mismatch(root):
    Image.fromarray(np.zeros((80, 96), np.uint8)).save(root / "masks" / "img0.png")
    return settings(root), ["img0.png is 96x96 px but its mask", "is 96x80 px"]


def _values_not_in_palette(root):
    arr = np.asarray(Image.open(root / "masks" / "img1.png")).copy()
    arr[:2, :5] = 99
    Image.fromarray(arr).save(root / "masks" / "img1.png")
    return settings(root), ["img1.png: 10 pixels have values not in the palette (99)"]


def _patch_larger_than_image(root):
    return settings(root, patches__size=128), ["patches.size 128 is larger than the image (96x96 px)"]


BAD_PATCH_INPUTS = [
    _missing_folder,
    _empty_folder,
    _not_an_image,
    _truncated,
    _mask_without_image,
    _image_without_mask,
    _size_mismatch,
    _values_not_in_palette,
    _patch_larger_than_image,
]


@pytest.mark.parametrize("case", BAD_PATCH_INPUTS, ids=lambda f: f.__name__.strip("_"))
def test_bad_data_input(tmp_path, user_data, case):
    s, fragments = case(user_data)
    before = tree_checksums(user_data)
    proc = make_patches(tmp_path, s)
    assert_one_line_error(proc, *fragments)
    assert tree_checksums(user_data) == before
    assert not (tmp_path / "out" / "patches").exists()
