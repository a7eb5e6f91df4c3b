#!/usr/bin/env python
"""Train a PixelCNN prior over the VQ-VAE code grids (paper step 6): plain (masked convolutions, as in the
paper) or gated (vertical + horizontal stacks, no blind spot). Validation NLL on the VQ-VAE's held-out patches.
Writes OUT/checkpoint, history.csv, nll.png, meta.json (validation NLL in nats per grid cell).
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen import artifacts, cli, env, figures, generation


def main(args):
    s = cli.settings(args)
    pc = s["pixelcnn"]
    env.setup_tensorflow(args.threads, pc["seed"], s["determinism"])
    from dualgen import pixelcnn

    codes = Path(args.codes)
    grids = np.load(codes / "grids.npy", allow_pickle=False)
    split = pd.read_csv(codes / "codes.csv")["split"].to_numpy()
    cmeta = generation.read_meta(codes)
    k = cmeta["num_embeddings"]
    spec = pixelcnn.make_spec(pc, args.kind, k, grids.shape[1:])
    model = pixelcnn.build(spec)
    print(f"PixelCNN ({args.kind}): {int((split == 'train').sum())} training / {int((split == 'val').sum())} "
          f"validation grids of {grids.shape[1]}x{grids.shape[2]}, K={k}", flush=True)
    history = pixelcnn.train_pixelcnn(model, grids[split == "train"], grids[split == "val"], epochs=pc["epochs"],
                                      batch_size=pc["batch_size"], learning_rate=pc["learning_rate"], seed=pc["seed"])
    hist = pd.DataFrame(history)
    val_nll = float(pixelcnn.validation_nll(model, grids[split == "val"]))
    extra = {"val_nll": val_nll, "receptive_rows": int(model.receptive_rows),
             "receptive_cols": int(model.receptive_cols)}
    print(f"validation NLL: {val_nll:.4f} nats per cell", flush=True)
    with artifacts.artifact_dir(args.out, "train_pixelcnn", s, pc["seed"], [codes / "grids.npy"], extra) as tmp:
        pixelcnn.save(model, tmp / "checkpoint", spec)
        hist.to_csv(tmp / "history.csv", index=False)
        figures.pixelcnn_history(hist, args.kind, tmp / "nll.png")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--codes", required=True)
    p.add_argument("--kind", choices=["plain", "gated"], required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
