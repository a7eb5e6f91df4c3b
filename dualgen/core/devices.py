"""One GPU per training job on a multi-GPU host (or N jobs per GPU: DUALGEN_JOBS_PER_GPU).

Snakemake caps how many ``gpu=1`` jobs run at once but does not say which device is whose. Before TensorFlow
starts, ``claim()`` takes an exclusive ``flock`` on one lock file per device slot and sets CUDA_VISIBLE_DEVICES to
that device. The kernel releases the lock when the process ends, however it ends (also kill -9), so a crashed
job frees its slot. Devices: DUALGEN_GPUS (e.g. "0,1"), else the GPUs nvidia-smi lists, else none (CPU).
Slots: DUALGEN_JOBS_PER_GPU (default 1) per device, filled device by device in turn (the first job on each
device before a second on any); with more than 1, jobs share a device's memory (``env.setup_tensorflow`` turns
memory growth on) and Snakemake's ``gpu`` resource must allow devices x N jobs (``--resources gpu=...``).
Under Slurm, or when CUDA_VISIBLE_DEVICES is already set, the scheduler/user has chosen: nothing is claimed.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_held = []  # open lock files of this process (kept open = lock held until exit)


def available():
    ids = os.environ.get("DUALGEN_GPUS")
    if ids is not None:
        return [i.strip() for i in ids.split(",") if i.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def jobs_per_gpu():
    """DUALGEN_JOBS_PER_GPU: how many jobs may share one device (default 1)."""
    value = os.environ.get("DUALGEN_JOBS_PER_GPU", "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        from dualgen.core.errors import DualgenError

        raise DualgenError(f"DUALGEN_JOBS_PER_GPU={value!r}: expected a whole number of jobs per GPU, 1 or more")
    return int(value)


def _slots(devices):
    """(device, lock file name) in the order claim tries them: slot 0 of every device, then slot 1, ..."""
    return [
        (dev, f"gpu{dev}.lock" if slot == 0 else f"gpu{dev}.{slot}.lock")
        for slot in range(jobs_per_gpu())
        for dev in devices
    ]


def lock_dir():
    return Path(os.environ.get("DUALGEN_GPU_LOCKS", Path(tempfile.gettempdir()) / "dualgen-gpu-locks"))


def claim(wait_seconds=3600, poll=0.5):
    """Take a free device; returns its id, or None when running on the CPU / the scheduler chose."""
    if os.environ.get("SLURM_JOB_ID") or "CUDA_VISIBLE_DEVICES" in os.environ and "DUALGEN_GPUS" not in os.environ:
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = available()
    if not devices:
        return None
    slots = _slots(devices)
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + wait_seconds
    while True:
        for dev, name in slots:
            fh = open(folder / name, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _held.append(fh)
            os.environ["CUDA_VISIBLE_DEVICES"] = dev
            os.environ["DUALGEN_DEVICE"] = dev
            return dev
        if time.time() > deadline:
            return None
        time.sleep(poll)
