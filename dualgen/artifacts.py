"""Versioned artifacts: every output folder holds meta.json and appears only when complete.

``artifact_dir(out, ...)`` yields a temporary sibling folder; the step writes into it; on success
meta.json is added and the folder is renamed to ``out`` in one step, so a killed job never leaves a
half-written artifact under its final name. ``atomic_path`` does the same for a single file.
"""
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from dualgen.errors import DualgenError

LIBRARIES = ("numpy", "scikit-image", "scikit-learn", "pandas", "matplotlib", "tensorflow", "tf-keras",
             "dm-sonnet", "segmentation-models", "albumentations", "snakemake")
REPO = Path(__file__).resolve().parents[1]


def library_versions():
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit():
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_inputs(paths):
    """sha256 of each input file; a folder is hashed as the sorted list of its files' hashes."""
    result = {}
    for p in paths:
        p = Path(p)
        if p.is_dir():
            h = hashlib.sha256()
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                h.update(str(f.relative_to(p)).encode())
                h.update(sha256_file(f).encode())
            result[str(p)] = h.hexdigest()
        elif p.is_file():
            result[str(p)] = sha256_file(p)
    return result


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=_jsonable)
            fh.write("\n")


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DualgenError(f"{path}: missing: run the step that makes it first")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DualgenError(f"{path}: not valid JSON (damaged?): delete it and rerun the step")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file name next to ``path``; rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def meta(step, settings, seed, inputs, started, **extra):
    data = {
        "step": step,
        "dualgen_version": _version(),
        "git_commit": git_commit(),
        "settings": settings,
        "seed": seed,
        "inputs_sha256": sha256_inputs(inputs),
        "libraries": library_versions(),
        "host": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "device": os.environ.get("DUALGEN_DEVICE") or os.environ.get("CUDA_VISIBLE_DEVICES") or "cpu",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 3),
    }
    data.update(extra)
    return data


def _version():
    from dualgen import __version__

    return __version__


@contextlib.contextmanager
def artifact_dir(out, step, settings, seed, inputs, extra=None):
    """Build the artifact folder ``out`` atomically.

    Yields the temporary folder; the caller may fill ``extra`` (a dict) with results for meta.json.
    """
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as err:
        raise DualgenError(f"{out.parent}: cannot write results there ({err.strerror}): fix the folder's permissions "
                           "or choose another study name")
    started = time.time()
    extra = {} if extra is None else extra
    try:
        yield tmp
        write_json(tmp / "meta.json", meta(step, settings, seed, inputs, started, **extra))
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
