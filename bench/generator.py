#!/usr/bin/env python
"""Benchmark: the generator part of the default study, and how close its pairs are to real data.

Runs `snakemake <results>/fidelity` in a fresh folder (default bench/out/generator) with the default config
(or --configfile over it): demo data, patches, datasets, then the VQ-VAE training, encode (the reconstruction
agreement), both PixelCNN priors, the study's pool (sampled, decoded, cleaned) plus the other prior's fidelity.n
pairs, and the fidelity step against the real BMQ training patches. No U-Net is trained. Prints the time of each
generator step from Snakemake's benchmark files, the fidelity step's worst ratio of each family of statistics per
variant, and, last, one line:
`reconstruction mIoU: <val> (train <train>); fidelity ratios: <worst class/statistic> <ratio>`
where the mIoU is the VQ-VAE's reconstructed (and cleaned) masks against their inputs on its held-out validation
patches (reconstruction/meta.json) and the ratio the largest of the study pool's ratios over phase fraction, S2
and chord lengths of every class (the statistics the generator is held to: fidelity.TARGET_RATIO; fidelity.csv has
them all).
``--prior-seeds 1,2`` also trains the priors again with each of those ``pixelcnn.seed`` values (in copies of the
folder: the VQ-VAE and codes are reused) and prints the pool's worst ratio for each (one prior training is one draw
of the prior's seed).
Usage: python bench/generator.py [--cores 2] [--configfile presets/x.yaml] [--keep] [--prior-seeds 1,2]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="2")
    ap.add_argument("--configfile", default=None, help="merged over config.yaml (e.g. to try other vqvae settings)")
    ap.add_argument("--workdir", default=str(REPO / "bench" / "out" / "generator"))
    ap.add_argument("--keep", action="store_true", help="reuse the folder (only what is missing or changed runs)")
    ap.add_argument("--prior-seeds", default="", help="other pixelcnn.seed values to score, e.g. 1,2")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from dualgen.core.config import load_yaml, merge

    config = load_yaml(REPO / "config.yaml")
    if args.configfile:
        config = merge(config, load_yaml(args.configfile))
    out = Path(args.workdir) / "results" / config["study"]
    work = Path(args.workdir)
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    configfiles = [str(Path(args.configfile).resolve())] if args.configfile else []
    rc = run(work, out, args.cores, configfiles)
    if rc:
        return rc
    import pandas as pd

    for f in sorted((out / "benchmarks").rglob("*.tsv")):
        print(
            f"{str(f.relative_to(out / 'benchmarks')).removesuffix('.tsv'):32s} "
            f"{float(pd.read_csv(f, sep=chr(9))['s'].iloc[0]):7.1f} s"
        )
    agreement = json.loads((out / "reconstruction" / "meta.json").read_text())["recon_mask_agreement"]
    fmeta = json.loads((out / "fidelity" / "meta.json").read_text())
    for variant, worst in fmeta["worst_by_family"].items():
        cells = ", ".join(f"{family} {w['ratio']:.2f} ({w['class']})" for family, w in worst.items() if w["class"])
        print(
            f"{variant}{' (pool)' if variant == fmeta['pool_variant'] else ''}: {cells}; memorisation share "
            f"{fmeta['memorisation'][variant]['share_closer']:.3f}"
        )
    w = worst_target(fmeta)
    seeds = [int(k) for k in args.prior_seeds.split(",") if k.strip()]
    if seeds:
        scores = {config["pixelcnn"]["seed"]: w}
        for seed in seeds:  # a copy of the folder with the VQ-VAE and codes; the priors onward rerun
            other = work / f"prior_seed{seed}"
            if other.exists():
                shutil.rmtree(other)
            shutil.copytree(
                work,
                other,
                symlinks=True,
                ignore=lambda d, names: [n for n in names if n.startswith("prior_seed") or n == "unet"],
            )
            (other / "seed.yaml").write_text(f"pixelcnn: {{seed: {seed}}}\n")
            if run(other, other / out.relative_to(work), args.cores, configfiles + [str(other / "seed.yaml")]):
                return 1
            scores[seed] = worst_target(
                json.loads((other / out.relative_to(work) / "fidelity" / "meta.json").read_text())
            )
        ratios = [v["ratio"] for v in scores.values()]
        print(
            "pool's worst ratio by pixelcnn.seed: "
            + ", ".join(f"{k}: {v['class']}/{v['statistic']} {v['ratio']:.2f}" for k, v in scores.items())
            + f" (median {float(np.median(ratios)):.2f})"
        )
    print(
        f"reconstruction mIoU: {agreement['val']['miou']:.3f} (train {agreement['train']['miou']:.3f}); "
        f"fidelity ratios: {w['class']}/{w['statistic']} {w['ratio']:.2f}"
    )
    return 0


def run(work, out, cores, configfiles):
    """snakemake <out>/fidelity and <out>/reconstruction in ``work``; its exit status."""
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        str(out.relative_to(work) / "fidelity"),
        str(out.relative_to(work) / "reconstruction"),
        "--cores",
        cores,
    ]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    t0 = time.time()
    with open(work / "snakemake.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    print(f"snakemake exit status: {rc} after {time.time() - t0:.0f} s (log: {work / 'snakemake.log'})")
    return rc


def worst_target(fmeta):
    """The pool's worst ratio over the families the generator is held to (class, statistic, ratio)."""
    from dualgen.generate.fidelity import TARGET_FAMILIES

    pool = fmeta["worst_by_family"][fmeta["pool_variant"]]
    return pool[max((f for f in TARGET_FAMILIES if pool[f]["class"]), key=lambda f: pool[f]["ratio"])]


if __name__ == "__main__":
    sys.exit(main())
