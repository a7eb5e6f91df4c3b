#!/usr/bin/env python
"""GPU study plan: how many U-Net trainings should share one GPU? Runs the paper preset's U-Net (efficientnetb3,
256 px, batch 2, op determinism strict) for a fixed number of updates as 1, 2, 4, ... concurrent jobs on the same
device (each job its own process, as Snakemake runs train_unet jobs; TensorFlow memory growth on, so jobs do not
grab the whole card) and prints, per concurrency, the updates per second of each job, their sum, and the peak GPU
memory of a job. A 64-px CPU-scale U-Net cannot fill a large GPU: the concurrency where the sum stops growing is
the `gpu` resource to give the local profile per device (docs/gpu.md).
Each job is `bench/gpu_smoke.py --only unet --modes strict` (the same compiled training step as train_unet).
Last line: `gpu study: best <k> jobs per GPU: <sum> updates/s in total, <each> per job, peak <mem> per job`.
Usage: python bench/gpu_study.py [--jobs 1,2,4] [--steps 50] [--size 256]   On a CPU: --jobs 1,2 --steps 2 --size 64
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^unet\s+strict\s+([\d.]+) steps/s.*peak GPU memory\s+(.+?)\s{2}", re.M)


def run_batch(k, steps, size):
    cmd = [
        sys.executable,
        str(REPO / "bench" / "gpu_smoke.py"),
        "--only",
        "unet",
        "--modes",
        "strict",
        "--steps",
        str(steps),
        "--size",
        str(size),
        "--threads",
        "1",
    ]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(k)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t0
    rates, mems = [], []
    for p, out in zip(procs, outs):
        m = LINE.search(out)
        if p.returncode != 0 or not m:
            raise SystemExit(f"gpu study: a job failed (exit {p.returncode}):\n{out[-3000:]}")
        rates.append(float(m.group(1)))
        mems.append(m.group(2).strip())
    return rates, mems, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="1,2,4", help="concurrencies to try, comma-separated")
    ap.add_argument("--steps", type=int, default=50, help="timed updates per job")
    ap.add_argument("--size", type=int, default=256, help="patch size (the paper: 256)")
    args = ap.parse_args()
    best = None
    for k in [int(v) for v in args.jobs.split(",")]:
        rates, mems, wall = run_batch(k, args.steps, args.size)
        total = sum(rates)
        print(
            f"{k} job(s): {', '.join(f'{r:.2f}' for r in rates)} updates/s each, {total:.2f} in total; "
            f"peak GPU memory per job: {', '.join(mems)}; {wall:.0f} s wall",
            flush=True,
        )
        if best is None or total > best[1] * 1.05:  # more jobs only when they add > 5 %
            best = (k, total, total / k, mems[0])
    k, total, each, mem = best
    print(f"gpu study: best {k} jobs per GPU: {total:.2f} updates/s in total, {each:.2f} per job, peak {mem} per job")


if __name__ == "__main__":
    main()
