"""The ci study through the Slurm profile on a real (one-node, CPU-only) Slurm cluster: tests/slurm/start.sh.

    python -m pytest -m slurm -s tests/test_slurm.py       (as root; installs Slurm + munge from Debian if missing)

The module starts the test cluster (skipped with start.sh's reason when it cannot, unless CI=true: then it
fails), runs `snakemake --profile profiles/slurm --profile tests/slurm/profile --workflow-profile none` in one
temporary folder and `snakemake --cores 2` in another (both on the ci preset slimmed by tests/slurm/study.yaml:
every rule of the ci study, fewer mixes), and checks that every step ran as its own Slurm job and
that both runs made the same results. tests/slurm/stop.sh ends the daemons afterwards.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PY, REPO, env, planned_jobs, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# What the Slurm run builds. The data stage; set to None for the whole study (rule all, then study/metrics.csv
# is compared as well).
TARGET = None  # the whole ci study; "results/ci/datasets" for the data stage only
STUDY = "results/ci"
CI_PRESET = REPO / "presets" / "ci.yaml"
CONFIGS = [CI_PRESET, REPO / "tests" / "slurm" / "study.yaml"]  # every rule of the ci study, fewer mixes
PROFILES = [
    "--profile",
    REPO / "profiles" / "slurm",
    "--profile",
    REPO / "tests" / "slurm" / "profile",
    "--workflow-profile",
    "none",
]
SLURM_TIMEOUT = 1800  # seconds for the whole Slurm run; a hang fails instead of waiting
START_TIMEOUT = 1200  # start.sh may install packages
TEST_PARTITION = "test"  # tests/slurm/start.sh


def _cluster_env():
    e = env()
    e.pop("SLURM_CONF", None)  # the test cluster is configless: clients read /run/slurm/conf/slurm.conf
    return e


def _slurm(*cmd, timeout=60):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=_cluster_env())


def _targets():
    return [TARGET] if TARGET else []


@pytest.fixture(scope="module")
def slurm_cluster():
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "slurm" / "start.sh")], capture_output=True, text=True, timeout=START_TIMEOUT
    )
    print(proc.stdout, end="")
    if proc.returncode != 0:
        _stop()  # whatever start.sh started before it gave up
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"tests/slurm/start.sh exited with {proc.returncode}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and the test Slurm cluster did not start: {reason}\n{proc.stderr}", pytrace=False)
        pytest.skip(reason)
    yield proc.stdout
    # the cluster is the test's own: end whatever is left of its jobs (a run that timed out), then the daemons
    _slurm("scancel", "--partition", TEST_PARTITION)
    _stop()


def _stop():
    stop = subprocess.run(
        ["bash", str(REPO / "tests" / "slurm" / "stop.sh")], capture_output=True, text=True, timeout=120
    )
    print(stop.stdout, stop.stderr, end="")


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_run")
    cmd = [
        str(Path(PY).parent / "snakemake"),
        *_targets(),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *map(str, PROFILES),
        "--configfile",
        *map(str, CONFIGS),
    ]
    started = time.time()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=SLURM_TIMEOUT, env=_cluster_env(), cwd=workdir
        )
    except subprocess.TimeoutExpired as err:
        out = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x or "" for x in (err.stdout, err.stderr))
        pytest.fail(
            f"the Slurm run did not finish within {SLURM_TIMEOUT} s (status checks hanging?):\n{out[-4000:]}",
            pytrace=False,
        )
    wall = time.time() - started
    log = proc.stdout + proc.stderr
    (workdir / "snakemake-slurm.log").write_text(log)
    assert proc.returncode == 0, log[-6000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
    # squeue keeps finished jobs for MinJobAge (3600 s, tests/slurm/start.sh): no sacct / accounting needed
    queue = _slurm(
        "squeue", "--states=all", "--noheader", "--name", run_id.group(1) if run_id else "-", "--format=%i|%j|%T|%k|%N"
    )
    jobs = {}
    for line in queue.stdout.splitlines():
        job_id, name, state, comment, node = line.split("|")
        jobs[job_id] = {"name": name, "state": state, "comment": comment, "node": node}
    return {
        "workdir": workdir,
        "log": log,
        "wall": wall,
        "run_id": run_id and run_id.group(1),
        "submitted": submitted,
        "squeue": jobs,
        "squeue_text": queue.stdout,
    }


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local_run")
    started = time.time()
    proc = snakemake(*_targets(), "--cores", "2", "--configfile", *CONFIGS, workdir=workdir, timeout=SLURM_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return {"workdir": workdir, "wall": time.time() - started}


def _metas(workdir):
    """meta.json of every artifact: the study's, and the demo data's (also made by a job)."""
    paths = sorted((workdir / STUDY).rglob("meta.json")) + sorted((workdir / "data").rglob("meta.json"))
    return {p.relative_to(workdir): json.loads(p.read_text()) for p in paths}


def test_every_step_ran_as_a_slurm_job(slurm_run, tmp_path):
    workdir, submitted, queue = slurm_run["workdir"], slurm_run["submitted"], slurm_run["squeue"]
    assert slurm_run["run_id"], "no 'SLURM run ID' in Snakemake's output: not run by the Slurm executor?"
    assert submitted, "no job was submitted to Slurm"
    slurm_ids = set(submitted.values())
    # Slurm itself knows every job: finished, named after this run, with the rule in the comment
    assert set(queue) == slurm_ids, slurm_run["squeue_text"]
    assert {j["state"] for j in queue.values()} == {"COMPLETED"}, slurm_run["squeue_text"]
    # each step's artifact records the Slurm job that made it (SLURM_JOB_ID, dualgen/core/artifacts.py)
    metas = _metas(workdir)
    assert metas, f"no meta.json under {STUDY}"
    meta_ids = {str(path.parent): meta.get("slurm_job_id") for path, meta in metas.items()}
    assert all(meta_ids.values()), f"artifacts made outside Slurm: {meta_ids}"
    assert set(meta_ids.values()) <= slurm_ids, (meta_ids, submitted)
    # one job per artifact, except the trainings of one train_unet job (unet/<mix>/seeds<chunk>/seed<k>/)
    per_job = {}
    for folder, job in meta_ids.items():
        parent = Path(folder).parent
        per_job.setdefault(job, set()).add(str(parent) if parent.name.startswith("seeds") else folder)
    assert all(len(units) == 1 for units in per_job.values()), f"two artifacts from one job: {per_job}"
    for path, meta in metas.items():
        step = queue[meta["slurm_job_id"]]["comment"]
        assert step.startswith("rule_"), (path, step)
    # the slimmed study (tests/slurm/study.yaml) still runs every rule of the whole ci study under Slurm
    ran = {re.sub(r"_wildcards_.*$", "", j["comment"]).removeprefix("rule_") for j in queue.values()}
    ci_rules = set(planned_jobs(snakemake("-n", "--configfile", CI_PRESET, workdir=tmp_path))) - {"all"}
    assert ci_rules <= ran, f"rules of the ci study that never ran under Slurm: {sorted(ci_rules - ran)}"
    # the plugin's per-job logs (kept: slurm-keep-successful-logs in tests/slurm/profile)
    logs = {p.stem for p in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert slurm_ids <= logs, (slurm_ids, logs)
    print(f"\nSlurm run {slurm_run['run_id']}: {len(slurm_ids)} jobs in {slurm_run['wall']:.1f} s")
    print(slurm_run["squeue_text"], end="")
    for path, meta in metas.items():
        print(
            f"  {path.parent}: slurm_job_id={meta['slurm_job_id']} host={meta.get('host')} "
            f"wall={meta.get('wall_seconds')} s"
        )


def test_results_equal_a_local_run(slurm_run, local_run):
    slurm_dir, local_dir = slurm_run["workdir"] / STUDY, local_run["workdir"] / STUDY
    compared = []
    for folder in ("patches", "datasets"):
        for local_file in sorted((local_dir / folder).rglob("*.csv")):
            rel = local_file.relative_to(local_dir)
            slurm_file = slurm_dir / rel
            assert slurm_file.exists(), f"{rel}: made by the local run, missing after the Slurm run"
            assert slurm_file.read_bytes() == local_file.read_bytes(), f"{rel} differs between Slurm and local run"
            compared.append(str(rel))
    assert "patches/patches.csv" in compared, compared
    assert any(c.startswith("datasets/") for c in compared), compared
    metrics = Path("study") / "metrics.csv"
    if (local_dir / metrics).exists() or (slurm_dir / metrics).exists():
        assert (slurm_dir / metrics).read_bytes() == (local_dir / metrics).read_bytes(), "study/metrics.csv differs"
        compared.append(str(metrics))
    n_jobs = len(slurm_run["submitted"])
    overhead = (slurm_run["wall"] - local_run["wall"]) / max(n_jobs, 1)
    print(f"\nidentical: {', '.join(compared)}")
    print(
        f"wall time: Slurm {slurm_run['wall']:.1f} s ({n_jobs} jobs), local {local_run['wall']:.1f} s: "
        f"about {overhead:.1f} s more per job under Slurm"
    )
