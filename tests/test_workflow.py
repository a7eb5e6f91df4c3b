"""End to end: presets/ci.yaml through Snakemake, the artifacts it leaves, reruns after one config change,
and the report."""
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from dualgen.config import load_yaml, merge
from dualgen.mixes import enumerate_mixes
from tests.conftest import REPO, snakemake

pytestmark = pytest.mark.slow
CI = REPO / "presets" / "ci.yaml"


def ci_config():
    return merge(load_yaml(REPO / "config.yaml"), load_yaml(CI))


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("ci_run")
    proc = snakemake("--cores", "2", "--configfile", CI, workdir=work, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work


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


def test_ci_study_produces_every_artifact(ci_run):
    out = ci_run / "results" / "ci"
    cfg = ci_config()
    mixes = enumerate_mixes(cfg["mixes"], cfg["datasets"])
    table = pd.read_csv(out / "study" / "metrics.csv")
    assert list(table["mix"]) == [m.name for m in mixes]
    for col in ("base", "percent", "n_real", "n_synth", "accuracy", "miou", "missing_class_iou", "iou_0", "iou_3"):
        assert col in table.columns
    assert table["accuracy"].between(0, 1).all() and table["missing_class_iou"].between(0, 1).all()
    for fig in ("accuracy", "miou", "missing_class_iou", "per_class", "overlays"):
        assert (out / "study" / f"{fig}.png").stat().st_size > 10_000, fig
    for folder in ("patches", "datasets", "vqvae", "codes", "pixelcnn/plain", "pixelcnn/gated", "synthetic/codes",
                   "synthetic/raw", "synthetic/clean", "figures/synthetic", "pretest", "study"):
        meta = json.loads((out / folder / "meta.json").read_text())
        assert meta["inputs_sha256"] or folder == "patches", folder
        assert meta["libraries"]["tensorflow"] and meta["wall_seconds"] >= 0
    codes = json.loads((out / "codes" / "meta.json").read_text())
    assert 0 <= codes["recon_mask_agreement"]["val"]["miou"] <= 1
    pool = pd.read_csv(out / "synthetic" / "clean" / "pool.csv")
    assert len(pool) == max(m.n_synth for m in mixes)
    manifest = pd.read_csv(out / "mixes" / "SyntMQ_050" / "manifest.csv")
    assert (manifest.loc[manifest.split == "train", "origin"] == "synth").all()
    assert (manifest.loc[manifest.split == "val", "origin"] == "real").all()
    assert not list(out.rglob(".*.tmp-*")), "temporary files left behind"


def test_nothing_to_do_after_a_complete_run(ci_run):
    assert planned_jobs(snakemake("-n", "--configfile", CI, workdir=ci_run)) == {}


def _override(ci_run, name, text):
    path = ci_run / f"{name}.yaml"
    path.write_text(text)
    return planned_jobs(snakemake("-n", "--configfile", CI, path, workdir=ci_run))


def test_unet_setting_reruns_only_training_evaluation_and_aggregation(ci_run):
    n = len(enumerate_mixes(ci_config()["mixes"], ci_config()["datasets"]))
    jobs = _override(ci_run, "unet", "unet: {learning_rate: 0.002}\n")
    assert jobs.get("train_unet") == n and jobs.get("evaluate") == n and jobs.get("aggregate") == 1
    assert not {"train_vqvae", "encode", "train_pixelcnn", "sample", "decode", "postprocess", "build_mix"} & set(jobs)


def test_pixelcnn_setting_reruns_from_pixelcnn_not_vqvae(ci_run):
    cfg = ci_config()
    synthetic = [m for m in enumerate_mixes(cfg["mixes"], cfg["datasets"]) if m.n_synth > 0]
    jobs = _override(ci_run, "pixelcnn", "pixelcnn: {epochs: 3}\n")
    assert jobs.get("train_pixelcnn") == 2 and jobs.get("sample") == 1 and jobs.get("postprocess") == 1
    assert jobs.get("train_unet") == len(synthetic)  # the 0 % mixes do not depend on the generator
    assert "train_vqvae" not in jobs and "encode" not in jobs


def test_report_is_self_contained_html(ci_run):
    proc = snakemake("--report", "report.html", "--configfile", CI, workdir=ci_run, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (ci_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "missing_class_iou" in html


def test_two_runs_give_identical_metrics(ci_run, tmp_path_factory):
    """Determinism: the same config in another folder gives the same numbers (TensorFlow op determinism on,
    seeds everywhere, fixed data order)."""
    other = tmp_path_factory.mktemp("ci_run_again")
    proc = snakemake("--cores", "2", "--configfile", CI, workdir=other, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = (ci_run / "results" / "ci" / "study" / "metrics.csv").read_text()
    second = (other / "results" / "ci" / "study" / "metrics.csv").read_text()
    assert first == second
    for name in ("codes/grids.npy", "synthetic/codes/grids.npy"):
        a, b = (d / "results" / "ci" / name for d in (ci_run, other))
        assert a.read_bytes() == b.read_bytes(), name
