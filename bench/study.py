#!/usr/bin/env python
"""Benchmark: the whole default study (49 mixes x the seeds of unet.seeds, demo data) with `snakemake --cores N`.

Runs in a fresh folder (default bench/out/study), measures wall time and how busy the CPUs were (from /proc/stat,
all cores, over the run), prints the per-rule times from Snakemake's benchmark files and, last, one line:
`study wall time: <min> min for <n> trainings; CPU busy <p> %; overhead <q> %`, where overhead is the share of the
train_unet jobs' time not spent inside optimizer updates (TensorFlow start, data loading, model build, the first
update's tracing, validations, writing; from each training's meta.json `update_seconds`). Snakemake's own CPU
seconds (its scheduling, not its jobs') are printed too.
Usage: python bench/study.py [--cores 2] [--configfile presets/x.yaml] [--scheduler ilp|greedy] [--keep]
(--keep: only what is missing runs, and the figures count only the jobs of this run)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_times():
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def own_cpu_seconds(pid):
    """CPU seconds (user + system) of the process ``pid`` itself, without its children; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="2")
    ap.add_argument("--configfile", default=None)
    ap.add_argument("--scheduler", default=None, help="Snakemake's job scheduler (ilp, greedy; default: the profile's)")
    ap.add_argument("--workdir", default=str(REPO / "bench" / "out" / "study"))
    ap.add_argument("--keep", action="store_true", help="reuse the folder (only what is missing runs)")
    args = ap.parse_args()
    work = Path(args.workdir)
    if work.exists() and not args.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--cores",
        args.cores,
    ]
    if args.configfile:
        cmd += ["--configfile", str(Path(args.configfile).resolve())]
    if args.scheduler:
        cmd += ["--scheduler", args.scheduler]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    total0, idle0 = cpu_times()
    t0 = time.time()
    own = 0.0
    with open(work / "snakemake.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            own = own_cpu_seconds(proc.pid) or own
            time.sleep(1.0)
        rc = proc.returncode
    wall = time.time() - t0
    total1, idle1 = cpu_times()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    print(f"snakemake exit status: {rc} (log: {work / 'snakemake.log'}); Snakemake's own CPU: {own:.0f} s")
    import pandas as pd

    rows = []
    for f in work.glob("results/*/benchmarks/**/*.tsv"):
        if f.stat().st_mtime < t0:  # --keep: a job of an earlier run
            continue
        b = pd.read_csv(f, sep="\t")
        parts = f.relative_to(next(q for q in f.parents if q.name == "benchmarks")).parts
        rule = parts[0].removesuffix(".tsv")
        if rule in ("variants", "conditioned"):  # <group>/<variant>/<rule>.tsv
            rule = f"{rule}_{parts[-1].removesuffix('.tsv')}"
        rows.append((rule, float(b["s"].iloc[0])))
    if rows:
        per_rule = pd.DataFrame(rows, columns=["rule", "s"]).groupby("rule")["s"].agg(["count", "sum", "mean"])
        print(per_rule.sort_values("sum", ascending=False).round(1).to_string())
    jobs = [(r, s) for r, s in rows if r == "train_unet"]  # a job trains unet.seeds_per_job seeds of a mix
    metas = [
        json.loads(m.read_text())
        for m in work.glob("results/*/unet/*/seeds*/seed*/meta.json")
        if m.stat().st_mtime >= t0
    ]
    updates = sum(m.get("update_seconds", 0.0) for m in metas)
    job_seconds = sum(s for _, s in jobs)
    overhead = 1 - updates / job_seconds if job_seconds else float("nan")
    if metas:
        print(
            f"train_unet: {len(jobs)} jobs, {len(metas)} trainings, {job_seconds / len(metas):.1f} s of job time "
            f"per training, {updates / len(metas):.1f} s of it in optimizer updates"
        )
    print(
        f"study wall time: {wall / 60:.1f} min for {len(metas)} trainings; CPU busy {busy * 100:.0f} %; "
        f"overhead {overhead * 100:.0f} %"
    )
    return rc


if __name__ == "__main__":
    sys.exit(main())
