#!/usr/bin/env python
"""GPU smoke test: a few updates of every training at the paper's sizes, with op determinism on and off.

Trainings (presets/paper.yaml merged over config.yaml): the VQ-VAE (RGB + mask = 4 channels, its paper settings and
batch), the plain and the gated PixelCNN prior (code grids of patch size / 4, paper filters and blocks, config's
batch), and the U-Net (the paper's backbone, efficientnetb3, on RGB patches, paper batch; random initial weights
instead of ImageNet's: the same computation, no weights file needed). Random data: the speed does not depend on it.
Each training runs in its own process, once per mode:
  strict  op determinism on, as the pipeline trains (env.setup_tensorflow): a kernel without a deterministic GPU
          implementation fails the training here (UnimplementedError), which no CPU test can see;
  fast    op determinism off, cuDNN autotuning on.
--mixed-precision: the VQ-VAE and the U-Net train as with vqvae/unet.mixed_precision: true (float16 compute, float32
variables and outputs, loss scaling; dualgen.core.precision); the priors are float32 either way.
VQ-VAE and priors: the real training function runs one update (tracing, validation and checkpoint included:
"first"), then --steps updates of its compiled step are timed. U-Net: compiled as train_unet does, one
train_on_batch ("first"), then --steps timed. Per training: updates per second and the process' peak GPU memory
(``tf.config.experimental.get_memory_info('GPU:0')['peak']``; "n/a (CPU)" without a GPU).
Last line: `gpu smoke: <n> trainings ok`.
Usage: python bench/gpu_smoke.py [--steps 20] [--size 256] [--threads N] [--only vqvae,prior_plain,prior_gated,unet]
       [--modes strict,fast] [--mixed-precision]
On a CPU: python bench/gpu_smoke.py --steps 2 --size 64 (a few minutes)
Needs dualgen installed (make setup; or `pip install --no-deps --no-build-isolation -e .` after requirements.lock).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

TRAININGS = ("vqvae", "prior_plain", "prior_gated", "unet")
MODES = ("strict", "fast")
SEED = 0
CHANNELS = 3  # the demo micrographs (and ImageNet U-Nets) are RGB


def paper_settings():
    from dualgen.core import config

    return config.merge(config.load_yaml(REPO / "config.yaml"), config.load_yaml(REPO / "presets" / "paper.yaml"))


def setup(mode, threads):
    """TensorFlow as the pipeline sets it up (config key ``determinism``: strict or fast)."""
    from dualgen.core import env

    return env.setup_tensorflow(threads, SEED, mode)


def quiet(*args, **kwargs):
    pass


def timed(step, steps):
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t


def run_vqvae(tf, s, size, steps):
    from dualgen.generate.vqvae import persist, train
    from tests import determinism_tools

    v = s["vqvae"]
    b = int(v["batch_size"])
    spec = persist.make_spec(v, CHANNELS, len(s["classes"]))
    model = persist.build(spec)
    x = np.random.default_rng(SEED).uniform(-0.5, 0.5, (b + 1, size, size, spec["channels"])).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        with determinism_tools.captured_functions(train) as graphs:
            train.train_vqvae(
                model,
                x[:b],
                x[b:],
                steps=1,
                batch_size=b,
                learning_rate=v["learning_rate"],
                seed=SEED,
                out_dir=tmp,
                eval_every=1,
                log=quiet,
                mask_weight=1.0,
                n_mask=1,
                mixed_precision=v["mixed_precision"],
            )
        first = time.perf_counter() - t
    step = next(g for g in graphs if "train_step" in g.name.decode())
    batch = tf.constant(x[:b])
    return (
        first,
        timed(lambda: float(step(batch)[0]), steps),
        (f"batch {b}, {size} px, {spec['channels']} channels{', mixed precision' * v['mixed_precision']}"),
    )


def run_prior(tf, s, size, steps, kind):
    from dualgen.generate.pixelcnn import persist, train
    from tests import determinism_tools

    p, k = s["pixelcnn"], int(s["vqvae"]["num_embeddings"])
    b, g = int(p["batch_size"]), size // 4
    c = len(s["classes"]) if p["condition"] != "none" else 0  # the conditioned prior when the config trains one
    model = persist.build(persist.make_spec(p, kind, k, (g, g), cond_dim=c))
    rng = np.random.default_rng(SEED)
    grids = rng.integers(0, k, (b + 1, g, g)).astype(np.int32)
    cond = rng.dirichlet(np.ones(max(c, 1)), b + 1).astype(np.float32)[:, :c]
    t = time.perf_counter()
    with determinism_tools.captured_functions(train) as graphs:
        train.train_pixelcnn(
            model,
            grids[:b],
            grids[b:],
            epochs=1,
            batch_size=b,
            learning_rate=p["learning_rate"],
            seed=SEED,
            log=quiet,
            train_cond=cond[:b],
            val_cond=cond[b:],
        )
    first = time.perf_counter() - t
    step = next(gr for gr in graphs if "train_step" in gr.name.decode())
    batch, batch_cond = tf.constant(grids[:b]), tf.constant(cond[:b])
    drop_seed = tf.constant([SEED, 1], tf.int32)  # the step's dropout seed (unused with pixelcnn.dropout 0)
    return (
        first,
        timed(lambda: float(step(batch, batch_cond, drop_seed)), steps),
        f"batch {b}, {g}x{g} grid, K={k}" + (f", conditioned ({c})" if c else ""),
    )


def run_unet(tf, s, size, steps):
    from dualgen.segment import unet, unet_train

    u, n = s["unet"], len(s["classes"])
    b, mixed = int(u["batch_size"]), u["mixed_precision"]
    model = unet.build_unet(
        u["backbone"],
        None,
        n,
        (size, size, CHANNELS),
        u["bn_momentum"],
        mixed,
        u["decoder_filters"],
        u["encoder_depth"],
    )
    unet_train.compile_unet(model, u["learning_rate"], mixed)
    rng = np.random.default_rng(SEED)
    x = rng.uniform(0, 1, (b, size, size, CHANNELS)).astype(np.float32)
    y = np.eye(n, dtype=np.float32)[rng.integers(0, n, (b, size, size))]
    t = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - t
    return (
        first,
        timed(lambda: model.train_on_batch(x, y), steps),
        (f"{u['backbone']}, batch {b}, {size} px{', mixed precision' * mixed}"),
    )


def worker(args):
    sys.path.insert(0, str(REPO))  # tests/determinism_tools.py: captured_functions
    tf = setup(args.determinism, args.threads)
    s = paper_settings()
    for part in ("vqvae", "unet"):
        s[part]["mixed_precision"] = bool(args.mixed_precision)
    run = {
        "vqvae": run_vqvae,
        "prior_plain": lambda *a: run_prior(*a, "plain"),
        "prior_gated": lambda *a: run_prior(*a, "gated"),
        "unet": run_unet,
    }[args.worker]
    first, seconds, what = run(tf, s, args.size, args.steps)
    from tensorflow.python.framework import config as tf_config

    gpu = bool(tf.config.list_physical_devices("GPU"))
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if gpu else None
    print(
        "RESULT "
        + json.dumps(
            {
                "first": first,
                "seconds": seconds,
                "what": what,
                "peak": peak,
                "determinism": bool(tf_config.is_op_determinism_enabled()),
            }
        ),
        flush=True,
    )


def _tail(text, n=20):
    """The end of a failed worker's output without TensorFlow's start-up log lines."""
    noise = ("I0000", "W0000", "E0000", "WARNING: All log messages")
    return "\n".join([ln for ln in text.strip().splitlines() if not ln.startswith(noise)][-n:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed updates per training (default 20)")
    ap.add_argument("--size", type=int, default=None, help="patch size (default: the paper's; a multiple of 32)")
    ap.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1), help="TensorFlow CPU threads")
    ap.add_argument("--only", default=",".join(TRAININGS), help=f"comma-separated subset of {', '.join(TRAININGS)}")
    ap.add_argument("--modes", default=",".join(MODES), help="strict, fast or both (default)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per training")
    ap.add_argument("--mixed-precision", action="store_true", help="VQ-VAE and U-Net in mixed precision (float16)")
    ap.add_argument("--worker", choices=TRAININGS, help=argparse.SUPPRESS)
    ap.add_argument("--determinism", choices=MODES, default="strict", help=argparse.SUPPRESS)
    args = ap.parse_args()
    s = paper_settings()
    args.size = int(args.size or s["patches"]["size"])
    if args.size % 32 or args.steps < 1:
        ap.error(f"--size {args.size} must be a multiple of 32 (the U-Net halves it 5 times), --steps at least 1")
    if args.worker:
        return worker(args)

    trainings = [t for t in args.only.split(",") if t]
    modes = [m for m in args.modes.split(",") if m]
    bad = sorted(set(trainings) - set(TRAININGS)) + sorted(set(modes) - set(MODES))
    if bad:
        ap.error(f"unknown: {', '.join(bad)}")
    print(
        f"paper settings, {args.size}-px patches, {args.steps} timed updates per training, {args.threads} CPU "
        f"thread(s); each training in its own process",
        flush=True,
    )
    ok, failed = 0, []
    for name in trainings:
        for mode in modes:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                name,
                "--determinism",
                mode,
                "--steps",
                str(args.steps),
                "--size",
                str(args.size),
                "--threads",
                str(args.threads),
            ]
            cmd += ["--mixed-precision"] if args.mixed_precision else []
            e = dict(os.environ, PYTHONHASHSEED="0")  # the worker's setup_tensorflow sets the determinism variables
            t = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=e, cwd=REPO)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                error = None if proc.returncode == 0 and lines else _tail(proc.stderr or proc.stdout)
            except subprocess.TimeoutExpired:
                lines, error = [], f"no result within {args.timeout} s"
            label = f"{name:<12} {mode:<6}"
            if error:
                failed.append(f"{name} ({mode})")
                print(f"{label} FAILED after {time.perf_counter() - t:.0f} s:\n{error}", flush=True)
                continue
            r = json.loads(lines[-1][len("RESULT ") :])
            if r["determinism"] != (mode == "strict"):
                failed.append(f"{name} ({mode})")
                print(f"{label} FAILED: op determinism was {'on' if r['determinism'] else 'off'}", flush=True)
                continue
            peak = "n/a (CPU)" if r["peak"] is None else f"{r['peak'] / 2**20:.0f} MiB"
            print(
                f"{label} {args.steps / r['seconds']:8.2f} steps/s  first update {r['first']:6.1f} s  peak GPU "
                f"memory {peak}  ({r['what']})",
                flush=True,
            )
            ok += 1
    if failed:
        print(f"gpu smoke: {len(failed)} of {ok + len(failed)} trainings FAILED: {', '.join(failed)}")
        return 1
    print(f"gpu smoke: {ok} trainings ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
