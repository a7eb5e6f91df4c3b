#!/usr/bin/env python
"""Generator fidelity: how close the cleaned synthetic pairs of each generator variant are to real ones.

Real data: the BMQ training patches (what the generator learned from). For each variant (a prior kind at a
sampling temperature; one of them is the study's pool) and each class: phase fraction, two-point correlation S2,
chord lengths along rows and columns, object sizes, boundary density and the pixel intensities of every channel
inside the class, each distance also as a ratio to the real-vs-real floor (dualgen.generate.fidelity.compare: two disjoint
halves of the real patches, the synthetic side drawn at the size of one half). Memorisation: each pair's distance
to its nearest BMQ training patch against the same distance of the real BMQ validation patches (the VQ-VAE also
trains on most validation patches, so copies of those would not count: the check is about the training set, the
bulk of what the generator saw). Reference for
mask agreement: two real labelings of the same patches (the HQ vs LQ masks, where patches have both).
Reference for the ratios: a second real sample, the test patches (other micrographs, which nothing trains on),
scored against the BMQ training patches exactly as a variant is (OUT/reference.csv). The floor halves share their
micrographs; a second sample of the material does not, so its ratios show what "as close as new real data" reads
(measured on the demo data: fresh micrographs from 8 other seeds score a worst ratio of 1.0-3.2, median 1.7).
Writes OUT/fidelity.csv (variant x class x statistic), OUT/reference.csv, OUT/memorisation.csv, OUT/profiles.npz (the curves and
histograms figure_fidelity draws: real__<stat> and <variant>__<stat>), meta.json (the worst ratio of each family
of statistics per variant, the pool's variant, the closest variant: the lowest worst ratio over phase fraction, S2
and chord lengths among the variants that copy no more than real data would: memorisation share at most its novel_limit
(fidelity.memorisation), the label agreement, the reference sample's worst ratios).
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.data import datasets, io
from dualgen.generate import fidelity
from dualgen.segment import metrics
from dualgen.core.errors import DualgenError

REFERENCE = "real_test"  # the reference sample's variant name in reference.csv


def label_agreement(patches_dir, n_classes):
    """mIoU and Missing Class IoU of the LQ masks against the HQ masks of the patches that have both (None if none
    has, or they agree everywhere because no LQ masks were made)."""
    folder = Path(patches_dir)
    table = pd.read_csv(folder / "patches.csv")
    ids = list(table.loc[table["has_hq"].astype(bool), "patch_id"])
    if not ids or not (folder / "lq").is_dir() or not (folder / "hq").is_dir():
        return None
    rows = [metrics.image_metrics(io.read_png(folder / "hq" / f"{i}.png"), io.read_png(folder / "lq" / f"{i}.png"),
                                  n_classes) for i in ids]
    agg = metrics.aggregate(rows)
    return {"miou": agg["miou"], "missing_class_iou": agg["missing_class_iou"], "n": len(ids)}


def second_real_sample(patches, manifest, real_images, real_masks, names, fs):
    """(table, meta) of the test patches scored against the BMQ training patches as a variant is (``compare``, the
    same seed and splits); an empty table and None when there are fewer than 2 test patches."""
    _, images, masks = datasets.load(patches, manifest, "test")
    if len(masks) < 2:
        return pd.DataFrame(columns=["variant", "class", "statistic", "ratio"]), None
    table = fidelity.compare(real_images, real_masks, images, masks, names, seed=fs["seed"], n_splits=fs["n_splits"],
                             variant=REFERENCE)
    line = fidelity.summary(table[table["statistic"].map(fidelity.family).isin(fidelity.TARGET_FAMILIES)])["line"]
    print(f"reference, a second real sample ({len(masks)} test patches): {line}", flush=True)
    return table, {"variant": REFERENCE, "source": "test patches", "n": len(masks), "line": line,
                   "worst_by_family": fidelity.worst_by_family(table)[REFERENCE]}


def memo_of(memo, variant):
    return next(r for r in memo if r["variant"] == variant)


def parse_variants(items, declared):
    paths = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise DualgenError(f"--variant {item}: expected NAME=PATH (a postprocess output folder)")
        paths[name] = Path(path)
    names = [v["name"] for v in declared]
    if set(paths) != set(names):
        raise DualgenError(f"--variant gives {', '.join(sorted(paths)) or 'none'} but the settings declare "
                           f"{', '.join(names) or 'none'}: give one --variant NAME=PATH per declared variant")
    return paths


def main(args):
    s = cli.settings(args)
    classes, fs = s["classes"], s["fidelity"]
    names = [c["name"] for c in classes]
    n = len(names)
    paths = parse_variants(args.variant, s["variants"])
    manifest = Path(args.datasets) / "BMQ.csv"
    _, real_images, real_masks = datasets.load(args.patches, manifest, "train")
    _, val_images, val_masks = datasets.load(args.patches, manifest, "val")
    if len(real_masks) < 2:
        raise DualgenError(f"{manifest}: {len(real_masks)} BMQ training patch(es): fidelity needs at least 2 "
                           "(raise datasets.big_train)")
    profiles = {f"real__{k}": v for k, v in fidelity.profile(real_images, real_masks, n).items()}
    tables, memo = [], []
    for v in s["variants"]:
        ids, images, masks = datasets.read_pool(paths[v["name"]])
        if not ids:
            raise DualgenError(f"{paths[v['name']]}: no synthetic pairs in pool.csv: rerun its postprocess step")
        if images.shape[1:] != real_images.shape[1:]:
            raise DualgenError(f"{paths[v['name']]}: synthetic pairs of shape {images.shape[1:]} but real patches of "
                               f"{real_images.shape[1:]}: the pool is from another study; rerun its steps")
        print(f"variant {v['name']}: {len(ids)} synthetic pairs vs {len(real_masks)} real training patches", flush=True)
        table = fidelity.compare(real_images, real_masks, images, masks, names, seed=fs["seed"],
                                 n_splits=fs["n_splits"], variant=v["name"])
        table.insert(1, "kind", v["kind"])
        table.insert(2, "temperature", float(v["temperature"]))
        table.insert(3, "pool", bool(v["pool"]))
        table.insert(4, "n_synthetic", len(ids))
        tables.append(table)
        m = fidelity.memorisation((images, masks), (real_images, real_masks), (val_images, val_masks), n) \
            if len(val_masks) else {k: float("nan") for k in ("share_closer", "threshold", "novel_lo", "novel_hi",
                                                               "novel_limit", "synth_median", "val_median")}
        memo.append({"variant": v["name"], "n_synthetic": len(ids), "n_train": len(real_masks),
                     "n_val": len(val_masks), **m})
        profiles.update({f"{v['name']}__{k}": a for k, a in fidelity.profile(images, masks, n).items()})
        print(f"  {fidelity.summary(table)['line']}; memorisation share {m['share_closer']:.3f}", flush=True)
    table = pd.concat(tables, ignore_index=True)
    worst = fidelity.worst_by_family(table)
    novel = [v for v in worst if not fidelity.copies_more_than_real(memo_of(memo, v))] or list(worst)
    closest = min(novel, key=lambda name: max((worst[name][f]["ratio"] for f in fidelity.TARGET_FAMILIES
                                               if not np.isnan(worst[name][f]["ratio"])), default=0.0))
    pool = next(v["name"] for v in s["variants"] if v["pool"])
    reference, extra_ref = second_real_sample(args.patches, manifest, real_images, real_masks, names, fs)
    summaries = {name: fidelity.summary(table[table["variant"] == name]) for name in worst}
    extra = {"pool_variant": pool, "closest_variant": closest, "variants": s["variants"],
             "worst_by_family": worst, "worst": {k: {x: v[x] for x in ("worst_ratio", "worst_class",
                                                                        "worst_statistic", "line")}
                                                 for k, v in summaries.items()},
             "memorisation": {r["variant"]: r for r in memo}, "n_real": len(real_masks), "n_real_val": len(val_masks),
             "label_agreement_hq_vs_lq": label_agreement(args.patches, n), "reference": extra_ref}
    print(f"pool ({pool}): {summaries[pool]['line']}; closest to real data on phase fraction, S2 and chords: "
          f"{closest}", flush=True)
    inputs = [manifest, Path(args.patches) / "patches.csv"] + [paths[v["name"]] / "pool.csv" for v in s["variants"]]
    with artifacts.artifact_dir(args.out, "fidelity", s, fs["seed"], inputs, extra) as tmp:
        table.to_csv(tmp / "fidelity.csv", index=False)
        reference.to_csv(tmp / "reference.csv", index=False)
        pd.DataFrame(memo).to_csv(tmp / "memorisation.csv", index=False)
        np.savez(tmp / "profiles.npz", **profiles)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=PATH: a variant's cleaned synthetic pairs (a postprocess output); repeat")
    p.add_argument("--out", required=True)
    cli.run(main, p)
