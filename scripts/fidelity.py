#!/usr/bin/env python
"""Generator fidelity: how close the cleaned synthetic pairs of each generator variant are to real ones.

Real data: the BMQ training patches (what the generator learned from). For each variant (a prior kind at a
sampling temperature; one of them is the study's pool) and each class: phase fraction, two-point correlation S2,
chord lengths along rows and columns, object sizes, boundary density and the pixel intensities of every channel
inside the class, each distance also as a ratio to the real-vs-real floor (dualgen.generate.fidelity.compare: two
disjoint halves of the real patches, the synthetic side drawn at the size of one half). Memorisation: each pair's
distance to its nearest BMQ training patch against the same distance of the real BMQ validation patches (the check
is about the training set, the bulk of what the generator saw). Reference for mask agreement: two real labelings of
the same patches (the HQ vs LQ masks, where patches have both). Reference for the ratios: a second real sample, the
test patches (other micrographs, which nothing trains on), scored against the BMQ training patches exactly as a
variant is; the floor halves share their micrographs, a second sample does not, so its ratios show what "as close
as new real data" reads.
Writes OUT/fidelity.csv (variant x class x statistic), OUT/reference.csv, OUT/memorisation.csv, OUT/profiles.npz
(the curves and histograms figure_fidelity draws: real__<stat> and <variant>__<stat>), meta.json (the worst ratio
of each family of statistics per variant, the pool's variant, the closest variant: fidelity.closest_variant, the
label agreement, the reference sample's worst ratios).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.generate import fidelity


def parse_variants(items, declared):
    paths = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise DualgenError(f"--variant {item}: expected NAME=PATH (a postprocess output folder)")
        paths[name] = Path(path)
    names = [v["name"] for v in declared]
    if set(paths) != set(names):
        raise DualgenError(
            f"--variant gives {', '.join(sorted(paths)) or 'none'} but the settings declare "
            f"{', '.join(names) or 'none'}: give one --variant NAME=PATH per declared variant"
        )
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
        raise DualgenError(
            f"{manifest}: {len(real_masks)} BMQ training patch(es): fidelity needs at least 2 "
            "(raise datasets.big_train)"
        )
    profiles = {f"real__{k}": v for k, v in fidelity.profile(real_images, real_masks, n).items()}
    tables, memo = [], []
    for v in s["variants"]:
        ids, images, masks = datasets.read_pool(paths[v["name"]])
        if not ids:
            raise DualgenError(f"{paths[v['name']]}: no synthetic pairs in pool.csv: rerun its postprocess step")
        if images.shape[1:] != real_images.shape[1:]:
            raise DualgenError(
                f"{paths[v['name']]}: synthetic pairs of shape {images.shape[1:]} but real patches of "
                f"{real_images.shape[1:]}: the pool is from another study; rerun its steps"
            )
        print(f"variant {v['name']}: {len(ids)} synthetic pairs vs {len(real_masks)} real training patches", flush=True)
        table, row, curves = fidelity.score_variant(
            v, images, masks, (real_images, real_masks), (val_images, val_masks), names, fs["seed"], fs["n_splits"]
        )
        tables.append(table)
        memo.append(row)
        profiles.update(curves)
        print(f"  {fidelity.summary(table)['line']}; memorisation share {row['share_closer']:.3f}", flush=True)
    table = pd.concat(tables, ignore_index=True)
    worst = fidelity.worst_by_family(table)
    closest = fidelity.closest_variant(worst, memo)
    pool = next(v["name"] for v in s["variants"] if v["pool"])
    _, test_images, test_masks = datasets.load(args.patches, manifest, "test")
    reference, extra_ref = fidelity.reference_sample(
        real_images, real_masks, test_images, test_masks, names, fs["seed"], fs["n_splits"]
    )
    if extra_ref is not None:
        print(f"reference, a second real sample ({extra_ref['n']} test patches): {extra_ref['line']}", flush=True)
    summaries = {name: fidelity.summary(table[table["variant"] == name]) for name in worst}
    extra = {
        "pool_variant": pool,
        "closest_variant": closest,
        "variants": s["variants"],
        "worst_by_family": worst,
        "worst": {
            k: {x: v[x] for x in ("worst_ratio", "worst_class", "worst_statistic", "line")}
            for k, v in summaries.items()
        },
        "memorisation": {r["variant"]: r for r in memo},
        "n_real": len(real_masks),
        "n_real_val": len(val_masks),
        "label_agreement_hq_vs_lq": fidelity.label_agreement(args.patches, n),
        "reference": extra_ref,
    }
    print(
        f"pool ({pool}): {summaries[pool]['line']}; closest to real data on phase fraction, S2 and chords: {closest}",
        flush=True,
    )
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
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=PATH: a variant's cleaned synthetic pairs (a postprocess output); repeat",
    )
    p.add_argument("--out", required=True)
    cli.run(main, p)
