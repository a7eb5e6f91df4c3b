#!/usr/bin/env python
"""Benchmark: the real-only U-Net on the SEM demo (presets/sem.yaml) under today's training defaults and with the
rare-class and budget levers, side by side.

Each arm is one Snakemake run of the SEM preset restricted to the real-only mix BMQ_000 (mixes.levels [0], no
synthetic, augmentation, balanced or pretrain arms; the generator is not run), in its own folder under --out
(default bench/out/sem_levers/<arm>), target results/<study>/study. Arms (config unet over the preset):
  today     updates 200, plateau learning rate, unweighted loss, uniform sampling (config.yaml's defaults)
  auto      updates auto (the calibrated budget), cosine schedule
  weighted  auto + class_weights auto
  balanced  auto + class_weights auto + sampling balanced
  wide      balanced + a 4x wider decoder (decoder_filters 256, 128, 64, 32; the default is 64, 32, 16, 8)
  deep      wide + resnet18's last stage (encoder_depth 5; the paper's decoder 256, 128, 64, 32, 16)
  context   balanced on 128-px patches of the same micrographs (4x the field of view per patch)
  wide_context  wide on 128-px patches
  lab       wide (presets/lab.yaml's U-Net) on every labelled patch, as a lab runs it: data.splits lists (train
            demo_00..06, val demo_07, test demo_08..11) with datasets.fit_to_data (the README's own-data recipe)
  today_lab today's defaults on the lab arm's data (the same patches)
Scores every seed's test segmentation as one whole test set (one confusion matrix over all test patches: the
test micrographs demo_08..11 whole), and prints per arm and seed: mIoU, per-class IoU, the budget trained and the
wall time. Last line: `sem levers: BMQ_000 mIoU today <a> -> <arm> <b> (+<d>); min class IoU over seeds <m>`
for the best arm by mean mIoU.
Usage: python bench/sem_levers.py [--arms today,auto,weighted,balanced,wide,deep,context,...] [--cores 2] [--out DIR]
       [--cap 1000]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
REAL_ONLY = {
    "mixes": {"bases": ["BMQ"], "levels": [0], "synthetic": [], "augmentation": [], "balanced": [], "pretrain": []},
    "report": {"overlay_mixes": ["BMQ_000"]},
}
AUTO = {"updates": "auto", "lr_schedule": "cosine"}
ARMS = {
    "today": {},
    "auto": AUTO,
    "weighted": AUTO | {"class_weights": "auto"},
    "balanced": AUTO | {"class_weights": "auto", "sampling": "balanced"},
    "wide": AUTO | {"class_weights": "auto", "sampling": "balanced", "decoder_filters": [256, 128, 64, 32]},
    "deep": AUTO
    | {"class_weights": "auto", "sampling": "balanced", "encoder_depth": 5, "decoder_filters": [256, 128, 64, 32, 16]},
}
# arms that change more than the U-Net: the patches (a larger window over the same micrographs)
CONTEXT = {"patches": {"size": 128, "stride": 128}, "datasets": {"test": 64}}  # 4 x 16 test patches
LAB_SPLITS = {
    "train": [f"demo_{i:02d}" for i in range(7)],
    "val": ["demo_07"],
    "test": [f"demo_{i:02d}" for i in range(8, 12)],
}
LAB_DATA = {
    "data": {"splits": {k: f"{k}.txt" for k in LAB_SPLITS}},
    "datasets": {"fit_to_data": True},
}
ARM_CONFIG = {"context": CONTEXT, "wide_context": CONTEXT, "lab": LAB_DATA, "today_lab": LAB_DATA}
ARMS["context"] = ARMS["balanced"]
ARMS["wide_context"] = ARMS["wide"]
ARMS["lab"] = ARMS["wide"]
ARMS["today_lab"] = ARMS["today"]


def run_arm(name, out, cores, cap):
    """Snakemake on the SEM preset + this arm's overlay; returns (results folder, wall seconds)."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((REPO / "config.yaml").read_text())["unet"]
    unet = base | ARMS[name]
    if unet["updates"] == "auto":
        unet["calibration"] = base["calibration"] | {"cap": cap}
    overlay = dict(REAL_ONLY, study=f"sem_{name}", unet=unet) | ARM_CONFIG.get(name, {})
    if "splits" in overlay.get("data", {}):
        for split, names in LAB_SPLITS.items():
            (folder / f"{split}.txt").write_text("\n".join(names) + "\n")
    (folder / "arm.yaml").write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(folder)]
    cmd += ["--cores", str(cores), "--configfile", str(REPO / "presets" / "sem.yaml"), str(folder / "arm.yaml")]
    cmd += ["--", f"results/sem_{name}/study"]
    t0 = time.perf_counter()
    with open(folder / "snakemake.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    if proc.returncode != 0:
        raise SystemExit(f"bench: arm {name} failed: see {folder / 'snakemake.log'}")
    return folder / "results" / f"sem_{name}", time.perf_counter() - t0


def score(results, class_names):
    """{seed: (mIoU, per-class IoU, updates trained)} of BMQ_000 over the whole test set."""
    from dualgen.segment import evaluation, metrics

    ids, masks, _ = evaluation.test_set(results / "patches", results / "datasets")
    order = {p: i for i, p in enumerate(ids)}
    out = {}
    for seed_dir in sorted((results / "unet" / "BMQ_000").glob("seeds*/seed*")):
        pred = np.load(seed_dir / evaluation.PREDICTIONS, allow_pickle=False)
        y_pred = pred["pred"][[order[str(p)] for p in pred["ids"]]] if len(pred["ids"]) else pred["pred"]
        y_true = masks[[order[str(p)] for p in pred["ids"]]]
        cm = metrics.confusion(y_true, y_pred, len(class_names))
        iou = metrics.ious(cm)
        meta = json.loads((seed_dir / "meta.json").read_text())
        seed = int(seed_dir.name.removeprefix("seed"))
        out[seed] = (float(np.nanmean(iou)), dict(zip(class_names, map(float, iou))), meta["updates"])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "sem_levers"))
    p.add_argument("--cap", type=int, default=1000, help="unet.calibration.cap for the auto arms")
    args = p.parse_args()
    arms = args.arms.split(",")
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"bench: unknown arm {unknown[0]} (arms: {', '.join(ARMS)})")
    names = [c["name"] for c in yaml.safe_load((REPO / "presets" / "sem.yaml").read_text())["classes"]]
    out = Path(args.out)
    summary = {}
    print(f"{'arm':9s} {'seed':>4s} {'updates':>7s} {'mIoU':>6s} " + " ".join(f"{n[:11]:>11s}" for n in names))
    for arm in arms:
        results, wall = run_arm(arm, out, args.cores, args.cap)
        per_seed = score(results, names)
        for seed, (miou, iou, updates) in per_seed.items():
            cells = " ".join(f"{iou[n]:11.3f}" for n in names)
            print(f"{arm:9s} {seed:4d} {updates:7d} {miou:6.3f} {cells}", flush=True)
        mean = float(np.mean([v[0] for v in per_seed.values()]))
        low = min(min(v[1].values()) for v in per_seed.values())
        summary[arm] = (mean, low)
        print(f"{arm:9s} mean mIoU {mean:.3f}, lowest class IoU over seeds {low:.3f}, wall {wall / 60:.1f} min")
    best = max(summary, key=lambda a: summary[a][0])
    if "today" in summary:
        today = summary["today"][0]
        print(
            f"sem levers: BMQ_000 mIoU today {today:.3f} -> {best} {summary[best][0]:.3f} "
            f"({summary[best][0] - today:+.3f}); min class IoU over seeds {summary[best][1]:.3f}"
        )
    else:
        print(
            f"sem levers: BMQ_000 mIoU {best} {summary[best][0]:.3f}; min class IoU over seeds {summary[best][1]:.3f}"
        )


if __name__ == "__main__":
    main()
