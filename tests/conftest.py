"""Shared test helpers: run a script or Snakemake as a user would, check the one-line errors."""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
CLASSES = [
    {"name": "matrix", "value": 0, "color": "#2b2b2b"},
    {"name": "oxide", "value": 170, "color": "#3a8fd9"},
    {"name": "nd_rich", "value": 255, "color": "#f5c211"},
    {"name": "eta", "value": 85, "color": "#d9368f"},
]

# The smallest VQ-VAE the GPU-op and precision tests trace (VQVAE has no defaults: every argument but the channels
# and the quantizer).
TINY_VQVAE = dict(
    num_hiddens=8,
    num_residual_hiddens=4,
    num_residual_layers=1,
    embedding_dim=4,
    num_embeddings=5,
    commitment_cost=0.25,
    decay=0.99,
    downsample=4,
    mask_encoding="level",
    fsq_levels=None,
)


def env():
    e = dict(os.environ)
    e["PATH"] = f"{Path(PY).parent}{os.pathsep}{e.get('PATH', '')}"
    e["PYTHONHASHSEED"] = "0"
    return e


# Seconds a script or Snakemake run in a test may take: generous, since a loaded machine is slow, not broken.
TIMEOUT = float(os.environ.get("DUALGEN_TEST_TIMEOUT", 3600))


def _run(cmd, timeout, **kwargs):
    """subprocess.run with the test timeout; a run that times out fails the test saying so (not as an error)."""
    timeout = TIMEOUT if timeout is None else timeout
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(), **kwargs)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"timed out after {timeout:.0f} s (the machine is probably under load; set DUALGEN_TEST_TIMEOUT "
            f"to allow more): {' '.join(map(str, cmd))[:300]}",
            pytrace=False,
        )


def run_script(name, *args, timeout=None):
    return _run([PY, str(REPO / "scripts" / name), *map(str, args)], timeout)


def snakemake(*args, workdir, timeout=None):
    cmd = [
        str(Path(PY).parent / "snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *map(str, args),
    ]
    return _run(cmd, timeout, cwd=workdir)


def assert_one_line_error(proc, *fragments):
    """exit != 0, exactly one 'dualgen: error:' line on stderr, no traceback, the fragments in it."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dualgen: error:")]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


def tree_checksums(*folders):
    sums = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                sums[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return sums


def blocks_mask(rng, h, w, n_classes=4, block=16):
    """A mask of square class blocks (some of every class), as class ids."""
    ids = rng.integers(0, n_classes, size=(h // block + 1, w // block + 1))
    ids[0, 0], ids[0, 1] = 1, 2
    return np.kron(ids, np.ones((block, block), dtype=np.int64))[:h, :w].astype(np.uint8)


def make_user_data(root, n=3, h=96, w=96, rgb=True, fmt="png", hq_for=None, seed=0):
    """A small 'bring your own data' folder: images/, masks/ (gray palette), hq_masks/ (for some images)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("images", "masks", "hq_masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lut = np.array([c["value"] for c in CLASSES], dtype=np.uint8)
    for i in range(n):
        hq = blocks_mask(rng, h, w)
        lq = hq.copy()
        lq[rng.random((h, w)) < 0.05] = 0
        img = (np.array([60, 200, 250, 130], dtype=np.uint8)[hq]).astype(np.int16)
        img = np.clip(img + rng.integers(-20, 20, size=img.shape), 0, 255).astype(np.uint8)
        arr = np.stack([img, img, (img * 0.8).astype(np.uint8)], -1) if rgb else img
        name = f"img{i}"
        Image.fromarray(arr).save(root / "images" / f"{name}.{fmt}")
        Image.fromarray(lut[lq]).save(root / "masks" / f"{name}.png")
        if hq_for is None or i in hq_for:
            Image.fromarray(lut[hq]).save(root / "hq_masks" / f"{name}.png")
    return root


@pytest.fixture
def user_data(tmp_path):
    return make_user_data(tmp_path / "data")


def planned_jobs(proc):
    """The job counts of a dry run: {rule: count}."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    counts = {}
    table = text.split("job ", 1)[1] if "job " in text else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts
