"""Statistics of the study's comparisons: Holm, Wilcoxon, the two-stage (cluster) bootstrap, the tables, the prose."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from dualgen.report import findings, stats

N_IMAGES, N_SEEDS, N_STUDIES = 27, 3, 1000


# --- Holm -----------------------------------------------------------------------------------------------------


def test_holm_textbook_example():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04, times m - j + 1 = 4, 3, 2, 1:
    # 0.020, 0.030, 0.060, 0.040; running maximum (step-down, monotone): 0.020, 0.030, 0.060, 0.060.
    # Back in input order: [0.03, 0.06, 0.06, 0.02] (0.04 becomes 0.06: it may not beat the smaller 0.03).
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Cap at 1: p = [0.6, 0.02, 0.7]: sorted 0.02, 0.6, 0.7 times 3, 2, 1 = 0.06, 1.2, 0.7 -> running max
    # 0.06, 1.2, 1.2 -> capped 0.06, 1, 1.
    assert stats.holm([0.6, 0.02, 0.7]) == pytest.approx([1.0, 0.06, 1.0])
    # NaN stays NaN and does not count in m: the first example again, m still 4.
    out = stats.holm([np.nan, 0.01, 0.04, np.nan, 0.03, 0.005])
    assert np.isnan(out[[0, 3]]).all() and out[[1, 2, 4, 5]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(stats.holm([np.nan, np.nan])).all() and stats.holm([]).shape == (0,)
    assert stats.holm([0.2]) == pytest.approx([0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.5, 1.5])


def test_holm_is_monotone_and_at_least_the_raw_p():
    p = np.random.default_rng(0).random(40) ** 3
    adjusted = stats.holm(p)
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()
    assert (adjusted >= p).all() and (adjusted <= 1).all()


# --- Wilcoxon -------------------------------------------------------------------------------------------------


def test_wilcoxon_agrees_with_scipy():
    # Sizes and kinds that reach each of scipy's methods: exact (n <= 50, no ties or zeros), the sign-flip
    # permutation test (n <= 13 with ties or zeros) and the normal approximation (else).
    rng = np.random.default_rng(1)
    rows = []
    for n in (1, 2, 3, 5, 8, 12, 14, 20, 27, 50, 51, 60):
        for kind in ("plain", "ties", "zeros", "coarse", "positive"):
            x = rng.normal(size=n)
            if kind == "ties":
                x = np.round(x, 1)
            elif kind == "zeros":
                x[rng.random(n) < 0.3] = 0.0
            elif kind == "coarse":
                x = np.round(2 * x) / 2
            elif kind == "positive":
                x = np.abs(x) + 0.01
            rows.append(x)
    width = max(map(len, rows)) + 4
    table = np.full((len(rows), width), np.nan)  # NaN padding at random places: ignored per row
    for i, x in enumerate(rows):
        table[i, np.sort(rng.choice(width, len(x), replace=False))] = x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = [scipy.stats.wilcoxon(x).pvalue if np.any(x != 0) else 1.0 for x in rows]
    np.testing.assert_allclose(stats.wilcoxon_p(table), expected, rtol=1e-12, atol=0)


def test_wilcoxon_edge_rows():
    p = stats.wilcoxon_p([[0.0] * 5 + [np.nan] * 15, [0.0] * 20, [np.nan] * 6 + [0.0] * 14])
    assert list(p) == [1.0, 1.0, 1.0]  # all zeros: no evidence either way (scipy: NaN beyond 13 zeros)
    assert np.isnan(stats.wilcoxon_p([[np.nan, np.nan]])[0])  # no data: no test
    assert stats.wilcoxon_p(np.ones(6))[0] == pytest.approx(2 / 2**6)  # 1-D is one row; all 6 positive
    with pytest.raises(ValueError, match="2-D"):
        stats.wilcoxon_p(np.zeros((2, 3, 4)))


# --- sign-flip permutation test -------------------------------------------------------------------------------


def test_sign_flip_by_hand():
    # [1, 2, 3]: 8 sign patterns, |sum| 6 (+++, ---), 4 (-++, +--), 2 (+-+, -+-), 0 (++-, --+); observed 6:
    # p = 2/8.
    assert stats.sign_flip_p([1.0, 2.0, 3.0])[0] == pytest.approx(0.25)
    assert stats.sign_flip_p([1.0, -1.0])[0] == 1.0  # observed |mean| 0: every pattern reaches it
    # [1, 1, 1, -1]: |sum| 2; of 16 patterns |sum| is 4 (2), 2 (8), 0 (6): p = 10/16, ties included.
    assert stats.sign_flip_p([1.0, 1.0, 1.0, -1.0])[0] == pytest.approx(10 / 16)
    # [0.1, 0.2, 0.3]: 0.1 + 0.2 - 0.3 is 5.6e-17, not 0, in floating point: the tolerance keeps the tie.
    assert stats.sign_flip_p([0.3, 0.2, -0.1])[0] == pytest.approx(stats.sign_flip_p([3.0, 2.0, -1.0])[0])
    assert stats.sign_flip_p([0.1, 0.2, -0.3])[0] == 1.0
    assert stats.sign_flip_p(np.full(6, 0.5))[0] == pytest.approx(2 / 2**6)
    assert stats.sign_flip_p([2.5])[0] == 1.0 and stats.sign_flip_p([0.0, 0.0])[0] == 1.0


def test_sign_flip_rows_and_edges():
    rows = np.array([[1.0, np.nan, 2.0, 3.0], [np.nan] * 4, [1.0, -1.0, np.nan, np.nan], [4, 4, 4, 4]])
    p = stats.sign_flip_p(rows)
    assert p[[0, 2, 3]] == pytest.approx([0.25, 1.0, 2 / 16]) and np.isnan(p[1])  # NaN dropped per row
    with pytest.raises(ValueError, match="1-D or 2-D"):
        stats.sign_flip_p(np.zeros((2, 3, 4)))


def test_sign_flip_monte_carlo_agrees_with_exact():
    rng = np.random.default_rng(6)
    for n in (16, 17):
        x = rng.normal(0.4, 1.0, (6, n))
        exact = stats.sign_flip_p(x, max_exact=n)
        mc = stats.sign_flip_p(x, n_mc=20_000, seed=1, max_exact=0)
        np.testing.assert_allclose(mc, exact, atol=0.01)  # binomial sd <= 0.0035 at 20,000 patterns
        assert (mc >= 1 / 20_001).all()
    # The default switches to Monte Carlo above 16: same p as with the same patterns forced.
    x = rng.normal(size=(3, 17))
    assert (stats.sign_flip_p(x, n_mc=5000, seed=2) == stats.sign_flip_p(x, n_mc=5000, seed=2, max_exact=0)).all()


def test_micrograph_level_test_keeps_its_level_where_the_patch_test_does_not():
    # 400 studies of 8 micrographs x 16 patches without a true difference. The difference varies between
    # micrographs (sd 1.0, shared by the micrograph's patches) much more than within (sd 0.3): the 128 patches
    # are worth about 8 independent values. A test over patches takes them as 128 and rejects far too often.
    rng = np.random.default_rng(13)
    studies, sources, patches = 400, 8, 16
    diffs = rng.normal(0, 1.0, (studies, sources, 1)) + rng.normal(0, 0.3, (studies, sources, patches))
    patch = float(np.mean(stats.wilcoxon_p(diffs.reshape(studies, -1)) < 0.05))
    micrograph = float(np.mean(stats.sign_flip_p(diffs.mean(axis=2)) < 0.05))
    assert patch > 0.15 and 0.01 <= micrograph <= 0.09, f"patch {patch:.3f}, micrograph {micrograph:.3f}"


# --- bootstrap ------------------------------------------------------------------------------------------------


def test_batched_bootstrap_equals_one_call_per_comparison():
    rng = np.random.default_rng(2)
    diffs = rng.normal(size=(12, N_IMAGES, N_SEEDS))
    diffs[3, 5] = np.nan  # a class absent from image 5: that comparison has its own image set
    diffs[7, [1, 2]] = np.nan
    sources = np.repeat([f"s{k}" for k in range(9)], 3)
    for clusters in (None, sources):
        mean, low, high = stats.bootstrap_mean_ci_many(diffs, clusters, n_boot=500, seed=4)
        for i in (0, 3, 7, 11):
            single = stats.bootstrap_mean_ci(diffs[i], clusters, n_boot=500, seed=4)
            assert single == pytest.approx((mean[i], low[i], high[i]), rel=1e-12)
    assert mean[3] == pytest.approx(np.delete(diffs[3], 5, axis=0).mean())  # the NaN image is dropped
    assert low[0] < mean[0] < high[0]


def test_bootstrap_known_answers():
    exact = np.full((10, N_SEEDS), 0.1)  # the same difference everywhere: a zero-width interval
    assert stats.bootstrap_mean_ci(exact, n_boot=200) == pytest.approx((0.1, 0.1, 0.1))
    x = np.random.default_rng(3).normal(size=10)
    # Seeds that agree add nothing: the two-stage bootstrap of identical seeds is the image bootstrap.
    assert stats.bootstrap_mean_ci(np.repeat(x[:, None], 3, axis=1), n_boot=300, seed=1) == pytest.approx(
        stats.bootstrap_mean_ci(x[:, None], n_boot=300, seed=1), rel=1e-12
    )
    # One cluster: every replicate holds all images, so the interval collapses onto the mean.
    mean, low, high = stats.bootstrap_mean_ci(x, clusters=["a"] * 10, n_boot=300)
    assert low == pytest.approx(mean) and high == pytest.approx(mean) and mean == pytest.approx(x.mean())
    # Clusters of 2 identical patches: resampling clusters is the image bootstrap of the 5 cluster values.
    assert stats.bootstrap_mean_ci(
        np.repeat(x[:5], 2), clusters=np.repeat(list("abcde"), 2), n_boot=300
    ) == pytest.approx(stats.bootstrap_mean_ci(x[:5], n_boot=300), rel=1e-12)
    assert all(math.isnan(v) for v in stats.bootstrap_mean_ci(np.full((4, 2), np.nan), n_boot=10))
    with pytest.raises(ValueError, match="one label per image"):
        stats.bootstrap_mean_ci(x, clusters=["a"] * 3)
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap_mean_ci(x, level=95)


def coverage(diffs, clusters=None):
    _, low, high = stats.bootstrap_mean_ci_many(diffs, clusters, n_boot=1000, seed=0)
    return float(np.mean((low <= 0) & (0 <= high)))


def test_interval_covers_a_null_difference_about_95_percent_of_the_time():
    # 1,000 studies of 27 images x 3 seeds without a true difference; a difference of sd 0.05 is part
    # image-to-image (sd 0.04, shared by the seeds of an image) and part seed-to-seed (sd 0.03).
    rng = np.random.default_rng(10)
    diffs = rng.normal(0, 0.04, (N_STUDIES, N_IMAGES, 1)) + rng.normal(0, 0.03, (N_STUDIES, N_IMAGES, N_SEEDS))
    assert 0.93 <= coverage(diffs) <= 0.97


def test_cluster_bootstrap_keeps_coverage_where_the_patch_bootstrap_does_not():
    # 9 source micrographs x 3 patches each: a shared source effect (sd 0.05) dominates the patch (0.02) and
    # seed (0.01) noise, so the 27 patches are worth about 9 independent images.
    rng = np.random.default_rng(11)
    source = np.repeat(rng.normal(0, 0.05, (N_STUDIES, 9, 1)), 3, axis=1)
    diffs = source + rng.normal(0, 0.02, (N_STUDIES, N_IMAGES, 1)) + rng.normal(0, 0.01, (N_STUDIES, N_IMAGES, 3))
    by_source = coverage(diffs, clusters=np.repeat(np.arange(9), 3))
    by_patch = coverage(diffs)
    assert 0.85 <= by_source <= 0.97  # ~0.89: a percentile interval from 9 clusters is a little short
    assert by_patch < 0.80 and by_patch < by_source - 0.1  # ~0.70: the patch bootstrap under-covers


def test_a_true_shift_is_detected_after_holm():
    # 1,000 studies of 5 comparisons each; the first has a true shift of 0.05 (per-value sd 0.05 as above),
    # the other 4 none. Holm over the 5 p values of a study.
    rng = np.random.default_rng(12)
    shape = (N_STUDIES, 5, N_IMAGES)
    diffs = rng.normal(0, 0.04, shape + (1,)) + rng.normal(0, 0.03, shape + (N_SEEDS,))
    diffs[:, 0] += 0.05
    p = stats.wilcoxon_p(diffs.mean(axis=3).reshape(-1, N_IMAGES)).reshape(N_STUDIES, 5)
    adjusted = np.array([stats.holm(row) for row in p])
    assert np.mean(adjusted[:, 0] < 0.05) >= 0.8
    assert np.mean((adjusted[:, 1:] < 0.05).any(axis=1)) <= 0.07  # family-wise error of the null comparisons
    _, low, _ = stats.bootstrap_mean_ci_many(diffs[:, 0], n_boot=1000)
    assert np.mean(low > 0) >= 0.8


# --- tables ---------------------------------------------------------------------------------------------------


def per_image_table():
    """Mixes A (reference), B = A + 0.1, C = A + a per-source difference (+0.3, 0, -0.3) on seeds 0 and 1 only,
    D on seed 7 only; 6 patches from 3 sources, class 3 absent from patches p0 and p3; rows shuffled."""
    rng = np.random.default_rng(5)
    rows = []
    for seed in (0, 1, 2):
        for j in range(6):
            base = {"base": "BMQ", "percent": 0, "seed": seed, "image": f"p{j}", "source": f"s{j // 2}"}
            a = {
                "accuracy": rng.uniform(0.6, 0.9),
                "miou": rng.uniform(0.4, 0.8),
                "missing_class_iou": rng.uniform(0.4, 0.8),
                "iou_3": np.nan if j % 3 == 0 else rng.uniform(0, 1),
            }
            rows.append({"mix": "A", **base, **a})
            rows.append({"mix": "B", **base, **{k: v + 0.1 for k, v in a.items()}})
            if seed < 2:
                rows.append({"mix": "C", **base, **{k: v + (0.3, 0.0, -0.3)[j // 2] for k, v in a.items()}})
    rows.append(
        {
            "mix": "D",
            "base": "BMQ",
            "percent": 0,
            "seed": 7,
            "image": "p0",
            "source": "s0",
            "accuracy": 0.5,
            "miou": 0.5,
            "missing_class_iou": 0.5,
            "iou_3": np.nan,
        }
    )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


METRICS = ["accuracy", "missing_class_iou", "iou_3"]


def test_paired_comparisons_known_answer():
    table = per_image_table()
    out = stats.paired_comparisons(table, [("B", "A"), ("C", "A")], METRICS, n_boot=500)
    assert list(out.columns) == [
        "mix",
        "reference",
        "metric",
        "n_images",
        "n_sources",
        "n_seeds",
        "mean_diff",
        "ci_low",
        "ci_high",
        "test",
        "p_value",
        "p_wilcoxon",
        "p_holm",
        "significant",
    ]
    assert list(zip(out["mix"], out["metric"])) == [(m, k) for m in "BC" for k in METRICS]
    b = out[out["mix"] == "B"].set_index("metric")
    np.testing.assert_allclose(b[["mean_diff", "ci_low", "ci_high"]].to_numpy(), 0.1, rtol=1e-9)
    assert list(b["n_images"]) == [6, 6, 4] and list(b["n_seeds"]) == [3, 3, 3]  # class 3: 4 patches have it
    assert list(b["p_wilcoxon"]) == pytest.approx([2 / 2**6, 2 / 2**6, 2 / 2**4])  # all n images positive
    assert (out["test"] == "wilcoxon").all() and (out["p_value"] == out["p_wilcoxon"]).all()  # patch: as before
    assert list(b["n_sources"]) == [3, 3, 3]  # p0 (s0) and p3 (s1) lack class 3; their sources keep p1, p4
    c = out[out["mix"] == "C"].set_index("metric")
    assert (c["n_seeds"] == 2).all() and c.loc["accuracy", "mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert out["p_holm"].to_numpy() == pytest.approx(stats.holm(out["p_value"].to_numpy()))  # one family
    assert (out["significant"] == (out["p_holm"] < 0.05)).all()
    assert out.attrs["level"] == 0.95


def test_source_resampling_draws_whole_micrographs():
    table = per_image_table()
    by_patch = stats.paired_comparisons(table, [("C", "A")], ["accuracy"], n_boot=2000)
    by_source = stats.paired_comparisons(table, [("C", "A")], ["accuracy"], resample="source", n_boot=2000)
    # C - A is constant within a source: the source bootstrap is the bootstrap of the 3 source values.
    per_source = np.repeat(np.array([[0.3], [0.0], [-0.3]]), 2, axis=1)
    _, low, high = stats.bootstrap_mean_ci(per_source, n_boot=2000)
    assert by_source.loc[0, "ci_low"] == pytest.approx(low) and by_source.loc[0, "ci_high"] == pytest.approx(high)
    width = (by_patch["ci_high"] - by_patch["ci_low"])[0]
    assert width < by_source.loc[0, "ci_high"] - by_source.loc[0, "ci_low"]
    assert by_source.loc[0, "p_wilcoxon"] == by_patch.loc[0, "p_wilcoxon"]  # kept over images, for reference
    # The test is over the 3 sources' means (+0.3, 0, -0.3): |mean| 0, every sign pattern reaches it.
    assert by_source.loc[0, "test"] == "sign-flip" and by_source.loc[0, "n_sources"] == 3
    assert by_source.loc[0, "p_value"] == 1.0 and by_source.loc[0, "p_holm"] == 1.0


def test_source_resampling_tests_over_sources():
    table = per_image_table()
    out = stats.paired_comparisons(table, [("B", "A"), ("C", "A")], METRICS, resample="source", n_boot=200)
    b = out[out["mix"] == "B"].set_index("metric")
    # B - A = +0.1 in all 3 sources: of the 8 sign patterns only +++ and --- reach |mean| 0.1, p = 2/8.
    assert list(b["p_value"]) == pytest.approx([0.25] * 3) and list(b["n_sources"]) == [3, 3, 3]
    assert list(b["p_wilcoxon"]) == pytest.approx([2 / 2**6, 2 / 2**6, 2 / 2**4])  # the patch-level p, unchanged
    assert out["p_holm"].to_numpy() == pytest.approx(stats.holm(out["p_value"].to_numpy()))
    assert not out["significant"].any()  # 3 micrographs cannot give p below 0.25
    # Per-source means over the images with a value: C - A on iou_3 is +0.3 in s0 (p1 only; p0 lacks class 3),
    # 0 in s1 (p2 only) and -0.3 in s2 (p4, p5): sources (0.3, 0, -0.3) again, p = 1.
    assert out[(out["mix"] == "C") & (out["metric"] == "iou_3")]["p_value"].iloc[0] == 1.0
    lines = stats.sentences(out)
    assert lines[0].startswith(
        "B vs A: Missing Class IoU +0.100 [0.100, 0.100], Holm p = 1.00, sign-flip over 3 "
    )  # 6 x 0.25
    assert lines[0].endswith("micrographs (not significant)")


def test_paired_comparisons_errors():
    table = per_image_table()
    with pytest.raises(ValueError, match="resample must be 'patch'.*'image'"):
        stats.paired_comparisons(table, [("B", "A")], METRICS, resample="image")
    with pytest.raises(ValueError, match="mix 'Z' is not in the per-image table"):
        stats.paired_comparisons(table, [("Z", "A")], METRICS)
    with pytest.raises(ValueError, match="'D' and 'A' share no seed"):
        stats.paired_comparisons(table, [("B", "A"), ("D", "A")], METRICS)
    with pytest.raises(ValueError, match="lacks the column.*source"):
        stats.paired_comparisons(table.drop(columns="source"), [("B", "A")], METRICS, resample="source")
    with pytest.raises(ValueError, match="several rows"):
        stats.paired_comparisons(pd.concat([table, table]), [("B", "A")], METRICS)


def test_mix_summary_known_answer():
    rows = []
    for seed, level in enumerate([0.5, 0.6, 0.7]):  # image means 0.5, 0.6, 0.7 over the 3 seeds
        for image, offset in (("p0", -0.1), ("p1", 0.1), ("p2", 0.0)):
            rows.append(
                {
                    "mix": "A",
                    "seed": seed,
                    "image": image,
                    "missing_class_iou": level + offset,
                    "iou_3": np.nan if image == "p2" else level + offset,
                }
            )
    rows.append({"mix": "B", "seed": 0, "image": "p0", "missing_class_iou": 0.4, "iou_3": np.nan})
    out = stats.mix_summary(pd.DataFrame(rows), ["missing_class_iou", "iou_3"])
    assert list(out.columns) == ["mix", "metric", "n_seeds", "mean", "ci_low", "ci_high", "sd_seeds"]
    a = out[(out["mix"] == "A") & (out["metric"] == "missing_class_iou")].iloc[0]
    # mean 0.6, sd 0.1 over 3 seeds; t(0.975, 2 df) = 4.3027: 0.6 +- 4.3027 * 0.1 / sqrt(3) = 0.6 +- 0.2484
    assert a["n_seeds"] == 3 and a["mean"] == pytest.approx(0.6) and a["sd_seeds"] == pytest.approx(0.1)
    assert a["ci_low"] == pytest.approx(0.6 - 0.24841, abs=1e-5) and a["ci_high"] == pytest.approx(0.84841, abs=1e-5)
    iou = out[(out["mix"] == "A") & (out["metric"] == "iou_3")].iloc[0]  # p2 lacks class 3: skipped
    assert iou["mean"] == pytest.approx(0.6) and iou["sd_seeds"] == pytest.approx(0.1)
    b = out[out["mix"] == "B"].set_index("metric")
    assert b.loc["missing_class_iou", "n_seeds"] == 1 and b.loc["missing_class_iou", "mean"] == pytest.approx(0.4)
    assert np.isnan(b.loc["missing_class_iou", "ci_low"]) and np.isnan(b.loc["missing_class_iou", "sd_seeds"])
    assert b.loc["iou_3", "n_seeds"] == 0 and np.isnan(b.loc["iou_3", "mean"])


def test_sentences_wording():
    comparisons = pd.DataFrame(
        [
            ("BMQ_300", "BMQ_000", "missing_class_iou", -0.04, -0.061, -0.019, 0.0004, True),
            ("BMQ_100", "BMQ_000", "missing_class_iou", 0.021, 0.004, 0.037, 0.03, True),
            ("BMQ_200", "BMQ_000", "missing_class_iou", 0.005, -0.01, 0.02, 0.41, False),
            ("SHQ_100", "SHQ_000", "missing_class_iou", 0.002, -0.02, 0.03, 0.9, False),
            ("SHQ_100", "SHQ_000", "accuracy", 0.3, 0.2, 0.4, 0.001, True),
        ],
        columns=["mix", "reference", "metric", "mean_diff", "ci_low", "ci_high", "p_holm", "significant"],
    )
    assert stats.sentences(comparisons) == [
        "BMQ_100 vs BMQ_000: Missing Class IoU +0.021 [0.004, 0.037], Holm p = 0.030 (significant)",
        "BMQ_200 vs BMQ_000: Missing Class IoU +0.005 [-0.010, 0.020], Holm p = 0.41 (not significant)",
        "BMQ_300 vs BMQ_000: Missing Class IoU -0.040 [-0.061, -0.019], Holm p < 0.001 (significant)",
        "SHQ_100 vs SHQ_000: Missing Class IoU +0.002 [-0.020, 0.030], Holm p = 0.90 (not significant)",
        "2 of 3 mixes differ from BMQ_000 in Missing Class IoU at the 5 % level (BMQ_100 better, BMQ_300 worse)",
        "no mix differs from SHQ_000 in Missing Class IoU at the 5 % level (1 mix compared, Holm-adjusted)",
    ]
    lines = stats.sentences(comparisons, metric="accuracy", label="accuracy")
    assert lines[-1] == "1 of 1 mix differs from SHQ_000 in accuracy at the 5 % level (SHQ_100 better)"


def test_sentences_from_a_real_table():
    out = stats.paired_comparisons(per_image_table(), [("C", "A"), ("B", "A")], METRICS, n_boot=200, level=0.9)
    lines = stats.sentences(out, metric="iou_3", label="IoU of class 3")
    assert lines[0].startswith("B vs A: IoU of class 3 +0.100 [0.100, 0.100], Holm p = ")
    assert lines[1].startswith("C vs A: IoU of class 3 ") and len(lines) == 3
    assert lines[2] == "no mix differs from A in IoU of class 3 at the 10 % level (2 mixes compared, Holm-adjusted)"


def test_findings_lines_open_with_the_sentences_and_name_the_method():
    comparisons = stats.paired_comparisons(per_image_table(), [("B", "A")], ["missing_class_iou"], n_boot=200)
    comparisons["resample"] = "source"
    table = pd.DataFrame({"mix": ["A", "B"], "arm": ["real + synthetic"] * 2, "n_seeds": [3, 3]})
    lines = findings.lines(table, comparisons, 0.95, [{"name": "matrix"}])
    assert lines[:2] == stats.sentences(comparisons) and len(lines) == 3
    assert lines[2].startswith("Intervals: 95% percentile bootstrap over test micrographs") and "3 seed(s)" in lines[2]
    assert findings.lines(table, comparisons[:0], 0.95, []) == [
        "No comparisons: the config trains no 0 % mix to compare with."
    ]


def test_front_page_states_per_base_the_validation_pick_its_effect_and_the_labels_saved():
    """The report's first page: per base the mix validation picks, its test effect at the comparisons' unit and the
    labels it saved; a base whose 0 % mix wins on validation says so; one line for pure-synthetic and
    augmentation."""
    table = pd.DataFrame(
        {
            "mix": ["SHQ_000", "SHQ_100", "BMQ_000", "BMQ_100", "SyntMQ_050", "BMQ_aug"],
            "base": ["SHQ", "SHQ", "BMQ", "BMQ", "SyntMQ", "BMQ"],
            "arm": ["real + synthetic"] * 4 + ["synthetic only", "augmentation"],
        }
    )
    comparisons = pd.DataFrame(
        {
            "mix": ["SHQ_100", "BMQ_100", "SyntMQ_050", "BMQ_aug"],
            "reference": ["SHQ_000", "BMQ_000", "BMQ_000", "BMQ_000"],
            "metric": "missing_class_iou",
            "n_images": 27,
            "n_sources": 16,
            "mean_diff": [0.031, 0.01, -0.05, 0.002],
            "ci_low": [0.012, -0.01, -0.08, -0.01],
            "ci_high": [0.05, 0.03, -0.02, 0.01],
            "test": "sign-flip",
            "p_holm": [0.004, 0.5, 0.01, 0.9],
            "significant": [True, False, True, False],
        }
    )
    labels = pd.DataFrame(
        {"mix": ["SHQ_100"], "metric": ["missing_class_iou"], "sentence": ["SHQ_100 (16 real + 16 synthetic) x"]}
    )
    validation = pd.DataFrame(
        {
            "mix": ["SHQ_000", "SHQ_100", "BMQ_000", "BMQ_100", "SyntMQ_050", "BMQ_aug"],
            "seed": 0,
            "validation_missing_class_iou": [0.5, 0.6, 0.7, 0.65, 0.4, 0.69],
        }
    )
    lines = findings.front(table, comparisons, labels, validation)
    assert lines[0] == (
        "- **SHQ**: validation picks **SHQ_100** (validation Missing Class IoU 0.600); on the test set +0.031 "
        "[+0.012, +0.050] Missing Class IoU over SHQ_000 (sign-flip over 16 test micrographs, Holm p = 0.004). "
        "SHQ_100 (16 real + 16 synthetic) x."
    )
    assert lines[1].startswith("- **BMQ**: validation picks **BMQ_000**") and "no amount of synthetic" in lines[1]
    assert lines[2].startswith("- **Synthetic only**: the best by validation, **SyntMQ_050**, scores -0.050")
    assert (
        lines[3].startswith("- **Augmentation** (BMQ_aug, no synthetic data): +0.002") and "not significant" in lines[3]
    )


def test_the_real_curve_takes_the_real_only_arm_and_shq_000_and_leaves_out_short_sizes():
    from dualgen.segment import evaluation, mixes

    cfg = {
        "bases": ["SHQ", "BMQ"],
        "levels": [0, 100],
        "synthetic": [],
        "synthetic_levels": [],
        "pretrain": [],
        "balanced": [],
        "balanced_bases": [],
        "augmentation": [],
        "real_sizes": [50, 200, 300],
    }
    all_mixes = mixes.enumerate_mixes(cfg, {"small_train": 16, "small_val": 5, "big_train": 48, "big_val": 12})
    assert [m.name for m in all_mixes if m.real_only] == ["SHQr050", "SHQr200", "SHQr300"]
    assert not any(m.real_only for m in all_mixes if mixes.reference(m))  # priced in labels, not compared
    curve = evaluation.real_curve(all_mixes, short=["SHQr300"])
    assert curve == [(8, "SHQr050"), (16, "SHQ_000"), (32, "SHQr200")]
    assert "real_only" not in mixes.fields(all_mixes[0]) and mixes.fields(all_mixes[-1])["real_only"]
