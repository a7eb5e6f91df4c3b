#!/usr/bin/env python
"""Sample N new code grids from the trained PixelCNN prior (fast exact sampler, seeded, in chunks).

N is what the study's mixes need: one pool from which every mix takes a nested prefix.
Writes OUT/grids.npy (N, h, w) int32 and meta.json.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np  # noqa: E402

from dualgen import artifacts, cli, env, generation  # noqa: E402
from dualgen.errors import DualgenError  # noqa: E402


def main(args):
    s = cli.settings(args)
    sm = s["sample"]
    env.setup_tensorflow(args.threads, sm["seed"])
    from dualgen import pixelcnn

    if args.n < 1:
        raise DualgenError(f"sample: {args.n} grids requested: the mixes need none (all synthetic levels are 0)")
    model, pmeta = generation.load_pixelcnn(args.pixelcnn)
    h, w = pmeta["grid_shape"]
    print(f"sampling {args.n} grids of {h}x{w} (temperature {sm['temperature']}, batches of {sm['batch_size']})", flush=True)
    grids = pixelcnn.sample_fast(model, args.n, h, w, seed=sm["seed"], temperature=sm["temperature"],
                                 batch_size=sm["batch_size"])
    usage = np.bincount(grids.ravel(), minlength=pmeta["num_embeddings"])
    extra = {"n": args.n, "grid_shape": [h, w], "codes_used": int((usage > 0).sum()), "kind": pmeta["kind"]}
    with artifacts.artifact_dir(args.out, "sample", s, sm["seed"], [Path(args.pixelcnn) / "meta.json"], extra) as tmp:
        np.save(tmp / "grids.npy", grids.astype(np.int32), allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--pixelcnn", required=True)
    p.add_argument("--n", type=int, required=True, help="number of grids (the pool size the mixes need)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
