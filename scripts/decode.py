#!/usr/bin/env python
"""Decode sampled code grids with the VQ-VAE decoder into (C+1)-channel (C+K: one-hot mask) images and split them
into a synthetic micrograph and a raw (not yet cleaned) mask (paper Fig. 10).
Writes OUT/images/synth_NNNNN.png, OUT/raw_masks.npy (N, H, W) float32 in mask-level units [0, 1] ((N, H, W, K) class
scores for vqvae.mask_encoding onehot), OUT/raw_masks/synth_NNNNN.png (the raw mask as 8-bit gray, to look at:
MaskCodec.display), meta.json (with the VQ-VAE's mask_encoding, which the postprocess step reads).
"""

from pathlib import Path

import numpy as np

from dualgen.core import artifacts, cli, env
from dualgen.data import io
from dualgen.generate import common as generation
from dualgen.generate.mask_codec import MaskCodec


def main(args):
    s = cli.settings(args)
    env.setup_tensorflow(args.threads, 0, s["determinism"])
    from dualgen.generate.vqvae import data

    model, spec = generation.load_vqvae(args.vqvae)
    grids = np.load(Path(args.codes) / "grids.npy", allow_pickle=False)
    codec = MaskCodec(spec["mask_encoding"], len(s["classes"]))
    images, raws = [], []
    for done, img, raw in data.decode(model, grids, codec):
        images.append(img)
        raws.append(raw.astype(np.float32))
        print(f"decoded {done}/{len(grids)}", flush=True)
    images, raws = np.concatenate(images), np.concatenate(raws)
    inputs = [Path(args.codes) / "grids.npy", Path(args.vqvae) / "meta.json"]
    extra = {"n": len(grids), "mask_encoding": codec.encoding}
    with artifacts.artifact_dir(args.out, "decode", s, None, inputs, extra) as tmp:
        (tmp / "images").mkdir()
        (tmp / "raw_masks").mkdir()
        shown = np.clip(np.rint(codec.display(raws) * 255), 0, 255).astype(np.uint8)
        for i, (img, raw) in enumerate(zip(images, shown)):
            io.write_png(tmp / "images" / f"synth_{i:05d}.png", img)
            io.write_png(tmp / "raw_masks" / f"synth_{i:05d}.png", raw)
        np.save(tmp / "raw_masks.npy", raws, allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--vqvae", required=True)
    p.add_argument("--codes", required=True, help="folder with grids.npy (the sample step's output)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
