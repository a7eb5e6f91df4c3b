#!/usr/bin/env python
"""Benchmark: naive vs fast exact PixelCNN sampling, side by side in one run.

A model of the trained size (64x64 code grid, K = 10, 128 filters, 4 blocks, plain; random
weights: the speed does not depend on them), batch 16. The naive sampler (the whole network on the whole grid
for every pixel) is timed on the first rows only and extrapolated linearly per pixel to the whole grid (every
pixel costs it the same; the full run takes ~15 min on 2 cores); the fast sampler runs the whole grid. Both
draw from the same seed and must agree on the rows both drew.
Last line: `sampling speedup: <ratio>x`.   Usage: python bench/sampling.py [--quick] [--rows 2] [--kind plain]
"""

import argparse
import sys
import time

import numpy as np

from dualgen.core import env

SIZE, K, FILTERS, BLOCKS, BATCH, SEED, TEMPERATURE = 64, 10, 128, 4, 16, 1, 1.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="time the naive sampler on one row only")
    ap.add_argument("--rows", type=int, default=2, help="rows the naive sampler draws (default 2)")
    ap.add_argument("--kind", choices=["plain", "gated"], default="plain")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = 1 if args.quick else args.rows
    env.setup_tensorflow(args.threads, 0)
    from dualgen.generate.pixelcnn import model as pixelcnn_model
    from dualgen.generate.pixelcnn import sample as P

    model = pixelcnn_model.PixelCNN(K, filters=FILTERS, num_blocks=BLOCKS, kind=args.kind, seed=0, dilations=None)
    print(
        f"PixelCNN {args.kind}: grid {SIZE}x{SIZE}, K={K}, {FILTERS} filters, {model.num_blocks} blocks, random "
        f"weights; batch {BATCH}, {args.threads} threads; fast window {model.receptive_rows + 1}x"
        f"{2 * model.receptive_cols + 1} cells",
        flush=True,
    )
    P.sample_naive(model, BATCH, 1, 1, seed=0, temperature=TEMPERATURE, batch_size=BATCH)  # compile both first
    P.sample_fast(model, BATCH, 1, 1, seed=0, temperature=TEMPERATURE, batch_size=BATCH)

    t = time.perf_counter()
    naive = P.sample_naive(model, BATCH, SIZE, SIZE, seed=SEED, temperature=TEMPERATURE, batch_size=BATCH, rows=rows)
    per_pixel = (time.perf_counter() - t) / (rows * SIZE)
    naive_s = per_pixel * SIZE * SIZE
    print(
        f"naive: {per_pixel * 1e3:.1f} ms per pixel, measured on the first {rows} row(s) ({rows * SIZE} pixels), "
        f"extrapolated linearly to {SIZE * SIZE} pixels: {naive_s:.1f} s for {BATCH} grids",
        flush=True,
    )

    t = time.perf_counter()
    fast = P.sample_fast(model, BATCH, SIZE, SIZE, seed=SEED, temperature=TEMPERATURE, batch_size=BATCH)
    fast_s = time.perf_counter() - t
    print(f"fast:  {fast_s / SIZE**2 * 1e3:.2f} ms per pixel, full run: {fast_s:.1f} s for {BATCH} grids", flush=True)

    same = np.array_equal(naive[:, :rows], fast[:, :rows])
    cells = [(0, 0), (0, SIZE - 1), (SIZE - 1, 0), (SIZE - 1, SIZE - 1), (SIZE // 2, 0), (3, SIZE - 2), (40, 21)]
    diff = max(
        np.abs(P.logits_at(model, fast, r, c, fast=True) - P.logits_at(model, fast, r, c, fast=False)).max()
        for r, c in cells
    )
    print(
        f"check: the {BATCH * rows * SIZE} pixels both drew are {'identical' if same else 'DIFFERENT'}; "
        f"max |fast - naive logits| at corners/edges/interior: {diff:.2e}"
    )
    print(f"sampling speedup: {naive_s / fast_s:.1f}x")
    return 0 if same and diff <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
