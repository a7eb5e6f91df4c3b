#!/usr/bin/env python
"""Build one training mix (paper Tables 5 and 6): the base set's real training patches plus a nested prefix
of the synthetic pool; validation always real. The pretrain arm lists the same pairs (the synthetic ones are
used first, then the real ones). The real-only learning curve (SHQr<pct>) takes that many real HQ patches
(--patches: which have HQ masks); where the data has fewer, it takes all there are and says so (meta.json
"short": the aggregate step leaves such a size out of the curve). --settings: {"mix": the mix's fields}.
Writes OUT/manifest.csv (origin, id, split, mask), meta.json.
"""

import dataclasses
from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.segment import mixes


def main(args):
    s = cli.settings(args)
    try:
        mix = mixes.Mix(**s["mix"])
    except (KeyError, TypeError) as err:
        raise DualgenError(f"--settings: 'mix' is not a mix ({err}): the rule passes dataclasses.asdict(Mix)")
    bases = {b: pd.read_csv(Path(args.datasets) / f"{b}.csv") for b in datasets.BASES}
    pool = []
    if args.pool:
        pool = list(pd.read_csv(Path(args.pool) / "pool.csv")["synth_id"])
    extra = {"mix": dataclasses.asdict(mix)}
    if mix.real_only:
        has_hq = set(pd.read_csv(Path(args.patches) / "patches.csv").query("has_hq")["patch_id"])
        manifest, available = datasets.real_manifest(mix, bases, has_hq)
        if available < mix.n_real:
            extra["short"] = available
            print(f"{mix.name}: only {available} real HQ training patches, not {mix.n_real}: left out of the curve")
    else:
        manifest = datasets.mix_manifest(mix, bases, pool)
    counts = manifest.groupby(["split", "origin"]).size().to_dict()
    print(f"{mix.name}: {counts}", flush=True)
    extra["counts"] = {f"{a}_{b}": int(n) for (a, b), n in counts.items()}
    inputs = [Path(args.datasets) / f"{b}.csv" for b in datasets.BASES] + (
        [Path(args.pool) / "pool.csv"] if args.pool else []
    )
    with artifacts.artifact_dir(args.out, "build_mix", s, None, inputs, extra) as tmp:
        manifest.to_csv(tmp / "manifest.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--datasets", required=True)
    p.add_argument("--pool", default=None, help="the postprocess step's folder (synthetic pool); not needed for 0 %%")
    p.add_argument("--patches", default=None, help="the patches step's folder (the real-only curve's HQ patches)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
