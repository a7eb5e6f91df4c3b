"""Segmentation metrics from one confusion matrix per image (vectorised, no per-pixel loops).

- accuracy: correct pixels / all pixels.
- mIoU: mean IoU over the classes that occur in the ground truth or the prediction (a class predicted but
  absent from the truth has IoU 0; a class absent from both is left out, since its IoU is undefined).
- Missing Class IoU (the paper's metric): mean IoU over the classes present in the ground truth only; a
  class the model predicts but the truth lacks is not averaged in, yet its pixels still count as errors
  (false negatives) of the true class.
- iou_<k>: IoU of class k where the ground truth contains k, else NaN ("Missing Class IoU per class").

Over a test set (``aggregate``): the plain mean over images of each per-image value; per class, the mean
over the images whose ground truth contains that class.
"""
import numpy as np


def confusion(y_true, y_pred, num_classes):
    """(n, n) counts: rows = ground truth class, columns = predicted class."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ious(cm):
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def missing_class_iou(y_true, y_pred, num_classes):
    """Mean IoU over the classes present in ``y_true`` (one image, 2-D integer arrays)."""
    cm = confusion(y_true, y_pred, num_classes)
    present = cm.sum(1) > 0
    return float(_ious(cm)[present].mean())


def image_metrics(y_true, y_pred, num_classes):
    cm = confusion(y_true, y_pred, num_classes)
    iou = _ious(cm)
    present = cm.sum(1) > 0
    occurs = present | (cm.sum(0) > 0)
    out = {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "miou": float(iou[occurs].mean()),
        "missing_class_iou": float(iou[present].mean()),
    }
    for k in range(num_classes):
        out[f"iou_{k}"] = float(iou[k]) if present[k] else float("nan")
    return out


def aggregate(per_image):
    """Mean over the test images of each metric; per-class values over the images that contain the class."""
    if not per_image:
        return {}
    keys = per_image[0].keys()
    out = {}
    for key in keys:
        values = np.array([row[key] for row in per_image], dtype=np.float64)
        finite = values[~np.isnan(values)]
        out[key] = float(finite.mean()) if len(finite) else float("nan")
    return out
