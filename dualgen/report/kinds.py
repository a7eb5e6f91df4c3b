"""What each figure kind (``scripts/figure.py --kind``) draws: read what the steps saved, arrange it, draw it.

Every ``draw_<kind>(inp, s, out)`` takes ``inp`` {input name: folder} (the figure rule's named inputs), ``s`` the
kind's settings (classes with their colours and the kind's own counts) and ``out`` the folder to write into.
Drawing is done by ``figures`` (images), ``card`` and ``findings`` (HTML pages).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts
from dualgen.core.errors import DualgenError
from dualgen.data import datasets, io, micrographs
from dualgen.generate import common as generation
from dualgen.generate.fidelity import TARGET_RATIO
from dualgen.report import card, figures, findings
from dualgen.segment import budget
from dualgen.segment import evaluation as study


def draw_datasets(inp, s, out):
    """preview.png: patches of every base dataset and the test set; class_shares.png: class shares of every split."""
    rows = []
    base = Path(inp["datasets"])
    for name in datasets.BASES:
        _, images, masks = datasets.load(inp["patches"], base / f"{name}.csv", "train")
        rows.append((f"{name} train", list(zip(images, masks))[: s["n"]]))
    _, images, masks = datasets.load(inp["patches"], base / "SHQ.csv", "test")
    rows.append(("test (HQ)", list(zip(images, masks))[: s["n"]]))
    figures.pair_grid(rows, s["classes"], out / "preview.png", title="Base datasets: patches and masks")
    if (base / "class_shares.csv").exists():
        figures.class_shares_figure(pd.read_csv(base / "class_shares.csv"), s["classes"], out / "class_shares.png")


def draw_lq(inp, s, out):
    """hq_vs_lq.png: HQ vs LQ masks of a few patches, spread over the range of disagreement (least to most changed)."""
    folder = Path(inp["patches"])
    table = pd.read_csv(folder / "patches.csv")
    table = table[table["has_hq"].astype(bool)]
    ids = list(table["patch_id"])
    if not ids:
        raise DualgenError(
            f"{folder}: no patch has an HQ mask: nothing to compare (set data.hq_masks or data.simulate_lq)"
        )

    def read(sub, i):
        return io.read_png(folder / sub / f"{i}.png")

    changed = np.array([(read("hq", i) != read("lq", i)).mean() for i in ids])
    order = np.argsort(changed, kind="stable")
    pick = sorted(
        set(order[np.linspace(0, len(ids) - 1, min(s["n"], len(ids))).round().astype(int)]), key=lambda j: changed[j]
    )
    images = [read("images", ids[j]) for j in pick]
    meta = artifacts.read_json(folder / "meta.json")
    sim = meta.get("simulated_lq")  # absent: the LQ masks are given, not simulated
    kind = "simulated LQ" if sim else "LQ"
    total = f"{sim['changed']:.1%} of all pixels changed" if sim else f"{changed.mean():.1%} of patch pixels differ"
    figures.hq_lq_figure(
        images,
        [read("hq", ids[j]) for j in pick],
        [read("lq", ids[j]) for j in pick],
        [f"{ids[j]}\n{changed[j]:.1%} changed" for j in pick],
        s["classes"],
        out / "hq_vs_lq.png",
        f"HQ vs {kind} masks ({total})",
    )


def draw_vqvae(inp, s, out):
    """recon_steps.png: a validation patch reconstructed during VQ-VAE training."""
    snap = np.load(Path(inp["vqvae"]) / "snapshots.npz", allow_pickle=False)
    shots = list(zip(snap["steps"].tolist(), snap["images"], snap["masks"]))
    figures.vqvae_snapshots(snap["real_image"], snap["real_mask"], shots, s["classes"], out / "recon_steps.png")


def draw_codes(inp, s, out):
    """codes.png: patches, their code grids and reconstructions."""
    codes = Path(inp["codes"])
    _, images, masks = generation.generator_patches(inp["patches"], inp["datasets"])  # the order encode used
    recon = np.load(codes / "recon.npz", allow_pickle=False)
    cleaned = np.load(Path(inp["reconstruction"]) / "cleaned.npz", allow_pickle=False)["masks"]
    grids = np.load(codes / "grids.npy", allow_pickle=False)
    n = min(s["n"], len(grids))
    figures.codes_figure(
        images[:n], masks[:n], grids[:n], recon["images"][:n], cleaned[:n], s["classes"], out / "codes.png", n
    )


def draw_cleaning(inp, s, out):
    """cleaning.png: raw, first classification and cleaned synthetic masks."""
    ids, images, cleaned = datasets.read_pool(inp["clean"])
    n = min(s["n"], len(ids))
    raws = np.load(Path(inp["raw"]) / "raw_masks.npy", allow_pickle=False)[:n]
    first = np.load(Path(inp["clean"]) / "first_classes.npy", allow_pickle=False)
    codec = generation.mask_codec(inp["raw"], "decode", len(s["classes"]))
    figures.cleaning_figure(
        images[:n], codec.display(raws), first[:n], cleaned[:n], s["classes"], out / "cleaning.png", n, codec.first_step
    )


def draw_synthetic(inp, s, out):
    """synthetic_vs_real.png: synthetic pairs next to real BMQ training patches."""
    ids, images, masks = datasets.read_pool(inp["clean"])
    synth = list(zip(images, masks))[: s["n"]]
    _, images, masks = datasets.load(inp["patches"], Path(inp["datasets"]) / "BMQ.csv", "train")
    real = list(zip(images[: len(synth)], masks[: len(synth)]))
    per_row = min(4, max(1, len(synth)))
    rows = [(f"synthetic {i // per_row + 1}", synth[i : i + per_row]) for i in range(0, len(synth), per_row)]
    rows += [(f"real {i // per_row + 1}", real[i : i + per_row]) for i in range(0, len(real), per_row)]
    figures.pair_grid(
        rows,
        s["classes"],
        out / "synthetic_vs_real.png",
        title="Synthetic pairs (top) and real BMQ training patches (bottom), paper Fig. 10",
    )


def draw_pretest(inp, s, out):
    """pretest.png: the real-data model on synthetic images."""
    pre = Path(inp["pretest"])
    table = pd.read_csv(pre / "agreement.csv")
    ids, images, masks = datasets.read_pool(inp["clean"], table["synth_id"])
    pred = np.load(pre / "predictions.npy", allow_pickle=False)
    model = artifacts.read_json(pre / "meta.json")["model"]
    figures.pretest_figure(
        images, masks, pred, table["missing_class_iou"].to_numpy(), s["classes"], model, out / "pretest.png", s["n"]
    )


def _study_tables(folder):
    """The study's metrics.csv and comparisons.csv, and its stats.level."""
    table = pd.read_csv(folder / "metrics.csv")
    comparisons = pd.read_csv(folder / "comparisons.csv")
    level = artifacts.read_json(folder / "meta.json")["settings"]["stats"]["level"]
    return table, comparisons, level


def draw_study(inp, s, out):
    """The study's figures: one per metric, per class, the forest plot, the balanced arm, validation curves of the
    curve mixes (with the calibration's curves and budget, input ``budget``, under unet.updates: auto), overlays
    of the overlay mixes (from the train_unet outputs unet_<mix>_seeds<chunk>) and, when label_equivalence.csv has
    rows, label_equivalence.png (each mix with synthetic pairs placed on the real-only learning curve)."""
    folder = Path(inp["study"])
    table, comparisons, level = _study_tables(folder)
    for key, label, fig_no in figures.METRICS:
        figures.metric_figure(table, comparisons, key, label, fig_no, s["big_train"], out / f"{key}.png", level)
    figures.per_class_figure(table, comparisons, s["classes"], s["big_train"], out / "per_class.png")
    if len(comparisons):
        figures.forest_plot(comparisons, "missing_class_iou", "Missing Class IoU", out / "forest.png")
    trios = balanced_trios(table)
    if trios:
        figures.rare_class_figure(table, comparisons, trios, s["classes"], out / "balanced.png", level)
    runs = {}  # mix -> {seed: training folder}, from the train_unet outputs unet_<mix>_seeds<chunk>
    for name, path in inp.items():
        if name.startswith("unet_"):
            runs.setdefault(name[len("unet_") :].rsplit("_seeds", 1)[0], {}).update(study.seed_dirs(path))
    histories = {}
    for mix in s["curve_mixes"]:
        histories[mix] = [pd.read_csv(folder / "history.csv") for _, folder in sorted(runs.get(mix, {}).items())]
    calibration = None  # unet.updates: auto: the calibration curves and the budget they gave
    if "budget" in inp:
        calibration = artifacts.read_json(Path(inp["budget"]) / budget.BUDGET_FILE)
        calibration["curves"] = pd.read_csv(Path(inp["budget"]) / budget.CURVES_FILE)
    if histories or calibration is not None:
        figures.convergence_figure(histories, out / "convergence.png", calibration)
    if s["overlay_mixes"]:
        ids, masks, _, images = study.test_set(inp["patches"], inp["datasets"], images=True)
        n = min(s["overlay_images"], len(ids))
        preds = {}
        for mix in s["overlay_mixes"]:
            seed = min(runs[mix])
            preds[f"{mix} (seed{seed})"] = study.read_test_predictions(runs[mix][seed])[1]
        figures.overlay_figure(
            images[:n], masks[:n], {k: v[:n] for k, v in preds.items()}, s["classes"], out / "overlays.png"
        )
    if (folder / "label_equivalence.csv").exists():
        labels = pd.read_csv(folder / "label_equivalence.csv")
        if len(labels):
            figures.equivalence_figure(table, labels, out / "label_equivalence.png")


def draw_whole(inp, s, out):
    """whole_overlays.png: the first report.overlay_images test micrographs at their original resolution, the
    ground truth and each overlay mix's seed ensemble (whole_<mix>) with its wrong pixels; whole_vs_patch.png: each
    mix's whole-micrograph scores against its patch-level scores (study)."""
    folder = Path(inp["study"])
    table = whole_vs_patch_table(pd.read_csv(folder / "metrics.csv"), pd.read_csv(folder / "whole_image.csv"))
    figures.whole_vs_patch_figure(table, out / "whole_vs_patch.png", s.get("patch_size"))
    if s["overlay_mixes"]:
        shown = micrographs.read_test(inp["test"])[: s["overlay_images"]]
        preds = {}
        for mix in s["overlay_mixes"]:
            with np.load(Path(inp[f"whole_{mix}"]) / "labels.npz", allow_pickle=False) as npz:
                preds[f"{mix} (ensemble)"] = [npz[m.name] for m in shown]
        figures.whole_overlay_figure(
            [m.image for m in shown],
            [m.truth for m in shown],
            preds,
            s["classes"],
            out / "whole_overlays.png",
            names=[m.name for m in shown],
        )


def whole_vs_patch_table(metrics, whole):
    """One row per mix of metrics.csv (patch level): mix, base and per metric of figures.WHOLE_METRICS <key>_patch,
    <key>_whole (mean over the test micrographs, then over seeds) and <key>_ensemble (the seed ensemble's mean over
    the test micrographs)."""
    keys = [key for key, _ in figures.WHOLE_METRICS]
    is_ensemble = whole["seed"].astype(str) == study.ENSEMBLE
    per_seed = whole[~is_ensemble].groupby(["mix", "seed"])[keys].mean().groupby("mix").mean()
    ensemble = whole[is_ensemble].groupby("mix")[keys].mean()
    table = metrics[["mix", "base", *keys]].rename(columns={k: f"{k}_patch" for k in keys})
    table = table.join(per_seed.add_suffix("_whole"), on="mix").join(ensemble.add_suffix("_ensemble"), on="mix")
    return table.reset_index(drop=True)


def balanced_trios(table):
    """(0 % mix, unconditioned mix, balanced mix) for every balanced mix whose two references were trained."""
    names = set(table["mix"])
    trios = []
    for mix in table.loc[table["arm"] == "balanced", "mix"]:
        base, pct = mix.split("_bal")
        trio = [f"{base}_000", f"{base}_{pct}", mix]
        trios.append([m for m in trio if m in names])
    return [t for t in trios if len(t) > 1]


def draw_conditioning(inp, s, out):
    """obedience.png: requested vs achieved class fractions; balanced_pairs.png: pairs of the balanced pool."""
    folder = Path(inp["conditioning"])
    table = pd.read_csv(folder / "conditioning.csv")
    pairs = pd.read_csv(folder / "pairs.csv")
    labels = {
        "data": "conditioned,\nreal fractions asked",
        "balanced": "conditioned,\nsample.targets asked",
        "unconditioned": "unconditioned\n(same asks, unseen)",
    }
    figures.conditioning_figure(pairs, table, s["classes"], labels, out / "obedience.png")
    ids, images, masks = datasets.read_pool(inp["balanced"])
    n = min(s["n"], len(ids))
    per_row = min(3, max(1, n))
    rows = [
        (f"balanced {i // per_row + 1}", list(zip(images[i : i + per_row], masks[i : i + per_row])))
        for i in range(0, n, per_row)
    ]
    figures.pair_grid(
        rows,
        s["classes"],
        out / "balanced_pairs.png",
        title="Synthetic pairs of the balanced pool (conditioned prior asked for sample.targets)",
    )


def draw_fidelity(inp, s, out):
    """s2.png, chords.png, phase_fractions.png, intensities.png (real vs synthetic) and ratios.png."""
    folder = Path(inp["fidelity"])
    table = pd.read_csv(folder / "fidelity.csv")
    variants = [v["name"] for v in artifacts.read_json(folder / "meta.json")["variants"]]
    with np.load(folder / "profiles.npz", allow_pickle=False) as npz:
        profiles = {k: npz[k] for k in npz.files}
    figures.fidelity_curves(profiles, variants, table, s["classes"], out)
    figures.fidelity_ratios(table, variants, s["classes"], out / "ratios.png", TARGET_RATIO)


def draw_generator_card(inp, s, out):
    """card.html: the report card at the top of the Generator section, each measure next to its real-data
    reference (``card.tables``)."""

    def meta(name):
        return artifacts.read_json(Path(inp[name]) / "meta.json")

    priors = [
        (name, meta(name), pd.read_csv(Path(inp[name]) / "history.csv"))
        for name in sorted(k for k in inp if k.startswith("pixelcnn_"))
    ]
    intro, tables = card.tables(
        meta("vqvae"),
        meta("reconstruction"),
        meta("fidelity"),
        priors,
        meta("sample") if "sample" in inp else None,
        meta("pretest") if "pretest" in inp else None,
    )
    card.write_html(card.TITLE, intro, tables, out / "card.html")


def draw_findings(inp, s, out):
    """findings.html: the sentences that open the report's Study section (``findings.lines``, with the label
    equivalence of every synthetic mix); front.rst: the report's first page (``findings.front``), the intro
    ``report/workflow.rst`` (input ``intro``) followed by the answer per base."""
    folder = Path(inp["study"])
    table, comparisons, level = _study_tables(folder)
    labels = pd.read_csv(folder / "label_equivalence.csv")
    lines = findings.lines(table, comparisons, level, s["classes"])
    mcious = labels[labels["metric"] == "missing_class_iou"] if len(labels) else labels
    if len(mcious):
        lines += ["Labels saved (Missing Class IoU on the real-only learning curve, study/label_equivalence.csv):"]
        lines += list(mcious["sentence"])
    findings.write_html(findings.TITLE, lines, out / "findings.html")
    validation = pd.read_csv(folder / "validation.csv")
    front = findings.front(table, comparisons, labels, validation)
    findings.write_front(Path(inp["intro"]).read_text(), front, out / findings.FRONT)
