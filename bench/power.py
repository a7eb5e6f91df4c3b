#!/usr/bin/env python
"""Benchmark: power of the micrograph-level test of a paired comparison, by seeds x test micrographs.

Reads a finished study's per_image.csv (--study DIR), takes the paired differences mix - reference (--pair,
default BMQ_100,BMQ_000) of --metric (default Missing Class IoU) on their common seeds and the test images with a
value, and averages them per source micrograph and seed. From that (micrographs x seeds) table a two-way
method-of-moments decomposition estimates three standard deviations: between micrographs (of the per-micrograph
means; its patches-per-micrograph held as in the study), between seeds (of the per-seed test-set means: a
training's shift shared by all test micrographs) and their interaction (a seed's shift on one micrograph). It
prints the raw sds too (of the per-source means of the seed-averaged differences, of the per-seed test-set means).

Power by simulation (not a normal approximation): --n-sim studies per design of s seeds x m test micrographs
(s in 1, 2, 3, 5, 10; m in 2, 4, 8, 16, 32), each micrograph's mean difference drawn as delta + seed mean shift +
micrograph effect + interaction / sqrt(s), tested like comparisons.csv with stats.resample: source - the
two-sided sign-flip test over micrographs (stats.sign_flip_p; exact to 12 micrographs, 4,000 random sign patterns
above) at --alpha, without Holm (one comparison; a study's Holm family asks for more). Power = the share of
studies with p < alpha and the right sign, for delta 0.01, 0.02, 0.05; the delta 0 rows show the test's own
rejection rate (the test is over micrographs: a seed shift shared by all of them is not in its null, so few
seeds with a large seed sd reject a null difference too often). With fewer than 2 test micrographs with a value
the between-micrograph sd cannot be estimated: the test patches stand in as units (optimistic: patches of one
micrograph are not independent), said so on every line it concerns; with one seed the seed sd is taken as 0.
Last line: `power: 0.02 MCIoU needs <s> seeds x <m> test micrographs at 80 %` (the fewest micrographs, then the
fewest seeds, reaching 80 %) or `... needs more than 10 seeds x 32 test micrographs at 80 %`.
Usage: python bench/power.py [--study results/demo/study] [--pair A,B] [--metric missing_class_iou]
       [--n-sim 2000] [--alpha 0.05] [--seed 0]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dualgen.report import stats  # noqa: E402

SEEDS = (1, 2, 3, 5, 10)
MICROGRAPHS = (2, 4, 8, 16, 32)
DELTAS = (0.01, 0.02, 0.05)
TARGET, HEADLINE = 0.8, 0.02
LABELS = {"missing_class_iou": "MCIoU", "miou": "mIoU", "accuracy": "accuracy"}
MAX_EXACT, N_MC = 12, 4000


def paired_differences(per_image, mix, reference, metric):
    """(images, seeds) differences mix - reference on the common seeds, the images with a value for every seed, and
    each image's source (None without a source column)."""
    for name in (mix, reference):
        if name not in set(per_image["mix"]):
            raise SystemExit(
                f"power: mix {name!r} is not in the per-image table ({', '.join(sorted(set(per_image['mix'])))})"
            )
    a, b = (per_image[per_image["mix"] == m].set_index(["image", "seed"])[metric] for m in (mix, reference))
    seeds = sorted(set(a.index.get_level_values("seed")) & set(b.index.get_level_values("seed")))
    if not seeds:
        raise SystemExit(f"power: {mix} and {reference} share no seed")
    images = sorted(per_image["image"].unique())
    index = pd.MultiIndex.from_product([images, seeds], names=["image", "seed"])
    diff = (a.reindex(index) - b.reindex(index)).to_numpy(np.float64).reshape(len(images), len(seeds))
    keep = ~np.isnan(diff).any(axis=1)
    images = np.array(images, dtype=object)[keep]
    sources = None
    if "source" in per_image.columns:
        sources = per_image.drop_duplicates("image").set_index("image")["source"].reindex(images).astype(str).to_numpy()
    return diff[keep], images, sources, seeds


def components(unit_seed):
    """Method-of-moments sds of a (units x seeds) table of mean differences D[j, k] = mu + b_j + e_k + r_jk:
    between units (b), between seeds (e), interaction (r); clipped at 0. With one seed e and r are 0 (b takes
    all); needs 2 units."""
    n_units, n_seeds = unit_seed.shape
    var_units = unit_seed.mean(1).var(ddof=1)
    if n_seeds < 2:
        return np.sqrt(var_units), 0.0, 0.0
    resid = unit_seed - unit_seed.mean(1, keepdims=True) - unit_seed.mean(0, keepdims=True) + unit_seed.mean()
    ms_r = (resid**2).sum() / ((n_units - 1) * (n_seeds - 1))
    var_b = max(0.0, var_units - ms_r / n_seeds)
    var_e = max(0.0, unit_seed.mean(0).var(ddof=1) - ms_r / n_units)
    return np.sqrt(var_b), np.sqrt(var_e), np.sqrt(ms_r)


def rejection(sd_b, sd_e, sd_r, n_seeds, n_units, delta, n_sim, seed, alpha):
    """Share of n_sim simulated studies whose sign-flip p < alpha with mean of the sign of delta (any sign for 0).
    The same normal draws for every delta and seed count (common random numbers: smooth tables)."""
    rng = np.random.default_rng([seed, n_units])
    b = rng.standard_normal((n_sim, n_units))
    r = rng.standard_normal((n_sim, n_units))
    e = rng.standard_normal((n_sim, 1))
    u = delta + sd_e / np.sqrt(n_seeds) * e + sd_b * b + sd_r / np.sqrt(n_seeds) * r
    p = stats.sign_flip_p(u, n_mc=N_MC, seed=seed, max_exact=MAX_EXACT)
    hit = p < alpha
    if delta > 0:
        hit &= u.mean(1) > 0
    return float(hit.mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(REPO / "results" / "demo" / "study"), help="folder with per_image.csv")
    ap.add_argument("--pair", default="BMQ_100,BMQ_000", help="mix,reference")
    ap.add_argument("--metric", default="missing_class_iou")
    ap.add_argument("--n-sim", type=int, default=2000, help="simulated studies per design (default 2000)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = Path(args.study) / "per_image.csv"
    if not path.is_file():
        raise SystemExit(f"power: no {path} (run the study first, or pass --study)")
    mix, reference = args.pair.split(",")
    per_image = pd.read_csv(path)
    stats._require(per_image, ["mix", "image", "seed", args.metric])
    diff, images, sources, seeds = paired_differences(per_image, mix, reference, args.metric)
    label = LABELS.get(args.metric, args.metric)
    if len(images) < 2:
        raise SystemExit(f"power: {len(images)} test image(s) with a {args.metric} difference: nothing to estimate")
    n_sources = 0 if sources is None else len(set(sources))
    patches = n_sources < 2
    unit = "test patch" if patches else "test micrograph"
    units = unit + ("es" if patches else "s")
    if patches:
        print(
            f"note: {n_sources} test source micrograph(s) with a value in {path}: the between-micrograph sd cannot be "
            "estimated; falling back to the test patches as units (optimistic: patches of one micrograph are not "
            "independent). Read 'micrographs' below as 'patches'."
        )
        codes = np.arange(len(images))
    else:
        codes = np.unique(sources, return_inverse=True)[1].ravel()
    onehot = np.zeros((len(images), int(codes.max()) + 1))
    onehot[np.arange(len(images)), codes] = 1.0
    unit_seed = onehot.T @ diff / onehot.sum(0)[:, None]  # (units, seeds) mean differences
    per_unit = int(round(len(images) / unit_seed.shape[0]))
    if len(seeds) < 2:
        print("note: one seed: the between-seed sd cannot be estimated, taken as 0 (optimistic)")
    sd_units = unit_seed.mean(1).std(ddof=1)
    sd_seeds = diff.mean(0).std(ddof=1) if len(seeds) > 1 else float("nan")
    sd_b, sd_e, sd_r = components(unit_seed)
    print(
        f"{mix} - {reference}, {args.metric}: {len(images)} test patches from {n_sources} source micrograph(s) "
        f"({unit_seed.shape[0]} {units} as units, ~{per_unit} patch(es) each), {len(seeds)} seeds; "
        f"mean difference {diff.mean():+.4f}"
    )
    print(
        f"raw sds: of the per-{unit.split()[1]} means of the seed-averaged differences {sd_units:.4f}; "
        f"of the per-seed test-set means {sd_seeds:.4f}"
    )
    print(f"components: between {units} {sd_b:.4f}, between seeds {sd_e:.4f}, interaction {sd_r:.4f}")
    print(
        f"power by simulation ({args.n_sim} studies per cell): two-sided sign-flip test over {units} at alpha "
        f"{args.alpha:g}, no Holm; delta 0 = the test's own rejection rate"
    )
    never = [m for m in MICROGRAPHS if 2 / 2**m >= args.alpha]
    if never:
        print(f"(with m {units} the sign-flip p is at least 2 / 2^m: m = {', '.join(map(str, never))} never rejects)")
    table = {}
    for delta in (0.0,) + DELTAS:
        print(f"\ndelta {delta:g} {label}: rows seeds, columns {units}")
        print("seeds " + "".join(f"{m:>7d}" for m in MICROGRAPHS))
        for s in SEEDS:
            cells = []
            for m in MICROGRAPHS:
                table[delta, s, m] = rejection(sd_b, sd_e, sd_r, s, m, delta, args.n_sim, args.seed, args.alpha)
                cells.append(f"{table[delta, s, m]:7.2f}")
            print(f"{s:5d} " + "".join(cells))
    print()
    suffix = " (units: test patches, not micrographs)" if patches else ""
    for m in MICROGRAPHS:
        for s in SEEDS:
            if table[HEADLINE, s, m] >= TARGET:
                print(f"power: {HEADLINE:g} {label} needs {s} seeds x {m} test micrographs at 80 %{suffix}")
                return
    print(
        f"power: {HEADLINE:g} {label} needs more than {SEEDS[-1]} seeds x {MICROGRAPHS[-1]} test micrographs "
        f"at 80 %{suffix}"
    )


if __name__ == "__main__":
    main()
