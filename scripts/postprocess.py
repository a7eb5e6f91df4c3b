#!/usr/bin/env python
"""Clean the raw synthetic masks as the paper did (step 7, Fig. 11): k-means on the mask values into as many
clusters as classes, clusters mapped to the nearest class level, then objects smaller than min_object_px
(200 px at 256 px patches, scaled with the patch area) filled from the neighbouring class.
Writes OUT/images (the synthetic micrographs), OUT/masks (class ids), OUT/pool.csv, cleaning.png, meta.json.
"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, io, plots, postprocess  # noqa: E402


def main(args):
    s = cli.settings(args)
    pp, classes = s["postprocess"], s["classes"]
    raw_dir = Path(args.raw)
    raws = np.load(raw_dir / "raw_masks.npy", allow_pickle=False)
    n = len(classes)
    min_px = postprocess.scaled_min_object_px(pp["min_object_px"], raws.shape[1])
    print(f"cleaning {len(raws)} masks: k-means into {n} classes, objects < {min_px} px filled "
          f"({pp['min_object_px']} px at 256 px, scaled to {raws.shape[1]} px patches)", flush=True)
    kmeans, cleaned = [], []
    for i, raw in enumerate(raws):
        k, c = postprocess.clean_mask(raw, n, min_px, pp["seed"] + i)
        kmeans.append(k)
        cleaned.append(c)
        if (i + 1) % 25 == 0 or i + 1 == len(raws):
            print(f"cleaned {i + 1}/{len(raws)}", flush=True)
    names = sorted(p.name for p in (raw_dir / "images").glob("synth_*.png"))
    fractions = np.stack([np.bincount(c.ravel(), minlength=n) / c.size for c in cleaned])
    table = pd.DataFrame({"synth_id": [Path(nm).stem for nm in names]})
    for k in range(n):
        table[f"frac_{k}"] = fractions[:, k]
    changed = float(np.mean([np.mean(a != b) for a, b in zip(kmeans, cleaned)]))
    extra = {"n": len(raws), "min_object_px_at_256": pp["min_object_px"], "min_object_px": min_px,
             "patch_size": int(raws.shape[1]), "fraction_changed_by_small_object_removal": changed,
             "class_fractions": {c["name"]: float(fractions[:, k].mean()) for k, c in enumerate(classes)}}
    with artifacts.artifact_dir(args.out, "postprocess", s, pp["seed"], [raw_dir / "raw_masks.npy"], extra) as tmp:
        shutil.copytree(raw_dir / "images", tmp / "images")
        (tmp / "masks").mkdir()
        for name, c in zip(names, cleaned):
            io.write_png(tmp / "masks" / name, c)
        table.to_csv(tmp / "pool.csv", index=False)
        figure(raw_dir, names, raws, kmeans, cleaned, classes, tmp / "cleaning.png")


def figure(raw_dir, names, raws, kmeans, cleaned, classes, path, n=4):
    import matplotlib.pyplot as plt

    n = min(n, len(names))
    fig, axes = plt.subplots(n, 4, figsize=(7.5, 1.9 * n), squeeze=False)
    for r in range(n):
        plots.show_image(axes[r, 0], io.read_png(raw_dir / "images" / names[r]), "synthetic micrograph" if r == 0 else None)
        axes[r, 1].imshow(raws[r], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[r, 2].imshow(plots.colorize(kmeans[r], classes), interpolation="nearest")
        axes[r, 3].imshow(plots.colorize(cleaned[r], classes), interpolation="nearest")
        for ax, title in zip(axes[r, 1:], ("raw mask", "k-means", "small objects filled")):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("Mask post-processing (paper Fig. 11)", fontsize=10)
    plots.legend(fig, classes)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    plots.save(fig, path)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--raw", required=True, help="the decode step's folder")
    p.add_argument("--out", required=True)
    cli.run(main, p)
