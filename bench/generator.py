#!/usr/bin/env python
"""Benchmark: the generator part of the default study, and how close its pairs are to real data.

Runs `snakemake <results>/fidelity` in a fresh folder (default bench/out/generator) with the default config
(or --configfile over it): demo data, patches, datasets, then the VQ-VAE training, encode (the reconstruction
agreement), both PixelCNN priors, the study's pool (sampled, decoded, cleaned) plus the other prior's fidelity.n
pairs, and the fidelity step against the real BMQ training patches (with its learned features, the real-only U-Net
BMQ_000). Prints the time of each
generator step from Snakemake's benchmark files, the fidelity step's worst ratio of each family of statistics per
variant, and, last, one line:
`generator: image ratio <r> (worst; median over the prior seeds ...), mask ratio <m>, reconstruction mIoU <x>`
where r is the pool's worst ratio in the image family (spectrum, gradients, edges, learned features: the fidelity
step's real-only U-Net, BMQ_000's first seed, is trained for it), m the worst over phase fraction, S2 and chords, the
mIoU is the VQ-VAE's reconstructed (and cleaned) masks against their inputs on its held-out validation
patches (reconstruction/meta.json) and the ratio the largest of the study pool's ratios over phase fraction, S2
and chord lengths of every class (the statistics the generator is held to: fidelity.TARGET_RATIO; fidelity.csv has
them all).
``--prior-seeds 1,2`` also trains the priors again with each of those ``pixelcnn.seed`` values (in copies of the
folder: the VQ-VAE and codes are reused) and prints the pool's worst ratio for each (one prior training is one draw
of the prior's seed).
``--rerun-from RULE[,RULE]`` (with --keep, in a copy of another run's folder: an option that changes only a later step,
such as postprocess.image_noise) reruns RULE and what depends on it, and nothing else (Snakemake's
``--rerun-triggers mtime --forcerun RULE``; the prior seeds' copies then force train_pixelcnn and
train_pixelcnn_conditioned).
``--study`` also runs the study's aggregate and prints each synthetic mix's effect with its interval (with
``--configfile bench/generator_study.yaml``: SHQ and BMQ at 0 and 100 %, the generator's own study).
Usage: python bench/generator.py [--cores 2] [--configfile presets/x.yaml ...] [--keep [--rerun-from RULE]]
[--prior-seeds 1,2] [--study]
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
    ap.add_argument(
        "--configfile",
        action="append",
        default=[],
        help="merged over config.yaml in order (e.g. to try other vqvae settings); repeat",
    )
    ap.add_argument("--workdir", default=str(REPO / "bench" / "out" / "generator"))
    ap.add_argument("--keep", action="store_true", help="reuse the folder (only what is missing or changed runs)")
    ap.add_argument(
        "--rerun-from",
        default=None,
        help="with --keep: rerun these rules (comma-separated) and what depends on them, nothing else (e.g. "
        "postprocess,fidelity_postprocess)",
    )
    ap.add_argument("--prior-seeds", default="", help="other pixelcnn.seed values to score, e.g. 1,2")
    ap.add_argument(
        "--study",
        action="store_true",
        help="also the study's aggregate (with --configfile bench/generator_study.yaml: SHQ and BMQ at 0 and 100 %%) "
        "and its effect of synthetic data with intervals",
    )
    args = ap.parse_args()
    if args.rerun_from and not args.keep:
        ap.error("--rerun-from needs --keep (a folder to reuse)")
    sys.path.insert(0, str(REPO))
    from dualgen.core.config import merged_or_exit

    config = merged_or_exit(args.configfile)
    out = Path(args.workdir) / "results" / config["study"]
    work = Path(args.workdir)
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    configfiles = [str(Path(f).resolve()) for f in args.configfile]
    rc = run(work, out, args.cores, configfiles, study=args.study, forcerun=args.rerun_from)
    if rc:
        return rc
    import pandas as pd

    for f in sorted((out / "benchmarks").rglob("*.tsv")):
        print(
            f"{str(f.relative_to(out / 'benchmarks')).removesuffix('.tsv'):32s} "
            f"{float(pd.read_csv(f, sep=chr(9))['s'].iloc[0]):7.1f} s"
        )
    recon = json.loads((out / "reconstruction" / "meta.json").read_text())
    agreement = recon["recon_mask_agreement"]
    if "recon_image_ratio" in recon:  # the VQ-VAE alone: its reconstructions of the training patches
        r = recon["recon_image_ratio"]
        print(f"reconstructed micrographs: image-family ratio {r['statistic']} {r['ratio']:.2f}")
    if "recon_image_ratio_postprocessed" in recon:  # ... as the pool's micrographs are made (image_noise)
        r = recon["recon_image_ratio_postprocessed"]
        print(f"reconstructed micrographs, postprocessed: image-family ratio {r['statistic']} {r['ratio']:.2f}")
    fmeta = json.loads((out / "fidelity" / "meta.json").read_text())
    for variant, worst in fmeta["worst_by_family"].items():
        cells = ", ".join(f"{family} {w['ratio']:.2f} ({w['class']})" for family, w in worst.items() if w["class"])
        print(
            f"{variant}{' (pool)' if variant == fmeta['pool_variant'] else ''}: {cells}; memorisation share "
            f"{fmeta['memorisation'][variant]['share_closer']:.3f}"
        )
    w = worst_target(fmeta)
    image, mask = {config["pixelcnn"]["seed"]: worst_image(fmeta)}, {config["pixelcnn"]["seed"]: w}
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
                ignore=lambda d, names: [n for n in names if n.startswith("prior_seed")],
            )
            (other / "seed.yaml").write_text(f"pixelcnn: {{seed: {seed}}}\n")
            # mtime triggers miss the seed's change: the priors rerun by force
            force = "train_pixelcnn,train_pixelcnn_conditioned" if args.rerun_from else None
            seed_files = configfiles + [str(other / "seed.yaml")]
            if run(other, other / out.relative_to(work), args.cores, seed_files, forcerun=force):
                return 1
            other_meta = json.loads((other / out.relative_to(work) / "fidelity" / "meta.json").read_text())
            scores[seed] = mask[seed] = worst_target(other_meta)
            image[seed] = worst_image(other_meta)
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
    if args.study:
        effects(out)
    print(
        "image family's worst ratio by pixelcnn.seed: "
        + ", ".join(f"{k}: {v['class']}/{v['statistic']} {v['ratio']:.2f}" for k, v in image.items())
    )
    over = sum(v["ratio"] <= TARGET for v in image.values())
    ref = reference(fmeta)
    if ref:
        print(
            f"a second real sample ({fmeta['reference']['source']}, scored alike): image ratio "
            f"{ref['image']['ratio']:.2f} ({ref['image']['class']}/{ref['image']['statistic']}), mask ratio "
            f"{ref['mask']['ratio']:.2f} ({ref['mask']['class']}/{ref['mask']['statistic']})"
        )
    print(
        f"generator: image ratio {median(image):.2f} (worst; median over {len(image)} prior seed(s), "
        f"<= {TARGET:g} in {over}), mask ratio {median(mask):.2f}, reconstruction mIoU {agreement['val']['miou']:.3f}"
        + (f"; a second real sample: image {ref['image']['ratio']:.2f}, mask {ref['mask']['ratio']:.2f}" if ref else "")
    )
    return 0


def median(scores):
    return float(np.median([v["ratio"] for v in scores.values()]))


def effects(out):
    """Print every synthetic mix's difference from its 0 % mix (study/comparisons.csv: micrograph-level bootstrap
    interval, Holm-corrected p) and the whole-micrograph scores."""
    import pandas as pd

    comp = pd.read_csv(out / "study" / "comparisons.csv")
    for _, r in comp.iterrows():
        print(
            f"effect {r['mix']} - {r['reference']} {r['metric']}: {r['mean_diff']:+.3f} "
            f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] p_holm {r['p_holm']:.3f}"
        )
    whole = out / "study" / "whole_image.csv"
    if whole.exists():
        t = pd.read_csv(whole)
        print("whole micrographs (mean over seeds):")
        print(t.groupby("mix")[[c for c in ("miou", "missing_class_iou") if c in t]].mean().round(3).to_string())


def run(work, out, cores, configfiles, study=False, forcerun=None):
    """snakemake <out>/fidelity and <out>/reconstruction (and <out>/study) in ``work``; its exit status. With
    ``forcerun`` (rules, comma-separated), only file times trigger reruns, and those rules rerun."""
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        str(out.relative_to(work) / "fidelity"),
        str(out.relative_to(work) / "reconstruction"),
        *([str(out.relative_to(work) / "study")] if study else []),
        "--cores",
        cores,
    ]
    if forcerun:
        cmd += ["--rerun-triggers", "mtime", "--forcerun", *forcerun.split(",")]
    if configfiles:
        cmd += ["--configfile", *configfiles]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    t0 = time.time()
    with open(work / "snakemake.log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    print(f"snakemake exit status: {rc} after {time.time() - t0:.0f} s (log: {work / 'snakemake.log'})")
    return rc


TARGET = 2.0  # fidelity.TARGET_RATIO
MASK_FAMILIES = ("phase_fraction", "s2", "chord")  # the mask statistics the generator is held to


def worst_mask(worst):
    """The worst ratio over the mask families the generator is held to (class, statistic, ratio), of a
    ``worst_by_family`` dictionary."""
    return worst[max((f for f in MASK_FAMILIES if worst[f]["class"]), key=lambda f: worst[f]["ratio"])]


def worst_target(fmeta):
    """The pool's worst ratio over the mask families the generator is held to."""
    return worst_mask(fmeta["worst_by_family"][fmeta["pool_variant"]])


def reference(fmeta):
    """The worst image-family and mask ratios of the fidelity step's second real sample (the test patches, scored as
    the pool is), the yardstick of what real data reaches; None without one."""
    ref = fmeta.get("reference")
    if not ref or not ref.get("worst_by_family"):
        return None
    worst = ref["worst_by_family"]
    return {
        "image": worst.get("image", {"class": None, "statistic": None, "ratio": float("nan")}),
        "mask": worst_mask(worst),
    }


def worst_image(fmeta):
    """The pool's worst ratio in the image family (class, statistic, ratio; ratio NaN without one)."""
    return fmeta["worst_by_family"][fmeta["pool_variant"]].get(
        "image", {"class": None, "statistic": None, "ratio": float("nan")}
    )


def pool_ratios(fmeta):
    """The pool's worst image-family and mask ratios as the prototypes' last lines give them:
    ``image ratio <r> (<class>/<statistic>), mask ratio <m> (<class>/<statistic>)``."""
    image, mask = worst_image(fmeta), worst_target(fmeta)
    return (
        f"image ratio {image['ratio']:.2f} ({image['class']}/{image['statistic']}), "
        f"mask ratio {mask['ratio']:.2f} ({mask['class']}/{mask['statistic']})"
    )


if __name__ == "__main__":
    sys.exit(main())
