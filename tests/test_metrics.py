"""The paper's Missing Class IoU and the other metrics."""
import numpy as np

from dualgen import metrics


def paper_example():
    """PAPER.md, Fig. 14: 6x6 px, ground truth 1 yellow (1), 1 blue (2), 34 background (0); the prediction
    gets yellow and blue right, turns one background pixel blue and one green (3)."""
    truth = np.zeros((6, 6), np.int64)
    truth[1, 1], truth[4, 4] = 1, 2
    pred = truth.copy()
    pred[0, 5], pred[5, 0] = 2, 3
    return truth, pred


def test_worked_example_of_the_paper():
    truth, pred = paper_example()
    assert round(metrics.missing_class_iou(truth, pred, 4), 4) == 0.8137
    m = metrics.image_metrics(truth, pred, 4)
    assert round(m["miou"], 4) == 0.6103  # plain mIoU over all 4 classes: (1 + 0.5 + 32/34 + 0) / 4
    assert m["iou_3"] != m["iou_3"]  # NaN: green is not in the ground truth
    assert round(m["iou_0"], 4) == round(32 / 34, 4) and m["iou_2"] == 0.5
    assert m["accuracy"] == 34 / 36


def test_perfect_and_single_class_predictions():
    truth, _ = paper_example()
    assert metrics.missing_class_iou(truth, truth, 4) == 1.0
    everything_background = np.zeros_like(truth)
    m = metrics.image_metrics(truth, everything_background, 4)
    assert round(m["missing_class_iou"], 4) == round((34 / 36 + 0 + 0) / 3, 4)
    flat = np.zeros((5, 5), np.int64)
    assert metrics.image_metrics(flat, flat, 4)["missing_class_iou"] == 1.0


def test_confusion_matches_a_loop():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, (20, 30)), rng.integers(0, 4, (20, 30))
    loop = np.zeros((4, 4), np.int64)
    for a, b in zip(t.ravel(), p.ravel()):
        loop[a, b] += 1
    assert np.array_equal(metrics.confusion(t, p, 4), loop)


def test_aggregate_per_class_over_images_that_have_the_class():
    rows = [{"missing_class_iou": 0.8, "iou_1": 0.5}, {"missing_class_iou": 0.6, "iou_1": float("nan")}]
    agg = metrics.aggregate(rows)
    assert agg["missing_class_iou"] == 0.7 and agg["iou_1"] == 0.5
