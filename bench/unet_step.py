#!/usr/bin/env python
"""Benchmark: U-Net training speed and start overhead per candidate at 64 px, 1 thread, side by side in one run.

Every candidate runs in its own subprocess (a fresh TensorFlow, like one Snakemake training job), ``--rounds``
times, interleaved (the order rotates every round), ``--jobs`` (default 2, as the study runs) at a time, each
with 1 intra-op / 1 inter-op thread and op determinism on (``dualgen.core.env.setup_tensorflow(1, seed)``). A worker
times, separately: import (dualgen + TensorFlow + segmentation_models), build (``dualgen.segment.unet.build_unet``, as
training builds it; ``sm.Unet`` for a transpose decoder), compile (Adam, DiceLoss + CategoricalFocalLoss,
IOUScore(threshold=0.5), as ``dualgen.segment.unet_train.train_unet``), trace (the first ``model.fit`` call minus
the steady time of the updates it ran: tracing of the train function), val trace (the first ``model.evaluate`` at
batch 1, as fit's validation), and then the steady updates per second of ``model.fit``
on a fixed tf.data set (random 64x64x1 images, 4 classes; timed between the first and the last batch end of a
fit, so without fit's per-call set-up). Medians over the rounds are printed.

Candidate names: ``<backbone>[-e<D>][-d<F>][-b<B>][-ka][-bf16|-auto][-tr][-xla][-spe<K>][-nomo][-autojit]``; backbone
r18 (resnet18), mnv2 (mobilenetv2), effb0 (efficientnetb0), or any segmentation_models name; e<D>: encoder_depth D
(3..5, default 5: ``sm.Unet``; 4: without the 1/32 level, ``dualgen.segment.unet.build_unet``); d<F>: decoder_filters F,
F/2, .. (D blocks; d256 at depth 5 = the default (256, 128, 64, 32, 16)); tr: decoder_block_type "transpose"
(default "upsampling"); b<B>: batch (default 4); ka: Keras' Adam (about ten element-wise ops per variable; without it
dualgen's ``unet_train.FusedAdam``, one kernel); bf16: Keras' mixed_bfloat16 policy with a float32 softmax
(``dualgen.core.precision``); auto: bf16 where ``unet.mixed_precision: auto`` picks it on this machine (a CPU with
AVX512_BF16 or AMX), float32 elsewhere; xla: compile(jit_compile=True);
spe<K>: compile(steps_per_execution=K); nomo: tf.config.optimizer.set_experimental_options({"disable_meta_optimizer":
True}) (no grappler: faster trace); autojit: tf.config.optimizer.set_jit("autoclustering") with
TF_XLA_FLAGS=--tf_xla_cpu_global_jit (XLA auto-clustering on the CPU).
Variants of the default (tr, spe, xla, autojit) run in round 1 only; the others also time twice the batch on
the same trace (column 2B). upd/s: updates per CPU-second of the worker (its core is shared with other jobs:
CPU time, not wall time, is what a dedicated core would give; the wall column is there too).
Usage: python bench/unet_step.py [--rounds 3] [--updates 30] [--candidates r18,r18-d64,...] [--jobs 2] [--extra]
Last line: `unet step: <DEFAULT> <x> updates/s vs current resnet18 <y> updates/s: <ratio>x`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

t_start = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]

CURRENT = "r18-ka"  # the model the issue started from: resnet18, default decoder (256, 128, 64, 32, 16), Keras' Adam
# The best trade-off: resnet18 kept (fewer changes of results), decoder_filters (128, 64, 32, 16, 8): ~1.3x the
# updates/s of today, the same trace time; d64 is no faster with resnet18 (its 11.2M encoder parameters dominate).
# mobilenetv2 + d64 is ~2.5x in steady state but traces ~2x longer (7-8 CPU-s vs 3.5) and segments much worse at
# 200 updates (bench/RESULTS.md). The fused Adam: ~1.1x, and a third less tracing; bfloat16 (auto, where the CPU
# has it): ~1.1x more, the same accuracy.
# Encoder depth 4 (resnet18 without its last stage, 8.4 of its 11.2 M weights, which sees 2x2 pixels at 64 px):
# ~2x the updates/s of depth 5, and a 4x smaller model; Adam's update of every weight was most of an update.
DEFAULT = "r18-e4-d64-auto"  # the default config: depth 4, decoder (64, 32, 16, 8), FusedAdam, mixed_precision auto
CANDIDATES = [
    CURRENT,
    "r18-d128-ka",
    "r18-d128",
    "r18-d128-auto",
    "r18-e4-d64",
    "r18-e3-d32-auto",
    "r18-d64",
    "mnv2-d64",
    "effb0-d64",
    "r18-d128-nomo",
    "r18-d128-tr",
    "r18-d128-spe4",
    "r18-d128-xla",
    "r18-d128-tr-xla",
]
EXTRA = ["mnv2-d64-tr-xla", "r18-d128-autojit"]  # --extra: XLA that compiles, auto-clustering (both ~0.5x, slow)
ALIASES = {"r18": "resnet18", "mnv2": "mobilenetv2", "effb0": "efficientnetb0"}
SIZE, CLASSES, SEED, NDATA = 64, 4, 0, 16


def parse(name):
    """Candidate name -> settings (see the module docstring)."""
    tokens = name.split("-")
    spec = {
        "name": name,
        "backbone": ALIASES.get(tokens[0], tokens[0]),
        "decoder": 256,
        "batch": 4,
        "xla": False,
        "spe": 1,
        "autojit": False,
        "block": "upsampling",
        "nomo": False,
        "adam": "fused",
        "precision": False,
        "depth": 5,
    }
    for tok in tokens[1:]:
        if tok == "xla":
            spec["xla"] = True
        elif tok == "nomo":
            spec["nomo"] = True
        elif tok == "ka":
            spec["adam"] = "keras"
        elif tok in ("bf16", "auto"):
            spec["precision"] = "bfloat16" if tok == "bf16" else "auto"
        elif tok == "tr":
            spec["block"] = "transpose"
        elif tok == "autojit":
            spec["autojit"] = True
        elif tok.startswith("spe") and tok[3:].isdigit():
            spec["spe"] = int(tok[3:])
        elif tok[:1] == "e" and tok[1:] in ("3", "4", "5"):
            spec["depth"] = int(tok[1:])
        elif tok[:1] == "d" and tok[1:].isdigit():
            spec["decoder"] = int(tok[1:])
        elif tok[:1] == "b" and tok[1:].isdigit():
            spec["batch"] = int(tok[1:])
        else:
            raise SystemExit(f"unet_step: unknown part '{tok}' in candidate '{name}'")
    if spec["depth"] < 5 and spec["block"] == "transpose":
        raise SystemExit(f"unet_step: '{name}': a transpose decoder only at depth 5 (sm.Unet)")
    spec["decoder_filters"] = tuple(max(1, spec["decoder"] >> i) for i in range(spec["depth"]))
    return spec


# ---------------------------------------------------------------------------------------------- worker


def per_update(ends, k):
    """Median (wall, CPU) seconds per update from the batch ends (one per execution of k updates): medians are
    robust to the other engineers' jobs taking the core for a moment, CPU time to sharing it at all."""
    import numpy as np

    gaps = np.diff(np.array(ends), axis=0) / k
    return float(np.median(gaps[:, 0])), float(np.median(gaps[:, 1]))


def worker(name, updates, double):
    spec = parse(name)
    if spec["autojit"]:
        os.environ["TF_XLA_FLAGS"] = (os.environ.get("TF_XLA_FLAGS", "") + " --tf_xla_cpu_global_jit").strip()
    out = {"name": name}
    clock = [time.perf_counter(), time.process_time()]

    def lap(key):
        """Wall and CPU seconds since the previous lap, as out[key] and out[key + "_cpu"]."""
        now = [time.perf_counter(), time.process_time()]
        out[key], out[key + "_cpu"] = now[0] - clock[0], now[1] - clock[1]
        clock[:] = now

    clock[0] = t_start  # the worker's own start (interpreter and argparse: CPU time counts from the process start)
    clock[1] = 0.0
    from dualgen.core import env

    tf = env.setup_tensorflow(1, SEED)  # 1 intra-op, 1 inter-op thread, op determinism on
    import numpy as np
    import segmentation_models as sm

    from dualgen.core import precision
    from dualgen.segment import unet
    from dualgen.segment.unet_train import FusedAdam

    if spec["autojit"]:
        tf.config.optimizer.set_jit("autoclustering")
    if spec["nomo"]:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    lap("import")

    tf.keras.utils.set_random_seed(SEED)
    mixed = precision.resolve(spec["precision"])
    out["precision"] = precision.mode(mixed) or "float32"
    if spec["block"] == "transpose":
        with precision.keras_policy(mixed):
            model = sm.Unet(
                spec["backbone"],
                encoder_weights=None,
                classes=CLASSES,
                activation="softmax",
                input_shape=(SIZE, SIZE, 1),
                decoder_filters=spec["decoder_filters"],
                decoder_block_type=spec["block"],
            )
        if mixed:
            model = precision.float32_outputs(model)
    else:
        model = unet.build_unet(
            spec["backbone"],
            None,
            CLASSES,
            (SIZE, SIZE, 1),
            bn_momentum=None,
            mixed_precision=mixed,
            decoder_filters=spec["decoder_filters"],
            encoder_depth=spec["depth"],
        )
    lap("build")
    out["params"] = int(model.count_params())

    kwargs = {}
    if spec["xla"]:
        kwargs["jit_compile"] = True
    if spec["spe"] > 1:
        kwargs["steps_per_execution"] = spec["spe"]
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3) if spec["adam"] == "keras" else FusedAdam(1e-3),
        loss=sm.losses.DiceLoss() + sm.losses.CategoricalFocalLoss(),
        metrics=[sm.metrics.IOUScore(threshold=0.5)],
        **kwargs,
    )
    lap("compile")

    rng = np.random.default_rng(SEED)
    x = rng.integers(0, 256, (NDATA, SIZE, SIZE, 1)).astype(np.float32) / 255.0
    y = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, (NDATA, SIZE, SIZE))]
    batch, k = spec["batch"], spec["spe"]
    # batch without drop_remainder: batch dimension None, the signature dualgen's pipeline traces
    train = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch).prefetch(2)
    val = tf.data.Dataset.from_tensor_slices((x[:2], y[:2])).batch(1)

    class Ends(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, b, logs=None):
            self.ends.append((time.perf_counter(), time.process_time()))

    clock[:] = [time.perf_counter(), time.process_time()]
    hist = model.fit(train, epochs=1, steps_per_epoch=k, verbose=0)  # trace + k updates
    lap("first_fit")
    out["loss1"] = float(hist.history["loss"][-1])
    model.evaluate(val, steps=2, verbose=0)  # validation's trace (fit traces it at the first epoch end)
    lap("val_trace")
    model.fit(train, epochs=1, steps_per_epoch=2 * k, verbose=0)  # warm-up
    steps = k * (1 + max(1, -(-updates // k)))  # the first execution's end starts the clock
    ends = Ends()
    model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[ends])
    wall, cpu = per_update(ends.ends, k)
    out["updates_per_s"], out["updates_per_cpu_s"] = 1.0 / wall, 1.0 / cpu
    out["trace"] = max(0.0, out["first_fit"] - k * wall)
    out["trace_cpu"] = max(0.0, out["first_fit_cpu"] - k * cpu)
    out["timed_updates"] = steps - k
    out["batch"] = batch
    if double:  # the same traced function (batch dimension None) at twice the batch, as many images
        train2 = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(2 * batch).prefetch(2)
        model.fit(train2, epochs=1, steps_per_epoch=2 * k, verbose=0)  # warm-up (no retrace)
        steps2 = k * (1 + max(1, -(-updates // (2 * k))))
        model.fit(train2, epochs=1, steps_per_epoch=steps2, verbose=0, callbacks=[ends])
        wall2, cpu2 = per_update(ends.ends, k)
        out["images_per_s_2b"], out["images_per_cpu_s_2b"] = 2 * batch / wall2, 2 * batch / cpu2
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------- driver


def once(name):
    """Variants of the default (XLA, auto-clustering, steps_per_execution, transpose decoder): slow to trace,
    failing or no faster: measured in round 1 only (keeps a full run within ~6 min); they skip the 2x batch."""
    spec = parse(name)
    return spec["xla"] or spec["autojit"] or spec["spe"] > 1 or spec["block"] == "transpose"


def failure(text, code):
    """The line of a failed worker's output that says why."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for key in ("deterministic", "unsupported operations", "Error:", "Error"):
        hit = next((ln for ln in lines if key in ln and not ln.startswith(("File", "I0000", "E0000", "W0000"))), None)
        if hit:
            return f"exit {code}: {hit[:160]}"
    return f"exit {code}: {(lines or ['(no output)'])[-1][:160]}"


def run_all(names, rounds, updates, jobs, timeout):
    """Each (round, candidate) in a subprocess, ``jobs`` at a time; the order rotates and flips every round."""
    queue = []
    for r in range(rounds):
        shift = (r * max(1, len(names) // max(1, rounds))) % len(names)
        order = names[shift:] + names[:shift]
        queue += [(r, n) for n in (order if r % 2 == 0 else order[::-1]) if r == 0 or not once(n)]
    results = {n: [] for n in names}
    errors, running, done, total = {}, [], 0, len(queue)
    while queue or running:
        while queue and len(running) < jobs:
            r, n = queue.pop(0)
            if n in errors:  # failed once (e.g. XLA cannot compile it): do not pay for it again
                total -= 1
                continue
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", n, "--updates", str(updates)]
            if not once(n):
                cmd.append("--double")
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(REPO))
            running.append((proc, r, n, time.perf_counter()))
        time.sleep(0.1)
        for item in list(running):
            proc, r, n, t0 = item
            if proc.poll() is None and time.perf_counter() - t0 < timeout:
                continue
            if proc.poll() is None:
                proc.kill()
            text = proc.communicate()[0]
            wall = time.perf_counter() - t0
            running.remove(item)
            done += 1
            line = next((ln for ln in reversed(text.splitlines()) if ln.startswith("RESULT ")), None)
            if line is None:
                errors[n] = f"round {r + 1}: " + failure(text, proc.returncode)
                print(f"[{done}/{total}] {n} round {r + 1}: FAILED ({errors[n]})", flush=True)
                continue
            res = json.loads(line[len("RESULT ") :])
            res["wall"] = wall
            results[n].append(res)
            print(
                f"[{done}/{total}] {n} round {r + 1}: {res['updates_per_cpu_s']:.2f} updates/CPU-s "
                f"({res['updates_per_s']:.2f}/s wall); CPU s: import {res['import_cpu']:.1f}, build "
                f"{res['build_cpu']:.1f}, compile {res['compile_cpu']:.2f}, trace {res['trace_cpu']:.1f}, val trace "
                f"{res['val_trace_cpu']:.1f}; process {wall:.0f} s wall",
                flush=True,
            )
    return results, errors


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--updates", type=int, default=30, help="timed steady updates per worker (default 30)")
    ap.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated (see the module docstring)")
    ap.add_argument("--extra", action="store_true", help=f"also {', '.join(EXTRA)} (slow, ~0.5x: +1.5 min)")
    ap.add_argument("--jobs", type=int, default=2, help="workers at a time (default 2, as the study on 2 cores)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per worker before it is killed")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--double", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.updates, args.double)
        return 0
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    names += [n for n in EXTRA if args.extra and n not in names]
    for n in (DEFAULT, CURRENT):  # the last line compares these two
        if n not in names:
            names.insert(0, n)
    for n in names:
        parse(n)
    print(
        f"U-Net {SIZE}x{SIZE}x1, {CLASSES} classes, softmax, Adam, dice + focal loss, IoU metric; 1 thread per "
        f"worker, {args.jobs} workers at a time, {args.rounds} round(s) (XLA / autojit: 1), {args.updates} timed "
        "updates, op determinism on",
        flush=True,
    )
    t0 = time.perf_counter()
    results, errors = run_all(names, args.rounds, args.updates, args.jobs, args.timeout)

    base = results.get(CURRENT) or []
    base_ups = med(base, "updates_per_cpu_s") if base else float("nan")
    head = (
        f"{'candidate':<20} {'params':>10} {'upd/s':>6} {'wall':>6} {'img/s':>6} {'2B':>6} {'vs r18':>6} "
        f"{'import':>6} "
        f"{'build':>5} {'compile':>7} {'trace':>5} {'valtr':>5} {'process':>7} {'n':>2} {'det':>3}  decoder, "
        "Adam, compute"
    )
    print()
    print(head)
    print("-" * len(head))
    for n in names:
        rows = results[n]
        if not rows:
            print(f"{n:<20} FAILED {errors.get(n, '?')}")
            continue
        spec = parse(n)
        ups = med(rows, "updates_per_cpu_s")
        two = f"{med(rows, 'images_per_cpu_s_2b'):.1f}" if "images_per_cpu_s_2b" in rows[0] else "-"
        det = "yes" if len({r["loss1"] for r in rows}) == 1 and len(rows) > 1 else ("-" if len(rows) == 1 else "NO")
        decoder = (
            str(spec["decoder_filters"]).replace(" ", "")
            + (" transpose" if spec["block"] == "transpose" else "")
            + f", {spec['adam']}, {rows[0]['precision']}"
        )
        print(
            f"{n:<20} {rows[0]['params']:>10,} {ups:>6.2f} {med(rows, 'updates_per_s'):>6.2f} "
            f"{ups * spec['batch']:>6.1f} {two:>6} {ups / base_ups:>5.2f}x {med(rows, 'import_cpu'):>6.1f} "
            f"{med(rows, 'build_cpu'):>5.1f} {med(rows, 'compile_cpu'):>7.2f} {med(rows, 'trace_cpu'):>5.1f} "
            f"{med(rows, 'val_trace_cpu'):>5.1f} {med(rows, 'wall'):>7.1f} {len(rows):>2} {det:>3}  {decoder}"
            + (f"  ({errors[n]})" if n in errors else "")
        )
    print(
        "medians over the rounds (n). upd/s: steady updates per CPU-second of the worker (= per second on a "
        "dedicated core; robust to the shared cores), wall: per wall second (median update); img/s = upd/s x batch, "
        "2B: img/s at twice the batch (the same trace, as many images). "
        "CPU seconds: import = interpreter + dualgen + TensorFlow + segmentation_models, build = "
        "unet.build_unet, trace = "
        "first fit minus its steady updates, valtr = first evaluate (batch 1); process: worker wall seconds. det: "
        "the same loss after the first update in every round."
    )
    print(f"bench wall time: {time.perf_counter() - t0:.0f} s")
    cur, new = results.get(CURRENT) or [], results.get(DEFAULT) or []
    if not cur or not new:
        print(f"unet step: {DEFAULT} or {CURRENT} failed: no comparison")
        return 1
    x, y = med(new, "updates_per_cpu_s"), med(cur, "updates_per_cpu_s")
    print(
        f"unet step: {DEFAULT} ({new[0]['precision']}) {x:.2f} updates/s vs current resnet18 {y:.2f} updates/s: "
        f"{x / y:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
