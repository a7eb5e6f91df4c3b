#!/usr/bin/env python
"""Train the U-Nets of one mix for a chunk of seeds (paper Table 3: segmentation_models.Unet, dice + categorical
focal loss, Adam, ReduceLROnPlateau on validation IoU, best weights kept), and segment the real HQ test set with
each, so that evaluation needs no TensorFlow. Budget ``updates`` (the same number of optimizer updates for every
mix) or ``epochs`` (the paper's). The pretrain arm trains on its synthetic pairs first, then on the real ones.
The seeds share one process: TensorFlow starts and the model is traced once; each seed starts from its own initial
weights and a fresh optimizer (``unet_train.train_unet(reuse=...)``), so its result is the one a job of its own
computes. Resumable after a kill (--work: a folder per seed, kept until the last seed is written). Writes, per seed,
OUT/seed<k>/: model/ (weights + spec), history.csv (the curves: figures/study convergence.png),
test_predictions.npz, meta.json (the settings of that seed alone).
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.data import datasets
from dualgen.generate import common as generation
from dualgen.segment import evaluation, mixes

RESULT_KEYS = (
    "budget",
    "periods",
    "steps_per_period",
    "pretrain_periods",
    "updates",
    "resumed_from_period",
    "stopped_early",
    "best_period",
    "best_updates",
    "best_val_iou_score",
    "build_seconds",
    "first_step_seconds",
    "update_seconds",
)  # of train_unet's result, into each training's meta.json


def main(args):
    s = cli.settings(args)
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
    out, model, works = Path(args.out), None, []
    for seed in seeds:
        one = {k: v for k, v in s.items() if k != "seeds"} | {"seed": seed}  # what this training depends on
        print(
            f"{mix.name} seed {seed}: {len(x_tr)} training ({int((origin == 'synth').sum())} synthetic"
            f"{', used first' if mix.pretrain else ''}), {len(x_va)} validation images, backbone {u['backbone']}, "
            f"budget {u['budget']}, augmentation: {', '.join(s['augmentation']) or 'none'}",
            flush=True,
        )
        aug = augment.build_augmentation(s["augmentation"], seed) if s["augmentation"] else None
        work = generation.resume_dir(evaluation.seed_dir(args.work, seed), one)
        works.append(work)
        reuse = model if model is not None and unet_train.reusable(spec) else None
        model, result = unet_train.train_unet(
            x_tr,
            y_tr,
            x_va,
            y_va,
            spec=spec,
            budget=u["budget"],
            updates=u["updates"],
            validate_every=u["validate_every"],
            epochs=u["epochs"],
            early_stopping_patience=u["early_stopping_patience"],
            batch_size=u["batch_size"],
            val_batch_size=u["val_batch_size"],
            learning_rate=u["learning_rate"],
            reduce_lr_patience=u["reduce_lr_patience"],
            seed=seed,
            out_dir=str(work),
            augment=aug,
            pretrain=pretrain,
            pretrain_share=u["pretrain_share"],
            checkpoint_every_s=args.checkpoint_every_s,
            reuse=reuse,
        )
        pred = unet.predict(model, test_images, encoder_weights=spec["encoder_weights"])
        hist = pd.read_csv(work / "history.csv")
        extra = {
            "mix": mix.name,
            "n_train": len(x_tr),
            "n_val": len(x_va),
            "n_test": len(ids),
            **{k: result[k] for k in RESULT_KEYS},
            "train_seconds": float(sum(result["seconds_per_period"])),
            "mixed_precision": spec["mixed_precision"],
            "reused_model": reuse is not None,
        }
        with artifacts.artifact_dir(evaluation.seed_dir(out, seed), "train_unet", one, seed, inputs, extra) as tmp:
            unet.save(model, tmp / "model", spec)
            evaluation.write_test_predictions(tmp, ids, pred, tmp / "model" / unet.WEIGHTS)
            hist.to_csv(tmp / "history.csv", index=False)
    for work in works:  # the checkpoints are no longer needed once every result is complete
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--mix", required=True, help="the build_mix folder")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True, help="the datasets folder (the test set)")
    p.add_argument("--pool", default=None, help="the synthetic pool folder (postprocess output)")
    p.add_argument("--work", required=True, help="folder for resumable checkpoints")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--checkpoint-every-s",
        type=float,
        required=True,
        help="save a resumable state at most this often (config unet.checkpoint_every_s)",
    )
    cli.run(main, p)
