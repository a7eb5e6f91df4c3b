"""Encode the generator's patches into code grids with the trained VQ-VAE (paper step 5, Fig. 9), and reconstruct
them (the reconstruction's agreement with the real masks is measured by the reconstruction step, which cleans the
masks like synthetic ones: so a post-processing setting never reruns this step or the priors after it).
Writes OUT/grids.npy (N, h, w) int32, OUT/flips.npy (3, N, h, w) int32 (the codes of each patch's mirror images,
generation.FLIPS: the priors' pixelcnn.augment), OUT/turns.npy (4, N, h, w) int32 (of its 90-degree turns,
generation.TURNS: pixelcnn.augment dihedral), OUT/codes.csv (patch id, split), OUT/recon.npz (reconstructed
images uint8, raw reconstructed masks: float32 in level units, or class scores for a one-hot mask), OUT/classes.npz
(the training grids' code -> class composition and the class fractions of their masks: sample.calibrate classes),
usage.png, meta.json (with the VQ-VAE's mask_encoding, which the reconstruction step reads).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.generate import common as generation
from dualgen.generate import conditioning
from dualgen.generate.mask_codec import MaskCodec
from dualgen.report import figures


def main(args):
    s = cli.settings(args)
    classes = s["classes"]
    env.setup_tensorflow(args.threads, 0, s["determinism"])
    from dualgen.generate.vqvae import data

    model, spec = generation.load_vqvae(args.vqvae)
    vmeta = generation.read_meta(args.vqvae)
    ids, images, masks = generation.generator_patches(args.patches, args.datasets)
    n = len(classes)
    codec = MaskCodec(spec["mask_encoding"], n)
    x = data.to_model_input(images, masks, codec)
    grids = data.encode(model, x)
    recon = data.reconstruct(model, x)
    flipped = np.stack([data.encode(model, f) for f in generation.flips(x)])
    turned = np.stack([data.encode(model, f) for f in generation.turns(x)])
    rec_images, raw = data.from_model_output(recon, codec)
    val = set(vmeta["val_ids"])
    split = ["val" if i in val else "train" for i in ids]
    train = np.array([sp == "train" for sp in split])
    composition = generation.code_class_composition(grids[train], masks[train], spec["num_embeddings"], n)
    class_fractions = conditioning.fractions(masks[train], n).mean(axis=0)
    usage = np.bincount(grids.ravel(), minlength=spec["num_embeddings"])
    extra = {
        "grid_shape": list(grids.shape[1:]),
        "n": len(ids),
        "num_embeddings": len(usage),
        "codes_used": int((usage > 0).sum()),
        "mask_encoding": codec.encoding,
    }
    inputs = [Path(args.vqvae) / "meta.json", Path(args.datasets) / "BMQ.csv"]
    with artifacts.artifact_dir(args.out, "encode", s, None, inputs, extra) as tmp:
        np.save(tmp / "grids.npy", grids, allow_pickle=False)
        np.save(tmp / "flips.npy", flipped, allow_pickle=False)
        np.save(tmp / "turns.npy", turned, allow_pickle=False)
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
