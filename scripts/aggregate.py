#!/usr/bin/env python
"""Collect every mix's test metrics into metrics.csv (one row per mix) and draw the paper's figures:
accuracy, mIoU and Missing Class IoU against % synthetic data (Figs. 15-17), the same per class (Fig. 19)
and prediction overlays on test images for chosen mixes (Figs. 18, 21).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, datasets, mixes, plots  # noqa: E402

METRICS = (("accuracy", "Accuracy", "15"), ("miou", "mIoU", "16"), ("missing_class_iou", "Missing Class IoU", "17"))
BASE_COLORS = {"SHQ": "tab:green", "SLQ": "tab:olive", "BLQ": "tab:orange", "BMQ": "tab:blue",
               "SyntLQ": "tab:red", "SyntMQ": "tab:purple"}


def main(args):
    s = cli.settings(args)
    classes = s["classes"]
    all_mixes = mixes.enumerate_mixes(s["mixes"], s["datasets"])
    rows = []
    for mix in all_mixes:
        m = artifacts.read_json(Path(args.metrics) / mix.name / "metrics.json")
        row = {"mix": mix.name, "base": mix.base, "percent": mix.percent, "n_real": mix.n_real, "n_synth": mix.n_synth,
               "augmented": mix.augment}
        row.update({k: v for k, v in m["summary"].items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    for key, label, _ in METRICS:
        best = table.loc[table[key].idxmax()]
        print(f"best {label}: {best['mix']} {best[key]:.4f}", flush=True)
    inputs = [Path(args.metrics) / m.name / "metrics.json" for m in all_mixes]
    with artifacts.artifact_dir(args.out, "aggregate", s, None, inputs, {"n_mixes": len(table)}) as tmp:
        table.to_csv(tmp / "metrics.csv", index=False)
        for key, label, fig_no in METRICS:
            metric_figure(table, key, label, fig_no, s["datasets"]["big_train"], tmp / f"{key}.png")
        per_class_figure(table, classes, s["datasets"]["big_train"], tmp / "per_class.png")
        overlays = [m for m in s["overlay_mixes"] if m in set(table["mix"])]
        if overlays:
            overlay_figure(args, overlays, classes, s["overlay_images"], tmp / "overlays.png")


def _series(table):
    for base, part in table[~table["augmented"]].groupby("base", sort=False):
        yield base, part.sort_values("percent")


def _draw(ax, table, key, big_train, legend=True):
    top = None
    for base, part in _series(table):
        color = BASE_COLORS.get(base)
        if base in mixes.SYNTHETIC:
            ax.plot(part["percent"], part[key], "s--", color=color, label=f"{base} (synthetic only)", ms=4)
        else:
            ax.plot(part["percent"], part[key], "o-", color=color, label=base, ms=4)
            zero = part[part["percent"] == 0]
            if len(zero):
                ax.axhline(float(zero[key].iloc[0]), color=color, ls=":", lw=1)
    aug = table[table["augmented"]]
    if len(aug):
        ax.axhline(float(aug[key].iloc[0]), color="black", ls="-.", lw=1, label="BMQ_aug (augmentation)")
    if (table["base"].isin(list(mixes.SYNTHETIC))).any():
        top = ax.secondary_xaxis("top", functions=(lambda p: p * big_train / 100, lambda n: n * 100 / big_train))
        top.set_xlabel("synthetic images in SyntLQ / SyntMQ", fontsize=8)
    ax.set_xlabel("synthetic data (% of the base training size)")
    if legend:
        ax.legend(fontsize=7, ncol=2)
    return top


def metric_figure(table, key, label, fig_no, big_train, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    _draw(ax, table, key, big_train)
    ax.set_ylabel(label)
    ax.set_title(f"{label} on the real test set vs synthetic data (paper Fig. {fig_no}); dotted: 0 % value", fontsize=9)
    fig.tight_layout()
    plots.save(fig, path)


def per_class_figure(table, classes, big_train, path):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.8), squeeze=False)
    for k, (ax, cls) in enumerate(zip(axes[0], classes)):
        _draw(ax, table, f"iou_{k}", big_train, legend=(k == 0))
        ax.set_title(f"{cls['name']}", fontsize=9)
        ax.set_ylabel("Missing Class IoU of the class")
    fig.suptitle("Missing Class IoU per class vs synthetic data (paper Fig. 19)", fontsize=10)
    fig.tight_layout()
    plots.save(fig, path)


def overlay(image, mask, classes, alpha=0.45):
    rgb = plots.as_rgb(image)
    rgb = np.repeat(rgb[..., None], 3, -1) if rgb.ndim == 2 else rgb
    return (rgb * (1 - alpha) + plots.colorize(mask, classes) * alpha).astype(np.uint8)


def overlay_figure(args, names, classes, n_images, path):
    import matplotlib.pyplot as plt

    ids, images, masks = datasets.load(args.patches, Path(args.datasets) / "SHQ.csv", "test")
    preds = {m: np.load(Path(args.metrics) / m / "predictions.npy", allow_pickle=False) for m in names}
    picks = range(min(n_images, len(ids)))
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.1 * cols, 2.2 * len(picks) + 0.6), squeeze=False)
    for r, i in enumerate(picks):
        panels = [("test image", plots.as_rgb(images[i])), ("ground truth", overlay(images[i], masks[i], classes))]
        panels += [(m, overlay(images[i], preds[m][i], classes)) for m in names]
        for c, (title, img) in enumerate(panels):
            plots.show_image(axes[r, c], img, title if r == 0 else None)
    fig.suptitle("Segmentations of test images (paper Figs. 18, 21)", fontsize=10)
    plots.legend(fig, classes)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    plots.save(fig, path)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--metrics", required=True, help="folder with one evaluate output per mix")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
