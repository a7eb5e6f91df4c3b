#!/usr/bin/env python
"""Benchmark: sampling speed of the two priors side by side in one run, on the default study's code grid.

The exact fast PixelCNN sampler (``pixelcnn.sample.sample_fast``: one small window per cell, plain, config's 64
filters and 4 blocks) against the MaskGIT sampler (``pixelcnn.maskgit.sample_maskgit``: ``steps`` passes of the whole
transformer, config's dim 64, depth 2, 4 heads, at 12 and 8 steps), both untrained (the speed does not depend on the
weights) and unconditioned, K = 10 codes on a 32x32 grid (a 64-px patch at downsample 2), the study's batch of 16,
48 grids (fidelity.n). Each sampler is timed on a warm-up batch first (graph tracing left out), then on the 48 grids.
Last line: `prior sampling: maskgit <s> s vs PixelCNN fast <s> s for 48 grids (<ratio>x)` (12 steps; ratio > 1:
MaskGIT is slower).   Usage: python bench/priors.py [--grid 32] [--n 48] [--threads 2]
"""

import argparse
import time

from dualgen.core import env

K, BATCH, SEED = 10, 16, 0


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=32)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    env.setup_tensorflow(args.threads, SEED)
    from dualgen.generate.pixelcnn import maskgit, persist
    from dualgen.generate.pixelcnn import sample as ps

    g, n = args.grid, args.n
    settings = {"filters": 64, "num_blocks": 4, "seed": SEED, "maskgit": maskgit.DEFAULTS}
    pixelcnn = persist.build(persist.make_spec(settings, "plain", K, (g, g)))
    runs = {"PixelCNN fast": lambda m, k: ps.sample_fast(m, k, g, g, seed=SEED, temperature=1.0, batch_size=BATCH)}
    results = {}
    timed(lambda: runs["PixelCNN fast"](pixelcnn, BATCH))  # warm-up: traces the window function
    results["PixelCNN fast"], _ = timed(lambda: runs["PixelCNN fast"](pixelcnn, n))
    for steps in (12, 8):
        model = persist.build(
            persist.make_spec({**settings, "maskgit": {**maskgit.DEFAULTS, "steps": steps}}, "maskgit", K, (g, g))
        )

        def draw(k, model=model, steps=steps):
            return maskgit.sample_maskgit(model, k, g, g, seed=SEED, temperature=1.0, batch_size=BATCH, steps=steps)

        timed(lambda: draw(BATCH))
        results[f"MaskGIT {steps} steps"], grids = timed(lambda: draw(n))
        assert grids.shape == (n, g, g) and grids.max() < K
    for name, s in results.items():
        print(f"{name:18s} {s:7.2f} s for {n} grids of {g}x{g} ({n / s:.1f} grids/s)", flush=True)
    mg, fast = results["MaskGIT 12 steps"], results["PixelCNN fast"]
    print(f"prior sampling: maskgit {mg:.1f} s vs PixelCNN fast {fast:.1f} s for {n} grids ({mg / fast:.1f}x)")


if __name__ == "__main__":
    main()
