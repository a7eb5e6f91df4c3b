#!/usr/bin/env python
"""Train the VQ-VAE on micrograph + mask stacked as one (C+1)-channel image (paper step 4).

Data: BMQ's training + validation patches (paper: 62 = 56 train + 6 val held out for choosing the
checkpoint with the lowest reconstruction error). Resumable: checkpoints live in --work; a rerun after a
kill continues from the last one. Writes OUT/checkpoint (best), history.csv, loss.png, recon_steps.png.
"""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dualgen import artifacts, cli, env, generation, plots  # noqa: E402


def main(args):
    s = cli.settings(args)
    v, classes = s["vqvae"], s["classes"]
    tf = env.setup_tensorflow(args.threads, v["seed"])
    from dualgen import vqvae

    ids, images, masks = generation.generator_patches(args.patches, args.datasets)
    vqvae.check_patch_size(images.shape[1])
    tr, va = generation.holdout(len(ids), v["val_images"], v["seed"])
    x = vqvae.to_model_input(images, masks, len(classes))
    work = generation.resume_dir(args.work, s)
    snaps = work / "snapshots"
    snaps.mkdir(exist_ok=True)
    probe = x[va[:1]]

    def monitor(step, model):  # reconstructions of one validation patch at checkpoints (paper Fig. 7)
        out = model(tf.constant(probe), is_training=False)["x_recon"].numpy()
        np.save(snaps / f"step_{step:07d}.npy", out[0].astype(np.float32), allow_pickle=False)

    model = generation.build_vqvae(v, images.shape[3])
    print(f"VQ-VAE: {len(tr)} training / {len(va)} validation patches of {images.shape[1]} px, "
          f"{images.shape[3]}+1 channels, K={v['num_embeddings']}, D={v['embedding_dim']}", flush=True)
    history = vqvae.train_vqvae(
        model, x[tr], x[va], steps=v["steps"], batch_size=v["batch_size"], learning_rate=v["learning_rate"],
        seed=v["seed"], out_dir=str(work), eval_every=v["eval_every"], monitor=monitor,
    )
    hist = pd.DataFrame(history)
    best = hist.loc[hist["val_recon"].idxmin()]
    extra = {"channels": int(images.shape[3]), "patch_size": int(images.shape[1]), "n_train": len(tr), "n_val": len(va),
             "best_step": int(best["step"]), "best_val_recon": float(best["val_recon"]),
             "resumed_from_step": getattr(model, "resumed_from_step", None), "val_ids": [ids[i] for i in va]}
    inputs = [Path(args.datasets) / "BMQ.csv", Path(args.patches) / "patches.csv"]
    with artifacts.artifact_dir(args.out, "train_vqvae", s, v["seed"], inputs, extra) as tmp:
        shutil.copytree(work / "best", tmp / "checkpoint")
        hist.to_csv(tmp / "history.csv", index=False)
        plot_history(hist, tmp / "loss.png", extra["best_step"])
        plot_snapshots(images[va[0]], masks[va[0]], sorted(snaps.glob("step_*.npy")), classes, tmp / "recon_steps.png")


def plot_history(hist, path, best_step):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(hist["step"], hist["train_recon"], label="train reconstruction error")
    a.plot(hist["step"], hist["val_recon"], label="validation reconstruction error (MSE)")
    a.axvline(best_step, color="gray", ls="--", lw=1, label=f"best checkpoint (step {best_step})")
    a.set_yscale("log")
    a.set_xlabel("update step")
    a.legend(fontsize=8)
    b.plot(hist["step"], hist["perplexity"], color="tab:green")
    b.set_xlabel("update step")
    b.set_ylabel("codebook perplexity")
    fig.suptitle("VQ-VAE training (paper Fig. 8)")
    fig.tight_layout()
    plots.save(fig, path)


def plot_snapshots(image, mask, files, classes, path, max_cols=8):
    from dualgen import vqvae

    if len(files) > max_cols:
        files = [files[int(round(i))] for i in np.linspace(0, len(files) - 1, max_cols)]
    rows = [("real", [(image, mask)])]
    n = len(classes)
    for f in files:
        img, raw = vqvae.from_model_output(np.load(f, allow_pickle=False)[None], n)
        level = np.clip(np.rint(raw[0] * (n - 1)), 0, n - 1).astype(np.uint8)
        rows.append((f"step {int(f.stem.split('_')[1])}", [(img[0], level)]))
    plots.pair_grid(rows, classes, path, title="Reconstruction of a validation patch during training (paper Fig. 7)")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--work", required=True, help="folder for resumable checkpoints (kept after a kill)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
