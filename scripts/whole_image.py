#!/usr/bin/env python
"""Score one mix on whole test micrographs: each seed's U-Net segments every test micrograph whole (windows of the
patch size, overlapping by whole_image.overlap, blended; optional flip TTA; scores resized back to the original
resolution: dualgen.segment.whole), and so does the seed ensemble (the mean of the seeds' softmax). Per micrograph:
accuracy, mIoU, Missing Class IoU, per-class IoU and per-class area-fraction error. The same models also score the
selection set (real validation patches with HQ masks; never the test set) that the exported model is chosen on.

Writes OUT/whole.json (rows per seed / ensemble and micrograph; validation Missing Class IoU per seed),
OUT/labels.npz (the ensemble's class maps of the test micrographs, for the figures), meta.json.
"""

from pathlib import Path

import numpy as np

from dualgen.core import artifacts, cli, env
from dualgen.data import micrographs
from dualgen.segment import evaluation, metrics


def main(args):
    s = cli.settings(args)
    names = [c["name"] for c in s["classes"]]
    w = s["whole_image"]
    env.setup_tensorflow(args.threads, None, s["determinism"])
    from dualgen.segment import unet, whole

    seed_dirs = {k: v for chunk in args.unet for k, v in evaluation.seed_dirs(chunk).items()}
    loaded = [unet.load(Path(folder) / "model") for folder in seed_dirs.values()]
    models, spec = [m for m, _ in loaded], loaded[0][1]
    prep = unet.preprocessor(spec)
    rows, maps = [], {}
    for m in micrographs.read_test(args.test):
        scores = whole.predict_scores(
            models, m.image, size=spec["input_shape"][0], overlap=w["overlap"], preprocess=prep,
            batch_size=w["batch_size"], tta=w["tta"], out_size=m.size,
        )  # fmt: skip
        for seed, sc in [*zip(seed_dirs, scores), (evaluation.ENSEMBLE, whole.ensemble(scores))]:
            label = whole.labels(sc)
            rows.append({"seed": seed, "micrograph": m.name, **evaluation.whole_row(m.truth, label, names)})
        maps[m.name] = label  # the ensemble's
        print(f"{args.name} {m.name}: ensemble Missing Class IoU {rows[-1]['missing_class_iou']:.4f}", flush=True)
    _, images, masks = evaluation.selection_set(args.patches, args.datasets)
    validation = {}
    for seed, model in zip(seed_dirs, models):
        pred = unet.predict(model, images, w["batch_size"], spec["encoder_weights"], spec["backbone"])
        per = [metrics.image_metrics(t, p, len(names))["missing_class_iou"] for t, p in zip(masks, pred)]
        validation[str(seed)] = float(np.nanmean(per)) if per else float("nan")
    print(f"{args.name}: validation Missing Class IoU {validation} on {len(images)} patches", flush=True)
    inputs = [Path(args.test) / "micrographs.csv"] + [Path(f) / "model" / unet.WEIGHTS for f in seed_dirs.values()]
    record = {"mix": args.name, "rows": rows, "validation": validation, "n_validation": len(images)}
    with artifacts.artifact_dir(args.out, "whole_image", s, None, inputs, {"mix": args.name}) as tmp:
        artifacts.write_json(tmp / evaluation.WHOLE, record)
        with open(tmp / "labels.npz", "wb") as fh:
            np.savez_compressed(fh, **maps)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--name", required=True, help="the mix name")
    p.add_argument("--unet", required=True, nargs="+", help="the mix's train_unet folders (its chunks of seeds)")
    p.add_argument("--test", required=True, help="the test_micrographs folder")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
