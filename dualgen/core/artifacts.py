"""Versioned artifacts, and the one way dualgen writes a file or a folder: under a temporary name, then renamed.

``artifact_dir(out, ...)`` yields a temporary sibling folder; the step writes into it; on success meta.json is
added and the folder takes the name ``out``, so a killed job never leaves a half-written artifact under its
final name. ``atomic_path`` does the same for one file, ``atomic_dir`` for any folder (``recover`` repairs a
kill between the two renames of replacing one). A temporary name keeps the target's ending
(``.tmp-<pid>-<name>``): some writers pick the format by it (tf-keras: ``.weights.h5`` vs ``.h5``).
A model's folder holds its weights and ``spec.json`` (``write_spec`` / ``read_spec``): what rebuilds it.
"""

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

from dualgen.core.errors import DualgenError

LIBRARIES = (
    "numpy",
    "scikit-image",
    "scikit-learn",
    "pandas",
    "matplotlib",
    "tensorflow",
    "tf-keras",
    "dm-sonnet",
    "segmentation-models",
    "albumentations",
    "snakemake",
)
REPO = Path(__file__).resolve().parents[2]


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
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
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


def _temp_name(path, kind):
    """``.tmp-<pid>-<name>`` (or ``.old-``) beside ``path``: hidden, unique to the process, same ending."""
    return path.with_name(f".{kind}-{os.getpid()}-{path.name}")


def _leftovers(path, kind):
    """Temporary names of ``path`` left by any process (not those of another target whose name ends alike)."""
    pattern = re.compile(rf"\.{kind}-\d+-{re.escape(path.name)}")
    return [p for p in path.parent.glob(f".{kind}-*-{path.name}") if pattern.fullmatch(p.name)]


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file name next to ``path`` (same ending); rename it to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def recover(path):
    """After a kill: drop half-written temporary folders of ``path``; if the kill came between the two renames
    of ``atomic_dir`` (the old folder moved aside, the new one not yet in place), put the old one back."""
    path = Path(path)
    for tmp in _leftovers(path, "tmp"):
        _remove(tmp)
    olds = sorted(_leftovers(path, "old"), key=lambda p: p.stat().st_mtime)
    if olds and not path.exists():
        os.replace(olds.pop(), path)
    for old in olds:
        _remove(old)


@contextlib.contextmanager
def atomic_dir(path):
    """Yield an empty temporary folder next to ``path``; when the block succeeds it becomes ``path``.

    An existing ``path`` is first renamed aside (``.old-<pid>-<name>``), the new folder renamed in, the old one
    deleted; ``recover`` (run here first, too) undoes what a kill in between left."""
    path = Path(path)
    recover(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, "tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _temp_name(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SPEC = "spec.json"


def write_spec(folder, spec):
    """A model's ``spec.json``: what its module's ``load`` needs to rebuild it."""
    write_json(Path(folder) / SPEC, dict(spec))


def read_spec(folder, what, keys, rule):
    """``folder/spec.json`` as a dict holding ``keys``; missing, damaged or incomplete: one DualgenError line."""
    folder = Path(folder)
    path = folder / SPEC
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise DualgenError(
            f"{folder}: no {what} checkpoint ({SPEC}) there: train the {what} first (rule {rule}) "
            "or point to its checkpoint folder"
        ) from None
    except (OSError, ValueError) as err:  # not a folder, unreadable, not JSON / not UTF-8
        raise DualgenError(
            f"{path}: unreadable or damaged ({type(err).__name__}): delete {folder} and rerun {rule}"
        ) from None
    missing = [k for k in keys if k not in spec] if isinstance(spec, dict) else list(keys)
    if missing:
        raise DualgenError(
            f"{path}: lacks {', '.join(missing)} (damaged, or from another dualgen): delete {folder} and rerun {rule}"
        )
    return spec


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
        "determinism": _determinism(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 3),
    }
    data.update(extra)
    return data


def _determinism():
    """The determinism mode this process set TensorFlow up with (env.setup_tensorflow), "n/a" without TensorFlow."""
    from dualgen.core import env

    return env.mode or "n/a"


def _version():
    from dualgen import __version__

    return __version__


@contextlib.contextmanager
def artifact_dir(out, step, settings, seed, inputs, extra=None):
    """Build the artifact folder ``out`` atomically (``atomic_dir``), meta.json added last.

    Yields the temporary folder; the caller may fill ``extra`` (a dict) with results for meta.json.
    """
    out = Path(out)
    extra = {} if extra is None else extra
    with contextlib.ExitStack() as stack:
        try:
            tmp = stack.enter_context(atomic_dir(out))
        except OSError as err:
            raise DualgenError(
                f"{out.parent}: cannot write results there ({err.strerror}): fix the folder's "
                "permissions or choose another study name"
            ) from None
        started = time.time()
        yield tmp
        write_json(tmp / "meta.json", meta(step, settings, seed, inputs, started, **extra))
