"""Crash and resume: a training job killed with SIGKILL mid-run continues from its last checkpoint after
`snakemake --rerun-incomplete`, says so in its log and meta.json, and never leaves a half-written artifact."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PY, REPO, env

pytestmark = pytest.mark.slow
CI = REPO / "presets" / "ci.yaml"


def start(workdir, target, override):
    (workdir / "override.yaml").write_text(override)
    cmd = [
        str(Path(PY).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        target,
        "--cores",
        "2",
        "--configfile",
        str(CI),
        str(workdir / "override.yaml"),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(), cwd=workdir)


def ours(pids, workdir):
    """Only the processes running in this test's folder (other tests may train at the same time)."""
    mine = []
    for pid in pids:
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == Path(workdir).resolve():
                mine.append(int(pid))
        except OSError:
            pass
    return mine


def kill_when(log, pattern, script, workdir, timeout=600):
    """Wait until the step's log shows ``pattern``, then SIGKILL the step's process."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and pattern in log.read_text(errors="replace"):
            pids = subprocess.run(["pgrep", "-f", script], capture_output=True, text=True).stdout.split()
            mine = ours(pids, workdir)
            for pid in mine:
                os.kill(pid, signal.SIGKILL)
            if mine:
                return
        time.sleep(0.2)
    raise AssertionError(f"{log} never showed {pattern!r}")


def resume(workdir, target):
    cmd = [
        str(Path(PY).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        target,
        "--cores",
        "2",
        "--rerun-incomplete",
        "--configfile",
        str(CI),
        str(workdir / "override.yaml"),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=workdir, timeout=900)


def test_vqvae_killed_mid_training_resumes(tmp_path):
    target = "results/ci/vqvae"
    proc = start(tmp_path, target, "vqvae: {steps: 400, eval_every: 40}\n")
    log = tmp_path / "results" / "ci" / "logs" / "train_vqvae.log"
    kill_when(log, "step 80/400", "scripts/train_vqvae.py", tmp_path)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not (tmp_path / target / "meta.json").exists()  # no artifact under its final name
    done = resume(tmp_path, target)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = log.read_text()
    assert "resuming from step" in text
    meta = json.loads((tmp_path / target / "meta.json").read_text())
    assert meta["resumed_from_step"] >= 80 and meta["best_step"] <= 400
    history = (tmp_path / target / "history.csv").read_text().splitlines()
    assert history[-1].startswith("400,") and len(history) == 11  # header + one row per evaluation, none lost


def test_unet_killed_mid_training_resumes(tmp_path):
    target = "results/ci/unet/SHQ_000/seeds0_1"  # one job trains seeds 0 and 1 (ci: unet.seeds_per_job 2)
    proc = start(tmp_path, target, "unet: {updates: 24, validate_every: 4, checkpoint_every_s: 0}\n")
    log = tmp_path / "results" / "ci" / "logs" / "train_unet" / "SHQ_000" / "seeds0_1.log"
    kill_when(log, "Epoch 3/6", "scripts/train_unet.py", tmp_path)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    done = resume(tmp_path, target)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resuming from period" in log.read_text()
    meta = json.loads((tmp_path / target / "seed0" / "meta.json").read_text())
    assert meta["resumed_from_period"] >= 2 and meta["updates"] == 24
    second = json.loads((tmp_path / target / "seed1" / "meta.json").read_text())
    assert second["resumed_from_period"] is None and second["updates"] == 24 and second["reused_model"]
