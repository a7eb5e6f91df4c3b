"""The exported model and the predict step: the info-band rule for new micrographs, the choice of the mix by
validation, the whole-micrograph scores, and scripts/predict.py run as a lab runs it, from a model folder alone,
with the bad inputs a lab brings (a corrupt file among good ones, a tiny micrograph, a colour micrograph for a
gray model, an empty folder, a folder that is no model, a model of another format)."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dualgen.core.errors import DualgenError
from dualgen.data import micrographs
from dualgen.segment import evaluation, model_export
from tests.conftest import CLASSES, assert_one_line_error, run_script

K = len(CLASSES)


def test_crop_rule_keeps_what_ingest_cut():
    sources = pd.DataFrame(
        {"file_height": [80, 80, 60], "file_width": [64, 64, 50], "rows_cut": [16, 16, 0], "source": ["a", "b", "c"]}
    )
    auto = micrographs.crop_rule("auto", sources)
    assert auto == {"auto": [[60, 50, 0], [80, 64, 16]]}
    lines = []
    assert micrographs.rows_to_cut(auto, 80, 64, "x.png", lines.append) == 16 and not lines
    assert micrographs.rows_to_cut(auto, 90, 64, "y.png", lines.append) == 0
    assert lines and "y.png" in lines[0] and "never saw" in lines[0]
    fixed = micrographs.crop_rule(64, sources)
    assert micrographs.rows_to_cut(fixed, 80, 10, "z.png") == 16
    with pytest.raises(DualgenError, match="fewer than the model's crop height 64"):
        micrographs.rows_to_cut(fixed, 50, 10, "z.png")
    assert micrographs.crop_rule(None, sources) == {} and micrographs.rows_to_cut({}, 80, 64, "x") == 0


def test_best_mix_is_the_highest_validation_mean_and_a_named_mix_is_kept():
    validation = {"A_000": [0.5, 0.9], "B_000": [0.71, 0.71], "C_000": [0.71, 0.71], "D_000": []}
    assert model_export.choose(validation, "best") == "B_000"  # mean 0.71 > 0.70; the tie with C goes to the first
    assert model_export.choose(validation, "A_000") == "A_000"
    with pytest.raises(DualgenError, match="no mix has a validation score"):
        model_export.choose({"A_000": []}, "best")


def test_whole_row_scores_and_area_fraction_error_on_a_known_micrograph():
    names = [c["name"] for c in CLASSES]
    truth = np.zeros((10, 10), np.uint8)
    truth[:, 5:] = 1  # half matrix, half oxide
    pred = np.zeros((10, 10), np.uint8)
    pred[:, 8:] = 1  # oxide predicted on 20 of its 50 pixels
    row = evaluation.whole_row(truth, pred, names)
    assert row["accuracy"] == pytest.approx(0.7)
    assert row["iou_matrix"] == pytest.approx(50 / 80) and row["iou_oxide"] == pytest.approx(20 / 50)
    assert np.isnan(row["iou_eta"])  # absent from the truth
    assert row["missing_class_iou"] == pytest.approx((50 / 80 + 20 / 50) / 2)
    assert row["area_error_matrix"] == pytest.approx(0.3) and row["area_error_oxide"] == pytest.approx(-0.3)
    assert row["area_error_eta"] == 0


# ---------------------------------------------------------------------------------------------- the script


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model folder as export_model writes it: two seeds of a tiny gray U-Net (32 px windows) and
    preprocess.json with data.scale 0.5 and no info band."""
    from dualgen.segment import unet

    folder = tmp_path_factory.mktemp("model")
    settings = dict(
        backbone="resnet18",
        encoder_weights=None,
        bn_momentum=None,
        mixed_precision=False,
        decoder_filters=[16, 8, 8],
        encoder_depth=3,
    )
    spec = unet.make_spec(settings, K, (32, 32, 1))
    for seed in (0, 1):
        model = unet.build_unet(**{k: spec[k] for k in unet.SPEC_KEYS})
        unet.save(model, folder / model_export.SEEDS / f"seed{seed}", spec)
    record = model_export.preprocess_record(CLASSES, {}, 0.5, 1, 32, spec, 10**8)
    (folder / model_export.PREPROCESS).write_text(json.dumps(record))
    (folder / "meta.json").write_text(json.dumps({"mix": "BMQ_100"}))
    return folder


def _micrographs(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 70), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(rng.integers(0, 255, (64, 100, 3), dtype=np.uint8)).save(folder / "colour.png")
    Image.fromarray(rng.integers(0, 255, (30, 24), dtype=np.uint8)).save(folder / "tiny.tif")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return folder


def test_predict_segments_a_folder_at_the_original_resolution_and_names_what_it_skipped(model_dir, tmp_path):
    images, out = _micrographs(tmp_path / "new"), tmp_path / "out"
    proc = run_script("predict.py", "--model", model_dir, "--images", images, "--out", out)
    assert_one_line_error(proc, "1 of 4 micrographs skipped", "meta.json")
    log = proc.stdout + proc.stderr
    assert "broken.png" in log and "tiny" in log and "smaller than" in log  # skipped; padded to a window
    assert "colour micrograph, the model takes gray: converted" in log
    sizes = {"gray": (90, 70), "colour": (64, 100), "tiny": (30, 24)}
    for name, size in sizes.items():
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        assert mask.shape == size and mask.max() < K  # the original resolution, though the model saw half of it
        assert np.asarray(Image.open(out / "overlays" / f"{name}.png")).shape == (*size, 3)
    fractions = pd.read_csv(out / "phase_fractions.csv")
    assert len(fractions) == len(sizes) * K and set(fractions["class"]) == {c["name"] for c in CLASSES}
    assert np.allclose(fractions.groupby("micrograph")["fraction"].sum(), 1.0)
    assert (fractions["seed_min"] <= fractions["seed_max"]).all()
    mask = np.asarray(Image.open(out / "masks" / "gray.png"))
    row = fractions[(fractions.micrograph == "gray") & (fractions["class"] == "matrix")].iloc[0]
    assert row["fraction"] == pytest.approx((mask == 0).mean())
    meta = json.loads((out / "meta.json").read_text())
    assert list(meta["skipped"]) == ["broken.png"] and meta["model"]["seeds"] == [0, 1]
    assert meta["model"]["mix"] == "BMQ_100"


@pytest.mark.parametrize("case", ["empty", "no_model", "other_format"])
def test_predict_refuses_what_it_cannot_use_in_one_line(model_dir, tmp_path, case):
    images = tmp_path / "new"
    images.mkdir()
    model = model_dir
    if case != "empty":
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(images / "a.png")
    if case == "no_model":
        model = tmp_path / "not_a_model"
        model.mkdir()
    if case == "other_format":
        model = tmp_path / "old_model"
        model.mkdir()
        record = json.loads((model_dir / model_export.PREPROCESS).read_text()) | {"format": 0, "dualgen": "0.1.0"}
        (model / model_export.PREPROCESS).write_text(json.dumps(record))
    proc = run_script("predict.py", "--model", model, "--images", images, "--out", tmp_path / "out")
    expected = {
        "empty": "no PNG, TIFF or JPEG files to segment",
        "no_model": "not a dualgen model folder",
        "other_format": "export the model again",
    }[case]
    assert_one_line_error(proc, expected)
    assert not (tmp_path / "out").exists()
