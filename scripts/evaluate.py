#!/usr/bin/env python
"""Score one training (mix, seed) on the real HQ test set, from the test segmentations its training job wrote
(no TensorFlow here: well under a second). Per image and per class: accuracy, mIoU, Missing Class IoU (the
paper's metric) and the IoU of each class present in the image's ground truth; aggregated over the test set.
Writes OUT/metrics.json (per image with its source micrograph, and the summary), meta.json.
"""

from pathlib import Path

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.segment import evaluation, metrics


def main(args):
    s = cli.settings(args)
    names = [c["name"] for c in s["classes"]]
    ids, masks, sources = evaluation.test_set(args.patches, args.datasets)
    pred_ids, pred = evaluation.read_test_predictions(args.unet)
    if list(pred_ids) != list(ids):
        raise DualgenError(
            f"{args.unet}: its test segmentations are of other patches than the test set in "
            f"{args.datasets}: rerun train_unet for {args.name}"
        )
    per_image = []
    for pid, src, truth, p in zip(ids, sources, masks, pred):
        row = metrics.image_metrics(truth, p, len(names))
        row = {k: v for k, v in row.items() if not k.startswith("iou_")} | {
            f"iou_{name}": row[f"iou_{k}"] for k, name in enumerate(names)
        }
        per_image.append({"image": pid, "source": src, **row})
    summary = metrics.aggregate([{k: v for k, v in r.items() if k not in ("image", "source")} for r in per_image])
    print(
        f"{args.name} seed {args.seed}: accuracy {summary['accuracy']:.4f}, mIoU {summary['miou']:.4f}, "
        f"Missing Class IoU {summary['missing_class_iou']:.4f} over {len(ids)} test images",
        flush=True,
    )
    inputs = [Path(args.unet) / evaluation.PREDICTIONS, Path(args.datasets) / "SHQ.csv"]
    extra = {"mix": args.name, "training_seed": args.seed, "summary": summary}
    with artifacts.artifact_dir(args.out, "evaluate", s, None, inputs, extra) as tmp:
        artifacts.write_json(
            tmp / "metrics.json",
            {"mix": args.name, "seed": args.seed, "summary": summary, "per_image": per_image, "classes": names},
        )


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--name", required=True, help="the mix name")
    p.add_argument("--seed", type=int, required=True, help="the training seed")
    p.add_argument("--unet", required=True, help="the train_unet folder (with test_predictions.npz)")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
