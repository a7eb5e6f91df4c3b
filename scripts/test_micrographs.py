#!/usr/bin/env python
"""The study's test micrographs whole, for the whole-image scores: each prepared as ingest prepared it (the info
band the patches step cut, data.scale, the set's channel count: patches.prepare_image) with its truth at the
original resolution (the HQ mask, else the mask).

Writes OUT/images/<name>.png (what the network sees), OUT/truth/<name>.png (class ids), OUT/micrographs.csv
(name, original height and width, rows cut), meta.json.
"""

from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import micrographs


def main(args):
    s = cli.settings(args)
    manifest = pd.read_csv(Path(args.datasets) / "SHQ.csv")
    table = pd.read_csv(Path(args.patches) / "patches.csv").set_index("patch_id")
    test_ids = manifest.loc[manifest["split"] == "test", "patch_id"]
    names = list(dict.fromkeys(str(table.loc[i, "source"]) for i in test_ids))
    sources = pd.read_csv(Path(args.patches) / "sources.csv")
    found = micrographs.test_micrographs(s["data"], s["classes"], names, sources)
    if not found:
        raise DualgenError(f"{args.datasets}: no test micrograph with a mask to score whole")
    for m in found:
        print(f"{m.name}: {m.size[1]}x{m.size[0]} px, seen at {m.image.shape[1]}x{m.image.shape[0]}", flush=True)
    inputs = [Path(args.datasets) / "SHQ.csv", Path(args.patches) / "sources.csv"]
    with artifacts.artifact_dir(args.out, "test_micrographs", s, None, inputs, {"micrographs": names}) as tmp:
        micrographs.write_test(found, tmp)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
