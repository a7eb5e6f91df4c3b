"""The calibrated budget (unet.updates: auto): the plateau rule on constructed validation curves with a known
answer, one budget from the plateau points, the budget file the trainings read, the config check, the figure."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from dualgen.core.config import check_config, load_yaml, merge
from dualgen.core.errors import DualgenError
from dualgen.segment import budget
from tests.conftest import REPO

EVERY, CAP = 20, 2000
T = np.arange(EVERY, CAP + 1, EVERY)  # the updates at each validation
RULE = dict(window=3, min_delta=0.05, patience=10)


def saturating(tau, a=0.6):
    return a * (1 - np.exp(-T / tau))


def test_smooth_is_a_centred_moving_average_that_shrinks_at_the_ends():
    v = np.array([0.0, 3.0, 6.0, 9.0, 0.0])
    assert np.allclose(budget.smooth(v, 3), [1.5, 3.0, 6.0, 5.0, 4.5])
    assert np.allclose(budget.smooth(v, 1), v)


def test_noise_level_recovers_the_noise_of_a_trending_curve():
    rng = np.random.default_rng(0)
    t = np.arange(2000)
    v = 0.001 * t + rng.normal(0, 0.02, len(t))  # a linear trend does not count as noise
    assert budget.noise_level(v) == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("tau", [100, 200, 400])
def test_plateau_of_a_saturating_curve_without_noise(tau):
    """Known answer: the first validation at which the curve has made 1 - min_delta of its gain from the first
    validation, t1 + tau ln(1 / min_delta) when the cap lies far beyond tau (the gain from t1 to the cap is used
    exactly below)."""
    v = saturating(tau)
    got = budget.plateau(T, v, window=1, min_delta=0.05, patience=10)
    target = v[-1] - 0.05 * (v[-1] - v[0])
    expected = T[np.argmax(v >= target)]
    assert got["point"] == expected and got["converged"]
    assert abs(expected - (T[0] + tau * math.log(20))) <= EVERY + 0.1 * tau  # the closed form, to a period


@pytest.mark.parametrize("seed", range(5))
def test_plateau_of_a_noisy_saturating_curve(seed):
    """tau 200, validation noise 0.01 on a gain of 0.6: the plateau is near t1 + 3 tau = 619 (noise moves the best,
    and with it the point, somewhat later), never at the first validations nor at the cap."""
    v = saturating(200) + np.random.default_rng(seed).normal(0, 0.01, len(T))
    got = budget.plateau(T, v, **RULE)
    assert 540 <= got["point"] <= 860 and got["converged"], got


def test_a_curve_still_rising_at_the_cap_is_not_converged():
    v = np.linspace(0.2, 0.6, len(T)) + np.random.default_rng(0).normal(0, 0.005, len(T))
    got = budget.plateau(T, v, **RULE)
    assert got["point"] == CAP and not got["converged"]


def test_a_flat_curve_plateaus_at_the_first_validation():
    got = budget.plateau(T, np.full(len(T), 0.5), **RULE)
    assert got["point"] == EVERY and got["converged"]


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_curve_plateaus_early(seed):
    """Noise alone is no improvement: the tolerance covers the height of the best noise spike."""
    v = 0.5 + np.random.default_rng(seed).normal(0, 0.01, len(T))
    got = budget.plateau(T, v, **RULE)
    assert got["point"] <= 10 * EVERY and got["converged"], got


def test_a_curve_that_peaks_and_falls_plateaus_at_the_peak():
    """Overfitting: the trainings keep their best checkpoint, so the best is what counts."""
    v = np.where(T <= 600, T / 600 * 0.6, 0.6 - (T - 600) / 1400 * 0.2)
    got = budget.plateau(T, v, window=1, min_delta=0.01, patience=10)
    assert 580 <= got["point"] <= 600 and got["converged"]


def test_nan_validations_are_ignored():
    v = saturating(200)
    w = v.copy()
    w[5] = np.nan
    a, b = budget.plateau(T, v, **RULE), budget.plateau(T, w, **RULE)
    assert abs(a["point"] - b["point"]) <= EVERY


def test_too_little_after_the_plateau_is_not_converged():
    """patience: a plateau followed by fewer validations than patience is not evidence: the point is the cap."""
    t = T[:30]
    v = np.minimum(t / 500, 1.0) * 0.6  # flat from 500 = validation 25 of 30
    assert budget.plateau(t, v, window=1, min_delta=0.01, patience=3)["point"] == 500
    got = budget.plateau(t, v, window=1, min_delta=0.01, patience=10)
    assert got["point"] == t[-1] and not got["converged"]


@pytest.mark.parametrize(
    "points, margin, round_to, cap, expected",
    [
        ([400, 600], 1.25, 20, 2000, 760),  # 600 x 1.25 = 750, rounded up to 760
        ([400, 640], 1.25, 20, 2000, 800),  # exactly 800: no extra period
        ([600], 1.0, 50, 2000, 600),
        ([1900], 1.25, 20, 2000, 2000),  # at most the cap
        ([1900], 1.25, 300, 2000, 1800),  # the cap rounded down to whole periods
        ([5], 1.25, 20, 2000, 20),  # at least one period
    ],
)
def test_choose_takes_the_largest_point_times_the_margin_in_whole_periods(points, margin, round_to, cap, expected):
    assert budget.choose(points, margin=margin, round_to=round_to, cap=cap) == expected


def test_calibrate_takes_the_largest_plateau_over_bases_and_seeds():
    curves = {
        "SHQ": {0: (T, saturating(100)), 1: (T, saturating(150))},
        "BMQ": {0: (T, saturating(200)), 1: (T, saturating(120))},
    }
    got = budget.calibrate(curves, window=1, min_delta=0.05, patience=10, margin=1.25, round_to=20, cap=CAP)
    top = budget.plateau(T, saturating(200), window=1, min_delta=0.05, patience=10)["point"]
    assert got["largest_point"] == top == got["per_base"]["BMQ"]["point"]
    assert got["updates"] == math.ceil(top * 1.25 / 20) * 20 and got["converged"]
    assert set(got["per_base"]["SHQ"]["seeds"]) == {"0", "1"}
    curves["SHQ"][1] = (T, np.linspace(0.1, 0.6, len(T)))  # one seed still rising: the budget is the cap
    got = budget.calibrate(curves, window=1, min_delta=0.05, patience=10, margin=1.25, round_to=20, cap=CAP)
    assert got["updates"] == CAP and not got["converged"] and not got["per_base"]["SHQ"]["converged"]


def test_read_budget(tmp_path):
    (tmp_path / budget.BUDGET_FILE).write_text(json.dumps({"updates": 760}))
    assert budget.read_budget(tmp_path) == 760
    with pytest.raises(DualgenError, match="run the choose_budget rule first"):
        budget.read_budget(tmp_path / "missing")
    with pytest.raises(DualgenError, match="pass --budget"):
        budget.read_budget(None)
    (tmp_path / budget.BUDGET_FILE).write_text(json.dumps({"updates": "many"}))
    with pytest.raises(DualgenError, match="not a positive integer"):
        budget.read_budget(tmp_path)


def _config(unet=None, mixes=None):
    base = load_yaml(REPO / "config.yaml")
    return merge(base, {"unet": unet or {}, "mixes": mixes or {}})


def test_config_accepts_updates_auto():
    cfg = check_config(_config({"updates": "auto", "calibration": {"cap": 600, "margin": 1.5}}))
    assert cfg["unet"]["updates"] == "auto" and cfg["unet"]["calibration"]["cap"] == 600
    assert cfg["unet"]["calibration"]["smooth"] == load_yaml(REPO / "config.yaml")["unet"]["calibration"]["smooth"]


@pytest.mark.parametrize(
    "unet, mixes, fragment",
    [
        ({"updates": "often"}, None, "unet.updates: 'often' is not valid (allowed: integer or 'auto')"),
        ({"updates": 0}, None, "unet.updates"),
        ({"calibration": {"margin": 0.5}}, None, "unet.calibration.margin"),
        ({"calibration": {"caps": 10}}, None, "unknown key 'unet.calibration.caps'"),
        ({"updates": "auto"}, {"levels": [50, 100]}, "mixes.levels [50, 100] has no 0"),
    ],
)
def test_config_errors_of_the_budget_are_one_line(unet, mixes, fragment):
    with pytest.raises(DualgenError) as err:
        check_config(_config(unet, mixes))
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_convergence_figure_draws_the_calibration_and_the_budget(tmp_path):
    from dualgen.report import figures

    rows = []
    for base, tau in (("SHQ", 150), ("BMQ", 200)):
        for seed in (0, 1):
            rows += [{"base": base, "seed": seed, "updates": t, "val_iou_score": v} for t, v in zip(T, saturating(tau))]
    curves = pd.DataFrame(rows)
    per = {
        b: {s: (g["updates"].to_numpy(), g["val_iou_score"].to_numpy()) for s, g in r.groupby("seed")}
        for b, r in curves.groupby("base", sort=False)
    }
    result = budget.calibrate(per, **RULE, margin=1.25, round_to=20, cap=CAP)
    t = np.arange(20, result["updates"] + 1, 20)
    hist = pd.DataFrame({"updates": t, "val_iou_score": 0.6 * (1 - np.exp(-t / 150))})
    path = tmp_path / "convergence.png"
    figures.convergence_figure({"SHQ_000": [hist, hist]}, path, result | {"curves": curves})
    assert path.stat().st_size > 10_000  # the BMQ panel comes from the calibration alone
