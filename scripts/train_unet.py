#!/usr/bin/env python
"""Train the U-Net of one mix (paper Table 3): segmentation_models.Unet, dice + categorical focal loss, Adam,
ReduceLROnPlateau and EarlyStopping on validation IoU, best weights kept. Resumable after a kill (--work).
Writes OUT/best.weights.h5, history.csv, history.png, meta.json.
"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, datasets, env, generation, plots  # noqa: E402


def main(args):
    s = cli.settings(args)
    u = s["unet"]
    env.setup_tensorflow(args.threads, u["seed"])
    from dualgen import augment, unet

    manifest = pd.read_csv(Path(args.mix) / "manifest.csv")
    _, x_tr, y_tr = datasets.load_mix(manifest, args.patches, args.pool, "train")
    _, x_va, y_va = datasets.load_mix(manifest, args.patches, args.pool, "val")
    aug = augment.build_augmentation(s["augmentation"], u["seed"]) if s.get("augmentation") else None
    n_classes = len(s["classes"])
    print(f"{args.name}: {len(x_tr)} training ({int((manifest.origin == 'synth').sum())} synthetic), {len(x_va)} "
          f"validation images, backbone {u['backbone']}, augmentation: {', '.join(s.get('augmentation') or []) or 'none'}",
          flush=True)
    work = generation.resume_dir(args.work, s)
    model, history = unet.train_unet(
        x_tr, y_tr, x_va, y_va, backbone=u["backbone"], encoder_weights=u["encoder_weights"], num_classes=n_classes,
        epochs=u["epochs"], batch_size=u["batch_size"], val_batch_size=u["val_batch_size"],
        learning_rate=u["learning_rate"], early_stopping_patience=u["early_stopping_patience"],
        reduce_lr_patience=u["reduce_lr_patience"], seed=u["seed"], out_dir=str(work), augment=aug,
        bn_momentum=u.get("bn_momentum"), checkpoint_every_s=u.get("checkpoint_every_s", 60),
    )
    hist = pd.read_csv(work / "history.csv")
    extra = {"mix": args.name, "n_train": len(x_tr), "n_val": len(x_va), "epochs_run": len(hist),
             "best_val_iou": float(hist["val_iou_score"].max()), "input_shape": list(model.input_shape[1:]),
             "num_classes": n_classes, "resumed_from_epoch": history.get("resumed_from_epoch")}
    inputs = [Path(args.mix) / "manifest.csv"]
    with artifacts.artifact_dir(args.out, "train_unet", s, u["seed"], inputs, extra) as tmp:
        shutil.copy(work / "best.weights.h5", tmp / "best.weights.h5")
        hist.to_csv(tmp / "history.csv", index=False)
        plot(hist, args.name, tmp / "history.png")
    shutil.rmtree(work, ignore_errors=True)  # the checkpoints are no longer needed once the result is complete


def plot(hist, name, path):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    epoch = hist["epoch"] + 1
    a.plot(epoch, hist["loss"], label="train")
    a.plot(epoch, hist["val_loss"], label="validation")
    a.set_ylabel("dice + focal loss")
    b.plot(epoch, hist["iou_score"], label="train")
    b.plot(epoch, hist["val_iou_score"], label="validation")
    b.set_ylabel("IoU")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.suptitle(f"U-Net {name}")
    fig.tight_layout()
    plots.save(fig, path)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--name", required=True, help="the mix name")
    p.add_argument("--mix", required=True, help="the build_mix folder")
    p.add_argument("--patches", required=True)
    p.add_argument("--pool", default=None, help="the synthetic pool folder (postprocess output)")
    p.add_argument("--work", required=True, help="folder for resumable checkpoints")
    p.add_argument("--out", required=True)
    cli.run(main, p)
