#!/usr/bin/env python
"""Does the conditioned prior obey? Requested vs achieved class fractions of the cleaned synthetic masks, per class
(dualgen.generate.conditioning.obedience), for the conditioned prior asked for real patches' fractions ("data") and for
sample.targets ("balanced"), against the unconditioned study pool paired with the same "data" requests (what comes
out when nobody asks: its correlation is the no-control reference). The figure: scripts/figure.py conditioning.
Writes OUT/conditioning.csv (pool, class, n, mean_requested, mean_achieved, corr, mae), OUT/pairs.csv (pool, grid,
class, requested, achieved), meta.json.
"""

from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.generate import conditioning

POOLS = {
    "data": "conditioned, real patches' fractions requested",
    "balanced": "conditioned, sample.targets requested",
    "unconditioned": "unconditioned study pool (the same requests, not given to it)",
}


def achieved(pool_dir, names, n=None):
    """(n, K) class fractions of a cleaned pool's masks, in pool.csv order."""
    return datasets.pool_fractions(pool_dir, len(names))[:n]


def requested(codes_dir, names):
    path = Path(codes_dir) / "targets.csv"
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise DualgenError(
            f"{path}: missing: {codes_dir} was not sampled from a conditioned prior (rerun sample_conditioned)"
        )
    return table[[f"req_{n}" for n in names]].to_numpy()


def main(args):
    s = cli.settings(args)
    names = [c["name"] for c in s["classes"]]
    req_data = requested(args.data_codes, names)
    pools = {
        "data": (req_data, achieved(args.data, names)),
        "balanced": (requested(args.balanced_codes, names), achieved(args.balanced, names)),
    }
    if args.reference:
        ref = achieved(args.reference, names, len(req_data))
        pools["unconditioned"] = (req_data[: len(ref)], ref)
    tables, pairs = [], []
    for pool, (req, ach) in pools.items():
        table = conditioning.obedience(req, ach, names)
        table.insert(0, "pool", pool)
        tables.append(table)
        for k, name in enumerate(names):
            pairs.append(
                pd.DataFrame(
                    {
                        "pool": pool,
                        "grid": range(len(req)),
                        "class": name,
                        "requested": req[:, k],
                        "achieved": ach[:, k],
                    }
                )
            )
        for r in table.to_dict("records"):
            print(
                f"{pool:13s} {r['class']:10s} requested {r['mean_requested']:.3f} achieved {r['mean_achieved']:.3f} "
                f"r {r['corr']:+.2f} MAE {r['mae']:.3f}",
                flush=True,
            )
    table = pd.concat(tables, ignore_index=True)
    extra = {
        "pools": {p: POOLS[p] for p in pools},
        "summary": {
            p: {
                r["class"]: {
                    "corr": r["corr"],
                    "mae": r["mae"],
                    "mean_requested": r["mean_requested"],
                    "mean_achieved": r["mean_achieved"],
                }
                for r in table[table["pool"] == p].to_dict("records")
            }
            for p in pools
        },
    }
    inputs = [
        Path(args.data_codes) / "targets.csv",
        Path(args.balanced_codes) / "targets.csv",
        Path(args.data) / "pool.csv",
        Path(args.balanced) / "pool.csv",
    ]
    with artifacts.artifact_dir(args.out, "conditioning", s, None, inputs, extra) as tmp:
        table.to_csv(tmp / "conditioning.csv", index=False)
        pd.concat(pairs, ignore_index=True).to_csv(tmp / "pairs.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--data-codes", required=True, help="sample_conditioned's output for the 'data' targets")
    p.add_argument("--data", required=True, help="the cleaned pool of the 'data' targets")
    p.add_argument("--balanced-codes", required=True, help="sample_conditioned's output for sample.targets")
    p.add_argument("--balanced", required=True, help="the cleaned balanced pool")
    p.add_argument("--reference", default=None, help="the unconditioned study pool (synthetic/clean)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
