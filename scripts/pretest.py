#!/usr/bin/env python
"""Quality pre-test of the synthetic pairs (paper step 8, made quantitative): segment the synthetic
micrographs with a model trained on real data only (BMQ_000) and measure how well its segmentation agrees
with the synthetic masks (Missing Class IoU per image and overall). Writes OUT/agreement.csv,
OUT/predictions.npy (drawn by scripts/figure.py pretest).
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen import artifacts, cli, datasets, env, metrics


def main(args):
    s = cli.settings(args)
    classes = s["classes"]
    env.setup_tensorflow(args.threads, 0)
    from dualgen import unet

    model, spec = unet.load(Path(args.unet) / "model")
    pool = Path(args.pool)
    ids, images, masks = datasets.read_pool(pool)
    pred = unet.predict(model, images, encoder_weights=spec["encoder_weights"])
    n = len(classes)
    rows = [dict(metrics.image_metrics(m, p, n), synth_id=i) for i, m, p in zip(ids, masks, pred)]
    table = pd.DataFrame(rows)
    overall = metrics.aggregate([{k: v for k, v in r.items() if k != "synth_id"} for r in rows])
    print(f"pre-test: Missing Class IoU of the {args.model_name} model vs the synthetic masks: "
          f"{overall['missing_class_iou']:.4f} (median per image {table['missing_class_iou'].median():.4f})", flush=True)
    inputs = [pool / "pool.csv", Path(args.unet) / "model"]
    extra = {"model": args.model_name, "overall": overall, "n": len(ids)}
    with artifacts.artifact_dir(args.out, "pretest", s, None, inputs, extra) as tmp:
        table.to_csv(tmp / "agreement.csv", index=False)
        np.save(tmp / "predictions.npy", pred.astype(np.uint8), allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--unet", required=True, help="the U-Net folder of the real-data model (BMQ_000)")
    p.add_argument("--model-name", default="BMQ_000")
    p.add_argument("--pool", required=True, help="the synthetic pool (postprocess output)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
