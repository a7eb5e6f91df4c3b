#!/usr/bin/env python
"""Sample N new code grids from the trained PixelCNN prior (fast exact sampler, seeded, in chunks).

N is what the study's mixes need: one pool from which every mix takes a nested prefix.
Writes OUT/grids.npy (N, h, w) int32 and meta.json.
"""
from pathlib import Path

import numpy as np

from dualgen import artifacts, cli, env, generation
from dualgen.errors import DualgenError


def main(args):
    s = cli.settings(args)
    sm = s["sample"]
    env.setup_tensorflow(args.threads, sm["seed"], s["determinism"])
    from dualgen import pixelcnn

    if args.n < 1:
        raise DualgenError(f"sample: {args.n} grids requested: the mixes need none (all synthetic levels are 0)")
    model, spec = generation.load_pixelcnn(args.pixelcnn)
    h, w = spec["grid_shape"]
    print(f"sampling {args.n} grids of {h}x{w} (temperature {sm['temperature']}, batches of {sm['batch_size']})", flush=True)
    grids = pixelcnn.sample_fast(model, args.n, h, w, seed=sm["seed"], temperature=sm["temperature"],
                                 batch_size=sm["batch_size"])
    usage = np.bincount(grids.ravel(), minlength=spec["num_embeddings"])
    extra = {"n": args.n, "grid_shape": [h, w], "codes_used": int((usage > 0).sum()), "kind": spec["kind"]}
    with artifacts.artifact_dir(args.out, "sample", s, sm["seed"], [Path(args.pixelcnn) / "meta.json"], extra) as tmp:
        np.save(tmp / "grids.npy", grids.astype(np.int32), allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--pixelcnn", required=True)
    p.add_argument("--n", type=int, required=True, help="number of grids (the pool size the mixes need)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
