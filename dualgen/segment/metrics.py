"""Segmentation metrics from one confusion matrix per image (vectorised with np.bincount, no per-pixel loops).

Per image (``image_metrics``), with IoU_k = TP_k / (TP_k + FP_k + FN_k):

- ``accuracy``: correct pixels / all pixels.
- ``miou``: mean IoU over the classes that occur in the ground truth *or* the prediction. A class predicted
  but absent from the truth has IoU 0 (it has false positives and no true positives); a class absent from
  both is left out, since its IoU is 0/0. This is the plain mIoU of the paper's worked example:
  (1 + 0.5 + 32/34 + 0) / 4 = 0.6103 with the 4th class predicted but not in the truth.
- ``missing_class_iou`` (the paper's metric): mean IoU over the classes present in the ground truth only.
  A class the model predicts but the truth lacks is not averaged in, yet its pixels still count as errors
  (false negatives) of the true class: (1 + 1/2 + 32/34) / 3 = 0.8137 on the worked example.
- ``iou_<k>``: IoU of class k where the ground truth contains k, else NaN ("Missing Class IoU per class").

Over a test set (``aggregate``): the plain mean over the images of each per-image value; for the per-class
values (NaN where an image lacks the class) the mean over the images whose ground truth contains that class
(NaN when no image does).
"""

import numbers

import numpy as np

from dualgen.core.errors import DualgenError


def confusion(y_true, y_pred, num_classes):
    """(n, n) int64 pixel counts: rows = ground-truth class, columns = predicted class."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise DualgenError(
            f"metrics: ground truth {t.shape} and prediction {p.shape} differ in shape: "
            "compare masks of the same image size"
        )
    t = t.astype(np.int64, copy=False).ravel()
    p = p.astype(np.int64, copy=False).ravel()
    n = int(num_classes)
    for name, a in (("ground truth", t), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= n):
            raise DualgenError(
                f"metrics: {name} has class ids {int(a.min())}..{int(a.max())}, outside 0..{n - 1}: "
                "masks must hold class indices (check the classes list in the config)"
            )
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def ious(cm):
    """Per-class IoU from a confusion matrix; NaN where the class is in neither truth nor prediction."""
    cm = np.asarray(cm)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    out = np.full(len(tp), np.nan)
    np.divide(tp, union, out=out, where=union > 0)
    return out


def missing_class_iou(y_true, y_pred, num_classes):
    """The paper's Missing Class IoU of one image: mean IoU over the classes present in ``y_true``."""
    cm = confusion(y_true, y_pred, num_classes)
    present = cm.sum(1) > 0
    if not present.any():
        return float("nan")  # an empty image
    return float(ious(cm)[present].mean())


def image_metrics(y_true, y_pred, num_classes):
    """accuracy, miou, missing_class_iou and iou_0 .. iou_<n-1> of one image (see the module docstring)."""
    cm = confusion(y_true, y_pred, num_classes)
    iou = ious(cm)
    present = cm.sum(1) > 0
    occurs = present | (cm.sum(0) > 0)
    total = cm.sum()
    out = {
        "accuracy": float(np.trace(cm) / total) if total else float("nan"),
        "miou": float(iou[occurs].mean()) if occurs.any() else float("nan"),
        "missing_class_iou": float(iou[present].mean()) if present.any() else float("nan"),
    }
    for k in range(int(num_classes)):
        out[f"iou_{k}"] = float(iou[k]) if present[k] else float("nan")
    return out


def aggregate(per_image):
    """Mean over the test images of each numeric metric in ``per_image`` (a list of ``image_metrics`` dicts).

    NaN entries are skipped, so ``iou_<k>`` is averaged over the images whose ground truth contains class k
    (NaN if none does); accuracy, miou and missing_class_iou are plain means over all images. Keys whose
    values are not numbers (e.g. an image id) are left out. Returns {} for an empty list.
    """
    if not per_image:
        return {}
    out = {}
    for key in per_image[0]:
        column = [row[key] for row in per_image]
        if not all(isinstance(v, (numbers.Real, np.number)) and not isinstance(v, bool) for v in column):
            continue
        values = np.array(column, dtype=np.float64)
        finite = values[~np.isnan(values)]
        out[key] = float(finite.mean()) if len(finite) else float("nan")
    return out
