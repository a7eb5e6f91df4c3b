"""The generator report card at the top of the report's Generator section (figures/generator_card/card.html).

``tables`` turns the meta.json of the generator steps into two tables: every measure next to its real-data
reference and its target (green: met, red: not), and the generator variants side by side. ``write_html`` writes
them as a small HTML page.
"""

import html

import numpy as np

from dualgen.core.artifacts import atomic_path
from dualgen.generate import fidelity
from dualgen.generate.fidelity import TARGET_RATIO

TITLE = "Generator report card"
TARGET_MIOU = 0.80  # the mask mIoU of the VQ-VAE reconstructions the default generator is held to


def _mark(ok):
    return "background:#d8f0d8" if ok else "background:#f6d5d5"


def _ratio_cell(w):
    if w["class"] is None:
        return "-"
    return (f"{w['ratio']:.2f} ({w['class']})", _mark(w["ratio"] <= TARGET_RATIO))


def tables(vmeta, cmeta, fmeta, priors, sample_meta=None, pretest_meta=None):
    """(intro lines, [card table, variants table]) for ``write_html``.

    ``vmeta``, ``cmeta``, ``fmeta``: meta.json of the VQ-VAE, reconstruction and fidelity steps; ``priors``:
    [(input name pixelcnn_<kind>[_cond], meta.json, history.csv DataFrame)] of each PixelCNN prior, in row order;
    ``sample_meta``, ``pretest_meta``: meta.json of the pool sampler and of the pre-test, None for no row.
    """
    v = vmeta["settings"]["vqvae"]
    pool = fmeta["pool_variant"]
    agree = cmeta["recon_mask_agreement"]
    label = fmeta["label_agreement_hq_vs_lq"]
    rows = [
        [
            "VQ-VAE reconstruction agreement: mask mIoU of the reconstructions (validation patches)",
            (
                f"{agree['val']['miou']:.3f} (training patches {agree['train']['miou']:.3f})",
                _mark(agree["val"]["miou"] >= TARGET_MIOU),
            ),
            f"{label['miou']:.3f}: LQ vs HQ masks of the same {label['n']} patches" if label else "-",
            f">= {TARGET_MIOU:.2f}",
        ]
    ]
    for name, pmeta, hist in priors:
        k = v["num_embeddings"]
        kind = name[len("pixelcnn_") :].replace("_cond", f", conditioned on {pmeta['condition']}")
        maskgit = "val_measure" in pmeta  # a MaskGIT prior's number is not a likelihood
        measure = "masked-token cross-entropy (nats)" if maskgit else "NLL (nats per code)"
        rows.append(
            [
                f"{'MaskGIT' if maskgit else 'PixelCNN'} {kind}: validation {measure}",
                f"{pmeta['val_nll']:.3f}",
                f"training {hist['train_nll'].iloc[-1]:.3f}; uniform over K={k}: {np.log(k):.3f}",
                "lower" + (" (not comparable with a PixelCNN's NLL)" if maskgit else ""),
            ]
        )
    if sample_meta is not None:
        cal = sample_meta["calibration"]
        rows.append(
            [
                "pool sampler: code shares against the prior's training grids (total variation distance)",
                f"{cal['total_variation']:.3f} calibrated (as trained: {cal['rounds'][0]['total_variation']:.3f})"
                if cal
                else "as trained (sample.calibrate: none)",
                "0: the training grids' own shares",
                "lower",
            ]
        )
        if cal and "classes" in cal:
            steps = [r["total_variation"] for r in cal["classes"]["rounds"]]
            rows.append(
                [
                    "pool sampler: class fractions of decoded draws against the training patches' (total "
                    "variation, 64 grids)",
                    f"{min(steps):.3f} calibrated (code shares only: {steps[0]:.3f})",
                    "0: the training patches' own fractions",
                    "lower",
                ]
            )
    worst = fmeta["worst_by_family"][pool]
    ref = fmeta["reference"]  # a second real sample: the test patches (None without one)
    for family, label_text in fidelity.FAMILIES.items():
        w = worst[family]
        floor = "-" if w["class"] is None else f"1 (two halves of the real patches; floor distance {w['floor']:.4g})"
        if ref and ref["worst_by_family"][family]["class"] is not None:
            r = ref["worst_by_family"][family]
            floor += f"; a second real sample ({ref['n']} test patches): {r['ratio']:.2f} ({r['class']})"
        target = f"<= {TARGET_RATIO:g}" if family in fidelity.TARGET_FAMILIES else "about 1"
        rows.append([f"fidelity ratio, {label_text} (worst class)", _ratio_cell(w), floor, target])
    memo = fmeta["memorisation"][pool]
    decoded = memo.get("judged_on") == "decoded"  # image_noise on: the micrographs before the filter or noise
    rows.append(
        [
            "memorisation: share of synthetic pairs nearer a training patch than 99 % of real validation patches"
            + (" (judged on the micrographs as decoded, before image_noise)" if decoded else ""),
            (f"{memo['share_closer']:.3f}", _mark(not fidelity.copies_more_than_real(memo))),
            f"{memo['novel_lo']:.3f} .. {memo['novel_hi']:.3f} (a sample as novel as real data, on average, with "
            f"{memo['n_val']} real validation patches)",
            f"<= {memo['novel_limit']:.3f} (+ sampling noise of {memo['n_synthetic']} pairs)",
        ]
    )
    if pretest_meta is not None:
        real = pretest_meta["real_val"]
        syn = pretest_meta["overall"]["missing_class_iou"]
        rows.append(
            [
                f"pair consistency: {pretest_meta['model']} U-Net vs the masks (Missing Class IoU)",
                f"{syn:.3f}",
                f"{real['missing_class_iou']:.3f} on the real BMQ validation patches" if real else "-",
                "near the real value",
            ]
        )
    card = (
        TITLE,
        ["measure", f"generator (study pool: {pool})", "real-data reference", "target"],
        rows,
        "Green: the target is met; red: it is not. A fidelity ratio is a distance between synthetic and "
        "real statistics divided by the same distance between two disjoint halves of the real BMQ training "
        "patches: 1 means as close as real data is to itself.",
    )
    families = list(fidelity.FAMILIES)
    side = []
    for variant in fmeta["variants"]:
        name = variant["name"]
        w = fmeta["worst_by_family"][name]
        label = (
            name
            + (" (study pool)" if variant["pool"] else "")
            + (" *closest*" if name == fmeta["closest_variant"] else "")
        )
        side.append(
            [label, *[_ratio_cell(w[f]) for f in families], f"{fmeta['memorisation'][name]['share_closer']:.3f}"]
        )
    if ref:
        side.append(
            [
                f"reference: a second real sample ({ref['n']} test patches, other micrographs)",
                *[_ratio_cell(ref["worst_by_family"][f]) for f in families],
                "-",
            ]
        )
    variants = (
        "Generator variants side by side (worst ratio per statistic)",
        ["variant"] + [fidelity.FAMILIES[f] for f in families] + ["memorisation share"],
        side,
        "*closest*: the variant whose worst ratio over phase fraction, S2, chord lengths and the image family is "
        "lowest "
        "(among those whose memorisation share is no higher than real data's: a copying generator is not "
        "close). "
        "The reference row scores real patches of other micrographs the same way: what new real data reads "
        "(the halves behind the floor share their micrographs, so new micrographs can read above 1). "
        "Details: fidelity/fidelity.csv and the Fidelity figures.",
    )
    intro = [
        f"VQ-VAE: K={v['num_embeddings']}, D={v['embedding_dim']}, num_hiddens={v['num_hiddens']}, "
        f"downsample {v['downsample']}, mask weight {v['mask_weight']}, {v['steps']} updates "
        f"(best step {vmeta['best_step']}), "
        f"trained in {vmeta['train_seconds']:.0f} s."
    ]
    return intro, [card, variants]


def write_html(title, intro, tables, path):
    """A small HTML page of tables: ``tables`` = [(heading, header cells, rows of cells, note)]; a cell may be a
    (text, css style) pair."""

    def cell(tag, value):
        text, css = value if isinstance(value, tuple) else (value, "")
        return f"<{tag} style='{css}'>{html.escape(str(text))}</{tag}>"

    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;margin-bottom:6px}"
        " td,th{border:1px solid #bbb;padding:3px 8px;text-align:left} th{background:#eee}</style></head><body>",
        f"<h3>{html.escape(title)}</h3>",
    ]
    parts += [f"<p>{html.escape(line)}</p>" for line in intro]
    for heading, header, rows, note in tables:
        parts.append(f"<h4>{html.escape(heading)}</h4><table><tr>{''.join(cell('th', h) for h in header)}</tr>")
        parts += [f"<tr>{''.join(cell('td', c) for c in row)}</tr>" for row in rows]
        parts.append("</table>")
        if note:
            parts.append(f"<p style='color:#555'>{html.escape(note)}</p>")
    parts.append("</body></html>\n")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
