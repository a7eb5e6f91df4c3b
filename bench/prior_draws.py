#!/usr/bin/env python
"""Benchmark: trained priors side by side on one VQ-VAE, by the image family of their draws (issue 29).

For a study's results folder (its vqvae, codes, patches and datasets) and trained prior folders (pixelcnn/<kind>
of that study or of copies of it trained with other pixelcnn settings): each prior draws 48 grids (fidelity.n)
with ``sample_fast`` at temperature 1, *without* the sample step's calibration (so the priors are compared as
trained, and a dilated prior's slow sampler is timed on the draws alone), each seed of ``--seeds``; the VQ-VAE
decodes them, the micrographs get the decoder's spectrum (``noise.restore`` "spectrum", as
``postprocess.image_noise: spectrum``), the masks their nearest class (``MaskCodec.nearest``), and
``image_stats.image_family`` scores them against the real BMQ training patches (ratios to the real-vs-real floor).
``codes`` as a prior: the training grids themselves (the bound a prior reaches that draws the training codes).
Last line: `prior draws: <name> image ratio <r> (worst, median over seeds), ...` for each prior.
Usage: python bench/prior_draws.py RESULTS_DIR PRIOR_DIR|codes [...] [--seeds 0,1] [--threads 2]
"""

import argparse
import time
from pathlib import Path

import numpy as np

from dualgen.core import env

N = 48  # fidelity.n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a study's results folder (results/<study>)")
    ap.add_argument("priors", nargs="+", help="prior folders (pixelcnn/<kind>), or codes: the training grids")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    env.setup_tensorflow(args.threads, 0, "strict")
    from dualgen.generate import common as generation
    from dualgen.generate import image_stats, noise
    from dualgen.generate.pixelcnn import sample
    from dualgen.generate.vqvae import data

    root = Path(args.results)
    vqvae, _ = generation.load_vqvae(root / "vqvae")
    n_classes = len(np.load(root / "codes" / "classes.npz", allow_pickle=False)["fractions"])
    codec = generation.mask_codec(root / "codes", "encode", n_classes)
    enc = generation.encoded_patches(root / "codes", root / "patches", root / "datasets")
    train = enc.train
    real, real_masks, recon = enc.images[train], enc.masks[train], enc.recon_images[train]
    grids = np.load(root / "codes" / "grids.npy", allow_pickle=False)
    summary = []
    for prior in args.priors:
        worst = []
        seeds = [int(s) for s in args.seeds.split(",")] if prior != "codes" else [None]
        model = None if prior == "codes" else generation.load_pixelcnn(prior)[0]  # once: its compiled sampler serves
        for seed in seeds:  # every seed
            t0 = time.perf_counter()
            if model is None:
                drawn = grids[train]
            else:
                drawn = sample.sample_fast(model, N, *grids.shape[1:], seed=seed, temperature=1.0, batch_size=16)
            took = time.perf_counter() - t0
            parts = list(data.decode(vqvae, drawn, codec))
            images = np.concatenate([p[1] for p in parts])
            masks = codec.nearest(np.concatenate([p[2] for p in parts]))
            images, _ = noise.restore("spectrum", real, recon, real_masks, n_classes, images, masks, 0)
            table = image_stats.image_family(real, real_masks, images, masks)
            ratios = dict(zip(table["statistic"], table["ratio"]))
            worst.append(max(ratios.values()))
            name = "codes" if prior == "codes" else f"{Path(prior).name} seed {seed}"
            print(
                f"{name:>20}: drawn in {took:5.1f} s; " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()),
                flush=True,
            )
        summary.append(f"{Path(prior).name} image ratio {np.median(worst):.2f}")
    print("prior draws: " + "; ".join(summary) + " (worst, median over seeds; uncalibrated, spectrum-filtered)")


if __name__ == "__main__":
    main()
