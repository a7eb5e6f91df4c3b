#!/usr/bin/env python
"""Encode the generator's patches into code grids with the trained VQ-VAE (paper step 5, Fig. 9).

Also reconstructs them, cleans the reconstructed masks like synthetic ones and reports how well they
agree with the real masks (mean IoU and Missing Class IoU over the held-out patches) in meta.json.
Writes OUT/grids.npy (N, h, w) int32, OUT/codes.csv (patch id, split), OUT/recon.npz (reconstructed images and
cleaned reconstructed masks, uint8), usage.png.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen import artifacts, cli, env, figures, generation, metrics, postprocess


def main(args):
    s = cli.settings(args)
    classes, pp = s["classes"], s["postprocess"]
    tf = env.setup_tensorflow(args.threads, 0, s["determinism"])
    from dualgen import vqvae

    model, spec = generation.load_vqvae(args.vqvae)
    vmeta = generation.read_meta(args.vqvae)
    ids, images, masks = generation.generator_patches(args.patches, args.datasets)
    n = len(classes)
    x = vqvae.to_model_input(images, masks, n)
    grids, recon = [], []
    for i in range(0, len(x), 16):
        batch = tf.constant(x[i:i + 16])
        grids.append(model.encode(batch).numpy().astype(np.int32))
        recon.append(model(batch, is_training=False)["x_recon"].numpy())
    grids, recon = np.concatenate(grids), np.concatenate(recon)
    rec_images, raw = vqvae.from_model_output(recon, n)
    min_px = postprocess.scaled_min_object_px(pp["min_object_px"], images.shape[1])
    cleaned = np.stack([postprocess.clean_mask(r, n, min_px, pp["seed"])[1] for r in raw])
    val = set(vmeta["val_ids"])
    split = ["val" if i in val else "train" for i in ids]
    per_image = [metrics.image_metrics(m, c, n) for m, c in zip(masks, cleaned)]
    agreement = {}
    for part in ("train", "val"):
        rows = [p for p, sp in zip(per_image, split) if sp == part]
        agg = metrics.aggregate(rows)
        agreement[part] = {"miou": agg["miou"], "missing_class_iou": agg["missing_class_iou"], "n": len(rows)}
    print(f"reconstructed masks vs real masks: validation mIoU {agreement['val']['miou']:.3f}, "
          f"Missing Class IoU {agreement['val']['missing_class_iou']:.3f}", flush=True)
    usage = np.bincount(grids.ravel(), minlength=spec["num_embeddings"])
    extra = {"grid_shape": list(grids.shape[1:]), "n": len(ids), "num_embeddings": len(usage),
             "codes_used": int((usage > 0).sum()), "min_object_px": min_px,
             "recon_mask_agreement": agreement}
    inputs = [Path(args.vqvae) / "meta.json", Path(args.datasets) / "BMQ.csv"]
    with artifacts.artifact_dir(args.out, "encode", s, pp["seed"], inputs, extra) as tmp:
        np.save(tmp / "grids.npy", grids, allow_pickle=False)
        pd.DataFrame({"patch_id": ids, "split": split}).to_csv(tmp / "codes.csv", index=False)
        np.savez(tmp / "recon.npz", images=rec_images.astype(np.uint8), masks=cleaned.astype(np.uint8))
        figures.codebook_usage(usage, tmp / "usage.png")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--vqvae", required=True)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
