"""Real micrograph sets as labs have them (issue 13), each case a fixture made here, run through the data stage
(make_patches.py + make_datasets.py, as a user's workflow runs them): per-image info bands with a coloured scale
bar (crop_height: auto), gray micrographs stored as RGB JPEG, two image sizes, a mask stored as equal-channel RGB,
index masks, split list files, classes under 1 %, resizing, simulated LQ masks; and the config checked at load."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dualgen.core import config as dconfig
from dualgen.core.errors import DualgenError
from dualgen.data import datasets, io, labelnoise, patches
from tests.conftest import REPO, assert_one_line_error, run_script, snakemake, tree_checksums

LAB_CLASSES = [
    {"name": "matrix", "value": 0, "color": "#2b2b2b"},
    {"name": "grain", "value": 1, "color": "#3a8fd9"},
    {"name": "phase", "value": 2, "color": "#f5c211"},
    {"name": "pore", "value": 3, "color": "#d9368f"},  # under 1 % of the pixels
    {"name": "crack", "value": 4, "color": "#33cc66"},  # under 1 %, in a few images only
]
# name, file size (w, h), info band rows, split; like the set (1024x768 and 1280x960, ~65-row bands) / 4
LAB_IMAGES = [
    ("s01", (256, 192), 16, "train"),
    ("s02", (256, 192), 17, "train"),
    ("s03", (320, 240), 18, "train"),
    ("s04", (256, 192), 16, "train"),
    ("s05", (320, 240), 17, "val"),
    ("s06", (256, 192), 16, "val"),
    ("s07", (320, 240), 18, "test"),
    ("s08", (256, 192), 17, "test"),
]
GRAY_LEVELS = np.array([90, 150, 200, 30, 240])


def lab_mask(rng, h, w, pores=True, crack=False):
    """Index mask: blocks of matrix / grain / phase, a few small pores (< 1 %), maybe a thin crack (< 1 %)."""
    coarse = rng.choice([0, 0, 1, 2], size=(h // 16 + 1, w // 16 + 1))
    mask = np.kron(coarse, np.ones((16, 16), np.int64))[:h, :w].astype(np.uint8)
    if pores:
        for _ in range(3):
            y, x = rng.integers(4, h - 4), rng.integers(4, w - 4)
            mask[y - 2 : y + 2, x - 2 : x + 2] = 3
    if crack:  # 3 px wide: survives data.scale 0.5
        y = rng.integers(10, h - 10)
        mask[y : y + 3, w // 4 : w // 4 + 40] = 4
    return mask


def micrograph(rng, mask, band, rgb=True):
    """Gray image from the mask (+ noise), an info band below it: black, white text, a coloured scale bar."""
    h, w = mask.shape
    img = np.clip(GRAY_LEVELS[mask] + rng.normal(0, 12, mask.shape), 0, 255).astype(np.uint8)
    full = np.zeros((h + band, w, 3), np.uint8)
    full[:h] = img[..., None]
    full[h + 3 : h + 6, 8:60] = 255  # "text"
    full[h + band // 2 : h + band - 2, w // 2 : w - 10] = (230, 40, 30)  # the scale bar, in colour
    return full if rgb else full[..., 0]


def make_lab_set(root, images=LAB_IMAGES, rgb_mask="s02", crack_in=("s01", "s05", "s07"), seed=0):
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("images", "masks", "lists"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lists = {"train": [], "val": [], "test": []}
    for name, (w, h), band, split in images:
        mask = lab_mask(rng, h - band, w, crack=name in crack_in)
        Image.fromarray(micrograph(rng, mask, band)).save(root / "images" / f"{name}.jpg", quality=92)
        if name == rgb_mask:  # a mask stored as RGB with equal channels
            Image.fromarray(np.repeat(mask[..., None], 3, axis=2)).save(root / "masks" / f"{name}.png")
        else:
            Image.fromarray(mask).save(root / "masks" / f"{name}.png")
        lists[split].append(name if split != "val" else f"{name}.jpg")  # stems and file names, as sets ship them
    for split, names in lists.items():
        (root / "lists" / f"{split}.txt").write_text("# " + split + "\n" + "\n".join(names) + "\n")
    return root


def lab_settings(root, **data):
    d = {
        "source": "folder",
        "images": f"{root}/images",
        "masks": f"{root}/masks",
        "hq_masks": None,
        "mask_format": "index",
        "crop_height": "auto",
        "max_band": 0.2,
        "scale": 0.5,
    }
    d.update(data)
    return {
        "classes": LAB_CLASSES,
        "data": d,
        "patches": {
            "size": 32,
            "stride": 32,
            "drop_background_only": True,
            "exclude": [],
            "keep_rare": ["pore", "crack"],
        },
    }


DS = {"small_train": 4, "small_val": 2, "big_train": 12, "big_val": 4, "test": 6, "seed": 0, "fit_to_data": False}


def ds_settings(root, splits=True, **over):
    s = {
        "classes": [{k: v for k, v in c.items() if k != "color"} for c in LAB_CLASSES],
        "datasets": dict(DS, **over),
        "test_sources": [],
    }
    if splits:
        s["splits"] = {k: f"{root}/lists/{k}.txt" for k in ("train", "val", "test")}
    return s


def run_patches(out, s):
    return run_script("make_patches.py", "--out", out / "patches", "--settings", json.dumps(s))


def run_datasets(out, s):
    return run_script(
        "make_datasets.py", "--patches", out / "patches", "--out", out / "datasets", "--settings", json.dumps(s)
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab set through the data stage once: (root, out, make_patches proc, make_datasets proc)."""
    root = make_lab_set(tmp_path_factory.mktemp("lab") / "set")
    out = root.parent / "out"
    before = tree_checksums(root)
    p = run_patches(out, lab_settings(root))
    assert p.returncode == 0, p.stderr
    d = run_datasets(out, ds_settings(root))
    assert d.returncode == 0, d.stderr
    assert tree_checksums(root) == before
    return root, out, p, d


# ---- 1-4: bands, gray on the cropped image, two sizes, equal-channel RGB mask, scale ----------------------------


def test_auto_crop_cuts_each_band_and_logs_the_rows(lab):
    root, out, proc, _ = lab
    sources = pd.read_csv(out / "patches" / "sources.csv").set_index("source")
    for name, (w, h), band, _ in LAB_IMAGES:
        assert sources.loc[name, "rows_cut"] == band, name
        assert f"read {name}.jpg: {w}x{h} px, {band} rows cut (info band)" in proc.stdout
    meta = json.loads((out / "patches" / "meta.json").read_text())
    assert meta["rows_cut"] == {name: band for name, _, band, _ in LAB_IMAGES}


def test_gray_decided_after_cropping(lab):
    root, out, _, _ = lab
    # the whole file (with its coloured scale bar) is colour; the micrograph above the band is gray
    whole = io.read_micrograph(root / "images" / "s01.jpg", collapse_gray=False)
    assert not io.is_gray(whole)
    meta = json.loads((out / "patches" / "meta.json").read_text())
    assert meta["channels"] == 1
    assert pd.read_csv(out / "patches" / "sources.csv")["gray"].all()
    first = next((out / "patches" / "images").glob("*.png"))
    assert io.read_png(first).ndim == 2


def test_two_image_sizes_and_scale(lab):
    root, out, _, _ = lab
    sources = pd.read_csv(out / "patches" / "sources.csv").set_index("source")
    sizes = {(r.width, r.height) for r in sources.itertuples()}
    assert sizes == {(128, 88), (160, 111), (160, 112)}, sizes  # (file - band) x 0.5, rounded
    meta = json.loads((out / "patches" / "meta.json").read_text())
    assert meta["scale"] == 0.5 and meta["settings"]["data"]["scale"] == 0.5
    table = pd.read_csv(out / "patches" / "patches.csv")
    assert set(table["source"]) == {n for n, *_ in LAB_IMAGES}
    assert (table["x"] + 32).max() <= 160 and (table.loc[table.source == "s01", "x"] + 32).max() <= 128


def test_resize_mask_takes_the_majority_and_never_a_new_id():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 4
    mask[:3, :2] = 2  # at scale 0.5: all of output pixel (0, 0), half of (1, 0)
    small = patches.resize_mask(mask, 4, 4)
    assert set(np.unique(small)) <= {0, 2, 4}
    assert small[0, 0] == 2 and small[1, 0] == 2 and small[3, 0] == 0 and (small[:, 2:] == 4).all()  # tie: rarer
    rng = np.random.default_rng(0)
    ids = rng.choice([0, 3, 7], size=(50, 70)).astype(np.uint8)
    for h, w in ((13, 17), (100, 140), (50, 35)):
        assert set(np.unique(patches.resize_mask(ids, h, w))) <= {0, 3, 7}


def test_resize_image_averages_areas():
    img = np.array([[0, 100, 10, 10], [100, 200, 30, 50]], np.uint8)[..., None]
    small = patches.resize_image(img, 1, 2)
    assert small.shape == (1, 2, 1) and small[0, 0, 0] == 100 and small[0, 1, 0] == 25


def test_gray_and_colour_set_is_converted_to_the_majority(tmp_path):
    root = make_lab_set(tmp_path / "set", images=LAB_IMAGES[:3])
    # one real colour micrograph (tinted everywhere) among two gray ones
    arr = np.asarray(Image.open(root / "images" / "s03.jpg")).copy()
    arr[..., 2] = (arr[..., 2] * 0.6).astype(np.uint8)
    Image.fromarray(arr).save(root / "images" / "s03.png")
    (root / "images" / "s03.jpg").unlink()
    lines = []
    src = patches.load_sources(root / "images", root / "masks", None, LAB_CLASSES, "index", "auto", log=lines.append)
    assert [s.image.shape[2] for s in src] == [1, 1, 1]
    assert any("2 gray and 1 colour micrographs: converted 1 to gray (the majority): s03.png" in ln for ln in lines)
    # two colour, one gray: the gray one becomes three equal channels
    arr = np.asarray(Image.open(root / "images" / "s02.jpg")).copy()
    arr[..., 0] = np.clip(arr[..., 0] * 1.3, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(root / "images" / "s02.png")
    (root / "images" / "s02.jpg").unlink()
    lines = []
    src = patches.load_sources(root / "images", root / "masks", None, LAB_CLASSES, "index", "auto", log=lines.append)
    assert [s.image.shape[2] for s in src] == [3, 3, 3]
    gray_one = src[0].image
    assert np.array_equal(gray_one[..., 0], gray_one[..., 1])
    assert any("converted 1 to colour (the majority): s01.jpg" in ln for ln in lines)


def test_number_form_of_crop_height_stays(tmp_path):
    root = make_lab_set(tmp_path / "set", images=[("a", (128, 96), 8, "train")])
    src = patches.load_sources(root / "images", root / "masks", None, LAB_CLASSES, "index", 88, log=lambda *a: 0)
    assert src[0].image.shape == (88, 128, 1) and src[0].info["rows_cut"] == 8


@pytest.mark.parametrize("case", ["width", "band_too_tall", "mask_taller", "no_crop"])
def test_real_mismatches_stay_one_line_errors(tmp_path, case):
    root = make_lab_set(tmp_path / "set", images=[("a", (128, 96), 8, "train"), ("b", (128, 96), 8, "train")])
    crop, expected = "auto", ["b.jpg is 128x96 px but its mask", "b.png is"]
    if case == "width":
        Image.fromarray(np.zeros((88, 120), np.uint8)).save(root / "masks" / "b.png")
        expected += ["120x88 px: image and mask must have the same size"]
    elif case == "band_too_tall":
        Image.fromarray(np.zeros((60, 128), np.uint8)).save(root / "masks" / "b.png")
        expected += ["128x60 px: 36 rows more than the mask, above data.max_band (20% of the height"]
    elif case == "mask_taller":
        Image.fromarray(np.zeros((100, 128), np.uint8)).save(root / "masks" / "b.png")
        expected += ["128x100 px: image and mask must have the same size"]
    else:
        crop = None
        expected = ["a.jpg is 128x96 px but its mask", "128x88 px: set data.crop_height: auto"]
    before = tree_checksums(root)
    proc = run_patches(tmp_path / "out", lab_settings(root, crop_height=crop, scale=1.0))
    assert_one_line_error(proc, *expected)
    assert tree_checksums(root) == before and not (tmp_path / "out" / "patches").exists()


# ---- 5: split lists --------------------------------------------------------------------------------------------


def test_split_lists_decide_the_images_of_each_split(lab):
    root, out, _, proc = lab
    table = pd.read_csv(out / "patches" / "patches.csv").set_index("patch_id")
    role = {name: split for name, _, _, split in LAB_IMAGES}
    for base in datasets.BASES:
        m = pd.read_csv(out / "datasets" / f"{base}.csv")
        for sp in ("train", "val", "test"):
            srcs = set(table.loc[m.loc[m.split == sp, "patch_id"], "source"])
            assert srcs and {role[s] for s in srcs} == {sp}, (base, sp, srcs)
    assert "data.splits.train: 4 image(s)" in proc.stdout and "data.splits.val: 2 image(s)" in proc.stdout


def test_unknown_name_in_a_list_is_one_line(lab, tmp_path):
    root, out, _, _ = lab
    lists = tmp_path / "lists"
    lists.mkdir()
    for k in ("train", "val"):
        (lists / f"{k}.txt").write_text((root / "lists" / f"{k}.txt").read_text())
    (lists / "test.txt").write_text("s07\ns08.jpg\nimages/s99.tif\n")
    s = ds_settings(root)
    s["splits"] = {k: str(lists / f"{k}.txt") for k in ("train", "val", "test")}
    proc = run_script(
        "make_datasets.py", "--patches", out / "patches", "--out", tmp_path / "ds", "--settings", json.dumps(s)
    )
    assert_one_line_error(
        proc, "test.txt: line 3: 'images/s99.tif' is not one of the images (8: s01, s02, s03, s04, s05, ...)"
    )
    (lists / "test.txt").write_text("s07\ns01\n")
    proc = run_script(
        "make_datasets.py", "--patches", out / "patches", "--out", tmp_path / "ds", "--settings", json.dumps(s)
    )
    assert_one_line_error(proc, "test.txt: line 2: 's01' is also in the train list")


def test_only_a_test_list_reserves_the_test_images(lab, tmp_path):
    root, out, _, _ = lab
    s = ds_settings(root, splits=False)
    s["splits"] = {"test": f"{root}/lists/test.txt"}
    s["test_sources"] = ["s01"]  # ignored: the list gives the test images
    proc = run_script(
        "make_datasets.py", "--patches", out / "patches", "--out", tmp_path / "ds", "--settings", json.dumps(s)
    )
    assert proc.returncode == 0, proc.stderr
    assert "data.test_sources (s01) ignored" in proc.stdout
    table = pd.read_csv(out / "patches" / "patches.csv").set_index("patch_id")
    m = pd.read_csv(tmp_path / "ds" / "BMQ.csv")
    assert set(table.loc[m.loc[m.split == "test", "patch_id"], "source"]) <= {"s07", "s08"}
    assert not set(table.loc[m.loc[m.split != "test", "patch_id"], "source"]) & {"s07", "s08"}


# ---- 7: rare classes -------------------------------------------------------------------------------------------


def test_class_shares_table_and_rare_classes(lab):
    root, out, _, proc = lab
    shares = pd.read_csv(out / "datasets" / "class_shares.csv")
    assert list(shares.columns) == ["dataset", "split", "n_patches"] + [c["name"] for c in LAB_CLASSES]
    assert len(shares) == 9 and list(shares["dataset"])[-1] == "test"
    row = shares[(shares.dataset == "BLQ") & (shares.split == "train")].iloc[0]
    assert 0 < row["pore"] < 0.01 and row["n_patches"] == 12
    assert np.allclose(shares[[c["name"] for c in LAB_CLASSES]].sum(axis=1), 1.0)
    # every patch showing a rare class is used, as far as each split has room (its images are its own)
    table = pd.read_csv(out / "patches" / "patches.csv")
    used = set()
    for base in datasets.BASES:
        used |= set(pd.read_csv(out / "datasets" / f"{base}.csv")["patch_id"])
    role = {name: split for name, _, _, split in LAB_IMAGES}
    room = {"train": DS["big_train"], "val": DS["big_val"], "test": DS["test"]}
    assert table["rare"].sum() > 0
    for sp, cap in room.items():
        rare = table.loc[table["rare"] & (table["source"].map(role) == sp), "patch_id"]
        assert len(set(rare) & used) == min(len(rare), cap), sp
    assert "patches.keep_rare:" in proc.stdout


def test_absent_class_is_a_warning_not_an_error(tmp_path):
    root = make_lab_set(tmp_path / "set", crack_in=("s01",))  # no crack in val or test images
    out = tmp_path / "out"
    assert run_patches(out, lab_settings(root)).returncode == 0
    proc = run_datasets(out, ds_settings(root))
    assert proc.returncode == 0, proc.stderr
    warn = [ln for ln in proc.stderr.splitlines() if ln.startswith("dualgen: warning: class 'crack'")]
    assert len(warn) == 1 and "SHQ val" in warn[0] and "test" in warn[0], proc.stderr
    assert json.loads((out / "datasets" / "meta.json").read_text())["absent_classes"]["crack"]


def test_keep_rare_draws_every_rare_patch_the_sets_can_hold():
    rng = np.random.default_rng(0)
    rows = [
        {"patch_id": f"{s}_{i}", "source": s, "has_hq": True, "rare": bool(rng.random() < 0.1)}
        for s in ("a", "b", "c", "t")
        for i in range(40)
    ]
    table = pd.DataFrame(rows)
    sizes = {"small_train": 6, "small_val": 2, "big_train": 30, "big_val": 8, "test": 10}
    m, _ = datasets.split(table, sizes, ["t"], seed=1, log=lambda *a: 0)
    used = set().union(*(set(x["patch_id"]) for x in m.values()))
    rare = set(table.loc[table.rare, "patch_id"])
    assert rare <= used, len(rare - used)
    # spread over the splits, not all in the first draw
    for sp in ("train", "val", "test"):
        assert set(m["BLQ"].loc[m["BLQ"].split == sp, "patch_id"]) & rare, sp
    plain, _ = datasets.split(table.assign(rare=False), sizes, ["t"], seed=1, log=lambda *a: 0)
    assert not rare <= set().union(*(set(x["patch_id"]) for x in plain.values()))
    # without a rare column the draws are those of before (same seed -> same manifests)
    again, _ = datasets.split(table.drop(columns="rare"), sizes, ["t"], seed=1)
    assert all(again[k].equals(plain[k]) for k in m)


def test_keep_rare_keeps_background_only_patches_of_a_rare_background(tmp_path):
    root = make_lab_set(tmp_path / "set", images=LAB_IMAGES[:2])
    src = patches.load_sources(root / "images", root / "masks", None, LAB_CLASSES, "index", "auto", log=lambda *a: 0)
    for s in src:
        s.lq[:32, :32] = 0
        s.hq = s.lq
    kept = patches.cut(src, 32, 32, True, (), 5, log=lambda *a: 0)
    kept_rare = patches.cut(src, 32, 32, True, (), 5, log=lambda *a: 0, keep_rare=[0])
    assert len(kept_rare) > len(kept) and not any(r["patch_id"] == "s01_y00000_x00000" for r, *_ in kept)
    assert [r["rare"] for r, *_ in kept_rare if r["patch_id"] == "s01_y00000_x00000"] == [True]


# ---- 6: simulated LQ masks ---------------------------------------------------------------------------------------


def test_labelnoise_faults_and_ids():
    rng = np.random.default_rng(3)
    hq = lab_mask(rng, 200, 240, crack=True)
    same = labelnoise.simulate(hq, np.random.default_rng(0), 0, 0, 0, 0, num_classes=5)
    assert np.array_equal(same, hq)
    shares = []
    for px in (1, 2, 4):
        lq = labelnoise.simulate(hq, np.random.default_rng(0), px, 0, 0, 0, num_classes=5)
        assert set(np.unique(lq)) <= set(range(5))
        shares.append((lq != hq).mean())
    assert 0 < shares[0] < shares[1] < shares[2] < 0.25, shares
    blobs = labelnoise.simulate(np.zeros((100, 100), np.uint8), np.random.default_rng(0), 0, 20, 30, 0, num_classes=5)
    n_blobs = __import__("scipy.ndimage", fromlist=["label"]).label(blobs > 0)[1]
    assert 10 <= n_blobs <= 20 and blobs.max() <= 4  # about 20 per 100 x 100 px (some overlap)
    dots = np.zeros((200, 200), np.uint8)
    for i in range(50):
        dots[20 + (i // 10) * 35 : 23 + (i // 10) * 35, 10 + (i % 10) * 19 : 13 + (i % 10) * 19] = 3  # 9 px each
    missed = labelnoise.simulate(dots, np.random.default_rng(0), 0, 0, 10, 0, num_classes=5)
    n_missed = 50 - __import__("scipy.ndimage", fromlist=["label"]).label(missed == 3)[1]
    assert 3 <= n_missed <= 20 and set(np.unique(missed)) == {0, 3}  # about 20 % missed, filled with the matrix
    swap = labelnoise.simulate(hq, np.random.default_rng(0), 0, 0, 0, 3.0, num_classes=5)
    assert (swap != hq).mean() > 0.01
    a = labelnoise.simulate(hq, labelnoise.rng_for(5, "s01"), 1, 4, 30, 0.5, num_classes=5)
    b = labelnoise.simulate(hq, labelnoise.rng_for(5, "s01"), 1, 4, 30, 0.5, num_classes=5)
    assert np.array_equal(a, b)
    stats = labelnoise.disagreement([(hq, a)], 5)
    assert stats["changed"] == pytest.approx((a != hq).mean())
    assert all(0 <= s <= 1 for s in stats["per_class"])


def test_simulated_lq_through_the_data_stage(tmp_path):
    root = make_lab_set(tmp_path / "set")
    out = tmp_path / "out"
    s = lab_settings(
        root, simulate_lq={"boundary_px": 2, "blob_rate": 6, "miss_small_px": 20, "swap_rate": 0.5, "seed": 1}
    )
    proc = run_patches(out, s)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "patches" / "meta.json").read_text())
    sim = meta["simulated_lq"]
    assert 0.02 < sim["changed"] < 0.3 and set(sim["per_class"]) == {c["name"] for c in LAB_CLASSES}
    assert "simulated LQ masks (boundary_px 2" in proc.stdout and "of pixels changed (matrix" in proc.stdout
    table = pd.read_csv(out / "patches" / "patches.csv")
    assert table["has_hq"].all()
    assert run_datasets(out, ds_settings(root)).returncode == 0
    shq = pd.read_csv(out / "datasets" / "SHQ.csv")
    slq = pd.read_csv(out / "datasets" / "SLQ.csv")
    assert list(shq.patch_id) == list(slq.patch_id)
    _, _, hq = datasets.load(out / "patches", shq, "train")
    _, _, lq = datasets.load(out / "patches", slq, "train")
    assert 0.3 * sim["changed"] < (hq != lq).mean() < 3 * sim["changed"]
    # the HQ vs LQ figure and the class-share bars (figure kinds of scripts/figure.py)
    fig = run_script(
        "figure.py",
        "--kind",
        "lq",
        "--input",
        f"patches={out / 'patches'}",
        "--out",
        out / "fig_lq",
        "--settings",
        json.dumps({"classes": LAB_CLASSES, "n": 3}),
    )
    assert fig.returncode == 0, fig.stderr
    assert (out / "fig_lq" / "hq_vs_lq.png").stat().st_size > 5000
    fig = run_script(
        "figure.py",
        "--kind",
        "datasets",
        "--input",
        f"patches={out / 'patches'}",
        "--input",
        f"datasets={out / 'datasets'}",
        "--out",
        out / "fig_ds",
        "--settings",
        json.dumps({"classes": LAB_CLASSES, "n": 2}),
    )
    assert fig.returncode == 0, fig.stderr
    assert (out / "fig_ds" / "class_shares.png").stat().st_size > 5000
    assert (out / "fig_ds" / "preview.png").stat().st_size > 5000


# ---- 8: config checked at load -----------------------------------------------------------------------------------


def test_static_name_lists_match_the_libraries():
    from dualgen.segment import augment

    assert dconfig.AUGMENTATIONS == augment.AUGMENTATIONS
    import segmentation_models as sm

    assert dconfig.BACKBONES == tuple(sm.Backbones.models_names())


def test_workflow_load_does_not_import_tensorflow_or_albumentations():
    import subprocess
    import sys

    code = (
        "import sys; from dualgen.core.config import check_config, load_yaml; import dualgen.segment.mixes; "
        "check_config(load_yaml('config.yaml')); "
        "print(sorted(m for m in ('tensorflow', 'albumentations', 'segmentation_models') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    "over, expected",
    [
        ({"mixes": {"augmentation": ["GaussNoise", "Blurr"]}}, "mixes.augmentation: unknown 'Blurr' (allowed: CLAHE"),
        (
            {"unet": {"backbone": "efficientnet-b3"}},
            "unet.backbone: unknown 'efficientnet-b3' (segmentation_models has efficientnetb0",
        ),
        (
            {"mixes": {"levels": [0, 10]}},
            "mixes.levels: 10 % of 4 training patches is no synthetic image (mix SHQ_010)",
        ),
        (
            {"mixes": {"synthetic_levels": [5]}},
            "mixes.synthetic_levels: 5 % of 8 training patches is no synthetic image",
        ),
        ({"vqvae": {"val_images": 11}}, "vqvae.val_images 11 leaves no BMQ patch"),
        ({"patches": {"keep_rare": ["pores"]}}, "patches.keep_rare: 'pores' is not a class"),
        ({"data": {"splits": {"train": "a.txt", "val": "b.txt"}}}, "data.splits has no test list"),
        ({"data": {"source": "folder", "simulate_lq": {"seed": 1}}}, "data.hq_masks is set too"),
        ({"data": {"crop_height": "top"}}, "data.crop_height: 'top' is not valid (allowed: posint or 'auto' or null)"),
    ],
)
def test_config_checked_at_load(over, expected):
    cfg = dconfig.merge(
        dconfig.merge(dconfig.load_yaml(REPO / "config.yaml"), dconfig.load_yaml(REPO / "presets" / "ci.yaml")), over
    )
    with pytest.raises(DualgenError, match=None) as err:
        dconfig.check_config(cfg)
    assert expected in str(err.value), str(err.value)


# ---- the ci preset with simulate_lq over a folder of images, through Snakemake -----------------------------------


@pytest.mark.slow
def test_ci_preset_data_stage_with_simulate_lq(tmp_path):
    root = make_lab_set(tmp_path / "set")
    sim = {"boundary_px": 1.5, "blob_rate": 4, "miss_small_px": 20, "swap_rate": 0.5, "seed": 2}
    over = {
        "classes": LAB_CLASSES,
        "data": {
            "source": "folder",
            "images": str(root / "images"),
            "masks": str(root / "masks"),
            "hq_masks": None,
            "mask_format": "index",
            "crop_height": "auto",
            "scale": 0.5,
            "test_sources": [],
            "splits": {k: str(root / "lists" / f"{k}.txt") for k in ("train", "val", "test")},
            "simulate_lq": sim,
        },
        "patches": {"keep_rare": ["pore", "crack"]},
        "datasets": {"small_train": 4, "small_val": 2, "big_train": 12, "big_val": 4, "test": 6},
    }
    (tmp_path / "lab.yaml").write_text(json.dumps(over))
    proc = snakemake(
        "results/ci/datasets",
        "results/ci/figures/lq",
        "--cores",
        "1",
        "--configfile",
        REPO / "presets" / "ci.yaml",
        tmp_path / "lab.yaml",
        workdir=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "results" / "ci"
    meta = json.loads((out / "patches" / "meta.json").read_text())
    assert meta["settings"]["data"]["simulate_lq"] == sim and meta["scale"] == 0.5
    changed = meta["simulated_lq"]["changed"]
    assert 0.02 < changed < 0.2, changed
    log = (out / "logs" / "patches.log").read_text()
    assert "simulated LQ masks" in log and "rows cut (info band)" in log
    ids, _, hq = datasets.load(out / "patches", out / "datasets" / "SHQ.csv", "train")
    _, _, lq = datasets.load(out / "patches", out / "datasets" / "SLQ.csv", "train")
    assert len(ids) == 4
    all_hq = np.stack([io.read_png(p) for p in sorted((out / "patches" / "hq").glob("*.png"))])
    all_lq = np.stack([io.read_png(p) for p in sorted((out / "patches" / "lq").glob("*.png"))])
    patch_share = (all_hq != all_lq).mean()
    assert abs(patch_share - changed) < 0.5 * changed, (patch_share, changed)  # the patches carry the simulated amount
    assert (hq != lq).mean() > 0  # SLQ differs from SHQ
    assert (out / "datasets" / "class_shares.csv").exists()
    assert (out / "figures" / "lq" / "hq_vs_lq.png").stat().st_size > 5000


def test_patches_settings_leave_out_what_only_the_datasets_step_reads():
    data = {
        "source": "demo",
        "images": "i",
        "masks": "data/demo/masks_lq",
        "hq_masks": "data/demo/masks_hq",
        "test_sources": ["demo_03"],
        "splits": None,
        "demo": {"seed": 1},
        "simulate_lq": {"boundary_px": 1},
    }
    out = dconfig.patches_data_settings(data, "data/demo")
    assert out["masks"] == "data/demo/masks_hq" and out["hq_masks"] is None
    assert not {"test_sources", "splits", "demo"} & set(out)
    assert dconfig.patches_data_settings(dict(data, simulate_lq=None), "data/demo")["masks"] == "data/demo/masks_lq"
    assert dconfig.split_list_files({"splits": {"train": "a.txt", "val": "b.txt", "test": None}}) == ["a.txt", "b.txt"]


# ---- datasets.fit_to_data with split lists: each split fitted to its own images ---------------------------------


def test_fit_split_sizes_takes_each_split_from_its_own_images():
    paper = {"small_train": 16, "small_val": 5, "big_train": 48, "big_val": 12, "test": 27}
    got = datasets.fit_split_sizes(paper, n_train=300, n_val=60, n_test_hq=55, n_train_hq=300, n_val_hq=60)
    # the test set is every HQ test patch; the big sets every patch; the small sets the paper's 1/3 and 5/12
    assert got == {"small_train": 100, "small_val": 25, "big_train": 300, "big_val": 60, "test": 55}
    # few HQ patches in the train images: the small set takes what there is, at least one
    got = datasets.fit_split_sizes(paper, n_train=30, n_val=2, n_test_hq=3, n_train_hq=4, n_val_hq=0)
    assert got["small_train"] == 4 and got["small_val"] == 1 and got["big_val"] == 2 and got["test"] == 3


def _readme_recipe():
    """The YAML block of the README's 'Bring your own data' section, as a user copies it."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Bring your own data", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def make_public_sem_like_set(root, seed=0):
    """A set shaped like the public SEM set of issue 26, at the paths the README's recipe names: 42 gray micrographs
    saved as RGB JPEGs (36 of 1024x768, 6 of 1280x960) with a ~65-row info band, index masks of the image area only,
    5 classes (two under 1 %), train / val / test lists of 30 / 6 / 6 images."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lists = {"train": [], "val": [], "test": []}
    for i in range(42):
        w, h = (1280, 960) if i % 7 == 3 else (1024, 768)
        band = 62 + i % 5
        coarse = rng.choice([0, 1, 1, 2], size=((h - band) // 64 + 1, w // 64 + 1))
        mask = np.kron(coarse, np.ones((64, 64), np.int64))[: h - band, :w].astype(np.uint8)
        for _ in range(2):  # pores (class 3) and an inclusion (class 4): big enough to survive scale 0.25
            y, x = rng.integers(16, h - band - 16), rng.integers(16, w - 16)
            mask[y - 6 : y + 6, x - 6 : x + 6] = 3
        if i % 3 == 0:
            y, x = rng.integers(16, h - band - 40), rng.integers(16, w - 40)
            mask[y : y + 24, x : x + 24] = 4
        img = np.clip(GRAY_LEVELS[mask] + rng.normal(0, 12, mask.shape), 0, 255).astype(np.uint8)
        full = np.zeros((h, w, 3), np.uint8)
        full[: h - band] = img[..., None]
        full[h - band + 10 : h - band + 20, 20:200] = 255  # text
        full[h - band // 2 : h - 8, w // 2 : w - 40] = (230, 40, 30)  # scale bar
        name = f"m{i:02d}"
        Image.fromarray(full).save(root / "images" / f"{name}.jpg", quality=90)
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
        lists["train" if i < 30 else "val" if i < 36 else "test"].append(name)
    for split, names in lists.items():
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.mark.slow
def test_the_readme_recipe_runs_as_written(tmp_path):
    """The README's own-data config, verbatim, on a set of the same shape: the data stage goes through with
    fit_to_data and split lists (each split sized from its own images), both rare classes kept."""
    make_public_sem_like_set(tmp_path / "data" / "sem")
    (tmp_path / "my.yaml").write_text(_readme_recipe())
    proc = snakemake("results/sem/datasets", "--cores", "2", "--configfile", tmp_path / "my.yaml", workdir=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "results" / "sem"
    table = pd.read_csv(out / "patches" / "patches.csv").set_index("patch_id")
    sizes = json.loads((out / "datasets" / "sizes.json").read_text())
    bmq = pd.read_csv(out / "datasets" / "BMQ.csv")
    test_sources = set(table.loc[bmq.loc[bmq.split == "test", "patch_id"], "source"])
    assert test_sources == {f"m{i:02d}" for i in range(36, 42)}
    n_test_patches = int(table["source"].isin([f"m{i:02d}" for i in range(36, 42)]).sum())
    assert sizes["test"] == n_test_patches == (bmq.split == "test").sum()  # every test patch, nothing dropped
    n_train_patches = int(table["source"].isin([f"m{i:02d}" for i in range(30)]).sum())
    assert sizes["big_train"] == n_train_patches and sizes["small_train"] == n_train_patches // 3
    shares = pd.read_csv(out / "datasets" / "class_shares.csv")
    train = shares[(shares.dataset == "BMQ") & (shares.split == "train")].iloc[0]
    assert 0 < train["pore"] < 0.01 and 0 < train["inclusion"] < 0.01, train


def test_the_lab_preset_with_the_readme_recipe_plans_one_prior_and_a_calibrated_budget(tmp_path):
    """presets/lab.yaml before the README's own-data config: one prior, no conditioned priors or balanced arm, the
    budget calibrated on each base's 0 % mix before any training (a dry run)."""
    make_public_sem_like_set(tmp_path / "data" / "sem")
    (tmp_path / "my.yaml").write_text(_readme_recipe())
    proc = snakemake(
        "-n", "--cores", "2", "--configfile", REPO / "presets" / "lab.yaml", tmp_path / "my.yaml", workdir=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M)}
    assert counts["train_pixelcnn"] == 1 and "train_pixelcnn_conditioned" not in counts, counts
    assert counts["calibrate_budget"] == 4 and counts["choose_budget"] == 1, counts
    assert counts["train_unet"] == 46 + 1 + 6, counts  # the paper's 46 mixes, BMQ_aug and the real-only curve
