#!/usr/bin/env python
"""Split the patches into the paper's base datasets SHQ, SLQ, BLQ, BMQ (train/val) and the HQ test set.

Test images: data.test_sources, or the list files of data.splits (train / val / test: image names, one per
line). Writes OUT/<SET>.csv manifests (patch_id, split, mask = hq|lq), OUT/sizes.json, OUT/class_shares.csv
(pixel share of every class in every split), meta.json; a warning line for a class absent from a validation
or test split (the preview and class-share figures: scripts/figure.py datasets).
"""

import sys
from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.data import datasets


def main(args):
    s = cli.settings(args)
    ds = s["datasets"]
    patches_dir = Path(args.patches)
    table = pd.read_csv(patches_dir / "patches.csv")
    splits = {k: v for k, v in (s.get("splits") or {}).items() if v}
    lists = {}
    if splits:
        known = (
            pd.read_csv(patches_dir / "sources.csv")["source"]
            if (patches_dir / "sources.csv").exists()
            else table["source"]
        ).astype(str)
        lists = datasets.read_split_lists(splits, known)
        if s.get("test_sources"):
            print(
                f"data.test_sources ({', '.join(s['test_sources'])}) ignored: data.splits gives the test images",
                flush=True,
            )
        for name, names in lists.items():
            print(f"data.splits.{name}: {len(names)} image(s)", flush=True)
    sizes = {k: ds[k] for k in datasets.SIZE_KEYS}
    manifests, used = datasets.split(
        table, sizes, [] if lists else s.get("test_sources") or [], ds["seed"], ds["fit_to_data"], lists=lists
    )
    for name, m in manifests.items():
        counts = m["split"].value_counts().to_dict()
        print(
            f"{name}: {counts.get('train', 0)} train, {counts.get('val', 0)} val, {counts.get('test', 0)} test",
            flush=True,
        )
    names = [c["name"] for c in s["classes"]]
    shares = datasets.class_shares(manifests, table, names)
    absent = datasets.absent_classes(shares, names)
    for cls, where in absent.items():
        print(
            f"dualgen: warning: class '{cls}' is absent from {', '.join(where)}: its IoU there is undefined; add "
            "images that show it, list them in data.splits, or keep its patches with patches.keep_rare",
            file=sys.stderr,
            flush=True,
        )
    extra = {"sizes": used, "absent_classes": absent, "lists": {k: len(v) for k, v in lists.items()}}
    inputs = [patches_dir / "patches.csv"] + [Path(p) for p in splits.values()]
    with artifacts.artifact_dir(args.out, "datasets", s, ds["seed"], inputs, extra) as tmp:
        for name, m in manifests.items():
            m.to_csv(tmp / f"{name}.csv", index=False)
        artifacts.write_json(tmp / "sizes.json", used)
        shares.to_csv(tmp / "class_shares.csv", index=False, float_format="%.6g")


if __name__ == "__main__":
    ap = cli.parser(__doc__)
    ap.add_argument("--patches", required=True, help="patches folder (results/<study>/patches)")
    ap.add_argument("--out", required=True, help="output folder (results/<study>/datasets)")
    cli.run(main, ap)
