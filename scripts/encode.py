"""Encode the generator's patches into code grids with the trained VQ-VAE (paper step 5, Fig. 9), and reconstruct
them (the reconstruction's agreement with the real masks is measured by the reconstruction step, which cleans the
masks like synthetic ones: so a post-processing setting never reruns this step or the priors after it).
Writes OUT/grids.npy (N, h, w) int32, OUT/flips.npy (3, N, h, w) int32 (the codes of each patch's mirror images,
generation.FLIPS: the priors' pixelcnn.augment), OUT/codes.csv (patch id, split), OUT/recon.npz (reconstructed
images uint8, raw reconstructed masks: float32 in level units, or class scores for a one-hot mask), OUT/classes.npz
(the training grids' code -> class composition and the class fractions of their masks: sample.calibrate classes),
usage.png.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.generate import conditioning, common as generation
from dualgen.report import figures


def main(args):
    s = cli.settings(args)
    classes = s["classes"]
    tf = env.setup_tensorflow(args.threads, 0, s["determinism"])
    from dualgen.generate import vqvae

    model, spec = generation.load_vqvae(args.vqvae)
    vmeta = generation.read_meta(args.vqvae)
    ids, images, masks = generation.generator_patches(args.patches, args.datasets)
    n = len(classes)
    x = vqvae.to_model_input(images, masks, n, spec["mask_encoding"])

    def encode(patches):
        return np.concatenate([model.encode(tf.constant(patches[i:i + 16])).numpy().astype(np.int32)
                               for i in range(0, len(patches), 16)])

    grids = encode(x)
    recon = np.concatenate([model(tf.constant(x[i:i + 16]), is_training=False)["x_recon"].numpy()
                            for i in range(0, len(x), 16)])
    flipped = np.stack([encode(f) for f in generation.flips(x)])
    rec_images, raw = vqvae.from_model_output(recon, n, spec["mask_encoding"])
    val = set(vmeta["val_ids"])
    split = ["val" if i in val else "train" for i in ids]
    train = np.array([sp == "train" for sp in split])
    composition = generation.code_class_composition(grids[train], masks[train], spec["num_embeddings"], n)
    class_fractions = conditioning.fractions(masks[train], n).mean(axis=0)
    usage = np.bincount(grids.ravel(), minlength=spec["num_embeddings"])
    extra = {"grid_shape": list(grids.shape[1:]), "n": len(ids), "num_embeddings": len(usage),
             "codes_used": int((usage > 0).sum())}
    inputs = [Path(args.vqvae) / "meta.json", Path(args.datasets) / "BMQ.csv"]
    with artifacts.artifact_dir(args.out, "encode", s, None, inputs, extra) as tmp:
        np.save(tmp / "grids.npy", grids, allow_pickle=False)
        np.save(tmp / "flips.npy", flipped, allow_pickle=False)
        pd.DataFrame({"patch_id": ids, "split": split}).to_csv(tmp / "codes.csv", index=False)
        np.savez(tmp / "recon.npz", images=rec_images.astype(np.uint8), raw_masks=raw.astype(np.float32))
        np.savez(tmp / "classes.npz", composition=composition, fractions=class_fractions)
        figures.codebook_usage(usage, tmp / "usage.png")


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--vqvae", required=True)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
