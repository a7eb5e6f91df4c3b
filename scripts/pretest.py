#!/usr/bin/env python
"""Quality pre-test of the synthetic pairs (paper step 8, made quantitative): segment the synthetic
micrographs with a model trained on real data only (BMQ_000) and measure how well its segmentation agrees
with the synthetic masks (Missing Class IoU per image and overall). Writes OUT/agreement.csv, pretest.png.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, env, io, metrics, plots, study  # noqa: E402


def main(args):
    s = cli.settings(args)
    classes = s["classes"]
    env.setup_tensorflow(args.threads, 0)
    from dualgen import unet

    model, umeta = study.load_unet(args.unet)
    pool = Path(args.pool)
    ids = list(pd.read_csv(pool / "pool.csv")["synth_id"])
    images = np.stack([io.read_png(pool / "images" / f"{i}.png") for i in ids])
    images = images[..., None] if images.ndim == 3 else images
    masks = np.stack([io.read_png(pool / "masks" / f"{i}.png") for i in ids])
    pred = unet.predict(model, images, encoder_weights=umeta["settings"]["unet"]["encoder_weights"])
    n = len(classes)
    rows = [dict(metrics.image_metrics(m, p, n), synth_id=i) for i, m, p in zip(ids, masks, pred)]
    table = pd.DataFrame(rows)
    overall = metrics.aggregate([{k: v for k, v in r.items() if k != "synth_id"} for r in rows])
    print(f"pre-test: Missing Class IoU of the {args.model_name} model vs the synthetic masks: "
          f"{overall['missing_class_iou']:.4f} (median per image {table['missing_class_iou'].median():.4f})", flush=True)
    inputs = [pool / "pool.csv", Path(args.unet) / "best.weights.h5"]
    extra = {"model": args.model_name, "overall": overall, "n": len(ids)}
    with artifacts.artifact_dir(args.out, "pretest", s, None, inputs, extra) as tmp:
        table.to_csv(tmp / "agreement.csv", index=False)
        figure(images, masks, pred, table["missing_class_iou"].to_numpy(), classes, args.model_name, tmp / "pretest.png")


def figure(images, masks, pred, scores, classes, model_name, path, n=4):
    import matplotlib.pyplot as plt

    order = np.argsort(scores)
    picks = list(order[:n // 2]) + list(order[-(n - n // 2):])  # the worst and the best agreements
    fig = plt.figure(figsize=(9, 2.0 * len(picks) + 2.2))
    grid = fig.add_gridspec(len(picks) + 1, 3, height_ratios=[1] * len(picks) + [1.1])
    for r, i in enumerate(picks):
        ax = [fig.add_subplot(grid[r, c]) for c in range(3)]
        plots.show_image(ax[0], images[i], "synthetic micrograph" if r == 0 else None)
        ax[1].imshow(plots.colorize(masks[i], classes), interpolation="nearest")
        ax[2].imshow(plots.colorize(pred[i], classes), interpolation="nearest")
        for a, t in zip(ax[1:], ("synthetic mask", f"{model_name} segmentation")):
            a.set_xticks([])
            a.set_yticks([])
            if r == 0:
                a.set_title(t, fontsize=8)
        ax[0].set_ylabel(f"MCIoU {scores[i]:.2f}", fontsize=8)
    h = fig.add_subplot(grid[-1, :])
    h.hist(scores, bins=20, range=(0, 1), color="tab:blue")
    h.set_xlabel("Missing Class IoU (model vs synthetic mask), per synthetic image")
    h.set_ylabel("images")
    fig.suptitle("Quality pre-test of the synthetic pairs (paper Fig. 12)", fontsize=10)
    fig.tight_layout()
    plots.save(fig, path)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--unet", required=True, help="the U-Net folder of the real-data model (BMQ_000)")
    p.add_argument("--model-name", default="BMQ_000")
    p.add_argument("--pool", required=True, help="the synthetic pool (postprocess output)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
