#!/usr/bin/env python
"""Sample N new code grids from the trained PixelCNN prior (fast exact sampler, seeded, in chunks).

N is what the study's mixes need: one pool from which every mix takes a nested prefix.
A conditioned prior (--patches/--datasets: the real patches whose class fractions the targets start from) is
asked for sample.targets (dualgen.generate.conditioning.draw_targets): one target per grid, written to targets.csv.
With sample.calibrate codes or classes (unconditioned priors; --codes: the prior's training grids) the sampler first
fits per-code logit offsets so that its code frequencies match the training grids' (dualgen.generate.pixelcnn.calibrate: the
exponential tilt of the prior nearest to it); with classes it then moves them on until the class fractions of the
decoded draws (--vqvae; the nearest class: postprocess.nearest_classes) match those of the training patches
(codes/classes.npz). meta.json records the offsets with the shares wanted, drawn in each round and in the pool.
Writes OUT/grids.npy (N, h, w) int32, [OUT/targets.csv], meta.json.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.generate import conditioning, common as generation, postprocess
from dualgen.core.errors import DualgenError


def targets(args, s, spec):
    """(N, cond_dim) targets and their table, or (None, None) for an unconditioned prior."""
    cond_dim = int(spec.get("cond_dim", 0))
    if cond_dim == 0:
        return None, None
    if not (args.patches and args.datasets):
        raise DualgenError(f"{args.pixelcnn} is a conditioned prior: --patches and --datasets are needed (the real "
                           "fractions the targets start from): the rule sample_conditioned passes them")
    names = [c["name"] for c in s["classes"]]
    ids, real = generation.condition_vectors(s["condition"], args.patches, args.datasets, len(names))
    if real.shape[1] != cond_dim:
        raise DualgenError(f"{args.pixelcnn}: the prior was trained on {cond_dim}-long conditioning vectors, "
                           f"pixelcnn.condition {s['condition']} makes {real.shape[1]}: rerun train_pixelcnn_conditioned")
    wanted = s["sample"]["targets"]
    cond, idx = conditioning.draw_targets(real, args.n, wanted, names, s["sample"]["seed"])
    print(f"targets: {conditioning.describe(wanted)}; mean requested fractions "
          + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, cond[:, :len(names)].mean(axis=0))), flush=True)
    table = pd.DataFrame({"grid": np.arange(args.n), "from_patch": [ids[i] for i in idx]})
    for k, name in enumerate(names):
        table[f"req_{name}"] = cond[:, k]
    if cond_dim > len(names):
        table["req_intensity"] = cond[:, len(names)]
    return cond, table


def decoded_fractions(vqvae_dir, n_classes):
    """grids -> (C,) class fractions of their decoded masks (nearest class): the measure of the class calibration."""
    import tensorflow as tf

    from dualgen.generate import vqvae

    model, spec = generation.load_vqvae(vqvae_dir)

    def measure(grids):
        counts = np.zeros(n_classes)
        for i in range(0, len(grids), 16):
            _, raw = vqvae.from_model_output(model.decode(tf.constant(grids[i:i + 16], tf.int32)).numpy(), n_classes,
                                             spec["mask_encoding"])
            counts += np.bincount(postprocess.nearest_classes(raw, n_classes).ravel(), minlength=n_classes)
        return counts / counts.sum()
    return measure


def rounds(history):
    """pixelcnn.calibrate's history as meta.json keeps it."""
    return [{"bias": b.tolist(), "drawn": f.tolist(), "total_variation": d} for b, f, d in history]


def calibrate(args, s, model, h, w, k):
    """(bias, calibration meta) for an unconditioned prior (sample.calibrate), or (None, None)."""
    from dualgen.generate import pixelcnn

    sm = s["sample"]
    mode = pixelcnn.calibration_mode(sm.get("calibrate"))
    if mode == "none":
        return None, None
    if not args.codes or (mode == "classes" and not args.vqvae):
        raise DualgenError(f"sample.calibrate {mode}: --codes (the prior's training grids) and --vqvae (classes) are "
                           "needed: the rule sample passes them")
    codes = Path(args.codes)
    split = pd.read_csv(codes / "codes.csv")["split"].to_numpy()
    target = pixelcnn.code_frequencies(np.load(codes / "grids.npy", allow_pickle=False)[split == "train"], k)
    common = dict(seed=sm["seed"], temperature=sm["temperature"], batch_size=sm["batch_size"])
    bias, history = pixelcnn.calibrate(model, target, h, w, **common)
    calibration = {"mode": mode, "bias": bias.tolist(), "target": target.tolist(), "uncalibrated": history[0][1].tolist(),
                   "rounds": rounds(history)}
    if mode == "classes":
        classes = np.load(codes / "classes.npz", allow_pickle=False)
        n = classes["composition"].shape[1]  # the encode step's classes (its settings have them)
        if classes["composition"].shape[0] != k or classes["fractions"].shape != (n,):
            raise DualgenError(f"{codes / 'classes.npz'}: a code -> class table of shape {classes['composition'].shape} "
                               f"for a prior of {k} codes: rerun encode")
        bias, steps = pixelcnn.calibrate(
            model, classes["fractions"], h, w, **common, measure=decoded_fractions(args.vqvae, n),
            features=classes["composition"], start=bias, rounds=pixelcnn.CLASS_ROUNDS, step=pixelcnn.CLASS_STEP,
            stream=2, what="class fractions")
        calibration["bias"] = bias.tolist()
        calibration["classes"] = {"target": classes["fractions"].tolist(), "rounds": rounds(steps)}
    return bias, calibration


def main(args):
    s = cli.settings(args)
    sm = s["sample"]
    env.setup_tensorflow(args.threads, sm["seed"], s["determinism"])
    from dualgen.generate import pixelcnn

    if args.n < 1:
        raise DualgenError(f"sample: {args.n} grids requested: the mixes need none (all synthetic levels are 0)")
    model, spec = generation.load_pixelcnn(args.pixelcnn)
    cond, table = targets(args, s, spec)
    h, w = spec["grid_shape"]
    k = spec["num_embeddings"]
    bias, calibration = calibrate(args, s, model, h, w, k) if cond is None else (None, None)
    print(f"sampling {args.n} grids of {h}x{w} (temperature {sm['temperature']}, batches of {sm['batch_size']}"
          f"{', calibrated' if bias is not None else ''})", flush=True)
    grids = pixelcnn.sample_fast(model, args.n, h, w, seed=sm["seed"], temperature=sm["temperature"],
                                 batch_size=sm["batch_size"], cond=cond, bias=bias)
    shares = pixelcnn.code_frequencies(grids, k)
    if calibration is not None:
        calibration["drawn"] = shares.tolist()
        calibration["total_variation"] = pixelcnn.share_distance(shares, calibration["target"])
        print("code shares (training grids / uncalibrated / pool): " + ", ".join(
            f"{i}: {a:.3f}/{b:.3f}/{c:.3f}" for i, (a, b, c) in enumerate(zip(
                calibration["target"], calibration["uncalibrated"], calibration["drawn"]))), flush=True)
    extra = {"n": args.n, "grid_shape": [h, w], "codes_used": int((shares > 0).sum()), "kind": spec["kind"],
             "conditioned": cond is not None, "calibration": calibration}
    with artifacts.artifact_dir(args.out, "sample", s, sm["seed"], [Path(args.pixelcnn) / "meta.json"]
                                + ([Path(args.codes) / "grids.npy"] if calibration is not None else [])
                                + ([Path(args.codes) / "classes.npz"] if calibration and "classes" in calibration else []),
                                extra) as tmp:
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
