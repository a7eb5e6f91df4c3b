#!/usr/bin/env python
"""Quality pre-test of the synthetic pairs (paper step 8, made quantitative): segment the synthetic
micrographs with a model trained on real data only (BMQ_000) and measure how well its segmentation agrees
with the synthetic masks (Missing Class IoU per image and overall); the same model on the real BMQ validation
patches gives the reference: pairs as consistent as real ones score about as high. (The validation patches chose
the model's checkpoint, so the reference is a little optimistic.) Writes OUT/agreement.csv (synthetic pairs),
OUT/agreement_real.csv (real validation patches), OUT/predictions.npy (drawn by scripts/figure.py pretest);
meta.json: overall (synthetic) and real_val (real) agreement.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.data import datasets
from dualgen.segment import metrics


def agreement(model, spec, ids, images, masks, n, id_column):
    """(per-image table, overall dict, predictions) of the model's segmentation against the given masks."""
    from dualgen.segment import unet

    pred = unet.predict(model, images, encoder_weights=spec["encoder_weights"])
    rows = [dict(metrics.image_metrics(m, p, n), **{id_column: i}) for i, m, p in zip(ids, masks, pred)]
    overall = metrics.aggregate([{k: v for k, v in r.items() if k != id_column} for r in rows])
    return pd.DataFrame(rows), overall, pred


def main(args):
    s = cli.settings(args)
    classes = s["classes"]
    env.setup_tensorflow(args.threads, 0, s["determinism"])
    from dualgen.segment import unet

    model, spec = unet.load(Path(args.unet) / "model")
    pool = Path(args.pool)
    n = len(classes)
    ids, images, masks = datasets.read_pool(pool)
    table, overall, pred = agreement(model, spec, ids, images, masks, n, "synth_id")
    print(
        f"pre-test: Missing Class IoU of the {args.model_name} model vs the synthetic masks: "
        f"{overall['missing_class_iou']:.4f} (median per image {table['missing_class_iou'].median():.4f})",
        flush=True,
    )
    inputs = [pool / "pool.csv", Path(args.unet) / "model"]
    extra = {"model": args.model_name, "overall": overall, "n": len(ids), "real_val": None, "n_real_val": 0}
    real = None
    if args.patches and args.datasets:
        manifest = Path(args.datasets) / "BMQ.csv"
        real_ids, real_images, real_masks = datasets.load(args.patches, manifest, "val")
        inputs.append(manifest)
        if real_ids:
            real, real_overall, _ = agreement(model, spec, real_ids, real_images, real_masks, n, "patch_id")
            extra.update(real_val=real_overall, n_real_val=len(real_ids))
            print(
                f"reference: the same model vs the real BMQ validation masks: Missing Class IoU "
                f"{real_overall['missing_class_iou']:.4f} ({len(real_ids)} patches)",
                flush=True,
            )
    with artifacts.artifact_dir(args.out, "pretest", s, None, inputs, extra) as tmp:
        table.to_csv(tmp / "agreement.csv", index=False)
        if real is not None:
            real.to_csv(tmp / "agreement_real.csv", index=False)
        np.save(tmp / "predictions.npy", pred.astype(np.uint8), allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--unet", required=True, help="the U-Net folder of the real-data model (BMQ_000)")
    p.add_argument("--model-name", default="BMQ_000")
    p.add_argument("--pool", required=True, help="the synthetic pool (postprocess output)")
    p.add_argument("--patches", help="the patches folder: with --datasets, also score the real BMQ validation patches")
    p.add_argument("--datasets", help="the datasets folder (BMQ.csv)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
