"""Label equivalence: how many real labelled patches is a mix with synthetic data worth?

A real-only learning curve - U-Nets trained on n real labelled patches at several sizes n, scored on the same test
images and seeds as every other mix - is fitted monotone (non-decreasing in n, ``monotone_curve``) and inverted
(``invert``): the label equivalence of a mix is the n at which the curve reaches the mix's test score, found by
linear interpolation between the two sizes around it. A mix of n_real real and some synthetic pairs that scores
like n_eq real patches saved about n_eq - n_real labels.

``label_equivalence`` does this for a study's per-image table, with a percentile bootstrap interval that resamples
the units of ``stats.paired_comparisons`` (test images, or whole source micrographs, then seeds within each) jointly
for the curve and every target mix - they share test images and seeds, so an image that is hard for all of them
moves them together and cancels in the inversion. A score beyond the curve has no number: "more than N" (the
largest size) or "fewer than M" (the smallest); its replicates count as open ends of the interval (``ci_high``
+inf, ``ci_low`` -inf) and their share is reported. ``sentence`` writes a row as a report line.

Higher is better for every metric here (as in ``stats``).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dualgen.report import stats

SIDES = ("inside", "above", "below")
COLUMNS = [
    "mix",
    "metric",
    "n_real",
    "score",
    "equivalent",
    "side",
    "bound",
    "ci_low",
    "ci_high",
    "share_outside",
    "labels_saved",
]


@dataclass(frozen=True)
class Equivalence:
    """The result of ``invert``.

    value: the size n at which the curve reaches the score (NaN outside the curve); side: "inside", "above" (the
    score beats the curve's top: "more than ``bound``" patches) or "below" (under its bottom: "fewer than
    ``bound``"); bound: the size the score lies beyond (the largest or smallest size), NaN inside.
    """

    value: float
    side: str
    bound: float


def _sizes(sizes):
    s = np.asarray(sizes, dtype=np.float64)
    if s.ndim != 1 or len(s) < 2 or not (np.diff(s) > 0).all():
        raise ValueError(f"label equivalence: sizes must be at least 2 increasing numbers, got {list(sizes)}")
    return s


def _isotonic(y):
    """Non-decreasing least-squares fit of each row of ``y`` (rows, k), equal weights, all rows at once.

    The min-max formula of isotonic regression: fit_i = max_{j <= i} min_{l >= i} mean(y_j .. y_l), from the
    k x k block means; the same values as pool-adjacent-violators (O(k^2) per row: k is a handful of sizes).
    """
    y = np.asarray(y, dtype=np.float64)
    k = y.shape[-1]
    c = np.concatenate([np.zeros(y.shape[:-1] + (1,)), np.cumsum(y, axis=-1)], axis=-1)
    j, l_ = np.arange(k)[:, None], np.arange(k)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        block = (c[..., None, 1:] - c[..., :-1, None]) / (l_ - j + 1)  # block[..., j, l] = mean(y_j .. y_l)
    block = np.where(l_ >= j, block, np.inf)
    tail_min = np.minimum.accumulate(block[..., ::-1], axis=-1)[..., ::-1]  # [..., j, i] = min_{l >= i} block
    tail_min = np.where(l_ >= j, tail_min, -np.inf)  # only j <= i
    return tail_min.max(axis=-2)


def monotone_curve(sizes, scores):
    """The isotonic (non-decreasing) least-squares fit of ``scores`` against increasing ``sizes``: an array of the
    fitted values at the sizes (pool-adjacent-violators; a dip between two sizes is pooled with its neighbour)."""
    _sizes(sizes)
    y = np.asarray(scores, dtype=np.float64)
    if y.shape != (len(sizes),) or np.isnan(y).any():
        raise ValueError(f"label equivalence: need one finite score per size ({len(sizes)}), got {list(scores)}")
    return _isotonic(y)


def _invert_many(sizes, fitted, scores):
    """``invert`` vectorised: fitted (R, k) monotone curves, scores (R, T). Returns value (R, T) with NaN outside,
    and side codes (R, T): 0 inside, 1 above, 2 below."""
    s = np.asarray(sizes, dtype=np.float64)
    f = np.asarray(fitted, dtype=np.float64)[:, None, :]  # (R, 1, k)
    y = np.asarray(scores, dtype=np.float64)[:, :, None]  # (R, T, 1)
    k = len(s)
    i = (f < y).sum(-1)  # first size whose fitted value reaches the score (k: none does)
    above = i == k
    below = y[..., 0] < f[..., 0]
    lo = np.clip(i - 1, 0, k - 1)
    hi = np.clip(i, 0, k - 1)
    f_lo = np.take_along_axis(f[:, 0, :], lo, axis=-1)
    f_hi = np.take_along_axis(f[:, 0, :], hi, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(f_hi > f_lo, (y[..., 0] - f_lo) / (f_hi - f_lo), 1.0)
    value = np.where(i == 0, s[0], s[lo] + t * (s[hi] - s[lo]))
    side = np.where(above, 1, np.where(below, 2, 0))
    return np.where(side == 0, value, np.nan), side


def invert(sizes, fitted, score):
    """The size n at which the monotone curve ``fitted`` (at increasing ``sizes``) reaches ``score``, by linear
    interpolation between the two sizes around it; on a flat stretch the smallest n that reaches it. Returns an
    ``Equivalence`` (value, side, bound): (n, "inside", NaN); (NaN, "above", the largest size) when the score
    beats every fitted value ("more than N"); (NaN, "below", the smallest size) when it is under all of them
    ("fewer than M")."""
    s = _sizes(sizes)
    f = np.asarray(fitted, dtype=np.float64)
    if f.shape != s.shape or (np.diff(f) < 0).any():
        raise ValueError("label equivalence: fitted must be non-decreasing with one value per size")
    value, side = _invert_many(s, f[None], np.array([[float(score)]]))
    code = int(side[0, 0])
    bound = {0: np.nan, 1: s[-1], 2: s[0]}[code]
    return Equivalence(float(value[0, 0]), SIDES[code], float(bound))


def equivalence_arrays(curve, targets, sizes, clusters=None, n_boot=2000, seed=0, level=0.95):
    """The core of ``label_equivalence`` on arrays.

    curve: (k, n_images, n_seeds) values of the real-only mixes at ``sizes``; targets: (T, n_images, n_seeds) of
    the mixes to place on the curve; the same images and seeds for all, no NaN; clusters: a label per image (whole
    clusters are resampled) or None. A mix's score is the mean over its images and seeds; a bootstrap replicate
    reweights every mix by the same draws (``stats._replicates``: clusters or images with replacement, then seeds
    within each), refits the curve and inverts each target. Returns a dict of arrays of length T: score,
    equivalent, side (codes 0 inside, 1 above, 2 below), ci_low, ci_high (percentile interval of the replicates,
    those above the curve at +inf and below at -inf: an open end where they pass the tail's share), share_outside.
    """
    s = _sizes(sizes)
    curve = np.asarray(curve, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if curve.ndim != 3 or curve.shape[0] != len(s) or targets.ndim != 3 or targets.shape[1:] != curve.shape[1:]:
        raise ValueError(
            f"label equivalence: curve must be (sizes, images, seeds) with {len(s)} sizes and targets (mixes, images, "
            f"seeds) alike, got {curve.shape} and {targets.shape}"
        )
    if np.isnan(curve).any() or np.isnan(targets).any():
        raise ValueError("label equivalence: the values must not be NaN (drop the images without a value first)")
    stats._check(n_boot, level)
    n_images, n_seeds = curve.shape[1:]
    if n_images == 0 or n_seeds == 0:
        raise ValueError("label equivalence: no test image or seed")
    if clusters is None:
        codes = np.arange(n_images)
    else:
        clusters = np.asarray(clusters)
        if clusters.shape != (n_images,):
            raise ValueError(f"label equivalence: clusters must have one label per image ({n_images})")
        codes = np.unique(clusters, return_inverse=True)[1].ravel()
    k = len(s)
    flat = np.concatenate([curve, targets]).reshape(k + len(targets), -1)
    score = flat.mean(1)
    equivalent, side = _invert_many(s, _isotonic(score[None, :k]), score[None, k:])
    weights, totals = stats._replicates(codes, n_seeds, int(n_boot), seed)
    reps = weights @ flat.T / totals[:, None]  # (n_boot, k + T)
    values, sides = _invert_many(s, _isotonic(reps[:, :k]), reps[:, k:])
    # Open ends: replicates beyond the curve sit past the sizes; an interval end among them is infinite.
    span = s[-1] - s[0]
    values = np.where(sides == 1, s[-1] + 10 * span, np.where(sides == 2, s[0] - 10 * span, values))
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha], axis=0)
    low = np.where(low < s[0], -np.inf, np.where(low > s[-1], np.inf, low))  # both ends past the curve: open
    high = np.where(high > s[-1], np.inf, np.where(high < s[0], -np.inf, high))
    return {
        "score": score[k:],
        "equivalent": equivalent[0],
        "side": side[0],
        "ci_low": low,
        "ci_high": high,
        "share_outside": (sides != 0).mean(0),
    }


def _mix_values(per_image, mix, metric, seeds, images):
    sub = per_image[per_image["mix"] == mix]
    if sub.duplicated(["image", "seed"]).any():
        raise ValueError(f"mix {mix!r} has several rows for one (image, seed) in the per-image table")
    index = pd.MultiIndex.from_product([images, seeds], names=["image", "seed"])
    values = sub.set_index(["image", "seed"])[metric].reindex(index).to_numpy(np.float64)
    return values.reshape(len(images), len(seeds))


def label_equivalence(
    per_image, curve_mixes, sizes, target_mixes, metric, clusters=None, n_boot=2000, seed=0, level=0.95
):
    """Label equivalence of each target mix on the real-only curve, one row per target mix.

    per_image: the study's long table (columns mix, seed, image, metric; ``source`` when clusters is "source");
    curve_mixes: the real-only mixes in the order of ``sizes`` (their real patch counts, increasing);
    target_mixes: {mix: n_real, its real patch count}; metric: a column; clusters: None (resample test images) or
    "source" (resample whole source micrographs, as ``stats.paired_comparisons(resample="source")``) or a mapping
    image -> cluster label. The mixes are compared on the seeds all of them have and the images that have a value
    for every mix and seed (a class absent from an image's ground truth drops it for all); a mix's score is then
    the mean over seeds of the per-seed mean over images, as in the study's metrics table.

    Columns: mix, metric, n_real, score, equivalent (the real patch count that scores the same; NaN outside the
    curve), side ("inside", "above": more than ``bound`` real patches, "below": fewer than ``bound``), bound,
    ci_low / ci_high (percentile bootstrap interval of ``n_boot`` joint replicates, seeded; -inf / +inf where it
    reaches past the curve's ends), share_outside (replicates beyond the curve), labels_saved (equivalent -
    n_real; NaN outside the curve).
    """
    curve_mixes, targets = list(curve_mixes), dict(target_mixes)
    s = _sizes(sizes)
    if len(curve_mixes) != len(s):
        raise ValueError(f"label equivalence: {len(curve_mixes)} curve mixes but {len(s)} sizes")
    stats._require(per_image, ["mix", "image", "seed", metric] + (["source"] if clusters == "source" else []))
    mixes = curve_mixes + list(targets)
    known = set(per_image["mix"])
    missing = [m for m in mixes if m not in known]
    if missing:
        raise ValueError(f"mix(es) {', '.join(map(repr, missing))} not in the per-image table")
    seeds = sorted(set.intersection(*(set(per_image.loc[per_image["mix"] == m, "seed"]) for m in mixes)))
    if not seeds:
        raise ValueError("label equivalence: the curve and target mixes share no seed")
    images = np.array(sorted(per_image["image"].unique()), dtype=object)
    values = np.stack([_mix_values(per_image, m, metric, seeds, images) for m in mixes])
    keep = ~np.isnan(values).any(axis=(0, 2))
    if not keep.any():
        raise ValueError(f"label equivalence: no test image has {metric} for every mix and seed")
    images, values = images[keep], values[:, keep]
    labels = None
    if isinstance(clusters, str):
        if clusters != "source":
            raise ValueError(f"label equivalence: clusters must be None, 'source' or a mapping, not {clusters!r}")
        labels = per_image.drop_duplicates("image").set_index("image")["source"].reindex(images).astype(str)
    elif clusters is not None:
        labels = pd.Series(images).map(dict(clusters)).astype(str)
    labels = None if labels is None else labels.to_numpy()
    k = len(s)
    out = equivalence_arrays(values[:k], values[k:], s, labels, n_boot, seed, level)
    n_real = np.array([targets[m] for m in targets], dtype=np.float64)
    sides = np.array(SIDES, dtype=object)[out["side"]] if len(targets) else np.array([], dtype=object)
    bound = np.where(out["side"] == 1, s[-1], np.where(out["side"] == 2, s[0], np.nan))
    return pd.DataFrame(
        {
            "mix": list(targets),
            "metric": metric,
            "n_real": n_real,
            "score": out["score"],
            "equivalent": out["equivalent"],
            "side": sides,
            "bound": bound,
            "ci_low": out["ci_low"],
            "ci_high": out["ci_high"],
            "share_outside": out["share_outside"],
            "labels_saved": out["equivalent"] - n_real,
        },
        columns=COLUMNS,
    )


def _count(x):
    return f"{x:.0f}"


def _labels(x):
    return f"{x:.0f} label" if round(x) == 1 else f"{x:.0f} labels"


def _end(x, sizes):
    if np.isposinf(x):
        return "more" if sizes is None else f"more than {_count(max(sizes))}"
    if np.isneginf(x):
        return "fewer" if sizes is None else f"fewer than {_count(min(sizes))}"
    return _count(x)


def sentence(row, synth_count, sizes=None):
    """A report line for one row of ``label_equivalence`` (a Series or namedtuple); ``synth_count``: the mix's
    synthetic pair count. E.g. "SHQ_100 (16 real + 16 synthetic) scores like 27 [22, 33] real patches: 16
    synthetic pairs saved about 11 labels" ("cost about 3 labels" below its own real count); beyond the curve
    "... scores like more than 48 real patches (the largest size): 16 synthetic pairs saved more than 32 labels"
    or "... scores like fewer than 4 real patches: no labels saved". An open interval end reads "more" / "fewer",
    with the curve's ``sizes`` given "more than 48" / "fewer than 4" ("[22, more than 48]")."""
    r = row if isinstance(row, pd.Series) else pd.Series(row._asdict())
    n_real, synth = int(r["n_real"]), int(synth_count)
    head = f"{r['mix']} ({n_real} real + {synth} synthetic) scores like"
    if r["side"] == "above":
        saved = int(r["bound"]) - n_real
        tail = f": {synth} synthetic pairs saved more than {_labels(saved)}" if saved > 0 else ""
        return f"{head} more than {_count(r['bound'])} real patches (the largest size){tail}"
    if r["side"] == "below":
        return f"{head} fewer than {_count(r['bound'])} real patches: no labels saved"
    interval = f"[{_end(r['ci_low'], sizes)}, {_end(r['ci_high'], sizes)}]"
    saved = float(r["labels_saved"])
    if round(saved) > 0:
        tail = f"{synth} synthetic pairs saved about {_labels(saved)}"
    elif round(saved) < 0:
        tail = f"{synth} synthetic pairs cost about {_labels(-saved)}"
    else:
        tail = "no labels saved"
    return f"{head} {_count(r['equivalent'])} {interval} real patches: {tail}"
