#!/usr/bin/env python
"""Train the U-Nets of one mix for a chunk of seeds (paper Table 3: segmentation_models.Unet, dice + categorical
focal loss, Adam, ReduceLROnPlateau on validation IoU, best weights kept; config unet's class_weights, sampling and
lr_schedule change the loss, the batches and the schedule), and segment the real HQ test set with each, so that
evaluation needs no TensorFlow. Budget ``updates`` (the same number of optimizer updates for every
mix) or ``epochs`` (the paper's). The pretrain arm trains on its synthetic pairs first, then on the real ones.
The seeds share one process: TensorFlow starts and the model is traced once; each seed starts from its own initial
weights and a fresh optimizer (``unet_train.train_unet(reuse=...)``), so its result is the one a job of its own
computes. Resumable after a kill (--work: a folder per seed, kept until the last seed is written). Writes, per seed,
OUT/seed<k>/: model/ (weights + spec), history.csv (the curves: figures/study convergence.png),
test_predictions.npz, meta.json (the settings of that seed alone).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.data import datasets
from dualgen.segment import budget, evaluation, mixes


def main(args):
    s = cli.settings(args)
    if s["unet"]["updates"] == "auto":  # the calibrated budget (--budget), recorded as the number trained
        s["unet"]["updates"] = budget.read_budget(args.budget)
    seeds = [int(k) for k in s["seeds"]]
    u, mix = s["unet"], mixes.Mix(**s["mix"])
    env.setup_tensorflow(args.threads, seeds[0], s["determinism"])
    from dualgen.segment import augment, unet, unet_train

    manifest = pd.read_csv(Path(args.mix) / "manifest.csv")
    _, x_tr, y_tr = datasets.load_mix(manifest, args.patches, args.pool, "train")
    _, x_va, y_va = datasets.load_mix(manifest, args.patches, args.pool, "val")
    ids, _, _, test_images = evaluation.test_set(args.patches, args.datasets, images=True)
    origin = manifest.loc[manifest["split"] == "train", "origin"].to_numpy()
    pretrain = np.flatnonzero(origin == "synth") if mix.pretrain else None
    n_classes = len(s["classes"])
    spec = unet.make_spec(u, n_classes, x_tr.shape[1:])
    inputs = [Path(args.mix) / "manifest.csv", Path(args.datasets) / "SHQ.csv"]
    inputs += [Path(args.budget) / budget.BUDGET_FILE] if args.budget else []
    out = Path(args.out)

    def augment_of(seed):
        return augment.build_augmentation(s["augmentation"], seed) if s["augmentation"] else None

    print(
        f"{mix.name}: {len(x_tr)} training ({int((origin == 'synth').sum())} synthetic"
        f"{', used first' if mix.pretrain else ''}), {len(x_va)} validation images, backbone {u['backbone']}, "
        f"budget {u['budget']} ({u['updates']} updates), {u['lr_schedule']} schedule, {u['sampling']} sampling, "
        f"class weights {u['class_weights']}, augmentation: {', '.join(s['augmentation']) or 'none'}",
        flush=True,
    )
    trainings = unet_train.train_seeds(
        (x_tr, y_tr, x_va, y_va), spec, s, seeds, args.work, args.checkpoint_every_s, augment_of, pretrain
    )
    for seed, one, model, result, work, reused in trainings:
        pred = unet.predict(model, test_images, encoder_weights=spec["encoder_weights"])
        hist = pd.read_csv(work / "history.csv")
        extra = {
            "mix": mix.name,
            "n_train": len(x_tr),
            "n_val": len(x_va),
            "n_test": len(ids),
            **unet_train.result_meta(result),
            "mixed_precision": spec["mixed_precision"],
            "reused_model": reused,
        }
        with artifacts.artifact_dir(evaluation.seed_dir(out, seed), "train_unet", one, seed, inputs, extra) as tmp:
            unet.save(model, tmp / "model", spec)
            evaluation.write_test_predictions(tmp, ids, pred, tmp / "model" / unet.WEIGHTS)
            hist.to_csv(tmp / "history.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--mix", required=True, help="the build_mix folder")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True, help="the datasets folder (the test set)")
    p.add_argument("--pool", default=None, help="the synthetic pool folder (postprocess output)")
    p.add_argument("--budget", default=None, help="the choose_budget folder (budget.json), for unet.updates: auto")
    p.add_argument("--work", required=True, help="folder for resumable checkpoints")
    p.add_argument("--out", required=True)
    cli.add_checkpoint_every(p)
    cli.run(main, p)
