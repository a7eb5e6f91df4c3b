#!/usr/bin/env python
"""Does the conditioned prior obey? Requested vs achieved class fractions of the cleaned synthetic masks, per class
(dualgen.generate.conditioning.obedience), for the conditioned prior asked for real patches' fractions ("data") and for
sample.targets ("balanced"), against the unconditioned study pool paired with the same "data" requests (what comes
out when nobody asks: its correlation is the no-control reference). The figure: scripts/figure.py conditioning.
Writes OUT/conditioning.csv (pool, class, n, mean_requested, mean_achieved, corr, mae), OUT/pairs.csv (pool, grid,
class, requested, achieved), meta.json.
"""

from pathlib import Path

from dualgen.core import artifacts, cli
from dualgen.data import datasets
from dualgen.generate import conditioning

POOLS = {
    "data": "conditioned, real patches' fractions requested",
    "balanced": "conditioned, sample.targets requested",
    "unconditioned": "unconditioned study pool (the same requests, not given to it)",
}


def main(args):
    s = cli.settings(args)
    names = [c["name"] for c in s["classes"]]
    req_data = conditioning.read_requests(args.data_codes, names)
    pools = {
        "data": (req_data, datasets.pool_fractions(args.data, len(names))),
        "balanced": (
            conditioning.read_requests(args.balanced_codes, names),
            datasets.pool_fractions(args.balanced, len(names)),
        ),
    }
    if args.reference:  # the unconditioned pool, paired in pool.csv order with the "data" requests
        ref = datasets.pool_fractions(args.reference, len(names))[: len(req_data)]
        pools["unconditioned"] = (req_data[: len(ref)], ref)
    table, pairs = conditioning.obedience_tables(pools, names)
    extra = {"pools": {p: POOLS[p] for p in pools}, "summary": conditioning.obedience_summary(table, pools)}
    inputs = [
        Path(args.data_codes) / "targets.csv",
        Path(args.balanced_codes) / "targets.csv",
        Path(args.data) / "pool.csv",
        Path(args.balanced) / "pool.csv",
    ]
    with artifacts.artifact_dir(args.out, "conditioning", s, None, inputs, extra) as tmp:
        table.to_csv(tmp / "conditioning.csv", index=False)
        pairs.to_csv(tmp / "pairs.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--data-codes", required=True, help="sample_conditioned's output for the 'data' targets")
    p.add_argument("--data", required=True, help="the cleaned pool of the 'data' targets")
    p.add_argument("--balanced-codes", required=True, help="sample_conditioned's output for sample.targets")
    p.add_argument("--balanced", required=True, help="the cleaned balanced pool")
    p.add_argument("--reference", default=None, help="the unconditioned study pool (synthetic/clean)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
