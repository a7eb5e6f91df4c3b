#!/usr/bin/env python
"""Benchmark: the fidelity ratios of a second real sample, i.e. what a perfect generator would score.

The fidelity floor compares two halves of the same real BMQ training patches, which share their micrographs. A
generator is held to ratios <= 2 against it (issue 12). How far does *new* real data of the same material read?
The demo micrographs come from a seeded generator (dualgen.data.phantom), so new real data is at hand: for the config's
``data.demo.seed`` and for each of ``--seeds``, the demo data, patches and datasets steps run in their own folder
(the default config, or --configfile over it, with only data.demo.seed changed), and each other seed's BMQ training
patches are scored against the config seed's exactly as the fidelity step scores a generator variant
(``dualgen.generate.fidelity.compare`` with fidelity.seed and fidelity.n_splits). Numpy only, no training: about
20 s a seed.
Prints each seed's worst ratio over phase fraction, S2 and chord lengths of every class (the statistics the
generator is held to) and, last, one line:
`second real sample: worst ratio median <m> (range <lo>-<hi>) over <n> seeds; share above 2: <p>`
Usage: python bench/fidelity_reference.py [--seeds 2,3,4,5,6,7,8,9] [--cores 2] [--configfile x.yaml]
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def datasets_for(work, study, seed, cores, configfiles):
    """Run the demo data, patches and datasets steps with data.demo.seed = ``seed`` in ``work``; the results
    folder."""
    work.mkdir(parents=True, exist_ok=True)
    seed_file = work / "seed.yaml"
    seed_file.write_text(f"data: {{demo: {{seed: {seed}}}}}\n")
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        cores,
        "--configfile",
        *configfiles,
        str(seed_file),
        "--",
        f"results/{study}/datasets",
    ]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with open(work / "snakemake.log", "w") as log:
        if subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env):
            raise SystemExit(
                f"fidelity_reference: snakemake failed for data.demo.seed {seed} (log: {work / 'snakemake.log'})"
            )
    return work / "results" / study


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="2,3,4,5,6,7,8,9", help="data.demo.seed values of the second samples")
    ap.add_argument("--cores", default="2")
    ap.add_argument("--configfile", default=None, help="merged over config.yaml")
    ap.add_argument("--workdir", default=str(REPO / "bench" / "out" / "fidelity_reference"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from dualgen.core.config import fill_defaults, merged_or_exit
    from dualgen.data import datasets
    from dualgen.generate import fidelity

    extra = [str(Path(args.configfile).resolve())] if args.configfile else []
    configfiles = [str(REPO / "config.yaml"), *extra]
    config = fill_defaults(merged_or_exit(extra))
    if config["data"]["source"] != "demo":
        raise SystemExit("fidelity_reference: data.source is not demo: a second real sample needs the demo generator")
    base_seed = int(config["data"]["demo"]["seed"])
    seeds = [int(k) for k in args.seeds.split(",") if k.strip() and int(k) != base_seed]
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    names = [c["name"] for c in config["classes"]]
    fs = config["fidelity"]

    def bmq_train(seed):
        out = datasets_for(work / f"seed{seed}", config["study"], seed, args.cores, configfiles)
        _, images, masks = datasets.load(out / "patches", out / "datasets" / "BMQ.csv", "train")
        return images, masks

    real = bmq_train(base_seed)
    print(f"data.demo.seed {base_seed}: {len(real[1])} BMQ training patches (the reference, as the fidelity step's)")
    worst = []
    for seed in seeds:
        table = fidelity.compare(
            *real, *bmq_train(seed), names, seed=fs["seed"], n_splits=fs["n_splits"], variant=f"seed{seed}"
        )
        fam = fidelity.worst_by_family(table)[f"seed{seed}"]
        w = max((fam[f] for f in fidelity.TARGET_FAMILIES if fam[f]["class"]), key=lambda r: r["ratio"])
        worst.append(w["ratio"])
        print(
            f"data.demo.seed {seed}: worst {w['class']}/{w['statistic']} {w['ratio']:.2f}; "
            + ", ".join(f"{f} {fam[f]['ratio']:.2f} ({fam[f]['class']})" for f in fidelity.FAMILIES if fam[f]["class"]),
            flush=True,
        )
    worst = np.array(worst)
    print(
        f"second real sample: worst ratio median {np.median(worst):.2f} (range {worst.min():.2f}-{worst.max():.2f}) "
        f"over {len(worst)} seeds; share above {fidelity.TARGET_RATIO:g}: "
        f"{np.mean(worst > fidelity.TARGET_RATIO):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
