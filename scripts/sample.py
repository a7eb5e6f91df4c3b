#!/usr/bin/env python
"""Sample N new code grids from the trained PixelCNN prior (fast exact sampler, seeded, in chunks).

N is what the study's mixes need: one pool from which every mix takes a nested prefix.
A conditioned prior (--patches/--datasets: the real patches whose class fractions the targets start from) is
asked for sample.targets (dualgen.generate.conditioning.draw_targets): one target per grid, written to targets.csv.
With sample.calibrate codes or classes (unconditioned priors; --codes: the prior's training grids) the sampler first
fits per-code logit offsets so that its code frequencies match the training grids' (dualgen.generate.calibrate: the
exponential tilt of the prior nearest to it); with classes it then moves them on until the class fractions of the
decoded draws (--vqvae; the nearest class) match those of the training patches (codes/classes.npz). meta.json
records the offsets with the shares wanted, drawn in each round and in the pool.
Writes OUT/grids.npy (N, h, w) int32, [OUT/targets.csv], meta.json.
"""

from pathlib import Path

import numpy as np

from dualgen.core import artifacts, cli, env
from dualgen.core.errors import DualgenError
from dualgen.generate import common as generation
from dualgen.generate import conditioning


def main(args):
    s = cli.settings(args)
    sm = s["sample"]
    env.setup_tensorflow(args.threads, sm["seed"], s["determinism"])
    from dualgen.generate import calibrate
    from dualgen.generate.pixelcnn import sample

    if args.n < 1:
        raise DualgenError(f"sample: {args.n} grids requested: the mixes need none (all synthetic levels are 0)")
    model, spec = generation.load_pixelcnn(args.pixelcnn)
    cond, table = conditioning.sample_targets(
        s, int(spec["cond_dim"]), args.n, args.patches, args.datasets, args.pixelcnn
    )
    h, w = spec["grid_shape"]
    k = spec["num_embeddings"]
    bias, calibration = (
        calibrate.calibrate(sm, model, h, w, k, args.codes, args.vqvae) if cond is None else (None, None)
    )
    print(
        f"sampling {args.n} grids of {h}x{w} (temperature {sm['temperature']}, batches of {sm['batch_size']}"
        f"{', calibrated' if bias is not None else ''})",
        flush=True,
    )
    grids = sample.sample_fast(
        model,
        args.n,
        h,
        w,
        seed=sm["seed"],
        temperature=sm["temperature"],
        batch_size=sm["batch_size"],
        cond=cond,
        bias=bias,
    )
    shares = calibrate.pool_shares(calibration, grids, k)
    extra = {
        "n": args.n,
        "grid_shape": [h, w],
        "codes_used": int((shares > 0).sum()),
        "kind": spec["kind"],
        "conditioned": cond is not None,
        "calibration": calibration,
    }
    inputs = (
        [Path(args.pixelcnn) / "meta.json"]
        + ([Path(args.codes) / "grids.npy"] if calibration is not None else [])
        + ([Path(args.codes) / "classes.npz"] if calibration and "classes" in calibration else [])
    )
    with artifacts.artifact_dir(args.out, "sample", s, sm["seed"], inputs, extra) as tmp:
        np.save(tmp / "grids.npy", grids.astype(np.int32), allow_pickle=False)
        if table is not None:
            table.to_csv(tmp / "targets.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--pixelcnn", required=True)
    p.add_argument("--n", type=int, required=True, help="number of grids (the pool size the mixes need)")
    p.add_argument("--codes", default=None, help="the encode folder (sample.calibrate: the training grids' codes)")
    p.add_argument("--vqvae", default=None, help="the VQ-VAE folder (sample.calibrate classes: decodes the draws)")
    p.add_argument("--patches", default=None, help="the patches folder (a conditioned prior's targets)")
    p.add_argument("--datasets", default=None, help="the datasets folder (a conditioned prior's targets)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
