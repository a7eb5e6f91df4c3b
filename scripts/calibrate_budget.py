#!/usr/bin/env python
"""Calibration trainings of one base (config unet.updates: auto): its 0 % mix trained for every seed with the cap
(unet.calibration.cap updates, validated every unet.calibration.validate_every), with the study's U-Net settings
and the same training function (unet_train.train_unet) as the study's trainings. Keeps the validation curves, not
the models: OUT/curves.csv (history.csv of every seed, with a seed column) and meta.json (seconds per seed).
Resumable after a kill (--work: a folder per seed, kept until the last seed is written). The choose_budget step
turns the curves of every base into one budget (dualgen.segment.budget).
"""

import time
from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.data import datasets
from dualgen.segment import budget, mixes


def main(args):
    t0 = time.perf_counter()
    s = cli.settings(args)
    seeds = [int(k) for k in s["seeds"]]
    u, mix = s["unet"], mixes.Mix(**s["mix"])
    env.setup_tensorflow(args.threads, seeds[0], s["determinism"])
    from dualgen.segment import unet, unet_train

    manifest = pd.read_csv(Path(args.mix) / "manifest.csv")
    _, x_tr, y_tr = datasets.load_mix(manifest, args.patches, None, "train")
    _, x_va, y_va = datasets.load_mix(manifest, args.patches, None, "val")
    spec = unet.make_spec(u, len(s["classes"]), x_tr.shape[1:])
    print(
        f"{mix.name}: {len(x_tr)} training, {len(x_va)} validation images, {u['updates']} updates validated every "
        f"{u['validate_every']}, seeds {seeds}",
        flush=True,
    )
    curves, seconds = [], {}
    data, stop = (x_tr, y_tr, x_va, y_va), {"stop_patience": u["stop_patience"]}  # stop once the plateau holds
    trainings = unet_train.train_seeds(data, spec, s, seeds, args.work, args.checkpoint_every_s, extra=stop)
    for seed, _, _, result, work, _ in trainings:  # a 0 % mix of a base set: no augmentation, no pretraining
        curves.append(pd.read_csv(work / "history.csv").assign(seed=seed))
        seconds[str(seed)] = float(sum(result["seconds_per_period"]))
        print(
            f"{mix.name} seed {seed}: best {budget.MONITOR} {result['best_val_iou_score']:.4f} after "
            f"{result['best_updates']} updates, {seconds[str(seed)]:.0f} s",
            flush=True,
        )
    info = {
        "mix": mix.name,
        "base": mix.base,
        "n_train": len(x_tr),
        "n_val": len(x_va),
        "updates_per_seed": u["updates"],
        "train_seconds": seconds,
        "seconds": round(time.perf_counter() - t0, 3),  # the whole calibration of this base, TensorFlow's start
        "mixed_precision": spec["mixed_precision"],
    }
    inputs = [Path(args.mix) / "manifest.csv"]
    with artifacts.artifact_dir(args.out, "calibrate_budget", s, seeds, inputs, info) as tmp:
        table = pd.concat(curves, ignore_index=True)
        table.insert(0, "seed", table.pop("seed"))
        table.insert(0, "base", mix.base)
        table.to_csv(tmp / budget.CURVES_FILE, index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--mix", required=True, help="the build_mix folder of the base's 0 %% mix")
    p.add_argument("--patches", required=True)
    p.add_argument("--work", required=True, help="folder for resumable checkpoints")
    p.add_argument("--out", required=True)
    cli.add_checkpoint_every(p)
    cli.run(main, p)
