#!/usr/bin/env python
"""Build one training mix (paper Tables 5 and 6): the base set's real training patches plus a nested prefix
of the synthetic pool; validation always real. Writes OUT/manifest.csv (origin, id, split, mask), meta.json.
"""
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, datasets, mixes  # noqa: E402


def main(args):
    s = cli.settings(args)
    mix = mixes.get_mix(args.mix, s["mixes"], s["datasets"])
    bases = {b: pd.read_csv(Path(args.datasets) / f"{b}.csv") for b in datasets.BASES}
    pool = []
    if args.pool:
        pool = list(pd.read_csv(Path(args.pool) / "pool.csv")["synth_id"])
    manifest = datasets.mix_manifest(mix, bases, pool)
    counts = manifest.groupby(["split", "origin"]).size().to_dict()
    print(f"{mix.name}: {counts}", flush=True)
    extra = {"mix": dataclasses.asdict(mix), "counts": {f"{a}_{b}": int(n) for (a, b), n in counts.items()}}
    inputs = [Path(args.datasets) / f"{b}.csv" for b in datasets.BASES] + ([Path(args.pool) / "pool.csv"] if args.pool else [])
    with artifacts.artifact_dir(args.out, "build_mix", s, None, inputs, extra) as tmp:
        manifest.to_csv(tmp / "manifest.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--mix", required=True, help="mix name, e.g. BMQ_100, SyntMQ_050, BMQ_aug")
    p.add_argument("--datasets", required=True)
    p.add_argument("--pool", default=None, help="the postprocess step's folder (synthetic pool); not needed for 0 %%")
    p.add_argument("--out", required=True)
    cli.run(main, p)
