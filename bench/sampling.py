#!/usr/bin/env python
"""Benchmark: naive vs fast exact PixelCNN sampling, side by side in one run.

Model of the paper's size: 64x64 code grid, K = 10, 128 filters, plain PixelCNN with the default blocks
(random weights: the speed does not depend on them), batch 16. The naive sampler (whole network on the whole
grid per pixel) is timed on the first rows only and extrapolated per pixel to the full grid (the full run
takes ~15 min here); both samplers draw those rows from the same seed and must agree.
Last line: `sampling speedup: <ratio>x`.  Usage: python bench/sampling.py [--rows 2] [--quick]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402

from dualgen import env  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2, help="rows the naive sampler draws (extrapolated to the grid)")
    ap.add_argument("--quick", action="store_true", help="32x32 grid, 64 filters (a smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tf = env.setup_tensorflow(args.threads, 0)
    from dualgen import pixelcnn as P

    size, filters, blocks, k, batch = (32, 64, 4, 10, 16) if args.quick else (64, 128, 4, 10, 16)
    model = P.build(P.PixelCNN(k, filters=filters, num_blocks=blocks, kind="plain"), size, size)
    print(f"grid {size}x{size}, K={k}, {filters} filters, {blocks} blocks, batch {batch}, {args.threads} threads; "
          f"window {model.receptive_rows + 1}x{2 * model.receptive_cols + 1}")
    rows = args.rows
    P.sample_naive(model, batch, 1, 2, seed=0, batch_size=batch)  # compile both once
    P.sample_fast(model, batch, 1, 2, seed=0, batch_size=batch)
    t = time.perf_counter()
    naive = P.sample_naive(model, batch, rows, size, seed=1, batch_size=batch)
    naive_s = (time.perf_counter() - t) / (rows * size) * size * size
    t = time.perf_counter()
    fast = P.sample_fast(model, batch, size, size, seed=1, batch_size=batch)
    fast_s = time.perf_counter() - t
    # the first rows of a full grid equal a rows-only grid drawn with the same seed only if the uniforms agree:
    # compare against a fast run of the same partial shape instead
    same = np.array_equal(naive, P.sample_fast(model, batch, rows, size, seed=1, batch_size=batch))
    print(f"naive: {naive_s:.1f} s for {batch} grids (measured on {rows} rows, extrapolated per pixel)")
    print(f"fast:  {fast_s:.1f} s for {batch} grids (full run); same draws as naive on the measured rows: {same}")
    del fast
    print(f"sampling speedup: {naive_s / fast_s:.1f}x")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
