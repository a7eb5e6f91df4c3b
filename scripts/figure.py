#!/usr/bin/env python
"""Draw the figures of one step from what the step saved: the only place figure settings arrive.

Kinds (each reads the folders given with --input NAME=PATH and writes OUT/<figure>.png + meta.json):
  datasets   preview.png        patches of every base dataset and the test set (datasets, patches)
             class_shares.png   class shares of every split, log axis (datasets)
  lq         hq_vs_lq.png       HQ vs (simulated) LQ masks of a few patches, least to most changed (patches)
  vqvae      recon_steps.png    a validation patch reconstructed during VQ-VAE training (vqvae)
  codes      codes.png          patches, code grids, reconstructions (codes, reconstruction, patches, datasets)
  cleaning   cleaning.png       raw, k-means and cleaned synthetic masks (clean, raw)
  synthetic  synthetic_vs_real.png  synthetic pairs next to real training patches (clean, patches, datasets)
  pretest    pretest.png        the real-data model on synthetic images (pretest, clean)
  study      the study's figures (study, patches, datasets, and unet_<mix>_seeds<chunk> (train_unet outputs) of the overlay and curve mixes);
             balanced.png: the balanced arm per class
  findings   findings.html      the sentences that open the report's Study section (study)
  fidelity   s2.png, chords.png, phase_fractions.png, intensities.png, ratios.png: real vs synthetic (fidelity)
  generator_card  card.html   the Generator section's report card (vqvae, reconstruction, sample,
                              pixelcnn_<kind>[_cond], fidelity, pretest)
  conditioning  obedience.png, balanced_pairs.png: requested vs achieved fractions; balanced pairs (conditioning,
                              balanced)
Settings (--settings): classes (with colours) and the kind's own counts.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.data import datasets, io
from dualgen.generate import fidelity, common as generation, postprocess
from dualgen.report import figures, stats
from dualgen.segment import common as study
from dualgen.core.errors import DualgenError


def draw_datasets(inp, s, out):
    rows = []
    base = Path(inp["datasets"])
    for name in datasets.BASES:
        _, images, masks = datasets.load(inp["patches"], base / f"{name}.csv", "train")
        rows.append((f"{name} train", list(zip(images, masks))[:s["n"]]))
    _, images, masks = datasets.load(inp["patches"], base / "SHQ.csv", "test")
    rows.append(("test (HQ)", list(zip(images, masks))[:s["n"]]))
    figures.pair_grid(rows, s["classes"], out / "preview.png", title="Base datasets: patches and masks")
    if (base / "class_shares.csv").exists():
        figures.class_shares_figure(pd.read_csv(base / "class_shares.csv"), s["classes"], out / "class_shares.png")


def draw_lq(inp, s, out):
    """HQ vs LQ masks of a few patches: spread over the range of disagreement (least to most changed)."""
    folder = Path(inp["patches"])
    table = pd.read_csv(folder / "patches.csv")
    table = table[table["has_hq"].astype(bool)]
    ids = list(table["patch_id"])
    if not ids:
        raise DualgenError(f"{folder}: no patch has an HQ mask: nothing to compare (set data.hq_masks or data.simulate_lq)")

    def read(sub, i):
        return io.read_png(folder / sub / f"{i}.png")

    changed = np.array([(read("hq", i) != read("lq", i)).mean() for i in ids])
    order = np.argsort(changed, kind="stable")
    pick = sorted(set(order[np.linspace(0, len(ids) - 1, min(s["n"], len(ids))).round().astype(int)]),
                  key=lambda j: changed[j])
    images = [read("images", ids[j]) for j in pick]
    meta = artifacts.read_json(folder / "meta.json")
    sim = meta.get("simulated_lq")
    kind = "simulated LQ" if sim else "LQ"
    total = f"{sim['changed']:.1%} of all pixels changed" if sim else f"{changed.mean():.1%} of patch pixels differ"
    figures.hq_lq_figure(images, [read("hq", ids[j]) for j in pick], [read("lq", ids[j]) for j in pick],
                         [f"{ids[j]}\n{changed[j]:.1%} changed" for j in pick], s["classes"], out / "hq_vs_lq.png",
                         f"HQ vs {kind} masks ({total})")


def draw_vqvae(inp, s, out):
    snap = np.load(Path(inp["vqvae"]) / "snapshots.npz", allow_pickle=False)
    shots = list(zip(snap["steps"].tolist(), snap["images"], snap["masks"]))
    figures.vqvae_snapshots(snap["real_image"], snap["real_mask"], shots, s["classes"], out / "recon_steps.png")


def draw_codes(inp, s, out):
    codes = Path(inp["codes"])
    _, images, masks = generation.generator_patches(inp["patches"], inp["datasets"])  # the order encode used
    recon = np.load(codes / "recon.npz", allow_pickle=False)
    cleaned = np.load(Path(inp["reconstruction"]) / "cleaned.npz", allow_pickle=False)["masks"]
    grids = np.load(codes / "grids.npy", allow_pickle=False)
    n = min(s["n"], len(grids))
    figures.codes_figure(images[:n], masks[:n], grids[:n], recon["images"][:n], cleaned[:n], s["classes"],
                         out / "codes.png", n)


def draw_cleaning(inp, s, out):
    ids, images, cleaned = datasets.read_pool(inp["clean"])
    n = min(s["n"], len(ids))
    raws = np.load(Path(inp["raw"]) / "raw_masks.npy", allow_pickle=False)[:n]
    first = np.load(Path(inp["clean"]) / "kmeans.npy", allow_pickle=False)
    figures.cleaning_figure(images[:n], postprocess.display_levels(raws, len(s["classes"])), first[:n], cleaned[:n],
                            s["classes"], out / "cleaning.png", n,
                            postprocess.first_step(raws))


def draw_synthetic(inp, s, out):
    ids, images, masks = datasets.read_pool(inp["clean"])
    synth = list(zip(images, masks))[:s["n"]]
    _, images, masks = datasets.load(inp["patches"], Path(inp["datasets"]) / "BMQ.csv", "train")
    real = list(zip(images[:len(synth)], masks[:len(synth)]))
    per_row = min(4, max(1, len(synth)))
    rows = [(f"synthetic {i // per_row + 1}", synth[i:i + per_row]) for i in range(0, len(synth), per_row)]
    rows += [(f"real {i // per_row + 1}", real[i:i + per_row]) for i in range(0, len(real), per_row)]
    figures.pair_grid(rows, s["classes"], out / "synthetic_vs_real.png",
                      title="Synthetic pairs (top) and real BMQ training patches (bottom), paper Fig. 10")


def draw_pretest(inp, s, out):
    pre = Path(inp["pretest"])
    table = pd.read_csv(pre / "agreement.csv")
    ids, images, masks = datasets.read_pool(inp["clean"], table["synth_id"])
    pred = np.load(pre / "predictions.npy", allow_pickle=False)
    model = artifacts.read_json(pre / "meta.json").get("model", "real-data model")
    figures.pretest_figure(images, masks, pred, table["missing_class_iou"].to_numpy(), s["classes"], model,
                           out / "pretest.png", s["n"])


def draw_study(inp, s, out):
    folder = Path(inp["study"])
    table = pd.read_csv(folder / "metrics.csv")
    comparisons = pd.read_csv(folder / "comparisons.csv")
    level = artifacts.read_json(folder / "meta.json")["settings"]["stats"]["level"]
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
            runs.setdefault(name[len("unet_"):].rsplit("_seeds", 1)[0], {}).update(study.seed_dirs(path))
    histories = {}
    for mix in s["curve_mixes"]:
        histories[mix] = [pd.read_csv(folder / "history.csv") for _, folder in sorted(runs.get(mix, {}).items())]
    if histories:
        figures.convergence_figure(histories, out / "convergence.png")
    if s["overlay_mixes"]:
        ids, masks, _, images = study.test_set(inp["patches"], inp["datasets"], images=True)
        n = min(s["overlay_images"], len(ids))
        preds = {}
        for mix in s["overlay_mixes"]:
            seed = min(runs[mix])
            preds[f"{mix} (seed{seed})"] = study.read_test_predictions(runs[mix][seed])[1]
        figures.overlay_figure(images[:n], masks[:n], {k: v[:n] for k, v in preds.items()}, s["classes"],
                               out / "overlays.png")


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
    folder = Path(inp["conditioning"])
    table = pd.read_csv(folder / "conditioning.csv")
    pairs = pd.read_csv(folder / "pairs.csv")
    labels = {"data": "conditioned,\nreal fractions asked", "balanced": "conditioned,\nsample.targets asked",
              "unconditioned": "unconditioned\n(same asks, unseen)"}
    figures.conditioning_figure(pairs, table, s["classes"], labels, out / "obedience.png")
    ids, images, masks = datasets.read_pool(inp["balanced"])
    n = min(s["n"], len(ids))
    per_row = min(3, max(1, n))
    rows = [(f"balanced {i // per_row + 1}", list(zip(images[i:i + per_row], masks[i:i + per_row])))
            for i in range(0, n, per_row)]
    figures.pair_grid(rows, s["classes"], out / "balanced_pairs.png",
                      title="Synthetic pairs of the balanced pool (conditioned prior asked for sample.targets)")


def draw_fidelity(inp, s, out):
    folder = Path(inp["fidelity"])
    table = pd.read_csv(folder / "fidelity.csv")
    variants = [v["name"] for v in artifacts.read_json(folder / "meta.json")["variants"]]
    with np.load(folder / "profiles.npz", allow_pickle=False) as npz:
        profiles = {k: npz[k] for k in npz.files}
    figures.fidelity_curves(profiles, variants, table, s["classes"], out)
    figures.fidelity_ratios(table, variants, s["classes"], out / "ratios.png", TARGET_RATIO)


TARGET_RATIO, TARGET_MIOU = 2.0, 0.80  # issue 12: what the default generator is held to


def _mark(ok):
    return "background:#d8f0d8" if ok else "background:#f6d5d5"


def _ratio_cell(w):
    if w["class"] is None:
        return "-"
    return (f"{w['ratio']:.2f} ({w['class']})", _mark(w["ratio"] <= TARGET_RATIO))


def draw_generator_card(inp, s, out):
    """The report card at the top of the Generator section: each measure next to its real-data reference."""
    vmeta = artifacts.read_json(Path(inp["vqvae"]) / "meta.json")
    cmeta = artifacts.read_json(Path(inp["reconstruction"]) / "meta.json")
    fmeta = artifacts.read_json(Path(inp["fidelity"]) / "meta.json")
    v = vmeta["settings"]["vqvae"]
    pool = fmeta["pool_variant"]
    agree = cmeta["recon_mask_agreement"]
    label = fmeta.get("label_agreement_hq_vs_lq")
    rows = [["VQ-VAE reconstruction agreement: mask mIoU of the reconstructions (validation patches)",
             (f"{agree['val']['miou']:.3f} (training patches {agree['train']['miou']:.3f})",
              _mark(agree["val"]["miou"] >= TARGET_MIOU)),
             f"{label['miou']:.3f}: LQ vs HQ masks of the same {label['n']} patches" if label else "-",
             f">= {TARGET_MIOU:.2f}"]]
    for name in sorted(k for k in inp if k.startswith("pixelcnn_")):
        pmeta = artifacts.read_json(Path(inp[name]) / "meta.json")
        hist = pd.read_csv(Path(inp[name]) / "history.csv")
        k = v["num_embeddings"]
        kind = name[len("pixelcnn_"):].replace("_cond", f", conditioned on {pmeta.get('condition')}")
        rows.append([f"PixelCNN {kind}: validation NLL (nats per code)", f"{pmeta['val_nll']:.3f}",
                     f"training NLL {hist['train_nll'].iloc[-1]:.3f}; uniform over K={k}: {np.log(k):.3f}", "lower"])
    if "sample" in inp:
        cal = artifacts.read_json(Path(inp["sample"]) / "meta.json").get("calibration")
        rows.append(["pool sampler: code shares against the prior's training grids (total variation distance)",
                     f"{cal['total_variation']:.3f} calibrated (as trained: {cal['rounds'][0]['total_variation']:.3f})"
                     if cal else "as trained (sample.calibrate: none)",
                     "0: the training grids' own shares", "lower"])
        if cal and "classes" in cal:
            steps = [r["total_variation"] for r in cal["classes"]["rounds"]]
            rows.append(["pool sampler: class fractions of decoded draws against the training patches' (total "
                         "variation, 64 grids)", f"{min(steps):.3f} calibrated (code shares only: {steps[0]:.3f})",
                         "0: the training patches' own fractions", "lower"])
    worst = fmeta["worst_by_family"][pool]
    ref = fmeta.get("reference")  # a second real sample: the test patches (a fidelity meta.json before it: none)
    for family, label_text in fidelity.FAMILIES.items():
        w = worst[family]
        floor = "-" if w["class"] is None else f"1 (two halves of the real patches; floor distance {w['floor']:.4g})"
        if ref and ref["worst_by_family"][family]["class"] is not None:
            r = ref["worst_by_family"][family]
            floor += f"; a second real sample ({ref['n']} test patches): {r['ratio']:.2f} ({r['class']})"
        target = f"<= {TARGET_RATIO:g}" if family in fidelity.TARGET_FAMILIES else "about 1"
        rows.append([f"fidelity ratio, {label_text} (worst class)", _ratio_cell(w), floor, target])
    memo = fmeta["memorisation"][pool]
    rows.append(["memorisation: share of synthetic pairs nearer a training patch than 99 % of real validation patches",
                 (f"{memo['share_closer']:.3f}", _mark(not fidelity.copies_more_than_real(memo))),
                 f"{memo['novel_lo']:.3f} .. {memo['novel_hi']:.3f} (a sample as novel as real data, on average, with "
                 f"{memo['n_val']} real validation patches)",
                 f"<= {memo['novel_limit']:.3f} (+ sampling noise of {memo['n_synthetic']} pairs)"])
    if "pretest" in inp:
        pre = artifacts.read_json(Path(inp["pretest"]) / "meta.json")
        real = pre.get("real_val")
        syn = pre["overall"]["missing_class_iou"]
        rows.append([f"pair consistency: {pre['model']} U-Net vs the masks (Missing Class IoU)", f"{syn:.3f}",
                     f"{real['missing_class_iou']:.3f} on the real BMQ validation patches" if real else "-",
                     "near the real value"])
    card = ("Generator report card", ["measure", f"generator (study pool: {pool})", "real-data reference", "target"],
            rows, "Green: the target is met; red: it is not. A fidelity ratio is a distance between synthetic and "
                  "real statistics divided by the same distance between two disjoint halves of the real BMQ training "
                  "patches: 1 means as close as real data is to itself.")
    families = list(fidelity.FAMILIES)
    side = []
    for variant in fmeta["variants"]:
        name = variant["name"]
        w = fmeta["worst_by_family"][name]
        label = name + (" (study pool)" if variant["pool"] else "") + \
            (" *closest*" if name == fmeta["closest_variant"] else "")
        side.append([label, *[_ratio_cell(w[f]) for f in families],
                     f"{fmeta['memorisation'][name]['share_closer']:.3f}"])
    if ref:
        side.append([f"reference: a second real sample ({ref['n']} test patches, other micrographs)",
                     *[_ratio_cell(ref["worst_by_family"][f]) for f in families], "-"])
    variants = ("Generator variants side by side (worst ratio per statistic)",
                ["variant"] + [fidelity.FAMILIES[f] for f in families] + ["memorisation share"], side,
                "*closest*: the variant whose worst ratio over phase fraction, S2 and chord lengths is lowest "
                "(among those whose memorisation share is no higher than real data's: a copying generator is not close). "
                "The reference row scores real patches of other micrographs the same way: what new real data reads "
                "(the halves behind the floor share their micrographs, so new micrographs can read above 1). "
                "Details: fidelity/fidelity.csv and the Fidelity figures.")
    intro = [f"VQ-VAE: K={v['num_embeddings']}, D={v['embedding_dim']}, num_hiddens={v['num_hiddens']}, "
             f"downsample {v.get('downsample', 4)}, mask weight {v.get('mask_weight', 1.0)}, {v['steps']} updates "
             f"(best step {vmeta.get('best_step')}), "
             f"trained in {vmeta.get('train_seconds', vmeta['wall_seconds']):.0f} s."]
    figures.html_card("Generator report card", intro, [card, variants], out / "card.html")


def draw_findings(inp, s, out):
    """The sentences that open the report's Study section, generated from comparisons.csv."""
    folder = Path(inp["study"])
    table = pd.read_csv(folder / "metrics.csv")
    comparisons = pd.read_csv(folder / "comparisons.csv")
    level = artifacts.read_json(folder / "meta.json")["settings"]["stats"]["level"]
    lines = ["No comparisons: the config trains no 0 % mix to compare with."]
    if len(comparisons):
        unit = comparisons["resample"].iloc[0]
        lines = stats.sentences(comparisons) + [
            f"Intervals: {level:.0%} percentile bootstrap over test {'micrographs' if unit == 'source' else 'patches'}"
            f" (seeds resampled within each), Wilcoxon signed-rank over test images, Holm over the comparisons of"
            f" each metric; {int(table['n_seeds'].max())} seed(s) per mix."]
        balanced = comparisons[comparisons["mix"].isin(table.loc[table["arm"] == "balanced", "mix"])]
        if len(balanced):
            lines.append("Balanced arm (synthetic pairs from the conditioned prior asked for sample.targets), IoU of "
                         "each class against the 0 % mix and against the unconditioned mix of the same size:")
            for name in (c["name"] for c in s["classes"]):
                lines += [line for line in stats.sentences(balanced, f"iou_{name}", f"{name} IoU")
                          if " vs " in line]
    figures.findings_html("Findings: Missing Class IoU of every mix against its 0 % mix", lines, out / "findings.html")


KINDS = {"datasets": draw_datasets, "vqvae": draw_vqvae, "codes": draw_codes, "cleaning": draw_cleaning,
         "synthetic": draw_synthetic, "pretest": draw_pretest, "study": draw_study, "findings": draw_findings,
         "lq": draw_lq, "fidelity": draw_fidelity, "generator_card": draw_generator_card,
         "conditioning": draw_conditioning}


def main(args):
    s = cli.settings(args)
    inputs = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep:
            raise DualgenError(f"--input {item}: expected NAME=PATH")
        inputs[name] = path
    with artifacts.artifact_dir(args.out, f"figure_{args.kind}", s, None, [], {"input_folders": inputs}) as tmp:
        KINDS[args.kind](inputs, s, tmp)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--kind", required=True, choices=sorted(KINDS))
    p.add_argument("--input", action="append", default=[], help="NAME=PATH of a folder the figure reads (repeat)")
    p.add_argument("--out", required=True, help="output folder (results/<study>/figures/<kind>)")
    cli.run(main, p)
