"""One device per training job: a fake two-GPU host (DUALGEN_GPUS="0,1", CPU underneath)."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import PY, REPO, env, snakemake

HOLD = (
    "import sys, time; from dualgen.core import devices; "
    "print(devices.claim(wait_seconds=60), flush=True); time.sleep(float(sys.argv[1]))"
)


def holder(tmp_path, seconds, gpus="0,1", **extra):
    e = dict(env(), DUALGEN_GPUS=gpus, DUALGEN_GPU_LOCKS=str(tmp_path / "locks"), **extra)
    e.pop("CUDA_VISIBLE_DEVICES", None)
    e.pop("SLURM_JOB_ID", None)
    return subprocess.Popen([PY, "-c", HOLD, str(seconds)], stdout=subprocess.PIPE, text=True, env=e)


def test_parallel_jobs_get_different_devices_and_a_crash_frees_one(tmp_path):
    a, b = holder(tmp_path, 30), holder(tmp_path, 30)
    ids = {a.stdout.readline().strip(), b.stdout.readline().strip()}
    assert ids == {"0", "1"}
    c = holder(tmp_path, 0)  # both devices taken: waits
    time.sleep(1.5)
    assert c.poll() is None
    os.kill(a.pid, signal.SIGKILL)  # a crashed job: the kernel drops its lock
    a.wait()
    freed = c.stdout.readline().strip()
    assert freed in ("0", "1") and c.wait(timeout=30) == 0
    b.kill()
    b.wait()


def test_jobs_per_gpu_share_a_device_in_turn_and_the_next_job_waits(tmp_path):
    per = {"DUALGEN_JOBS_PER_GPU": "2"}
    jobs = [holder(tmp_path, 30, **per) for _ in range(3)]
    ids = sorted(j.stdout.readline().strip() for j in jobs)
    assert ids == ["0", "0", "1"]  # slot 0 of both devices first, then a second job on one of them
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["gpu0.1.lock", "gpu0.lock", "gpu1.lock"]
    one = [holder(tmp_path / "one", 30, gpus="0", **per) for _ in range(2)]
    assert [j.stdout.readline().strip() for j in one] == ["0", "0"]  # two jobs on the only device
    waiting = holder(tmp_path / "one", 0, gpus="0", **per)
    time.sleep(1.5)
    assert waiting.poll() is None  # both slots taken
    os.kill(one[0].pid, signal.SIGKILL)
    one[0].wait()
    assert waiting.stdout.readline().strip() == "0" and waiting.wait(timeout=30) == 0
    for j in jobs + one[1:]:
        j.kill()
        j.wait()


def test_jobs_per_gpu_must_be_a_positive_whole_number(tmp_path, monkeypatch):
    from dualgen.core import devices
    from dualgen.core.errors import DualgenError

    monkeypatch.setenv("DUALGEN_GPUS", "0")
    monkeypatch.setenv("DUALGEN_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("DUALGEN_JOBS_PER_GPU", bad)
        with pytest.raises(DualgenError, match="DUALGEN_JOBS_PER_GPU"):
            devices.claim(wait_seconds=0)
    monkeypatch.delenv("DUALGEN_JOBS_PER_GPU")
    assert devices.jobs_per_gpu() == 1


@pytest.mark.slow
def test_two_training_jobs_record_different_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("DUALGEN_GPUS", "0,1")
    monkeypatch.setenv("DUALGEN_GPU_LOCKS", str(tmp_path / "locks"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    targets = ["results/ci/unet/SHQ_000/seeds0_1", "results/ci/unet/BMQ_000/seeds0_1"]
    proc = snakemake(
        *targets,
        "--cores",
        "2",
        "--resources",
        "gpu=2",
        "--configfile",
        REPO / "presets" / "ci.yaml",
        workdir=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    devices = {json.loads((tmp_path / t / "seed0" / "meta.json").read_text())["device"] for t in targets}
    assert len(devices) == 2 and devices <= {"0", "1"}, devices
