"""End to end: presets/ci.yaml through Snakemake, the artifacts it leaves, reruns after one config change,
and the report."""

import json

import numpy as np
import pandas as pd
import pytest

from dualgen.core.config import load_yaml, merge
from dualgen.data import datasets
from dualgen.generate import noise
from dualgen.segment.mixes import enumerate_mixes
from tests.conftest import REPO, assert_one_line_error, planned_jobs, run_script, snakemake

pytestmark = pytest.mark.slow
CI = REPO / "presets" / "ci.yaml"


def ci_config():
    return merge(load_yaml(REPO / "config.yaml"), load_yaml(CI))


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("ci_run")
    proc = snakemake("--cores", "2", "--configfile", CI, workdir=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work


def test_ci_study_produces_every_artifact(ci_run):
    out = ci_run / "results" / "ci"
    cfg = ci_config()
    mixes = enumerate_mixes(cfg["mixes"], cfg["datasets"])
    seeds = cfg["unet"]["seeds"]
    table = pd.read_csv(out / "study" / "metrics.csv")
    assert list(table["mix"]) == [m.name for m in mixes]
    for col in (
        "base",
        "percent",
        "arm",
        "n_real",
        "n_synth",
        "n_seeds",
        "accuracy",
        "miou",
        "missing_class_iou",
        "missing_class_iou_lo",
        "missing_class_iou_hi",
        "iou_matrix",
        "iou_eta",
    ):
        assert col in table.columns, col
    assert (table["n_seeds"] == len(seeds)).all()
    assert table["accuracy"].between(0, 1).all() and table["missing_class_iou"].between(0, 1).all()
    assert (table["missing_class_iou_lo"] <= table["missing_class_iou"]).all()
    per_image = pd.read_csv(out / "study" / "per_image.csv")
    n_test = cfg["datasets"]["test"]
    assert len(per_image) == len(mixes) * len(seeds) * n_test
    assert {"mix", "base", "percent", "seed", "image", "source", "iou_nd_rich"} <= set(per_image.columns)
    comparisons = pd.read_csv(out / "study" / "comparisons.csv")
    pairs = set(zip(comparisons["mix"], comparisons["reference"]))
    assert ("BMQ_100", "BMQ_000") in pairs and ("SyntMQ_050", "BMQ_000") in pairs and ("BMQ_aug", "BMQ_000") in pairs
    assert ("SHQ_pt100", "SHQ_000") in pairs and ("BMQ_000", "BMQ_000") not in pairs
    row = comparisons[(comparisons.mix == "BMQ_100") & (comparisons.metric == "missing_class_iou")].iloc[0]
    assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"] and 0 <= row["p_holm"] <= 1
    for fig in ("accuracy", "miou", "missing_class_iou", "per_class", "overlays", "forest", "convergence"):
        assert (out / "figures" / "study" / f"{fig}.png").stat().st_size > 10_000, fig
    assert "BMQ_100 vs BMQ_000" in (out / "figures" / "findings" / "findings.html").read_text()
    for fig in (
        "datasets/preview",
        "vqvae/recon_steps",
        "codes/codes",
        "cleaning/cleaning",
        "synthetic/synthetic_vs_real",
        "pretest/pretest",
    ):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 5_000, fig
    for folder in (
        "patches",
        "datasets",
        "vqvae",
        "codes",
        "pixelcnn/plain",
        "pixelcnn/gated",
        "pixelcnn/maskgit",
        "synthetic/codes",
        "synthetic/raw",
        "synthetic/clean",
        "pretest",
        "study",
        "unet/BMQ_000/seeds0_1/seed0",
    ):
        meta = json.loads((out / folder / "meta.json").read_text())
        assert meta["inputs_sha256"] or folder == "patches", folder
        assert meta["libraries"]["tensorflow"] and meta["wall_seconds"] >= 0
    unet = json.loads((out / "unet" / "BMQ_100" / "seeds0_1" / "seed1" / "meta.json").read_text())
    assert unet["updates"] == cfg["unet"]["updates"] and unet["seed"] == 1  # the equal budget
    assert unet["settings"]["seed"] == 1 and "seeds" not in unet["settings"]  # the settings of that training alone
    assert unet["reused_model"]  # the job's second seed: the traced model of the first, from its own start
    first = json.loads((out / "unet" / "SHQ_000" / "seeds0_1" / "seed0" / "meta.json").read_text())
    assert first["updates"] == unet["updates"] and not first["reused_model"]
    recon = json.loads((out / "reconstruction" / "meta.json").read_text())
    assert 0 <= recon["recon_mask_agreement"]["val"]["miou"] <= 1
    grids, flips = np.load(out / "codes" / "grids.npy"), np.load(out / "codes" / "flips.npy")
    assert flips.shape == (3, *grids.shape) and not np.array_equal(flips[0], grids)  # pixelcnn.augment: flips
    assert np.load(out / "codes" / "turns.npy").shape == (4, *grids.shape)  # pixelcnn.augment: dihedral
    prior = json.loads((out / "pixelcnn" / "plain" / "meta.json").read_text())
    assert any(name.endswith("flips.npy") for name in prior["inputs_sha256"])
    assert not any(name.endswith("turns.npy") for name in prior["inputs_sha256"])  # flips: not the turns
    cal = json.loads((out / "synthetic" / "codes" / "meta.json").read_text())["calibration"]  # sample.calibrate
    assert cal["mode"] == "classes" and len(cal["rounds"]) == 6 and len(cal["classes"]["rounds"]) == 8
    assert abs(sum(cal["drawn"]) - 1) < 1e-9 and len(cal["bias"]) == len(cal["target"]) == len(cal["drawn"])
    steps = cal["classes"]["rounds"]  # the class stage starts where the code shares' best round left off
    assert steps[0]["bias"] == min(cal["rounds"], key=lambda r: r["total_variation"])["bias"]
    assert cal["bias"] == min(steps, key=lambda r: r["total_variation"])["bias"]
    classes = np.load(out / "codes" / "classes.npz")
    assert np.allclose(cal["classes"]["target"], classes["fractions"]) and abs(sum(cal["classes"]["target"]) - 1) < 1e-9
    assert all(abs(sum(r["drawn"]) - 1) < 1e-9 and len(r["drawn"]) == len(cfg["classes"]) for r in steps)
    pool = pd.read_csv(out / "synthetic" / "clean" / "pool.csv")
    assert len(pool) == max(m.n_synth for m in mixes)
    manifest = pd.read_csv(out / "mixes" / "SyntMQ_050" / "manifest.csv")
    assert (manifest.loc[manifest.split == "train", "origin"] == "synth").all()
    assert (manifest.loc[manifest.split == "val", "origin"] == "real").all()
    assert not list(out.rglob(".tmp-*")) + list(out.rglob(".old-*")), "temporary files left behind"


def test_ci_conditioned_generation_end_to_end(ci_run):
    """pixelcnn.condition in the ci preset: conditioned priors of both kinds, the balanced and data pools with their
    requests, the obedience table against the unconditioned pool, the figures, the balanced arm in the study."""
    out = ci_run / "results" / "ci"
    cfg = ci_config()
    names = [c["name"] for c in cfg["classes"]]
    for kind in ("plain", "gated"):
        meta = json.loads((out / "pixelcnn" / f"{kind}_cond" / "meta.json").read_text())
        assert meta["condition"] == "phase_fractions" and meta["cond_dim"] == len(names)
        assert np.isfinite(meta["val_nll"])
        spec = json.loads((out / "pixelcnn" / f"{kind}_cond" / "checkpoint" / "spec.json").read_text())
        assert spec["cond_dim"] == len(names)
    targets = pd.read_csv(out / "synthetic" / "conditioned" / "balanced" / "codes" / "targets.csv")
    assert list(targets.columns) == ["grid", "from_patch"] + [f"req_{n}" for n in names]
    np.testing.assert_allclose(targets[[f"req_{n}" for n in names]].sum(axis=1), 1.0, rtol=1e-5)
    data = pd.read_csv(out / "synthetic" / "conditioned" / "data" / "codes" / "targets.csv")
    assert len(data) == cfg["fidelity"]["n"]
    assert targets["req_eta"].mean() > data["req_eta"].mean()  # boosted: more eta asked for than real patches have
    table = pd.read_csv(out / "conditioning" / "conditioning.csv")
    assert list(table.columns) == ["pool", "class", "n", "mean_requested", "mean_achieved", "corr", "mae"]
    assert set(table["pool"]) == {"data", "balanced", "unconditioned"} and set(table["class"]) == set(names)
    assert table["mae"].between(0, 1).all()
    for fig in ("obedience", "balanced_pairs"):
        assert (out / "figures" / "conditioning" / f"{fig}.png").stat().st_size > 10_000, fig
    study = pd.read_csv(out / "study" / "metrics.csv")
    assert set(study.loc[study["arm"] == "balanced", "mix"]) == {"BMQ_bal100"}
    comparisons = pd.read_csv(out / "study" / "comparisons.csv")
    pairs = set(zip(comparisons["mix"], comparisons["reference"], comparisons["metric"]))
    assert {("BMQ_bal100", "BMQ_000", "iou_eta"), ("BMQ_bal100", "BMQ_100", "iou_eta")} <= pairs
    manifest = pd.read_csv(out / "mixes" / "BMQ_bal100" / "manifest.csv")
    assert (manifest["origin"] == "synth").sum() == cfg["datasets"]["big_train"]
    assert (out / "figures" / "study" / "balanced.png").stat().st_size > 10_000
    assert "BMQ_bal100 vs BMQ_100: eta IoU" in (out / "figures" / "findings" / "findings.html").read_text()
    card = (out / "figures" / "generator_card" / "card.html").read_text()
    assert "PixelCNN plain, conditioned on phase_fractions: validation NLL" in card


def test_ci_fidelity_step_scores_every_generator_variant(ci_run):
    """The fidelity step end to end: the pool and the other prior side by side, the memorisation check, the figures,
    the pre-test on real validation patches and the report card."""
    out = ci_run / "results" / "ci"
    cfg = ci_config()
    table = pd.read_csv(out / "fidelity" / "fidelity.csv")
    assert list(table.columns) == [
        "variant",
        "kind",
        "temperature",
        "pool",
        "n_synthetic",
        "class",
        "statistic",
        "real_value",
        "synthetic_value",
        "distance",
        "floor",
        "ratio",
    ]
    variants = {"plain_t1", "gated_t1", "maskgit_t1", "plain_cond_data_t1"}  # pixelcnn.compare, the conditioned prior
    assert set(table["variant"]) == variants
    assert set(table["kind"]) == {"plain", "gated", "maskgit", "plain_cond"}
    assert set(table["class"]) == {c["name"] for c in cfg["classes"]} | {"all"}  # "all": the whole image
    image = table[table["statistic"].isin(["spectrum_all", "spectrum_high", "gradient", "edge_density"])]
    assert len(image) == 4 * 4 and set(image.loc[image["statistic"] == "edge_density", "class"]) == {"matrix"}
    features = table[table["statistic"].str.startswith("feature_")]  # the real-only U-Net's encoder (BMQ_000)
    assert len(features) == 2 * 4 and set(features["statistic"]) == {"feature_s4", "feature_s8"}
    assert (features["floor"] > 0).all() and (features["ratio"] > 0).all()
    assert {
        "phase_fraction",
        "s2",
        "chord_rows",
        "chord_cols",
        "object_size",
        "boundary_density",
        "intensity_c0",
    } <= set(table["statistic"])
    pool = table.groupby("variant")["pool"].agg(["all", "any"])
    assert pool.loc["plain_t1", "all"] and not pool.loc["gated_t1", "any"]
    assert (table.loc[table["variant"] == "gated_t1", "n_synthetic"] == cfg["fidelity"]["n"]).all()
    assert (table["floor"].dropna() >= 0).all() and (table["ratio"].dropna() >= 0).all()
    meta = json.loads((out / "fidelity" / "meta.json").read_text())
    assert meta["pool_variant"] == "plain_t1" and meta["closest_variant"] in set(table["variant"])
    assert set(meta["worst_by_family"]["gated_t1"]) == {
        "phase_fraction",
        "s2",
        "chord",
        "object_size",
        "boundary_density",
        "intensity",
        "image",
    }
    recon = pd.read_csv(out / "reconstruction" / "image_fidelity.csv")  # the VQ-VAE alone, before any prior
    assert list(recon["statistic"]) == ["spectrum_all", "spectrum_high", "gradient", "edge_density"]
    rmeta = json.loads((out / "reconstruction" / "meta.json").read_text())["recon_image_ratio"]
    assert rmeta["ratio"] == recon["ratio"].max() > 0
    fmeta = json.loads((out / "fidelity" / "meta.json").read_text())
    assert any(p.endswith("unet/BMQ_000/seeds0_1/seed0/model/best.weights.h5") for p in fmeta["inputs_sha256"])
    memo = pd.read_csv(out / "fidelity" / "memorisation.csv")
    assert list(memo["variant"]) == ["plain_t1", "gated_t1", "maskgit_t1", "plain_cond_data_t1"]
    ref = pd.read_csv(out / "fidelity" / "reference.csv")  # the test patches, scored as a variant is
    assert set(ref["variant"]) == {"real_test"} and len(ref) == len(table) // 4
    n_test = int((pd.read_csv(out / "datasets" / "BMQ.csv")["split"] == "test").sum())
    assert meta["reference"]["n"] == n_test >= 2 and (ref["ratio"].dropna() >= 0).all()
    assert memo["share_closer"].between(0, 1).all()
    for fig in ("s2", "chords", "phase_fractions", "intensities", "ratios"):
        assert (out / "figures" / "fidelity" / f"{fig}.png").stat().st_size > 5_000, fig
    pretest = json.loads((out / "pretest" / "meta.json").read_text())
    assert pretest["n_real_val"] == cfg["datasets"]["big_val"] and 0 <= pretest["real_val"]["missing_class_iou"] <= 1
    assert len(pd.read_csv(out / "pretest" / "agreement_real.csv")) == cfg["datasets"]["big_val"]
    card = (out / "figures" / "generator_card" / "card.html").read_text()
    for text in (
        "Generator report card",
        "reconstruction agreement",
        "PixelCNN gated: validation NLL",
        "MaskGIT maskgit: validation masked-token cross-entropy",
        "fidelity ratio, S2",
        "fidelity ratio, image (spectrum, gradients, edges, features)",
        "memorisation",
        "real BMQ validation patches",
        "gated_t1",
        "a second real sample",
    ):
        assert text in card, text
    assert (out / "synthetic" / "variants" / "gated_t1" / "clean" / "pool.csv").exists()


def test_ci_whole_micrographs_and_the_exported_model(ci_run):
    """Every mix, seed and the seed ensemble scored on the whole test micrographs at their original resolution; the
    same pairs compared at micrograph level; the model of the mix with the best validation score exported."""
    out = ci_run / "results" / "ci"
    cfg = ci_config()
    mixes = [m.name for m in enumerate_mixes(cfg["mixes"], cfg["datasets"])]
    seeds = cfg["unet"]["seeds"]
    test = pd.read_csv(out / "whole" / "test" / "micrographs.csv")
    assert list(test["name"]) == cfg["data"]["test_sources"]
    whole = pd.read_csv(out / "study" / "whole_image.csv")
    assert len(whole) == len(mixes) * (len(seeds) + 1) * len(test)
    assert set(whole["seed"].astype(str)) == {*map(str, seeds), "ensemble"} and list(whole["mix"].unique()) == mixes
    assert whole["missing_class_iou"].between(0, 1).all()
    assert np.allclose(whole[[f"area_error_{c['name']}" for c in cfg["classes"]]].sum(1), 0, atol=1e-9)
    labels = np.load(out / "whole" / "BMQ_100" / "labels.npz")
    assert labels[test["name"][0]].shape == (test["height"][0], test["width"][0])  # original resolution
    pairs = pd.read_csv(out / "study" / "whole_comparisons.csv")
    assert ("BMQ_100", "BMQ_000") in set(zip(pairs["mix"], pairs["reference"])) and (
        pairs["resample"] == "source"
    ).all()
    validation = pd.read_csv(out / "model" / "validation.csv")
    meta = json.loads((out / "model" / "meta.json").read_text())
    best = validation.loc[validation["validation_missing_class_iou"].idxmax(), "mix"]
    assert meta["mix"] == best and meta["chosen_by"] == "best validation Missing Class IoU"
    pre = json.loads((out / "model" / "preprocess.json").read_text())
    assert pre["window"] == cfg["patches"]["size"] and [c["name"] for c in pre["classes"]] == [
        c["name"] for c in cfg["classes"]
    ]
    assert sorted(p.name for p in (out / "model" / "seeds").iterdir()) == [f"seed{k}" for k in seeds]


def test_decoder_noise_changes_the_micrographs_not_the_masks(ci_run, tmp_path):
    """postprocess.image_noise residual: every postprocess rule reads the reconstructions (what reruns: the cleaning
    of every pool and what trains on it, no generator model), and the step run on the study's decoded pairs gives
    the same masks with noisier micrographs, seeded; spectrum: the same masks with filtered micrographs."""
    jobs = _override(ci_run, "noise", "postprocess: {image_noise: residual}\n")
    assert {"postprocess", "fidelity_postprocess", "postprocess_conditioned", "fidelity", "train_unet"} <= set(jobs)
    assert not {"train_vqvae", "encode", "train_pixelcnn", "sample", "decode"} & set(jobs), jobs
    out = ci_run / "results" / "ci"
    settings = json.loads((out / "synthetic" / "clean" / "meta.json").read_text())["settings"]
    settings["postprocess"]["image_noise"] = "residual"
    args = ["--raw", out / "synthetic" / "raw", "--codes", out / "codes", "--patches", out / "patches"]
    args += ["--datasets", out / "datasets", "--settings", json.dumps(settings)]
    for name in ("a", "b"):
        proc = run_script("postprocess.py", *args, "--out", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
    settings["postprocess"]["image_noise"] = "spectrum"  # the filter alone: no noise, nothing to seed
    args[-1] = json.dumps(settings)
    proc = run_script("postprocess.py", *args, "--out", tmp_path / "spectrum")
    assert proc.returncode == 0, proc.stderr
    plain, noisy = datasets.read_pool(out / "synthetic" / "clean"), datasets.read_pool(tmp_path / "a")
    assert plain[0] == noisy[0] and np.array_equal(plain[2], noisy[2])
    assert np.abs(plain[1].astype(int) - noisy[1]).mean() > 0.5
    assert np.array_equal(noisy[1], datasets.read_pool(tmp_path / "b")[1])
    assert np.array_equal(datasets.read_decoded(tmp_path / "a", noisy[0]), plain[1])  # kept for memorisation
    assert datasets.read_decoded(out / "synthetic" / "clean", plain[0]) is None  # no image_noise: no copy
    filtered = datasets.read_pool(tmp_path / "spectrum")
    assert np.array_equal(plain[2], filtered[2]) and not np.array_equal(plain[1], filtered[1])
    fit = json.loads((tmp_path / "spectrum" / "meta.json").read_text())["decoder_noise"]
    assert fit["mode"] == "spectrum" and 0 < fit["power_gain_at_0.25"] <= noise.MAX_GAIN
    recon = json.loads((out / "reconstruction" / "meta.json").read_text())["settings"]  # the reconstructions too
    recon["postprocess"]["image_noise"] = "spectrum"
    args = ["--codes", out / "codes", "--patches", out / "patches", "--datasets", out / "datasets"]
    proc = run_script("reconstruction.py", *args, "--settings", json.dumps(recon), "--out", tmp_path / "recon")
    assert proc.returncode == 0, proc.stderr
    raw, restored = (pd.read_csv(tmp_path / "recon" / f"image_fidelity{x}.csv") for x in ("", "_postprocessed"))
    assert list(restored["statistic"]) == list(raw["statistic"])
    high = [float(t.set_index("statistic").loc["spectrum_high", "ratio"]) for t in (restored, raw)]
    assert high[0] < high[1]  # the filter gives the reconstructions the real spectrum, up to its cap
    worst = json.loads((tmp_path / "recon" / "meta.json").read_text())["recon_image_ratio_postprocessed"]
    assert worst["ratio"] == restored["ratio"].max()


def test_predict_rule_segments_new_micrographs_and_only_its_settings_rerun_it(ci_run):
    """predict.images schedules the predict rule (the demo's micrographs stand in for new ones); predict.overlap,
    tta, ensemble and images rerun it alone; predict.mix re-exports the model too; predict.mix must be a mix."""
    new = ci_run / "predict_images.yaml"
    new.write_text("predict: {images: data/demo/images}\n")
    proc = snakemake("results/ci/predict", "--cores", "2", "--configfile", CI, new, workdir=ci_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = ci_run / "results" / "ci" / "predict"
    names = sorted(p.stem for p in (ci_run / "data" / "demo" / "images").iterdir())
    assert sorted(p.stem for p in (out / "masks").iterdir()) == names
    fractions = pd.read_csv(out / "phase_fractions.csv")
    assert np.allclose(fractions.groupby("micrograph")["fraction"].sum(), 1)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"]["mix"] == json.loads((ci_run / "results" / "ci" / "model" / "meta.json").read_text())["mix"]
    for name, text, expected in (
        ("overlap", "predict: {images: data/demo/images, overlap: 0.25, tta: true}\n", {"predict": 1}),
        ("no_ensemble", "predict: {images: data/demo/images, ensemble: false}\n", {"predict": 1}),
        ("mix", "predict: {images: data/demo/images, mix: SHQ_000}\n", {"predict": 1, "export_model": 1}),
    ):
        path = ci_run / f"{name}.yaml"
        path.write_text(text)
        jobs = planned_jobs(snakemake("-n", "--configfile", CI, path, workdir=ci_run))
        jobs.pop("all", None)
        assert jobs == expected, (name, jobs)
    bad = ci_run / "bad_mix.yaml"
    bad.write_text("predict: {mix: BMQ_999}\n")
    proc = snakemake("-n", "--configfile", CI, bad, workdir=ci_run)
    assert proc.returncode != 0 and "predict.mix: 'BMQ_999' is not a mix of this study" in proc.stderr


def test_nothing_to_do_after_a_complete_run(ci_run):
    assert planned_jobs(snakemake("-n", "--configfile", CI, workdir=ci_run)) == {}


def _override(ci_run, name, text):
    path = ci_run / f"{name}.yaml"
    path.write_text(text)
    return planned_jobs(snakemake("-n", "--configfile", CI, path, workdir=ci_run))


FIGURE_RULES = {
    "figure_datasets",
    "figure_vqvae",
    "figure_codes",
    "figure_cleaning",
    "figure_synthetic",
    "figure_pretest",
    "figure_study",
    "figure_fidelity",
    "figure_generator_card",
}


def _study_jobs(n_mixes):
    """What n retrained mixes rerun after their trainings and evaluations: their whole-micrograph scores, the study's
    tables and figures, and the exported model (predict.mix best compares every mix)."""
    jobs = {"aggregate": 1, "figure_study": 1, "figure_findings": 1, "figure_whole": 1}
    return jobs | ({"whole_image": n_mixes} if n_mixes else {})


def _train_jobs(n_mixes):
    """train_unet jobs for n mixes: one per chunk of unet.seeds_per_job seeds."""
    u = ci_config()["unet"]
    return n_mixes * -(-len(u["seeds"]) // u["seeds_per_job"])


def test_unet_setting_reruns_only_training_evaluation_and_aggregation(ci_run):
    cfg = ci_config()
    n_mixes = len(enumerate_mixes(cfg["mixes"], cfg["datasets"]))
    n = n_mixes * len(cfg["unet"]["seeds"])
    jobs = _override(ci_run, "unet", "unet: {learning_rate: 0.002}\n")
    assert jobs.get("train_unet") == _train_jobs(n_mixes) and jobs.get("evaluate") == n and jobs.get("aggregate") == 1
    assert not {"train_vqvae", "encode", "train_pixelcnn", "sample", "decode", "postprocess", "build_mix"} & set(jobs)


def test_a_budget_change_retrains_but_never_touches_the_generator(ci_run):
    """unet.updates reaches the trainings and what reads them; a calibrated budget (auto) adds the calibration of
    each base's 0 % mix (its mix is built already) and the budget step before them. Neither touches the data, the
    generator, its pools or the mixes; the fidelity step reruns (its learned features are the retrained BMQ_000
    U-Net's encoder), and only it."""
    cfg = ci_config()
    n_mixes = len(enumerate_mixes(cfg["mixes"], cfg["datasets"]))
    n = n_mixes * len(cfg["unet"]["seeds"])
    upstream = {"make_demo", "patches", "datasets", "train_vqvae", "encode", "reconstruction", "train_pixelcnn"}
    upstream |= {"train_pixelcnn_conditioned", "sample", "sample_conditioned", "decode", "decode_conditioned"}
    upstream |= {"postprocess", "postprocess_conditioned", "conditioning", "build_mix"}
    upstream |= {"fidelity_sample", "fidelity_decode", "fidelity_postprocess"}
    for name, text in (
        ("updates", f"unet: {{updates: {cfg['unet']['updates'] + 4}}}\n"),
        ("auto", "unet: {updates: auto, calibration: {cap: 40}}\n"),
    ):
        jobs = _override(ci_run, name, text)
        assert jobs.get("train_unet") == _train_jobs(n_mixes) and jobs.get("evaluate") == n, (name, jobs)
        assert jobs.get("aggregate") == 1 and jobs.get("figure_study") == 1, (name, jobs)
        assert not upstream & set(jobs), (name, jobs)
        assert jobs.get("fidelity") == 1, (name, jobs)  # fidelity.features: the BMQ_000 encoder changed
        calibration = {"calibrate_budget": len(cfg["mixes"]["bases"]), "choose_budget": 1} if name == "auto" else {}
        assert {k: jobs[k] for k in ("calibrate_budget", "choose_budget") if k in jobs} == calibration, (name, jobs)


def test_pixelcnn_setting_reruns_from_pixelcnn_not_vqvae(ci_run):
    cfg = ci_config()
    synthetic = [m for m in enumerate_mixes(cfg["mixes"], cfg["datasets"]) if m.n_synth > 0]
    jobs = _override(ci_run, "pixelcnn", "pixelcnn: {epochs: 3}\n")
    assert jobs.get("train_pixelcnn") == 3 and jobs.get("sample") == 1 and jobs.get("postprocess") == 1
    assert jobs.get("train_pixelcnn_conditioned") == 3 and jobs.get("sample_conditioned") == 2
    assert jobs.get("train_unet") == _train_jobs(len(synthetic))  # 0 % mixes need no generator
    assert "train_vqvae" not in jobs and "encode" not in jobs


def test_maskgit_setting_retrains_only_the_maskgit_priors(ci_run):
    """pixelcnn.maskgit reaches the maskgit priors and what is sampled from them (a fidelity variant here), not the
    PixelCNNs, the pool or any U-Net."""
    jobs = _override(ci_run, "maskgit", "pixelcnn: {maskgit: {dim: 8}}\n")
    assert jobs.get("train_pixelcnn") == 1 and jobs.get("train_pixelcnn_conditioned") == 1, jobs
    assert jobs.get("fidelity_sample") == 1 and jobs.get("fidelity") == 1, jobs
    assert not {"train_vqvae", "sample", "sample_conditioned", "train_unet"} & set(jobs), jobs


def test_perceptual_vqvae_waits_for_the_real_only_unet(ci_run):
    """vqvae.perceptual.weight > 0: the VQ-VAE's command gets the real-only U-Net's saved model, its job depends on
    that training, and everything generated reruns; without BMQ_000 in the study the config is refused at load."""
    path = ci_run / "perceptual.yaml"
    path.write_text("vqvae: {perceptual: {weight: 0.5}}\n")
    proc = snakemake("-n", "-p", "--configfile", CI, path, workdir=ci_run)
    assert proc.returncode == 0, proc.stderr
    assert "--features-model results/ci/unet/BMQ_000/seeds0_1/seed0/model" in proc.stdout
    jobs = planned_jobs(proc)
    assert jobs.get("train_vqvae") == 1 and "train_unet" in jobs and "make_demo" not in jobs, jobs
    path.write_text("vqvae: {perceptual: {weight: 0.5}}\nmixes: {bases: [SHQ]}\n")
    assert_one_line_error(
        snakemake("-n", "--configfile", CI, path, workdir=ci_run), "vqvae.perceptual.weight > 0", "BMQ_000"
    )


def test_calibrate_resamples_the_unconditioned_pools_only(ci_run):
    """sample.calibrate reaches the unconditioned samplers (the pool and the fidelity variants): the priors, the
    conditioned pools and the 0 % mixes stay."""
    cfg = ci_config()
    synthetic = [m for m in enumerate_mixes(cfg["mixes"], cfg["datasets"]) if m.n_synth > 0 and not m.balanced]
    jobs = _override(ci_run, "calibrate", "sample: {calibrate: false}\n")
    assert jobs.get("sample") == 1 and jobs.get("fidelity_sample", 0) >= 1  # the pool and the other kind
    assert jobs.get("train_unet") == _train_jobs(len(synthetic))
    assert not {"train_pixelcnn", "train_pixelcnn_conditioned", "sample_conditioned", "encode"} & set(jobs)


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("preview", "datasets: {preview: 2}\n", {"figure_datasets": 1}),
        ("figure_pairs", "postprocess: {figure_pairs: 2}\n", {"figure_synthetic": 1}),
        (
            "overlay",
            "report: {overlay_mixes: [BMQ_000, SHQ_100], overlay_images: 1}\n",
            {"figure_study": 1, "figure_whole": 1},
        ),
        (
            "colour",
            "classes:\n  - {name: matrix,  value: 0,   color: '#000000'}\n"
            "  - {name: oxide,   value: 170, color: '#3a8fd9'}\n"
            "  - {name: nd_rich, value: 255, color: '#f5c211', thin: true}\n"
            "  - {name: eta,     value: 85,  color: '#d9368f'}\n",
            {
                "figure_datasets": 1,
                "figure_vqvae": 1,
                "figure_codes": 1,
                "figure_cleaning": 1,
                "figure_synthetic": 1,
                "figure_pretest": 1,
                "figure_study": 1,
                "figure_fidelity": 1,
                "figure_lq": 1,
                "figure_conditioning": 1,
                "figure_whole": 1,
                "export_model": 1,  # preprocess.json keeps the colours for the overlays of predict
            },
        ),
    ],
)
def test_a_figure_setting_reruns_only_figures(ci_run, name, text, expected):
    """The promise: a figure setting (preview count, figure pairs, overlays, a class colour) reruns figures only
    (and a colour the exported model, whose preprocess.json gives predict its overlay colours)."""
    jobs = _override(ci_run, name, text)
    jobs.pop("all", None)
    assert jobs == expected


@pytest.mark.parametrize(
    "name, text",
    [("checkpoint", "unet: {checkpoint_every_s: 5}\n"), ("epochs", "unet: {epochs: 3, early_stopping_patience: 2}\n")],
)
def test_a_unet_key_no_training_uses_reruns_nothing(ci_run, name, text):
    """How often a training saves a resumable state (a resource, not a setting), and the keys of the budget not in
    use (the ci preset counts updates), reach no training."""
    assert ci_config()["unet"]["budget"] == "updates"
    assert _override(ci_run, name, text) == {}


def test_pretrain_share_retrains_only_the_pretrain_arm(ci_run):
    cfg = ci_config()
    arm = [m for m in enumerate_mixes(cfg["mixes"], cfg["datasets"]) if m.pretrain]
    jobs = _override(ci_run, "share", "unet: {pretrain_share: 0.25}\n")
    jobs.pop("all", None)
    n = len(arm) * len(cfg["unet"]["seeds"])
    assert arm and jobs == {"train_unet": _train_jobs(len(arm)), "evaluate": n, "export_model": 1} | _study_jobs(
        len(arm)
    )


def test_adding_a_synthetic_level_trains_only_the_new_mixes(ci_run):
    """build_mix gets its own mix's fields: a new level adds its mix, its trainings and what aggregates them.
    (The pool grows only if the new level needs more synthetic pairs than the largest one: 50 % does not.)"""
    seeds = len(ci_config()["unet"]["seeds"])
    jobs = _override(ci_run, "level", "mixes: {levels: [0, 50, 100]}\n")
    jobs.pop("all", None)
    assert jobs == {"build_mix": 2, "train_unet": _train_jobs(2), "evaluate": 2 * seeds, "export_model": 1} | (
        _study_jobs(2)
    )


def test_the_real_only_curve_trains_only_its_own_mixes_on_nested_hq_patches(ci_run):
    """mixes.real_sizes added to a finished study: only the new arm's mixes build and train (and what reads every
    mix); a size takes SHQ's training patches first, then HQ patches of the big training set, all with HQ masks."""
    cfg = ci_config()
    seeds = len(cfg["unet"]["seeds"])
    jobs = _override(ci_run, "real", "mixes: {real_sizes: [50, 200]}\n")
    jobs.pop("all", None)
    assert jobs == {"build_mix": 2, "train_unet": _train_jobs(2), "evaluate": 2 * seeds, "export_model": 1} | (
        _study_jobs(2)
    )
    proc = snakemake(
        "results/ci/mixes/SHQr200", "--cores", "1", "--configfile", CI, ci_run / "real.yaml", workdir=ci_run
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = ci_run / "results" / "ci"
    manifest = pd.read_csv(out / "mixes" / "SHQr200" / "manifest.csv")
    shq = pd.read_csv(out / "datasets" / "SHQ.csv")
    train = manifest[manifest.split == "train"]
    n = cfg["datasets"]["small_train"]
    assert len(train) == 2 * n and (train["mask"] == "hq").all() and (train["origin"] == "real").all()
    assert list(train["id"][:n]) == list(shq.loc[shq.split == "train", "patch_id"])  # SHQ's patches first
    assert list(manifest.loc[manifest.split == "val", "id"]) == list(shq.loc[shq.split == "val", "patch_id"])
    test_ids = set(shq.loc[shq.split == "test", "patch_id"])
    assert not set(train["id"]) & test_ids


def test_adding_a_seed_trains_only_the_new_seed(ci_run):
    """The ci preset's two seeds fill a job (unet.seeds_per_job: 2): a third seed is a job of its own."""
    cfg = ci_config()
    assert len(cfg["unet"]["seeds"]) % cfg["unet"]["seeds_per_job"] == 0
    n_mixes = len(enumerate_mixes(cfg["mixes"], cfg["datasets"]))
    seeds = ", ".join(str(s) for s in cfg["unet"]["seeds"] + [7])
    jobs = _override(ci_run, "seed", f"unet: {{seeds: [{seeds}]}}\n")
    jobs.pop("all", None)
    assert jobs == {"train_unet": n_mixes, "evaluate": n_mixes, "export_model": 1} | _study_jobs(n_mixes)


def test_a_postprocess_setting_reruns_from_postprocess_not_the_generator(ci_run):
    """min_object_px cleans masks: the reconstruction's score, the pool and what trains on it; never the VQ-VAE,
    the code grids or the priors."""
    cfg = ci_config()
    synthetic = [m for m in enumerate_mixes(cfg["mixes"], cfg["datasets"]) if m.n_synth > 0]
    seeds = len(cfg["unet"]["seeds"])
    jobs = _override(ci_run, "min_object", "postprocess: {min_object_px: 50}\n")
    jobs.pop("all", None)
    assert jobs == {
        "reconstruction": 1,
        "figure_codes": 1,
        "postprocess": 1,
        "figure_cleaning": 1,
        "figure_synthetic": 1,
        "pretest": 1,
        "figure_pretest": 1,
        "fidelity_postprocess": 2,  # pixelcnn.compare: gated and maskgit
        "fidelity": 1,
        "figure_fidelity": 1,
        "figure_generator_card": 1,
        "build_mix": len(synthetic),
        "train_unet": _train_jobs(len(synthetic)),
        "evaluate": len(synthetic) * seeds,
        "export_model": 1,
        "postprocess_conditioned": 2,
        "conditioning": 1,
        "figure_conditioning": 1,
    } | _study_jobs(len(synthetic))


def test_new_targets_resample_only_the_balanced_pool_and_its_mixes(ci_run):
    """sample.targets reaches the balanced pool's sampler alone: the unconditioned pool, the conditioned prior and
    the 'data' pool stay; the balanced mixes retrain."""
    cfg = ci_config()
    balanced = [m for m in enumerate_mixes(cfg["mixes"], cfg["datasets"]) if m.balanced]
    seeds = len(cfg["unet"]["seeds"])
    jobs = _override(ci_run, "targets", "sample: {targets: {boost_rarest: null, boost: {eta: 3.0}}}\n")
    jobs.pop("all", None)
    assert balanced and jobs == {
        "sample_conditioned": 1,
        "decode_conditioned": 1,
        "postprocess_conditioned": 1,
        "conditioning": 1,
        "figure_conditioning": 1,
        "build_mix": len(balanced),
        "train_unet": _train_jobs(len(balanced)),
        "evaluate": len(balanced) * seeds,
        "export_model": 1,
    } | _study_jobs(len(balanced))


def test_switching_conditioning_off_retrains_nothing_else(ci_run):
    """The conditioned prior and the balanced arm are additions: without them no other mix, prior or pool reruns
    (a mix's settings carry the arm's flag only when it is set); only the tables and figures that list mixes or
    generator variants (the fidelity step, numpy, scores the conditioned prior as one of them)."""
    jobs = _override(ci_run, "uncond", "pixelcnn: {condition: none}\nmixes: {balanced: []}\n")
    jobs.pop("all", None)
    assert jobs == {
        "figure_generator_card": 1,
        "fidelity": 1,
        "figure_fidelity": 1,
        "export_model": 1,  # chooses among fewer mixes
    } | _study_jobs(0)


def test_report_is_self_contained_html(ci_run):
    proc = snakemake("--report", "report.html", "--configfile", CI, workdir=ci_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (ci_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "missing_class_iou" in html


DETERMINISM_TARGETS = [
    "metrics/BMQ_000/seed0",
    "metrics/BMQ_100/seed1",
    "metrics/SyntMQ_050/seed0",
    "metrics/BMQ_bal100/seed1",
    "metrics/BMQ_aug/seed1",
    "metrics/SHQ_pt100/seed1",
]


def test_two_runs_give_identical_metrics(ci_run, tmp_path_factory):
    """Determinism: the same config in another folder gives the same numbers (TensorFlow op determinism on,
    seeds everywhere, fixed data order). The second run makes one training of each kind (real only, real +
    synthetic, synthetic only, balanced, augmented, pretrained) and everything they need: every generator step,
    conditioned ones included (half the time of a whole second study). It trains one seed per job
    (unet.seeds_per_job: 1), so the seed-1 trainings, which the first run trained second in a job on the model it
    had traced for seed 0, are checked against a fresh process too."""
    other = tmp_path_factory.mktemp("ci_run_again")
    targets = [f"results/ci/{t}" for t in DETERMINISM_TARGETS]
    single = other / "one_seed_per_job.yaml"
    single.write_text("unet: {seeds_per_job: 1}\n")
    proc = snakemake(*targets, "--cores", "2", "--configfile", CI, single, workdir=other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in [f"{t}/metrics.json" for t in DETERMINISM_TARGETS] + [
        "codes/grids.npy",
        "synthetic/codes/grids.npy",
        "synthetic/conditioned/balanced/codes/grids.npy",
    ]:
        a, b = (d / "results" / "ci" / name for d in (ci_run, other))
        assert a.read_bytes() == b.read_bytes(), name
