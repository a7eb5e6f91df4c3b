#!/usr/bin/env python
"""Benchmark: whole-micrograph inference (``dualgen.segment.whole.predict_scores``) in megapixels per second.

The models: ``--models`` untrained U-Nets (random weights: the speed does not depend on them) built as training
builds them from config.yaml's ``unet`` settings (backbone, encoder_depth, decoder_filters, mixed_precision;
``unet.make_spec``, random initialisation), the window = ``patches.size``, the classes = config's; or, with
``--model DIR``, the seed U-Nets of an exported model folder (``dualgen.segment.model_export``: its window, channel
count and input scaling). The micrograph: a synthetic ``--size`` x ``--size`` gray (blocks of class-typical levels
plus noise; with ``--model`` of the model's channel count). After one warm-up call (traces every model), each
setting is timed ``--repeats`` times (the fastest kept): overlap 0.5 (the default), overlap 0, overlap 0.5 with
flip TTA (4x the windows).
Prints a table (setting, windows, seconds, megapixels/s) and LAST:
`whole-image inference: <x> megapixels/s on <n> cores (window <w>, overlap <o>, <k> models)` (overlap 0.5, no TTA).
Usage: python bench/predict.py [--size 1024] [--models 3] [--threads N] [--repeats 2] [--batch B] [--model DIR]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from dualgen.core import env

REPO = Path(__file__).resolve().parents[1]

SETTINGS = [("overlap 0.5", 0.5, False), ("overlap 0", 0.0, False), ("overlap 0.5 + TTA", 0.5, True)]  # first: default


def untrained(k):
    """(models, window, preprocess, channels, description): ``k`` randomly initialised U-Nets from config.yaml."""
    import tensorflow as tf

    from dualgen.core.config import fill_defaults, load_yaml
    from dualgen.segment import unet

    config = fill_defaults(load_yaml(REPO / "config.yaml"))
    size = int(config["patches"]["size"])
    settings = dict(config["unet"], encoder_weights=None)  # random initialisation: no weights file needed
    spec = unet.make_spec(settings, len(config["classes"]), (size, size, 1))
    models = []
    for seed in range(k):
        tf.keras.utils.set_random_seed(seed)
        models.append(unet.build_unet(**spec))
    what = f"{spec['backbone']}, encoder_depth {spec['encoder_depth']}, decoder {spec['decoder_filters']}"
    return models, size, unet.preprocessor(spec), 1, f"{k} untrained U-Nets ({what}, {spec['num_classes']} classes)"


def exported(folder):
    """(models, window, preprocess, channels, description) of an exported model folder."""
    from dualgen.segment import model_export, unet

    models, pre, seeds = model_export.load(folder)
    return models, int(pre["window"]), unet.preprocessor(pre), int(pre["channels"]), f"{folder}: seeds {seeds}"


def micrograph(size, channels, seed=0):
    """uint8 (size, size, channels): 16 px blocks of four class-typical gray levels plus noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 4, (-(-size // 16),) * 2)
    levels = np.kron(np.array([60.0, 130.0, 200.0, 250.0])[blocks], np.ones((16, 16)))[:size, :size]
    gray = np.clip(levels + rng.normal(0, 15, levels.shape), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], channels, -1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="side of the synthetic micrograph in px (default 1024)")
    ap.add_argument("--models", type=int, default=3, help="untrained U-Nets (seeds) to ensemble (default 3)")
    ap.add_argument("--model", default=None, help="an exported model folder instead of untrained U-Nets")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="TensorFlow threads (default: all)")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per setting, the fastest kept (default 2)")
    from dualgen.core.config import load_yaml

    batch = load_yaml(REPO / "config.yaml")["predict"]["batch_size"]
    ap.add_argument(
        "--batch", type=int, default=batch, help=f"windows per model call (default {batch}: predict.batch_size)"
    )
    args = ap.parse_args()
    env.setup_tensorflow(args.threads, 0)
    from dualgen.segment import whole

    models, window, preprocess, channels, what = exported(args.model) if args.model else untrained(args.models)
    image = micrograph(args.size, channels)
    megapixels = image.shape[0] * image.shape[1] / 1e6
    print(f"{what}; window {window} px; micrograph {args.size}x{args.size}x{channels}; batch {args.batch}", flush=True)

    def timed(overlap, tta):
        best = float("inf")
        for _ in range(max(1, args.repeats)):
            t = time.perf_counter()
            whole.predict_scores(
                models, image, size=window, overlap=overlap, preprocess=preprocess, batch_size=args.batch, tta=tta
            )
            best = min(best, time.perf_counter() - t)
        return best

    t = time.perf_counter()
    whole.predict_scores(models, image, size=window, preprocess=preprocess, batch_size=args.batch)  # warm-up
    print(f"warm-up call: {time.perf_counter() - t:.1f} s", flush=True)
    print(f"{'setting':<20} {'windows':>8} {'seconds':>8} {'MP/s':>8}")
    rates = []
    for name, overlap, tta in SETTINGS:
        seconds = timed(overlap, tta)
        n = len(whole.window_starts(args.size, window, overlap)) ** 2 * (4 if tta else 1)
        rates.append(megapixels / seconds)
        print(f"{name:<20} {n:>8} {seconds:>8.2f} {rates[-1]:>8.3f}", flush=True)
    print(
        f"windows: per model (x4 with TTA); seconds: the fastest of {args.repeats} call(s) of predict_scores for "
        f"{len(models)} model(s) (preprocessing, every model, blending); MP/s: megapixels of the micrograph per second"
    )
    print(
        f"whole-image inference: {rates[0]:.3f} megapixels/s on {args.threads} cores (window {window}, overlap "
        f"{SETTINGS[0][1]}, {len(models)} models)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
