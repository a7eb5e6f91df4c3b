"""Statistics of the study's comparisons: is mix X better than its reference mix, and by how much?

Input is the long per-image table of the study (``study/per_image.csv``): one row per mix, seed and test
image, with the image's ``source`` micrograph and the metrics ``accuracy, miou, missing_class_iou, iou_<k>``
(``iou_<k>`` is NaN where the image's ground truth lacks class k - for every mix and seed alike).

A comparison of ``mix`` against ``reference`` pairs the two on (image, seed), diff = mix - reference, and
reports (``paired_comparisons``):

- the mean difference over images of the seed-averaged differences, with a two-stage percentile bootstrap
  interval (``bootstrap_mean_ci``): resample images with replacement, then within each drawn image its
  seeds with replacement, so that both the test images and the training seeds count as random. Patches cut
  from one micrograph are not independent; ``resample="source"`` draws whole source micrographs in the first
  stage instead (a cluster bootstrap), else the interval is too narrow on strongly clustered data;
- a two-sided p value at the unit that is resampled (column ``p_value``, its test named in ``test``): with
  ``resample="patch"`` the Wilcoxon signed-rank test over images of the seed-averaged differences
  (``wilcoxon_p``, the same numbers as ``scipy.stats.wilcoxon`` with its defaults); with ``resample="source"``
  the exact sign-flip permutation test (``sign_flip_p``) over the source micrographs' mean differences, since
  the patches of one micrograph are not independent and a test over patches rejects far too often when
  micrographs differ. ``p_value`` is Holm-adjusted over the whole table (``holm``), since a study tests many
  mixes and metrics at once. The image-level Wilcoxon p stays in ``p_wilcoxon`` for reference.

``comparison_table`` runs them metric by metric for the study's comparisons.csv, ``mix_summary`` gives each mix's
level (mean over seeds of the per-seed test-set mean, Student-t interval over seeds) and ``sentences`` turns the
comparisons into report lines. Everything is vectorised with numpy: all
comparisons share one set of bootstrap draws per image set, and a bootstrap replicate is one row of a
matrix product. Higher is better for every metric here (it decides "better"/"worse" in ``sentences``).
"""

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import special
from scipy.stats import rankdata
from scipy.stats import t as student_t

RESAMPLE = ("patch", "source")
TESTS = {"patch": "wilcoxon", "source": "sign-flip"}  # the test of p_value for each resample unit
COLUMNS = [
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


def holm(pvalues):
    """Holm-Bonferroni adjusted p values, same shape as ``pvalues``.

    With the m finite p values sorted, p_(1) <= .. <= p_(m), the adjusted p_(i) is
    max_{j <= i} min(1, (m - j + 1) p_(j)): step-down, monotone in p, capped at 1. NaN entries stay NaN and do
    not count in m.
    """
    p = np.array(pvalues, dtype=np.float64)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ValueError("holm: p values must lie in [0, 1] (or be NaN)")
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(flat[idx], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * flat[order]))
    flat[order] = adjusted
    return flat.reshape(p.shape)


@lru_cache(maxsize=None)
def _signed_rank_cdf(n):
    """P(R+ <= k), k = 0 .. n(n+1)/2, of the signed-rank statistic of n untied nonzero differences."""
    c = np.ones(1)
    for k in range(1, n + 1):  # the recursion scipy uses: add rank k with sign + or -, probability 1/2 each
        prev, c = c, np.zeros(k * (k + 1) // 2 + 1)
        c[: len(prev)] = prev * 0.5
        c[-len(prev) :] += prev * 0.5
    return np.cumsum(c)


def wilcoxon_p(diffs):
    """Two-sided Wilcoxon signed-rank p value of each row of ``diffs`` (rows = comparisons, columns = images).

    NaN entries of a row are ignored for that row; zero differences are dropped (zero_method="wilcox"). The
    p values are those of ``scipy.stats.wilcoxon(row)`` with its defaults (scipy 1.17: rows of n <= 50 values
    without ties or zeros get the exact null distribution, rows of n <= 13 with ties or zeros the exact
    sign-flip permutation distribution, all others the normal approximation with tie correction and no
    continuity correction), computed for all rows at once. A row whose values are all zero gives 1.0
    (scipy gives NaN for more than 13 zeros); a row without any finite value gives NaN.
    """
    d = np.array(diffs, dtype=np.float64, ndmin=2)
    if d.ndim != 2:
        raise ValueError(f"wilcoxon_p: diffs must be 2-D (comparisons x images), got shape {d.shape}")
    n = (~np.isnan(d)).sum(1)  # values per row, zeros included (scipy picks the method on these)
    nonzero = np.where(d == 0, np.nan, d)
    m = (~np.isnan(nonzero)).sum(1)
    absolute = np.abs(nonzero)
    low = rankdata(absolute, "min", axis=1, nan_policy="omit")
    high = rankdata(absolute, "max", axis=1, nan_policy="omit")
    ranks = (low + high) / 2  # average ranks of |d| among the nonzero differences
    tied = high - low + 1  # size of each value's tie group; sum over groups of t^3 - t = sum over values of t^2 - 1
    tie_term = np.nansum(tied**2 - 1, axis=1)
    r_plus = np.where(nonzero > 0, ranks, 0.0).sum(1)

    p = np.full(len(d), np.nan)
    p[(n > 0) & (m == 0)] = 1.0
    some = m > 0
    exact = some & (n <= 50) & (m == n) & (tie_term == 0)
    permutation = some & ~exact & (n <= 13)
    normal = some & ~exact & ~permutation

    for k in np.unique(m[exact]):
        rows = np.flatnonzero(exact & (m == k))
        cdf = _signed_rank_cdf(int(k))
        sf = 1.0 - np.concatenate([[0.0], cdf[:-1]])  # P(R+ >= j)
        lo, hi = np.floor(r_plus[rows]).astype(int), np.ceil(r_plus[rows]).astype(int)
        p[rows] = np.clip(2 * np.minimum(sf[lo], cdf[hi]), 0, 1)

    for k in np.unique(m[permutation]):  # all 2^k sign flips of the nonzero differences (ranks stay the same)
        rows = np.flatnonzero(permutation & (m == k))
        r = ranks[rows]
        r = r[~np.isnan(r)].reshape(len(rows), int(k))
        flips = (np.arange(2 ** int(k))[:, None] >> np.arange(int(k))) & 1
        null = r @ flips.T.astype(np.float64)
        obs = r_plus[rows][:, None]
        gamma = np.abs(obs) * np.finfo(np.float64).eps * 100  # scipy.stats.permutation_test's tolerance
        less = (null <= obs + gamma).mean(1)
        greater = (null >= obs - gamma).mean(1)
        p[rows] = np.clip(2 * np.minimum(less, greater), 0, 1)

    k = m[normal].astype(np.float64)
    se = np.sqrt((k * (k + 1) * (2 * k + 1) - tie_term[normal] / 2) / 24)
    z = (r_plus[normal] - k * (k + 1) / 4) / se
    p[normal] = 2 * special.ndtr(-np.abs(z))
    return p


def _sign_patterns(n, n_mc, seed, max_exact):
    """(n_patterns, n) matrix of signs +-1: all 2^n patterns when n <= max_exact, else n_mc seeded random ones."""
    if n <= max_exact:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    else:
        bits = np.random.default_rng(seed).integers(0, 2, size=(int(n_mc), n))
    return 1.0 - 2.0 * bits


def sign_flip_p(diffs, n_mc=100_000, seed=0, max_exact=16):
    """Two-sided sign-flip permutation p value of mean zero for each row of ``diffs`` (rows = comparisons,
    columns = independent units, e.g. the source micrographs' mean differences; 1-D is one row).

    Under the null each unit's difference is symmetric about zero, so its sign is a fair coin. Statistic |mean|
    of the row's finite values (NaN dropped, per row); p = share of sign patterns whose |mean| is at least the
    observed one (ties within 1e-12 of the row's mean |value| count, so rounding does not break them). Rows of
    n <= ``max_exact`` values use all 2^n patterns (the identity among them: p >= 2 / 2^n, and n = 1 gives 1);
    longer rows ``n_mc`` random patterns drawn from ``default_rng(seed)`` (the same patterns for every row of
    the same n, so a row's p does not depend on the others) and p = (1 + count) / (1 + n_mc), counting the
    observed pattern. A row without a finite value gives NaN; all zeros give 1.
    """
    d = np.array(diffs, dtype=np.float64, ndmin=2)
    if d.ndim != 2:
        raise ValueError(f"sign_flip_p: diffs must be 1-D or 2-D (comparisons x units), got shape {d.shape}")
    if int(n_mc) < 1:
        raise ValueError(f"sign_flip_p: n_mc must be at least 1, got {n_mc}")
    finite = ~np.isnan(d)
    n = finite.sum(1)
    p = np.full(len(d), np.nan)
    for k in np.unique(n[n > 0]):
        k = int(k)
        rows = np.flatnonzero(n == k)
        values = d[rows][finite[rows]].reshape(len(rows), k)  # each row's finite values, in order
        observed = np.abs(values.sum(1))
        tolerance = 1e-12 * np.abs(values).sum(1)
        signs = _sign_patterns(k, n_mc, seed, max_exact)
        count = np.zeros(len(rows))
        step = max(1, 2**22 // len(signs))  # bounds the (rows, patterns) matrix
        for start in range(0, len(rows), step):
            part = slice(start, start + step)
            null = np.abs(values[part] @ signs.T)
            count[part] = (null >= (observed[part] - tolerance[part])[:, None]).sum(1)
        p[rows] = count / len(signs) if k <= max_exact else (1 + count) / (1 + len(signs))
    return p


def _check(n_boot, level):
    if int(n_boot) < 1:
        raise ValueError(f"bootstrap: n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap: level must lie between 0 and 1 (e.g. 0.95), got {level}")


def _replicates(codes, n_seeds, n_boot, seed):
    """Bootstrap weights: (n_boot, n_images * n_seeds) draw counts and (n_boot,) total counts.

    ``codes`` numbers the cluster of each image 0 .. K-1. Stage 1 draws K clusters with replacement (all
    images of a drawn cluster enter, once per draw), stage 2 draws n_seeds seeds with replacement for each
    entering image: the seed counts of an image drawn w times are multinomial(w * n_seeds, uniform).
    """
    rng = np.random.default_rng(seed)
    k = int(codes.max()) + 1
    clusters = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    per_image = clusters[:, codes]
    if n_seeds == 1:
        counts = per_image[:, :, None]
    else:
        counts = rng.multinomial(per_image * n_seeds, np.full(n_seeds, 1.0 / n_seeds))
    return counts.reshape(n_boot, -1).astype(np.float64), per_image.sum(1) * float(n_seeds)


def bootstrap_mean_ci_many(diffs, clusters=None, n_boot=10000, seed=0, level=0.95):
    """``bootstrap_mean_ci`` of many comparisons at once: ``diffs`` has shape (n_comparisons, n_images, n_seeds).

    Returns three arrays of length n_comparisons: mean, low, high. Comparisons with the same set of usable
    images share the bootstrap draws, and every such set starts from ``default_rng(seed)``, so each result
    equals ``bootstrap_mean_ci`` of that comparison alone with the same seed.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 3:
        raise ValueError(f"bootstrap: diffs must be (comparisons, images, seeds), got shape {d.shape}")
    _check(n_boot, level)
    n_boot = int(n_boot)
    n_comp, n_images, n_seeds = d.shape
    if clusters is not None:
        clusters = np.asarray(clusters)
        if clusters.shape != (n_images,):
            raise ValueError(
                f"bootstrap: clusters must have one label per image ({n_images}), got shape {clusters.shape}"
            )
    mean, low, high = (np.full(n_comp, np.nan) for _ in range(3))
    if n_comp == 0 or n_seeds == 0:
        return mean, low, high
    usable = ~np.isnan(d).any(axis=2)  # an image with a NaN seed is dropped
    alpha = (1 - level) / 2
    masks, group = np.unique(usable, axis=0, return_inverse=True)
    for g, mask in enumerate(masks):
        if not mask.any():
            continue
        images = np.flatnonzero(mask)
        if clusters is None:
            codes = np.arange(len(images))
        else:
            codes = np.unique(clusters[images], return_inverse=True)[1].ravel()
        weights, totals = _replicates(codes, n_seeds, n_boot, seed)
        members = np.flatnonzero(group.ravel() == g)
        values = d[members][:, images, :]
        mean[members] = values.mean(axis=(1, 2))
        chunk = max(1, 2**22 // n_boot)  # bounds the (n_boot, chunk) replicate matrix
        for start in range(0, len(members), chunk):
            part = values[start : start + chunk].reshape(-1, len(images) * n_seeds)
            reps = weights @ part.T / totals[:, None]
            lo, hi = np.quantile(reps, [alpha, 1 - alpha], axis=0)
            low[members[start : start + chunk]] = lo
            high[members[start : start + chunk]] = hi
    return mean, low, high


def bootstrap_mean_ci(diffs, clusters=None, n_boot=10000, seed=0, level=0.95):
    """Mean over images of the seed-averaged ``diffs`` (n_images, n_seeds) and its percentile bootstrap interval.

    Two-stage resampling: images with replacement, then within each drawn image its seeds with replacement
    (with one seed the plain image bootstrap). With ``clusters`` (a label per image, e.g. its source
    micrograph) the first stage draws clusters instead, all images of a drawn cluster enter, and a replicate
    is the mean over all images drawn. An image with a NaN value is dropped. Seeded with
    ``np.random.default_rng(seed)``. Returns floats (mean, low, high); NaN if no image is left.

    A deliberate reference implementation: the one-comparison form of ``bootstrap_mean_ci_many`` (which
    ``paired_comparisons`` uses), against which the tests check the batched one.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2:
        raise ValueError(f"bootstrap: diffs must be (images, seeds), got shape {d.shape}")
    mean, low, high = bootstrap_mean_ci_many(d[None], clusters, n_boot, seed, level)
    return float(mean[0]), float(low[0]), float(high[0])


def _as_list(metrics):
    return [metrics] if isinstance(metrics, str) else list(metrics)


def _require(per_image, columns):
    missing = [c for c in columns if c not in per_image.columns]
    if missing:
        raise ValueError(
            f"per-image table lacks the column(s) {', '.join(missing)} "
            f"(it has {', '.join(map(str, per_image.columns))})"
        )


def paired_comparisons(per_image, pairs, metrics, resample="patch", n_boot=10000, seed=0, level=0.95):
    """One row per (mix, reference) pair and metric: the paired difference mix - reference.

    The two mixes are aligned on (image, seed) over the seeds both have; an image missing from either mix,
    or NaN for the metric (a class absent from its ground truth), is dropped from that comparison. Columns:
    mix, reference, metric, n_images, n_sources (source micrographs with an image in the comparison; <NA> when
    the table has no ``source`` column), n_seeds, mean_diff, ci_low, ci_high (``bootstrap_mean_ci``; with
    ``resample="source"`` the ``source`` column gives the clusters), test and p_value (the test at the resampled
    unit: "wilcoxon", ``wilcoxon_p`` over images of the seed-averaged differences, with ``resample="patch"``;
    "sign-flip", ``sign_flip_p`` over the sources' means of those differences - each image's seed average,
    averaged over the images of its source, every source weighing the same - with ``resample="source"``),
    p_wilcoxon (``wilcoxon_p`` over images either way, for reference), p_holm (of p_value) and significant
    (p_holm < 1 - level). With few sources the sign-flip p cannot be small: p >= 2 / 2^n_sources (0.5 with 2
    test micrographs, 0.0625 with 5). The Holm family is the whole returned table: every row with a finite p,
    i.e. all pairs and metrics of this call; call once per family to adjust separately. ``df.attrs["level"]``
    keeps ``level`` for ``sentences``.
    """
    if resample not in RESAMPLE:
        raise ValueError(
            f"resample must be 'patch' (images independent) or 'source' (cluster the patches of a "
            f"source micrograph), not {resample!r}"
        )
    metrics = _as_list(metrics)
    _require(per_image, ["mix", "image", "seed", *metrics] + (["source"] if resample == "source" else []))
    images = np.array(sorted(per_image["image"].unique()), dtype=object)
    labels = None  # each image's source micrograph, where the table says
    if "source" in per_image.columns:
        sources = per_image.groupby("image")["source"].nunique()
        if (sources > 1).any():
            raise ValueError(
                f"image {sources[sources > 1].index[0]!r} has several source micrographs in the "
                "per-image table: each test patch must come from one source"
            )
        labels = per_image.drop_duplicates("image").set_index("image")["source"].reindex(images).to_numpy()
        labels = labels.astype(str)
    clusters = labels if resample == "source" else None
    onehot = None  # (images, sources) membership, for the per-source means
    if labels is not None:
        codes = np.unique(labels, return_inverse=True)[1].ravel()
        onehot = np.zeros((len(images), int(codes.max()) + 1 if len(codes) else 0))
        onehot[np.arange(len(images)), codes] = 1.0
    known = set(per_image["mix"])
    tables = {}

    def table(mix):
        if mix not in known:
            raise ValueError(f"mix {mix!r} is not in the per-image table (it has {', '.join(sorted(map(str, known)))})")
        if mix not in tables:
            sub = per_image[per_image["mix"] == mix]
            if sub.duplicated(["image", "seed"]).any():
                raise ValueError(f"mix {mix!r} has several rows for one (image, seed) in the per-image table")
            tables[mix] = sub.set_index(["image", "seed"])[metrics]
        return tables[mix]

    rows, by_seeds = [], {}
    for mix, reference in pairs:
        a, b = table(mix), table(reference)
        seeds = sorted(set(a.index.get_level_values("seed")) & set(b.index.get_level_values("seed")))
        if not seeds:
            raise ValueError(
                f"mixes {mix!r} and {reference!r} share no seed: a paired comparison needs runs with the same seeds"
            )
        index = pd.MultiIndex.from_product([images, seeds], names=["image", "seed"])
        diff = (a.reindex(index) - b.reindex(index)).to_numpy(np.float64)
        diff = diff.reshape(len(images), len(seeds), len(metrics))
        for k, metric in enumerate(metrics):
            by_seeds.setdefault(len(seeds), []).append((len(rows), diff[:, :, k]))
            rows.append({"mix": mix, "reference": reference, "metric": metric, "n_seeds": len(seeds)})

    out = pd.DataFrame(rows, columns=["mix", "reference", "metric", "n_seeds"])
    for name in ("n_images", "n_sources", "mean_diff", "ci_low", "ci_high", "p_value", "p_wilcoxon"):
        out[name] = np.nan
    for members in by_seeds.values():
        where = [i for i, _ in members]
        stack = np.stack([x for _, x in members])
        mean, low, high = bootstrap_mean_ci_many(stack, clusters, n_boot, seed, level)
        averaged = stack.mean(axis=2)  # NaN where any seed is NaN, as in the bootstrap
        out.loc[where, "n_images"] = (~np.isnan(averaged)).sum(1)
        out.loc[where, "mean_diff"] = mean
        out.loc[where, "ci_low"] = low
        out.loc[where, "ci_high"] = high
        out.loc[where, "p_wilcoxon"] = wilcoxon_p(averaged)
        if onehot is not None:
            present = ~np.isnan(averaged)
            counts = present @ onehot  # images with a value per (comparison, source)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_source = np.where(present, averaged, 0.0) @ onehot / counts  # NaN where a source has none
            out.loc[where, "n_sources"] = (counts > 0).sum(1)
        if resample == "source":
            out.loc[where, "p_value"] = sign_flip_p(per_source, seed=seed)
        else:
            out.loc[where, "p_value"] = out.loc[where, "p_wilcoxon"]
    out[["n_images", "n_seeds"]] = out[["n_images", "n_seeds"]].astype(int)
    out["n_sources"] = out["n_sources"].astype("Int64")
    out["test"] = TESTS[resample]
    out["p_holm"] = holm(out["p_value"].to_numpy(np.float64))
    out["significant"] = (out["p_holm"] < round(1 - level, 12)).astype(bool)  # 1 - 0.95 is 0.05000000000000004
    out = out[COLUMNS]
    out.attrs["level"] = level
    return out


def comparison_table(per_image, pairs, metrics, resample, n_boot, seed, level):
    """The study's comparisons.csv: ``paired_comparisons`` of ``pairs`` run for each of ``metrics`` on its own (so
    Holm adjusts over all comparisons of one metric), concatenated, with a resample column after metric; the
    columns alone when there are no pairs."""
    parts = (
        [
            paired_comparisons(per_image, pairs, [col], resample=resample, n_boot=n_boot, seed=seed, level=level)
            for col in metrics
        ]
        if pairs
        else []
    )
    comparisons = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    comparisons.insert(2, "resample", resample)
    return comparisons


def mix_summary(per_image, metrics, level=0.95):
    """Per mix and metric: mix, metric, n_seeds, mean, ci_low, ci_high, sd_seeds.

    A seed's value is the mean over the test images (NaN skipped, so ``iou_<k>`` averages the images that
    contain class k); mean and sd_seeds are over the seeds with a value, the interval is Student's t over
    the seeds (mean +- t_{n-1} sd / sqrt(n); NaN with one seed). Rows are sorted by mix.
    """
    metrics = _as_list(metrics)
    _require(per_image, ["mix", "seed", *metrics])
    per_seed = per_image.groupby(["mix", "seed"])[metrics].mean()
    grouped = per_seed.groupby(level="mix")
    parts = []
    for metric in metrics:
        n = grouped[metric].count()
        mean = grouped[metric].mean()
        sd = grouped[metric].std(ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            half = student_t.ppf((1 + level) / 2, (n - 1).where(n > 1)) * sd / np.sqrt(n)
        parts.append(
            pd.DataFrame(
                {
                    "mix": n.index,
                    "metric": metric,
                    "n_seeds": n.to_numpy(),
                    "mean": mean.to_numpy(),
                    "ci_low": (mean - half).to_numpy(),
                    "ci_high": (mean + half).to_numpy(),
                    "sd_seeds": sd.to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["mix", "metric", "n_seeds", "mean", "ci_low", "ci_high", "sd_seeds"])
    out = pd.concat(parts, ignore_index=True)
    out["metric"] = pd.Categorical(out["metric"], categories=metrics)
    out = out.sort_values(["mix", "metric"], kind="stable").reset_index(drop=True)
    out["metric"] = out["metric"].astype(str)
    return out


def _format_p(p):
    """A p value for prose: '< 0.001', 3 decimals below 0.1, else 2 decimals; 'n/a' for NaN."""
    if p is None or np.isnan(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"


def _number(x, sign=False):
    """3 decimals, without a '-0.000'."""
    text = f"{x:+.3f}" if sign else f"{x:.3f}"
    return text.replace("-0.000", "+0.000" if sign else "0.000")


def sentences(comparisons, metric="missing_class_iou", label="Missing Class IoU", level=None):
    """Report lines for one metric of a ``paired_comparisons`` table.

    One line per comparison, sorted by mix ("BMQ_100 vs BMQ_000: Missing Class IoU +0.021 [0.004, 0.037],
    Holm p = 0.030 (significant)"; where the table's ``test`` is "sign-flip", the p names its unit: "Holm
    p = 0.25, sign-flip over 3 micrographs (not significant)"), then one line per reference saying how many
    mixes differ from it at the 1 - level level and which are better (mean_diff > 0) or worse. ``level``
    defaults to the table's ``attrs["level"]`` (else 0.95); it only names the level, "significant" is read
    from the table.
    """
    if level is None:
        level = comparisons.attrs.get("level", 0.95)
    alpha = f"{100 * (1 - level):g} %"
    rows = comparisons[comparisons["metric"] == metric].sort_values(["mix", "reference"], kind="stable")
    lines = []
    for r in rows.itertuples(index=False):
        if np.isnan(r.p_holm) or np.isnan(r.mean_diff):
            lines.append(f"{r.mix} vs {r.reference}: {label} not comparable (no test image with a value)")
            continue
        verdict = "significant" if r.significant else "not significant"
        interval = f"[{_number(r.ci_low)}, {_number(r.ci_high)}]"
        unit = ""
        if getattr(r, "test", None) == "sign-flip":
            n = getattr(r, "n_sources", None)
            count = "" if n is None or pd.isna(n) else f"{int(n)} "
            unit = f", sign-flip over {count}micrograph{'' if count == '1 ' else 's'}"
        lines.append(
            f"{r.mix} vs {r.reference}: {label} {_number(r.mean_diff, True)} {interval}, "
            f"Holm p {_format_p(r.p_holm)}{unit} ({verdict})"
        )
    for reference, group in rows.groupby("reference", sort=True):
        tested = group[~group["p_holm"].isna()]
        n = len(tested)
        hits = tested[tested["significant"].astype(bool)]
        noun = "mix" if n == 1 else "mixes"
        if len(hits) == 0:
            lines.append(
                f"no mix differs from {reference} in {label} at the {alpha} level ({n} {noun} compared, Holm-adjusted)"
            )
            continue
        better = [m for m, d in zip(hits["mix"], hits["mean_diff"]) if d > 0]
        worse = [m for m, d in zip(hits["mix"], hits["mean_diff"]) if d <= 0]
        which = ", ".join([f"{m} better" for m in better] + [f"{m} worse" for m in worse])
        verb = "differs" if len(hits) == 1 else "differ"
        lines.append(f"{len(hits)} of {n} {noun} {verb} from {reference} in {label} at the {alpha} level ({which})")
    return lines
