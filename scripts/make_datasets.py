#!/usr/bin/env python
"""Split the patches into the paper's base datasets SHQ, SLQ, BLQ, BMQ (train/val) and the HQ test set.

Writes OUT/<SET>.csv manifests (patch_id, split, mask = hq|lq), OUT/sizes.json, OUT/preview.png, meta.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, datasets, plots  # noqa: E402


def main(args):
    s = cli.settings(args)
    ds = s["datasets"]
    table = pd.read_csv(Path(args.patches) / "patches.csv")
    sizes = {k: ds[k] for k in datasets.SIZE_KEYS}
    manifests, used = datasets.split(table, sizes, s.get("test_sources", []), ds.get("seed", 0), ds.get("fit_to_data", False))
    for name, m in manifests.items():
        counts = m["split"].value_counts().to_dict()
        print(f"{name}: {counts.get('train', 0)} train, {counts.get('val', 0)} val, {counts.get('test', 0)} test", flush=True)
    extra = {"sizes": used}
    with artifacts.artifact_dir(args.out, "datasets", s, ds.get("seed", 0), [Path(args.patches) / "patches.csv"], extra) as tmp:
        for name, m in manifests.items():
            m.to_csv(tmp / f"{name}.csv", index=False)
        artifacts.write_json(tmp / "sizes.json", used)
        rows = []
        for name, m in list(manifests.items()) + [("test", manifests["SHQ"])]:
            split = "test" if name == "test" else "train"
            _, images, masks = datasets.load(args.patches, m.head(len(m)), split)
            n = min(ds.get("preview", 4), len(images))
            rows.append(("test (HQ)" if name == "test" else f"{name} train", list(zip(images[:n], masks[:n]))))
        plots.pair_grid(rows, s["classes"], tmp / "preview.png", title="Base datasets: patches and masks")


if __name__ == "__main__":
    ap = cli.parser(__doc__)
    ap.add_argument("--patches", required=True, help="patches folder (results/<study>/patches)")
    ap.add_argument("--out", required=True, help="output folder (results/<study>/datasets)")
    cli.run(main, ap)
