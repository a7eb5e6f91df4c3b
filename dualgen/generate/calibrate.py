"""The sampler's calibration as the sample step runs it (``sample.calibrate``, unconditioned priors): ``codes`` fits
per-code logit offsets so that the sampled code frequencies match those of the prior's training grids
(``pixelcnn.sample.calibrate``: the exponential tilt of the prior nearest to it); ``classes`` then moves them on until
the class fractions of the decoded draws (the nearest class of each raw mask pixel, ``MaskCodec.nearest``) match
those of the training patches (the encode step's classes.npz). Needs TensorFlow set up (``env.setup_tensorflow``).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core.errors import DualgenError
from dualgen.generate import common
from dualgen.generate.mask_codec import MaskCodec
from dualgen.generate.pixelcnn import sample
from dualgen.generate.vqvae import data


def decoded_fractions(vqvae_dir, n_classes):
    """grids -> (C,) class fractions of their decoded masks (nearest class): the measure of the class calibration."""
    model, spec = common.load_vqvae(vqvae_dir)
    codec = MaskCodec(spec["mask_encoding"], n_classes)

    def measure(grids):
        counts = np.zeros(n_classes)
        for _, _, raw in data.decode(model, grids, codec):
            counts += np.bincount(codec.nearest(raw).ravel(), minlength=n_classes)
        return counts / counts.sum()

    return measure


def rounds(history):
    """``pixelcnn.sample.calibrate``'s history as meta.json keeps it."""
    return [{"bias": b.tolist(), "drawn": f.tolist(), "total_variation": d} for b, f, d in history]


def calibrate(sm, model, h, w, k, codes_dir, vqvae_dir):
    """(bias, calibration meta) for an unconditioned prior of ``k`` codes over (h, w) grids with the sample settings
    ``sm`` (calibrate, seed, temperature, batch_size), or (None, None) for calibrate none. ``codes_dir``: the encode
    step's folder (the training grids, classes.npz); ``vqvae_dir``: the VQ-VAE that decodes the draws (classes)."""
    mode = sample.calibration_mode(sm["calibrate"])
    if mode == "none":
        return None, None
    if not codes_dir or (mode == "classes" and not vqvae_dir):
        raise DualgenError(
            f"sample.calibrate {mode}: --codes (the prior's training grids) and --vqvae (classes) are "
            "needed: the rule sample passes them"
        )
    codes = Path(codes_dir)
    split = pd.read_csv(codes / "codes.csv")["split"].to_numpy()
    target = sample.code_frequencies(np.load(codes / "grids.npy", allow_pickle=False)[split == "train"], k)
    common_args = dict(seed=sm["seed"], temperature=sm["temperature"], batch_size=sm["batch_size"])
    bias, history = sample.calibrate(model, target, h, w, **common_args)
    calibration = {
        "mode": mode,
        "bias": bias.tolist(),
        "target": target.tolist(),
        "uncalibrated": history[0][1].tolist(),
        "rounds": rounds(history),
    }
    if mode == "classes":
        classes = np.load(codes / "classes.npz", allow_pickle=False)
        n = classes["composition"].shape[1]  # the encode step's classes (its settings have them)
        if classes["composition"].shape[0] != k or classes["fractions"].shape != (n,):
            raise DualgenError(
                f"{codes / 'classes.npz'}: a code -> class table of shape "
                f"{classes['composition'].shape} for a prior of {k} codes: rerun encode"
            )
        bias, steps = sample.calibrate(
            model,
            classes["fractions"],
            h,
            w,
            **common_args,
            measure=decoded_fractions(vqvae_dir, n),
            features=classes["composition"],
            start=bias,
            rounds=sample.CLASS_ROUNDS,
            step=sample.CLASS_STEP,
            stream=2,
            what="class fractions",
        )
        calibration["bias"] = bias.tolist()
        calibration["classes"] = {"target": classes["fractions"].tolist(), "rounds": rounds(steps)}
    return bias, calibration


def pool_shares(calibration, grids, k):
    """The pool's code shares (K,); with a calibration, also recorded in it (drawn, total_variation) and printed
    beside the training grids' and the uncalibrated draws'."""
    shares = sample.code_frequencies(grids, k)
    if calibration is not None:
        calibration["drawn"] = shares.tolist()
        calibration["total_variation"] = sample.share_distance(shares, calibration["target"])
        print(
            "code shares (training grids / uncalibrated / pool): "
            + ", ".join(
                f"{i}: {a:.3f}/{b:.3f}/{c:.3f}"
                for i, (a, b, c) in enumerate(
                    zip(calibration["target"], calibration["uncalibrated"], calibration["drawn"])
                )
            ),
            flush=True,
        )
    return shares
