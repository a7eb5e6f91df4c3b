#!/usr/bin/env python
"""Evaluate one mix's U-Net on the real HQ test set: per image and per class accuracy, mIoU, Missing Class IoU
(the paper's metric) and Missing Class IoU per class. Writes OUT/metrics.json (per image + aggregated over
the test set), OUT/predictions.npy (uint8 class maps, for the overlay figures), meta.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402

from dualgen import artifacts, cli, env, metrics, study  # noqa: E402


def main(args):
    s = cli.settings(args)
    env.setup_tensorflow(args.threads, 0)
    from dualgen import unet

    model, umeta = study.load_unet(args.unet)
    ids, images, masks = study.test_set(args.patches, args.datasets)
    n = len(s["classes"])
    pred = unet.predict(model, images, encoder_weights=umeta["settings"]["unet"]["encoder_weights"])
    per_image = [dict(metrics.image_metrics(t, p, n), patch_id=i) for i, t, p in zip(ids, masks, pred)]
    summary = metrics.aggregate([{k: v for k, v in r.items() if k != "patch_id"} for r in per_image])
    print(f"{args.name}: accuracy {summary['accuracy']:.4f}, mIoU {summary['miou']:.4f}, "
          f"Missing Class IoU {summary['missing_class_iou']:.4f} over {len(ids)} test images", flush=True)
    inputs = [Path(args.unet) / "best.weights.h5", Path(args.datasets) / "SHQ.csv"]
    with artifacts.artifact_dir(args.out, "evaluate", s, None, inputs, {"mix": args.name, "summary": summary}) as tmp:
        artifacts.write_json(tmp / "metrics.json", {"mix": args.name, "summary": summary, "per_image": per_image,
                                                    "classes": [c["name"] for c in s["classes"]]})
        np.save(tmp / "predictions.npy", pred.astype(np.uint8), allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--name", required=True, help="the mix name")
    p.add_argument("--unet", required=True)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
