"""The calibrated U-Net budget (config ``unet.updates: auto``): where validation stops improving, and one equal
budget for every mix of the study.

The calibration trains each base's 0 % mix for every configured seed with a generous cap (``unet.calibration.cap``
updates, validated every ``validate_every``) and keeps the validation curves (scripts/calibrate_budget.py, one job
per base). ``plateau`` finds, on each curve, the number of updates after which validation no longer improves;
``choose`` turns the plateau points of every base and seed into one budget: the largest of them times a margin,
rounded up to whole validation periods of the study (``unet.validate_every``), at most the cap. The study's
trainings read that number from ``budget/budget.json`` (``read_budget``): a new budget retrains every mix and
touches nothing upstream.
"""

import json
import math
from pathlib import Path

import numpy as np

from dualgen.core.errors import DualgenError

BUDGET_FILE = "budget.json"
CURVES_FILE = "curves.csv"
MONITOR = "val_iou_score"  # the validation score the trainings keep their best checkpoint by


def smooth(values, window):
    """Centred moving average over ``window`` validations (odd or even; the window shrinks at both ends, so the
    first and last points average only what exists). ``window`` 1 returns the values."""
    v = np.asarray(values, np.float64)
    w = max(1, int(window))
    if w == 1 or len(v) < 2:
        return v.copy()
    lo = np.arange(len(v)) - (w - 1) // 2
    hi = lo + w
    lo, hi = np.clip(lo, 0, len(v)), np.clip(hi, 0, len(v))
    c = np.concatenate([[0.0], np.cumsum(v)])
    return (c[hi] - c[lo]) / (hi - lo)


def noise_level(values):
    """Standard deviation of the validation noise of a curve, from its first differences: 1.4826 x their median
    absolute deviation / sqrt(2). The median removes a trend (a rising or falling curve) and is not moved by the few
    large steps of an early rise; the difference of two independent noisy values has sqrt(2) times their noise."""
    d = np.diff(np.asarray(values, np.float64))
    if len(d) < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def plateau(updates, values, *, window, min_delta, patience):
    """Where a validation curve stops improving.

    ``updates``: the updates at each validation (increasing); ``values``: the validation score there (higher is
    better; NaN validations are ignored). Returns {point, index, converged, best, tolerance, noise}:

    1. The curve is smoothed (``smooth``, ``window`` validations) and its running maximum taken: the best score a
       training stopped at each point could have kept (the trainings keep their best checkpoint).
    2. The tolerance is the larger of ``min_delta`` times the curve's whole gain (best smoothed value minus the
       first) and the noise of the running maximum: the smoothed noise (``noise_level`` / sqrt(window)) times
       sqrt(2 ln n), about how far the maximum of n noisy validations of a flat curve lies above their mean. A gain
       below the tolerance is not taken as an improvement: a flat noisy curve plateaus at once instead of where its
       largest noise spike happens to be.
    3. The plateau ``point`` is the first validation whose running maximum is within the tolerance of the final
       best: everything later adds at most ``min_delta`` of the gain (or noise). For a saturating curve
       a(1 - exp(-t / tau)) validated from t1 to a cap far beyond tau, that is where a fraction 1 - min_delta of
       the gain from t1 is reached: t = t1 + tau ln(1 / min_delta) (t1 + 3 tau for 0.05); noise moves it later
       by the height of the best noise spike.
    4. ``converged``: at least ``patience`` validations follow the plateau point (the curve was seen to stay flat).
       A curve that is not converged (still rising at the cap) gets the last validation as its point: the cap.
    """
    t = np.asarray(updates, np.float64)
    v = np.asarray(values, np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"plateau: updates {t.shape} and values {v.shape} must be two equal 1-D arrays")
    keep = np.isfinite(v)
    t, v = t[keep], v[keep]
    if len(v) == 0:
        raise DualgenError(
            "budget calibration: no finite validation score in a calibration curve: lower the "
            "unet.learning_rate or raise unet.calibration.cap"
        )
    s = smooth(v, window)
    running = np.maximum.accumulate(s)
    best = float(running[-1])
    noise = noise_level(v) / math.sqrt(max(1, int(window)))
    tolerance = max(float(min_delta) * (best - float(s[0])), noise * math.sqrt(2 * math.log(max(len(v), 2))))
    index = int(np.argmax(running >= best - tolerance))
    converged = len(v) - 1 - index >= int(patience)
    point = int(t[index]) if converged else int(t[-1])
    return {
        "point": point,
        "index": index,
        "converged": bool(converged),
        "best": best,
        "tolerance": float(tolerance),
        "noise": float(noise),
    }


def choose(points, *, margin, round_to, cap):
    """One budget from plateau points (updates): the largest times ``margin``, rounded up to a multiple of
    ``round_to`` (the study's validation period, so a training runs exactly that many updates), at least one
    period and at most ``cap`` rounded down to a multiple of ``round_to``."""
    k = int(round_to)
    if not points:
        raise ValueError("choose: no plateau point")
    top = max(k, (int(cap) // k) * k)
    want = math.ceil(max(points) * float(margin) / k - 1e-9) * k
    return int(min(top, max(k, want)))


def calibrate(curves, *, window, min_delta, patience, margin, round_to, cap):
    """The budget from calibration curves {base: {seed: (updates, values)}}: the plateau of every curve
    (``plateau``), the largest per base, and one budget over all bases (``choose``). Returns the budget.json
    content: {updates, cap, margin, round_to, largest_point, converged, per_base: {base: {point, converged, seeds:
    {seed: plateau's result}}}}."""
    per_base = {}
    for base, seeds in curves.items():
        runs = {
            str(seed): plateau(t, v, window=window, min_delta=min_delta, patience=patience)
            for seed, (t, v) in seeds.items()
        }
        per_base[base] = {
            "point": max(r["point"] for r in runs.values()),
            "converged": all(r["converged"] for r in runs.values()),
            "seeds": runs,
        }
    points = [b["point"] for b in per_base.values()]
    return {
        "updates": choose(points, margin=margin, round_to=round_to, cap=cap),
        "largest_point": max(points),
        "converged": all(b["converged"] for b in per_base.values()),
        "cap": int(cap),
        "margin": float(margin),
        "round_to": int(round_to),
        "per_base": per_base,
    }


def read_budget(folder):
    """The calibrated number of updates in ``folder``/budget.json (the calibrate_budget rule's output)."""
    if folder is None:
        raise DualgenError(
            "unet.updates is auto but no calibrated budget was given: pass --budget (the budget folder the "
            "choose_budget rule writes), or set unet.updates to a number"
        )
    path = Path(folder) / BUDGET_FILE
    try:
        value = json.loads(path.read_text())["updates"]
    except FileNotFoundError:
        raise DualgenError(f"{path}: no such file: run the choose_budget rule first (unet.updates: auto)") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise DualgenError(f"{path}: not a budget file (no 'updates'): delete the folder and run it again") from None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DualgenError(f"{path}: 'updates' is {value!r}, not a positive integer: delete the folder and run again")
    return value
