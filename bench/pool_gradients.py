#!/usr/bin/env python
"""Benchmark: where a pool's |grad I| departs from the real patches', class by class, and whether its code grids'
local statistics do (issue 29: the image family's worst ratio is the gradient distribution's).

For a study's results folder: the real BMQ training patches (the fidelity step's real set) and the cleaned pool
(``datasets.read_pool``, synthetic/clean), |grad I| of every pixel (``image_stats.gradient_magnitudes``):
- per class: its share of the pixels, the Wasserstein-1 distance of its |grad I| (pool vs real), that distance
  times the class's share (its part of the whole: the classes' parts sum to about the whole's W1), and the pool /
  real ratio of the 10th, 50th, 90th, 95th and 99th percentiles;
- the code grids: total variation distance of the code shares and of the horizontal and vertical neighbour pairs
  (K x K) between half A of the prior's training grids (codes/, split train; random halves, 5 splits, seeded) and
  as many pool grids (synthetic/codes/grids.npy), next to the same distances between halves A and B: the floor
  of a second sample, as the fidelity step computes its floor.
Last line: `pool gradients: <class> carries <p>% of W1 (q95 <r>), code pairs TV <t> (halves <f>)`: the class with
the largest part, and the row pairs.
Usage: python bench/pool_gradients.py RESULTS_DIR [--pool synthetic/clean]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from dualgen.data import datasets
from dualgen.generate import image_stats

QUANTILES = (10, 50, 90, 95, 99)
SPLITS = 5  # random halves of the training grids


def pair_shares(grids, k, axis):
    """(K * K,) shares of the (code, next code) pairs along rows (axis 2) or columns (axis 1)."""
    a = np.take(grids, range(grids.shape[axis] - 1), axis=axis)
    b = np.take(grids, range(1, grids.shape[axis]), axis=axis)
    counts = np.bincount((a.astype(np.int64) * k + b).ravel(), minlength=k * k)
    return counts / counts.sum()


def code_distances(a, b, k):
    """Total variation distances (codes, row pairs, column pairs) between two sets of code grids (the sampler's
    ``code_frequencies`` and ``share_distance``)."""
    from dualgen.generate.pixelcnn.sample import code_frequencies, share_distance

    out = [share_distance(code_frequencies(a, k), code_frequencies(b, k))]
    out += [share_distance(pair_shares(a, k, axis), pair_shares(b, k, axis)) for axis in (2, 1)]
    return np.array(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a study's results folder (results/<study>)")
    ap.add_argument("--pool", default="synthetic/clean", help="the pool folder inside it")
    args = ap.parse_args()
    root = Path(args.results)
    names = [c["name"] for c in json.loads((root / "patches" / "meta.json").read_text())["settings"]["classes"]]
    manifest = pd.read_csv(root / "datasets" / "BMQ.csv")
    _, real_images, real_masks = datasets.load(root / "patches", manifest, "train")
    _, pool_images, pool_masks = datasets.read_pool(root / args.pool)
    real, pool = image_stats.gradient_magnitudes(real_images), image_stats.gradient_magnitudes(pool_images)
    whole = wasserstein_distance(real.ravel(), pool.ravel())
    print(f"|grad I| W1 pool vs real: {whole:.5f} ({len(pool_images)} pool, {len(real_images)} real patches)")
    print("class    share  W1       part     " + "  ".join(f"q{q}" for q in QUANTILES) + "  (pool / real)")
    parts = {}
    for k in range(int(max(real_masks.max(), pool_masks.max())) + 1):
        r, p = real[real_masks == k], pool[pool_masks == k]
        if not len(r) or not len(p):
            continue
        share = float((real_masks == k).mean())
        w1 = wasserstein_distance(r, p)
        parts[k] = (share * w1, float(np.percentile(p, 95) / np.percentile(r, 95)))
        ratios = "  ".join(f"{np.percentile(p, q) / np.percentile(r, q):.3f}" for q in QUANTILES)
        print(f"{names[k]:<8} {share:.3f}  {w1:.5f}  {share * w1:.5f}  {ratios}")
    codes = root / "codes"
    grids = np.load(codes / "grids.npy")
    train = grids[pd.read_csv(codes / "codes.csv")["split"].to_numpy() == "train"]
    drawn = np.load(root / "synthetic" / "codes" / "grids.npy")
    k = int(max(grids.max(), drawn.max())) + 1
    rng = np.random.default_rng(0)
    pooled, halves = [], []
    for _ in range(SPLITS):  # as the fidelity step's floor: half A against half B and against as many pool grids
        order = rng.permutation(len(train))
        a, b = train[order[: len(order) // 2]], train[order[len(order) // 2 :]]
        halves.append(code_distances(a, b, k))
        pooled.append(code_distances(a, drawn[rng.choice(len(drawn), min(len(b), len(drawn)), replace=False)], k))
    pooled, halves = np.mean(pooled, axis=0), np.mean(halves, axis=0)
    for name, d, f in zip(("code shares", "row pairs", "column pairs"), pooled, halves):
        print(f"{name}: TV {d:.3f} pool vs half of the training grids; {f:.3f} between its halves")
    top = max(parts, key=lambda c: parts[c][0])
    print(
        f"pool gradients: {names[top]} carries {100 * parts[top][0] / sum(v[0] for v in parts.values()):.0f}% of W1 "
        f"(q95 {parts[top][1]:.3f}), code pairs TV {pooled[1]:.3f} (halves {halves[1]:.3f})"
    )


if __name__ == "__main__":
    main()
