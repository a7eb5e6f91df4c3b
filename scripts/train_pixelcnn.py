#!/usr/bin/env python
"""Train a PixelCNN prior over the VQ-VAE code grids (paper step 6): plain (masked convolutions, as in the
paper) or gated (vertical + horizontal stacks, no blind spot); or maskgit, a parallel prior (a masked-token
transformer, dualgen.generate.pixelcnn.maskgit; pixelcnn.maskgit: dim, depth, heads, steps). Validation NLL on the
VQ-VAE's held-out patches (maskgit: the masked-token cross-entropy instead, not an NLL; meta.json val_measure).
With pixelcnn.condition (and --patches/--datasets: the encoded patches' masks), a conditioned prior: every grid
comes with its patch's class fractions (dualgen.generate.conditioning), which every layer sees. pixelcnn.augment
flips: it also trains on the codes of the training patches' mirror images (4x the grids; validation on the patches
as they are); dihedral: also on their 90-degree turns (8x). pixelcnn.dropout (PixelCNN kinds): training-time dropout
on the blocks' new features; pixelcnn.ema (PixelCNN kinds): the prior kept is the moving average of its weights.
Writes OUT/checkpoint, history.csv, nll.png, meta.json (validation NLL in nats per grid cell).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.core.errors import DualgenError
from dualgen.generate import common as generation
from dualgen.report import figures


def condition_vectors(args, s, patch_ids):
    """The conditioning vector of every encoded patch (in codes.csv order); (N, 0) for an unconditioned prior."""
    mode = s["pixelcnn"]["condition"]
    if mode == "none":
        return np.zeros((len(patch_ids), 0), np.float32)
    if not (args.patches and args.datasets):
        raise DualgenError(
            f"pixelcnn.condition {mode}: --patches and --datasets are needed (the masks give the "
            "class fractions): the rule train_pixelcnn_conditioned passes them"
        )
    ids, vectors = generation.condition_vectors(mode, args.patches, args.datasets, len(s["classes"]))
    if list(ids) != list(patch_ids):
        raise DualgenError(f"{args.codes}/codes.csv lists other patches than {args.datasets}/BMQ.csv: rerun encode")
    return vectors


def main(args):
    s = cli.settings(args)
    pc = s["pixelcnn"]
    env.setup_tensorflow(args.threads, pc["seed"], s["determinism"])
    from dualgen.generate.pixelcnn import persist
    from dualgen.generate.pixelcnn import train as pixelcnn_train

    codes = Path(args.codes)
    grids = np.load(codes / "grids.npy", allow_pickle=False)
    split = pd.read_csv(codes / "codes.csv")["split"].to_numpy()
    cmeta = generation.read_meta(codes)
    k = cmeta["num_embeddings"]
    cond = condition_vectors(args, s, list(pd.read_csv(codes / "codes.csv")["patch_id"]))
    spec = persist.make_spec(pc, args.kind, k, grids.shape[1:], cond_dim=cond.shape[1])
    model = persist.build(spec)
    mirrored = {"flips": " (and their mirror images)", "dihedral": " (and their mirror images and turns)"}.get(
        pc["augment"], ""
    )
    prior = "MaskGIT" if args.kind == "maskgit" else "PixelCNN"
    print(
        f"{prior} ({args.kind}{', conditioned on ' + pc['condition'] if cond.shape[1] else ''}): "
        f"{int((split == 'train').sum())} training{mirrored} / {int((split == 'val').sum())} "
        f"validation grids of {grids.shape[1]}x{grids.shape[2]}, K={k}",
        flush=True,
    )
    train, val = split == "train", split == "val"
    copies = generation.augment_copies(codes, pc["augment"], train)
    train_grids, train_cond = generation.training_grids(grids[train], cond[train], pc["augment"], copies)
    history = pixelcnn_train.train_pixelcnn(
        model,
        train_grids,
        grids[val],
        epochs=pc["epochs"],
        batch_size=pc["batch_size"],
        learning_rate=pc["learning_rate"],
        seed=pc["seed"],
        train_cond=train_cond,
        val_cond=cond[val],
        dropout=pc["dropout"],
        ema=pc["ema"],
    )
    hist = pd.DataFrame(history)
    val_nll = float(pixelcnn_train.validation_nll(model, grids[val], cond=cond[val]))
    if args.kind == "maskgit":
        extra = {"val_nll": val_nll, "val_measure": "masked-token cross-entropy (nats per masked cell), not an NLL"}
        print(f"validation masked-token cross-entropy: {val_nll:.4f} nats per masked cell", flush=True)
    else:
        extra = {
            "val_nll": val_nll,
            "receptive_rows": int(model.receptive_rows),
            "receptive_cols": int(model.receptive_cols),
        }
        print(f"validation NLL: {val_nll:.4f} nats per cell", flush=True)
    extra.update(condition=pc["condition"], cond_dim=int(cond.shape[1]))
    inputs = [codes / "grids.npy"] + [codes / name for name in copies]  # the files it trained on
    with artifacts.artifact_dir(args.out, "train_pixelcnn", s, pc["seed"], inputs, extra) as tmp:
        persist.save(model, tmp / "checkpoint", spec)
        hist.to_csv(tmp / "history.csv", index=False)
        figures.pixelcnn_history(hist, args.kind + (" conditioned" if cond.shape[1] else ""), tmp / "nll.png")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--codes", required=True)
    p.add_argument("--kind", choices=["plain", "gated", "maskgit"], required=True)
    p.add_argument("--patches", default=None, help="the patches folder (conditioned prior: the masks' fractions)")
    p.add_argument("--datasets", default=None, help="the datasets folder (conditioned prior)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
