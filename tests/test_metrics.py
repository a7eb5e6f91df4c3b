"""The paper's Missing Class IoU and the other metrics (no TensorFlow)."""

import math

import numpy as np
import pytest

from dualgen.core.errors import DualgenError
from dualgen.segment import metrics


def paper_example():
    """PAPER.md, Fig. 14: 6x6 px, ground truth 1 yellow (1), 1 blue (2), 34 background (0); the prediction
    gets yellow and blue right, turns one background pixel blue and one green (3)."""
    truth = np.zeros((6, 6), np.uint8)
    truth[1, 1], truth[4, 4] = 1, 2
    pred = truth.copy()
    pred[0, 5], pred[5, 0] = 2, 3
    return truth, pred


def test_worked_example_of_the_paper():
    truth, pred = paper_example()
    assert round(metrics.missing_class_iou(truth, pred, 4), 4) == 0.8137
    m = metrics.image_metrics(truth, pred, 4)
    assert round(m["missing_class_iou"], 4) == 0.8137
    assert round(m["miou"], 4) == 0.6103  # plain mIoU over all 4 classes: (1 + 0.5 + 32/34 + 0) / 4
    assert math.isnan(m["iou_3"])  # green is not in the ground truth: no per-class value
    assert m["iou_0"] == pytest.approx(32 / 34) and m["iou_1"] == 1.0 and m["iou_2"] == 0.5
    assert m["accuracy"] == pytest.approx(34 / 36)


def test_class_absent_from_truth_and_prediction_is_left_out_of_miou():
    truth, pred = paper_example()
    pred[0, 5] = 0  # now only the green pixel is wrong; with 5 classes, class 4 occurs nowhere
    m = metrics.image_metrics(truth, pred, 5)
    assert m["miou"] == pytest.approx((1 + 1 + 33 / 34 + 0) / 4)
    assert m["missing_class_iou"] == pytest.approx((1 + 1 + 33 / 34) / 3)
    assert math.isnan(m["iou_4"])


def test_perfect_and_single_class_predictions():
    truth, _ = paper_example()
    assert metrics.missing_class_iou(truth, truth, 4) == 1.0
    m = metrics.image_metrics(truth, truth, 4)
    assert m["miou"] == 1.0 and m["accuracy"] == 1.0
    everything_background = np.zeros_like(truth)
    m = metrics.image_metrics(truth, everything_background, 4)
    assert m["missing_class_iou"] == pytest.approx((34 / 36 + 0 + 0) / 3)
    assert m["iou_1"] == 0.0 and m["iou_2"] == 0.0
    everything_eta = np.full_like(truth, 3)  # a class the truth lacks everywhere
    m = metrics.image_metrics(truth, everything_eta, 4)
    assert m["missing_class_iou"] == 0.0 and m["miou"] == 0.0 and m["accuracy"] == 0.0
    flat = np.zeros((5, 5), np.int64)
    assert metrics.image_metrics(flat, flat, 4)["missing_class_iou"] == 1.0


def test_confusion_matches_a_loop():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, (20, 30)), rng.integers(0, 4, (20, 30))
    loop = np.zeros((4, 4), np.int64)
    for a, b in zip(t.ravel(), p.ravel()):
        loop[a, b] += 1
    cm = metrics.confusion(t.astype(np.uint8), p.astype(np.uint8), 4)
    assert cm.dtype == np.int64 and np.array_equal(cm, loop)


def test_bad_inputs_are_one_line_errors():
    truth, pred = paper_example()
    with pytest.raises(DualgenError, match="outside 0..2"):
        metrics.confusion(truth, pred, 3)
    with pytest.raises(DualgenError, match="differ in shape"):
        metrics.confusion(truth, pred[:5], 4)


def test_aggregate_per_class_over_images_that_have_the_class():
    rows = [
        {"missing_class_iou": 0.8, "iou_1": 0.5, "iou_2": float("nan"), "patch_id": "p1"},
        {"missing_class_iou": 0.6, "iou_1": float("nan"), "iou_2": float("nan"), "patch_id": "p2"},
    ]
    agg = metrics.aggregate(rows)
    assert agg["missing_class_iou"] == pytest.approx(0.7) and agg["iou_1"] == 0.5
    assert math.isnan(agg["iou_2"]) and "patch_id" not in agg
    assert metrics.aggregate([]) == {}
