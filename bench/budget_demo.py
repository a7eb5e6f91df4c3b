#!/usr/bin/env python
"""Benchmark: the default demo's conclusions under the fixed budget (unet.updates 200) and the calibrated one
(unet.updates auto), side by side.

One folder (default bench/out/budget_demo), two Snakemake runs of the default config restricted to the paper's
four bases at 0 and 100 % synthetic data (mixes.levels [0, 100]; no pure-synthetic, augmentation, balanced or
pretrain arms; one prior, no conditioned priors): first with the fixed budget, then with `updates: auto` and the
cosine schedule (the generator and its pool are reused; only the calibration and the trainings run again).
Prints the comparisons rows (each <BASE>_100 against its <BASE>_000: mean difference of Missing Class IoU and
mIoU with the bootstrap interval and Holm p) before and after, the calibrated budget, and the wall time of each
run. Last line: `budget demo: <updates> updates; BMQ_100 - BMQ_000 MCIoU <before> -> <after>`.
Usage: python bench/budget_demo.py [--cores 2] [--out DIR] [--cap 1000]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
RESTRICT = {
    "study": "budget_demo",
    "mixes": {"levels": [0, 100], "synthetic": [], "augmentation": [], "balanced": [], "pretrain": []},
    "pixelcnn": {"compare": False, "condition": "none"},
    "report": {"overlay_mixes": ["BMQ_000", "BMQ_100"]},
}
ROWS = ["SHQ_100", "SLQ_100", "BLQ_100", "BMQ_100"]


def run(folder, overlay, cores):
    (folder / "arm.yaml").write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(folder)]
    cmd += ["--cores", str(cores), "--configfile", str(folder / "arm.yaml"), "--", "results/budget_demo/study"]
    t0 = time.perf_counter()
    with open(folder / "snakemake.log", "a") as log:
        if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder).returncode != 0:
            raise SystemExit(f"bench: a run failed: see {folder / 'snakemake.log'}")
    return time.perf_counter() - t0


def rows(path):
    table = pd.read_csv(path)
    table = table[table["mix"].isin(ROWS) & table["metric"].isin(["missing_class_iou", "miou"])]
    return table.set_index(["mix", "metric"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "bench" / "out" / "budget_demo"))
    p.add_argument("--cap", type=int, default=1000, help="unet.calibration.cap")
    args = p.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    study = folder / "results" / "budget_demo" / "study"
    before_s = run(folder, RESTRICT, args.cores)
    before = rows(study / "comparisons.csv")
    before.to_csv(folder / "comparisons_fixed.csv")
    unet = {"updates": "auto", "lr_schedule": "cosine", "calibration": {"cap": args.cap}}
    after_s = run(folder, RESTRICT | {"unet": unet}, args.cores)
    after = rows(study / "comparisons.csv")
    after.to_csv(folder / "comparisons_auto.csv")
    budget = json.loads((folder / "results" / "budget_demo" / "budget" / "budget.json").read_text())
    print(f"fixed budget: 200 updates, run {before_s / 60:.1f} min (generator included)")
    print(
        f"calibrated budget: {budget['updates']} updates (plateaus {budget['largest_point']} x {budget['margin']}), "
        f"calibration {budget['cost']['seconds'] / 60:.1f} min, run {after_s / 60:.1f} min"
    )
    print(f"{'mix':8s} {'metric':18s} {'fixed: diff [lo, hi] p_holm':>36s} {'auto: diff [lo, hi] p_holm':>36s}")
    for key in before.index:
        cells = []
        for t in (before, after):
            r = t.loc[key]
            cells.append(f"{r['mean_diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] {r['p_holm']:.2g}")
        print(f"{key[0]:8s} {key[1]:18s} {cells[0]:>36s} {cells[1]:>36s}")
    b, a = (t.loc[("BMQ_100", "missing_class_iou"), "mean_diff"] for t in (before, after))
    print(f"budget demo: {budget['updates']} updates; BMQ_100 - BMQ_000 MCIoU {b:+.3f} -> {a:+.3f}")


if __name__ == "__main__":
    main()
