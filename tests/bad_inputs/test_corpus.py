"""The bad-input corpus: every case is a small fixture built here, the command a user would run, and the one
line dualgen must answer with. For each: exit != 0, exactly one `dualgen: error:` line, no traceback, and the
input files byte-identical afterwards."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dualgen.segment.mixes import enumerate_mixes
from tests.conftest import CLASSES, assert_one_line_error, make_user_data, run_script, tree_checksums

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def data_settings(root, **data):
    d = {"images": f"{root}/images", "masks": f"{root}/masks", "hq_masks": f"{root}/hq_masks", "mask_format": "palette"}
    d.update(data)
    return {
        "classes": CLASSES,
        "data": d,
        "patches": {"size": 32, "stride": 32, "drop_background_only": True, "exclude": []},
    }


def patches_cmd(root, out, settings):
    return ["make_patches.py", "--out", out / "patches", "--settings", json.dumps(settings)]


def config_cmd(root, text):
    (root / "my.yaml").write_text(text)
    return ["check_config.py", root / "my.yaml"]


# ---- data -------------------------------------------------------------------------------------------
@case
def missing_data_folder(root, out):
    return patches_cmd(root, out, data_settings(root, images=f"{root}/nope")), "images folder not found"


@case
def empty_data_folder(root, out):
    (root / "empty").mkdir()
    return patches_cmd(root, out, data_settings(root, masks=f"{root}/empty")), "no PNG, TIFF or JPEG files"


@case
def file_not_an_image(root, out):
    (root / "images" / "img1.png").write_bytes(b"not a png")
    return patches_cmd(root, out, data_settings(root)), "img1.png: not a readable image"


@case
def truncated_image(root, out):
    p = root / "images" / "img0.png"
    p.write_bytes(p.read_bytes()[:200])
    return patches_cmd(root, out, data_settings(root)), "img0.png: not a readable image"


@case
def mask_without_image(root, out):
    (root / "images" / "img2.png").unlink()
    return patches_cmd(root, out, data_settings(root)), "mask without a micrograph"


@case
def image_without_mask(root, out):
    (root / "masks" / "img0.png").unlink()
    return patches_cmd(root, out, data_settings(root)), "micrograph without a mask"


@case
def image_mask_size_mismatch(root, out):
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(root / "masks" / "img1.png")
    return patches_cmd(root, out, data_settings(root)), "but its mask"


@case
def mask_values_not_in_palette(root, out):
    arr = np.asarray(Image.open(root / "masks" / "img0.png")).copy()
    arr[0, 0] = 13
    Image.fromarray(arr).save(root / "masks" / "img0.png")
    return patches_cmd(root, out, data_settings(root)), "1 pixels have values not in the palette (13)"


@case
def class_list_does_not_match_masks(root, out):
    s = data_settings(root)
    s["classes"] = CLASSES[:3]  # the masks also hold the fourth class's value 85
    return patches_cmd(root, out, s), "values not in the palette (85)"


@case
def image_too_large_decompression_guard(root, out):
    return patches_cmd(root, out, data_settings(root, max_pixels=1000)), "more than data.max_pixels"


@case
def patch_larger_than_image(root, out):
    s = data_settings(root)
    s["patches"]["size"] = 256
    return patches_cmd(root, out, s), "patches.size 256 is larger than the image"


@case
def mask_with_a_single_class_everywhere(root, out):
    for folder in ("masks", "hq_masks"):
        for p in (root / folder).glob("*.png"):
            Image.fromarray(np.zeros((96, 96), np.uint8)).save(p)
    return patches_cmd(root, out, data_settings(root)), "no usable patches"


@case
def results_folder_not_writable(root, out):
    (out / "blocked").write_text("a file where a folder should be")
    return [
        "make_patches.py",
        "--out",
        out / "blocked" / "patches",
        "--settings",
        json.dumps(data_settings(root)),
    ], "cannot write results there"


@case
def settings_not_json(root, out):
    return ["make_patches.py", "--out", out / "patches", "--settings", "{data: oops"], "--settings: not valid JSON"


@case
def info_band_taller_than_max_band(root, out):
    Image.fromarray(np.zeros((60, 96), np.uint8)).save(root / "masks" / "img1.png")
    return patches_cmd(
        root, out, data_settings(root, hq_masks=None, crop_height="auto")
    ), "36 rows more than the mask, above data.max_band"


@case
def auto_crop_with_a_mask_of_another_width(root, out):
    Image.fromarray(np.zeros((80, 90), np.uint8)).save(root / "masks" / "img2.png")
    return patches_cmd(
        root, out, data_settings(root, hq_masks=None, crop_height="auto")
    ), "is 90x80 px: image and mask must have the same size"


@case
def keep_rare_names_an_unknown_class(root, out):
    s = data_settings(root)
    s["patches"]["keep_rare"] = ["pores"]
    return patches_cmd(root, out, s), "patches.keep_rare: 'pores' is not a class"


@case
def scale_makes_images_smaller_than_a_patch(root, out):
    return patches_cmd(root, out, data_settings(root, scale=0.25)), "larger than the image (24x24 px, after data.scale)"


# ---- datasets ---------------------------------------------------------------------------------------
def _patches(root, out, **kw):
    proc = run_script(*patches_cmd(root, out, data_settings(root, **kw)))
    assert proc.returncode == 0, proc.stderr
    return out / "patches"


DS = {"small_train": 3, "small_val": 1, "big_train": 8, "big_val": 2, "test": 5, "seed": 0, "preview": 2}


@case
def fewer_usable_patches_than_splits(root, out):
    s = {"classes": CLASSES, "test_sources": ["img2"], "datasets": dict(DS, big_train=60)}
    return [
        "make_datasets.py",
        "--patches",
        _patches(root, out),
        "--out",
        out / "ds",
        "--settings",
        json.dumps(s),
    ], "big sets need"


@case
def empty_test_set_after_filtering(root, out):
    hq = root / "hq_blank"  # the only HQ mask shows background only: its patches are filtered out
    hq.mkdir()
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(hq / "img0.png")
    s = {"classes": CLASSES, "test_sources": ["img2"], "datasets": DS}
    return [
        "make_datasets.py",
        "--patches",
        _patches(root, out, hq_masks=str(hq)),
        "--out",
        out / "ds",
        "--settings",
        json.dumps(s),
    ], "no test patches"


def _lists(root, **content):
    files = {}
    for split, names in content.items():
        files[split] = str(root / f"{split}.txt")
        Path(files[split]).write_text("\n".join(names) + "\n")
    return files


@case
def split_list_names_an_unknown_image(root, out):
    s = {
        "classes": CLASSES,
        "datasets": DS,
        "splits": _lists(root, train=["img0"], val=["img1.png"], test=["img2", "img7"]),
    }
    return [
        "make_datasets.py",
        "--patches",
        _patches(root, out),
        "--out",
        out / "ds",
        "--settings",
        json.dumps(s),
    ], "line 2: 'img7' is not one of the images (3: img0, img1, img2)"


@case
def split_list_file_missing(root, out):
    s = {"classes": CLASSES, "datasets": DS, "splits": {"test": str(root / "nowhere.txt")}}
    return [
        "make_datasets.py",
        "--patches",
        _patches(root, out),
        "--out",
        out / "ds",
        "--settings",
        json.dumps(s),
    ], "nowhere.txt: list file not found"


# ---- config -----------------------------------------------------------------------------------------
@case
def config_not_yaml(root, out):
    return config_cmd(root, "patches: [size: 64\n  - oops: {\n"), "not valid YAML"


@case
def config_unknown_key(root, out):
    return config_cmd(root, "unet: {epoch: 3}\n"), "unknown key 'unet.epoch'"


@case
def config_unknown_determinism(root, out):
    return config_cmd(root, "determinism: exact\n"), "determinism: 'exact' is not one of ['strict', 'fast']"


@case
def config_maskgit_dim_not_divisible_by_heads(root, out):
    return config_cmd(root, "pixelcnn: {kind: maskgit, maskgit: {dim: 30, heads: 4}}\n"), (
        "pixelcnn.maskgit.dim 30 does not divide into 4 heads"
    )


@case
def config_dilations_not_one_per_block(root, out):
    return config_cmd(root, "pixelcnn: {num_blocks: 4, dilations: [1, 2, 4]}\n"), (
        "pixelcnn.dilations [1, 2, 4] has 3 values for 4 blocks"
    )


@case
def config_dropout_of_one(root, out):
    return config_cmd(root, "pixelcnn: {dropout: 1.0}\n"), "pixelcnn.dropout"


@case
def config_predict_mix_not_in_the_study(root, out):
    return config_cmd(root, "predict: {mix: BMQ_999}\n"), "predict.mix: 'BMQ_999' is not a mix of this study"


@case
def predict_model_folder_without_preprocess(root, out):
    (root / "model").mkdir()
    cmd = ["predict.py", "--model", root / "model", "--images", root / "images", "--out", out / "predicted"]
    return cmd, "no preprocess.json: not a dualgen model folder"


@case
def config_wrong_type(root, out):
    return config_cmd(root, "vqvae: {steps: many}\n"), "vqvae.steps: 'many' has the wrong type"


@case
def config_negative_size(root, out):
    return config_cmd(root, "datasets: {small_val: -1}\n"), "datasets.small_val: -1 is less than the minimum of 1"


@case
def config_palette_two_classes_share_a_value(root, out):
    return config_cmd(
        root, "classes:\n  - {name: a, value: 0, color: '#000000'}\n  - {name: b, value: 0, color: '#ffffff'}\n"
    ), "'a' and 'b' share the value 0"


@case
def config_patch_size_not_divisible(root, out):
    return config_cmd(root, "patches: {size: 66, stride: 66}\n"), "patches.size 66 is not a multiple of 32"


@case
def config_unknown_augmentation(root, out):
    return config_cmd(
        root, "mixes: {augmentation: [GaussNoise, Sharpness]}\n"
    ), "mixes.augmentation: unknown 'Sharpness'"


@case
def config_unknown_backbone(root, out):
    return config_cmd(root, "unet: {backbone: resnet19}\n"), "unet.backbone: unknown 'resnet19'"


@case
def config_level_that_gives_no_synthetic_image(root, out):
    return config_cmd(
        root, "mixes: {levels: [0, 2]}\n"
    ), "mixes.levels: 2 % of 16 training patches is no synthetic image"


@case
def config_simulate_lq_with_hq_masks(root, out):
    return config_cmd(
        root, "data: {source: folder, simulate_lq: {boundary_px: 2}}\n"
    ), "data.simulate_lq derives the LQ masks from data.masks"


@case
def demo_with_a_different_class_list(root, out):
    s = {"demo": {"n_images": 1, "height": 64, "width": 64, "scale": 1.0, "seed": 0}, "classes": CLASSES[:3]}
    return ["make_demo.py", "--out", out / "demo", "--settings", json.dumps(s)], "the rgb demo data has 4 classes"


# ---- mixes and artifacts ----------------------------------------------------------------------------
MIXES = {
    "bases": ["BMQ"],
    "levels": [0, 300],
    "synthetic": [],
    "synthetic_levels": [],
    "augmentation": [],
    "pretrain": [],
    "balanced": [],
    "balanced_bases": [],
    "real_sizes": [],
}


def _datasets(root):
    ds = root / "datasets"
    ds.mkdir()
    rows = [(f"p{i}", "train" if i < 8 else "val" if i < 10 else "test", "lq") for i in range(14)]
    for base in ("SHQ", "SLQ", "BLQ", "BMQ"):
        pd.DataFrame(rows, columns=["patch_id", "split", "mask"]).to_csv(ds / f"{base}.csv", index=False)
    return ds


@case
def synthetic_percentage_needs_more_than_the_pool(root, out):
    pool = root / "pool"
    pool.mkdir()
    pd.DataFrame({"synth_id": ["synth_00000", "synth_00001"]}).to_csv(pool / "pool.csv", index=False)
    s = {"mix": dataclasses.asdict(next(m for m in enumerate_mixes(MIXES, DS) if m.name == "BMQ_300"))}
    return [
        "build_mix.py",
        "--datasets",
        _datasets(root),
        "--pool",
        pool,
        "--out",
        out / "m",
        "--settings",
        json.dumps(s),
    ], "needs 24 synthetic images but the pool has 2"


@case
def mix_settings_that_are_not_a_mix(root, out):
    s = {"mix": {"name": "BMQ_999", "base": "BMQ"}}
    return [
        "build_mix.py",
        "--datasets",
        _datasets(root),
        "--out",
        out / "m",
        "--settings",
        json.dumps(s),
    ], "--settings: 'mix' is not a mix"


def _vqvae_dir(root, **meta):
    v = root / "vqvae"
    (v / "checkpoint").mkdir(parents=True)
    settings = {
        "vqvae": {
            "num_hiddens": 16,
            "num_residual_hiddens": 8,
            "num_residual_layers": 1,
            "embedding_dim": 8,
            "num_embeddings": 8,
            "commitment_cost": 0.25,
            "decay": 0.99,
            "quantizer": "ema",
            "downsample": 4,
            "mask_encoding": "level",
        }
    }
    from dualgen import __version__

    data = {"step": "train_vqvae", "dualgen_version": __version__, "settings": settings, "val_ids": []}
    data.update(meta)
    (v / "meta.json").write_text(json.dumps(data))
    (v / "checkpoint" / "spec.json").write_text(json.dumps({"channels": 4, **settings["vqvae"]}))
    (v / "checkpoint" / "ckpt.index").write_bytes(b"\x00garbage")
    (v / "checkpoint" / "ckpt.data-00000-of-00001").write_bytes(b"garbage")
    return v


def _encode_cmd(root, out, vq):
    s = {"classes": CLASSES, "postprocess": {"min_object_px": 200, "seed": 0}}
    return [
        "encode.py",
        "--vqvae",
        vq,
        "--patches",
        root / "p",
        "--datasets",
        root / "d",
        "--out",
        out / "codes",
        "--settings",
        json.dumps(s),
    ]


@case
def unreadable_checkpoint(root, out):
    return _encode_cmd(root, out, _vqvae_dir(root)), "checkpoint does not match"


@case
def artifact_from_another_step(root, out):
    return _encode_cmd(root, out, _vqvae_dir(root, step="patches")), "made by step 'patches', expected 'train_vqvae'"


@case
def artifact_from_another_dualgen_version(root, out):
    return _encode_cmd(root, out, _vqvae_dir(root, dualgen_version="0.0.1")), "made by dualgen 0.0.1"


def test_corpus_is_big_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(tmp_path, name):
    root = make_user_data(tmp_path / "in", n=3, h=96, w=96)
    out = tmp_path / "out"
    out.mkdir()
    cmd, expected = CASES[name](root, out)
    before = tree_checksums(root)
    proc = run_script(*cmd)
    assert_one_line_error(proc, expected)
    assert tree_checksums(root) == before, "an input file was changed"
    leftovers = [p for p in Path(out).rglob("*") if p.name.startswith((".tmp-", ".old-"))]
    assert not leftovers, leftovers
