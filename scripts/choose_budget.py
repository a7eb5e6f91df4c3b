#!/usr/bin/env python
"""One U-Net budget for every mix of the study (config unet.updates: auto), from the calibration curves of every
base (calibrate_budget): the plateau of each seed's validation curve, the largest over bases and seeds times
unet.calibration.margin, rounded up to whole validation periods (unet.validate_every), at most the cap
(dualgen.segment.budget). Writes OUT/budget.json (updates, and the plateau of every curve), curves.csv (every
calibration curve, with its smoothed running best) and meta.json (what the calibration cost). The trainings of the
study read budget.json.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.segment import budget


def main(args):
    s = cli.settings(args)
    c = s["calibration"]
    tables, seconds, train_seconds = [], {}, 0.0
    for folder in map(Path, args.calibrations):
        path = folder / budget.CURVES_FILE
        if not path.exists():
            raise DualgenError(f"{path}: no such file: run calibrate_budget for this base first")
        tables.append(pd.read_csv(path))
        meta = artifacts.read_json(folder / "meta.json")
        seconds[meta["base"]] = meta["seconds"]
        train_seconds += sum(meta["train_seconds"].values())
    table = pd.concat(tables, ignore_index=True)
    curves = {
        base: {seed: (g["updates"].to_numpy(), g[budget.MONITOR].to_numpy()) for seed, g in rows.groupby("seed")}
        for base, rows in table.groupby("base", sort=False)
    }
    keys = dict(window=c["smooth"], min_delta=c["min_delta"], patience=c["patience"])
    result = budget.calibrate(curves, **keys, margin=c["margin"], round_to=s["round_to"], cap=c["cap"])
    table["smoothed_best"] = float("nan")
    for (base, seed), rows in table.groupby(["base", "seed"], sort=False):
        best = np.maximum.accumulate(budget.smooth(rows[budget.MONITOR], c["smooth"]))
        table.loc[rows.index, "smoothed_best"] = best
    for base, b in result["per_base"].items():
        points = ", ".join(
            f"seed {k}: {r['point']}{'' if r['converged'] else ' (not converged)'}" for k, r in b["seeds"].items()
        )
        print(f"{base}: plateau after {points} updates", flush=True)
    print(
        f"budget: {result['updates']} updates (largest plateau {result['largest_point']} x {c['margin']}, "
        f"multiple of {s['round_to']}, cap {c['cap']})",
        flush=True,
    )
    if not result["converged"]:
        print(
            "warning: a calibration curve still rises at the cap: the budget is the cap; raise "
            "unet.calibration.cap to see its plateau",
            flush=True,
        )
    cost = {"seconds_per_base": seconds, "seconds": sum(seconds.values()), "train_seconds": train_seconds}
    inputs = [Path(f) / budget.CURVES_FILE for f in args.calibrations]
    with artifacts.artifact_dir(args.out, "choose_budget", s, None, inputs, {"cost": cost} | result) as tmp:
        artifacts.write_json(tmp / budget.BUDGET_FILE, result | {"cost": cost})
        table.to_csv(tmp / budget.CURVES_FILE, index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--calibrations", nargs="+", required=True, help="the calibrate_budget folders, one per base")
    p.add_argument("--out", required=True)
    cli.run(main, p)
