"""Evaluation without TensorFlow: the training job leaves its test segmentations (tied to its weights by
sha256); scripts/evaluate.py scores them with numpy only, per image with the source micrograph."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from dualgen.core.errors import DualgenError
from dualgen.data import io
from dualgen.segment import evaluation
from tests.conftest import PY, REPO, assert_one_line_error, env, run_script

CLASSES = [{"name": n, "value": v} for n, v in (("matrix", 0), ("oxide", 170), ("nd_rich", 255), ("eta", 85))]


@pytest.fixture
def folders(tmp_path):
    """A patches folder with 4 test patches from 2 sources, the SHQ manifest, and a 'trained' U-Net folder whose
    predictions are the truth except for one pixel block of patch 3."""
    rng = np.random.default_rng(0)
    patches, ds, unet = tmp_path / "patches", tmp_path / "datasets", tmp_path / "unet"
    for d in (patches / "images", patches / "hq", ds, unet / "model"):
        d.mkdir(parents=True)
    ids, masks = [f"src{i // 2}_p{i}" for i in range(4)], []
    for pid in ids:
        mask = np.kron(rng.integers(0, 4, (4, 4)), np.ones((8, 8), np.int64)).astype(np.uint8)
        io.write_png(patches / "images" / f"{pid}.png", (mask * 60).astype(np.uint8))
        io.write_png(patches / "hq" / f"{pid}.png", mask)
        masks.append(mask)
    pd.DataFrame({"patch_id": ids, "source": [p.split("_")[0] for p in ids]}).to_csv(
        patches / "patches.csv", index=False
    )
    pd.DataFrame({"patch_id": ids, "split": "test", "mask": "hq"}).to_csv(ds / "SHQ.csv", index=False)
    pred = np.stack(masks)
    pred[3, :8, :8] = (pred[3, :8, :8] + 1) % 4
    (unet / "model" / "best.weights.h5").write_bytes(b"weights")
    evaluation.write_test_predictions(unet, ids, pred, unet / "model" / "best.weights.h5")
    return patches, ds, unet, masks, pred


def evaluate(patches, ds, unet, out):
    """Run scripts/evaluate.py in a fresh interpreter and report whether TensorFlow got imported."""
    code = (
        "import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n    print('TF' if 'tensorflow' in sys.modules else 'no TF', file=sys.stderr)\n"
    )
    args = [
        str(REPO / "scripts" / "evaluate.py"),
        "--name",
        "BMQ_000",
        "--seed",
        "1",
        "--unet",
        str(unet),
        "--patches",
        str(patches),
        "--datasets",
        str(ds),
        "--out",
        str(out),
        "--settings",
        json.dumps({"classes": CLASSES}),
    ]
    return subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, env=env(), timeout=120)


def test_evaluation_is_numpy_only_and_per_image(folders, tmp_path):
    patches, ds, unet, masks, pred = folders
    proc = evaluate(patches, ds, unet, tmp_path / "metrics")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().endswith("no TF")
    result = json.loads((tmp_path / "metrics" / "metrics.json").read_text())
    rows = result["per_image"]
    assert [r["image"] for r in rows] == ["src0_p0", "src0_p1", "src1_p2", "src1_p3"]
    assert [r["source"] for r in rows] == ["src0", "src0", "src1", "src1"]
    assert all(r["accuracy"] == 1.0 and r["missing_class_iou"] == 1.0 for r in rows[:3])
    assert rows[3]["accuracy"] == pytest.approx(1 - 64 / 1024)
    assert result["seed"] == 1 and set(rows[0]) >= {"iou_matrix", "iou_oxide", "iou_nd_rich", "iou_eta"}
    assert result["summary"]["accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in rows]))


def test_predictions_of_other_weights_or_patches_are_refused(folders, tmp_path):
    patches, ds, unet, _, _ = folders
    (unet / "model" / "best.weights.h5").write_bytes(b"retrained")
    with pytest.raises(DualgenError, match="not made by the weights"):
        evaluation.read_test_predictions(unet)
    proc = run_script(
        "evaluate.py",
        "--name",
        "BMQ_000",
        "--seed",
        "1",
        "--unet",
        unet,
        "--patches",
        patches,
        "--datasets",
        ds,
        "--out",
        tmp_path / "m",
        "--settings",
        json.dumps({"classes": CLASSES}),
    )
    assert_one_line_error(proc, "test_predictions.npz", "rerun train_unet")
    assert not (tmp_path / "m").exists()
