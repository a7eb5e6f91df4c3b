"""Every figure of dualgen. Scripts never import matplotlib: they call these functions with arrays.

The class colours come from config (classes[].color): the one palette of the project, used only here, so a
colour reaches only the figure rules. Mask-drawing figures are made by figure rules (rules/report.smk,
scripts/figure.py, dualgen/report/kinds.py) from what the compute steps saved; curves without figure settings
(loss, NLL, codebook use) are drawn by the step that computes them.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dualgen.core.artifacts import atomic_path  # noqa: E402

METRICS = (("accuracy", "Accuracy", "15"), ("miou", "mIoU", "16"), ("missing_class_iou", "Missing Class IoU", "17"))
BASE_COLORS = {
    "SHQ": "tab:green",
    "SLQ": "tab:olive",
    "BLQ": "tab:orange",
    "BMQ": "tab:blue",
    "SyntLQ": "tab:red",
    "SyntMQ": "tab:purple",
}


# ---------------------------------------------------------------------------------------------- palette, panels


def class_colors(classes):
    """uint8 (K, 3) display colours from config's classes[].color."""
    return np.array([[int(c["color"][i : i + 2], 16) for i in (1, 3, 5)] for c in classes], dtype=np.uint8)


def colorize(mask, classes):
    return class_colors(classes)[np.asarray(mask, dtype=np.intp)]


def as_rgb(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image


def _bare(ax, title=None):
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def show_image(ax, image, title=None):
    image = as_rgb(image)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    _bare(ax, title)


def mask_panel(ax, mask, classes, title=None):
    """A class-id mask in the class colours: the one mask panel of every figure."""
    ax.imshow(colorize(mask, classes), interpolation="nearest")
    _bare(ax, title)


def overlay(image, mask, classes, alpha=0.45):
    rgb = as_rgb(image)
    rgb = np.repeat(rgb[..., None], 3, -1) if rgb.ndim == 2 else rgb
    return (rgb * (1 - alpha) + colorize(mask, classes) * alpha).astype(np.uint8)


def legend(fig, classes, extra=()):
    """The class colours below the figure; ``extra``: more (colour, label) entries."""
    from matplotlib.patches import Patch

    handles = [Patch(color=np.array(c) / 255, label=cls["name"]) for c, cls in zip(class_colors(classes), classes)]
    handles += [Patch(color=color, label=label) for color, label in extra]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)


def save(fig, path, dpi=110):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)


def _panel_rows(rows, classes, path, suptitle, headers=()):
    """rows: [(row label, [("image"|"mask"|"gray"|"codes", array), ...]), ...] -> one figure of panels."""
    ncols = max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.8 * ncols + 0.4, 1.85 * len(rows) + 0.7), squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c in range(ncols):
            axes[r, c].axis("off")
        for c, (kind, arr) in enumerate(panels):
            ax = axes[r, c]
            ax.axis("on")
            title = headers[c] if r == 0 and c < len(headers) else None
            if kind == "image":
                show_image(ax, arr, title)
            elif kind == "mask":
                mask_panel(ax, arr, classes, title)
            elif kind == "gray":
                ax.imshow(arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                _bare(ax, title)
            else:  # code grid
                ax.imshow(arr, cmap="tab10" if arr.max() < 10 else "tab20", interpolation="nearest")
                _bare(ax, title)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle(suptitle, fontsize=10)
    legend(fig, classes)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    save(fig, path)


def pair_grid(rows, classes, path, title=None):
    """rows: list of (label, [(image, mask), ...]) -> image and colourised mask side by side."""
    _panel_rows(
        [(label, [p for image, mask in items for p in (("image", image), ("mask", mask))]) for label, items in rows],
        classes,
        path,
        title or "",
    )


# ---------------------------------------------------------------------------------------------- data, generator


def vqvae_history(hist, path, best_step):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(hist["step"], hist["train_recon"], label="train reconstruction error")
    a.plot(hist["step"], hist["val_recon"], label="validation reconstruction error (MSE)")
    a.axvline(best_step, color="gray", ls="--", lw=1, label=f"best checkpoint (step {best_step})")
    a.set_yscale("log")
    a.set_xlabel("update step")
    a.legend(fontsize=8)
    b.plot(hist["step"], hist["perplexity"], color="tab:green")
    b.set_xlabel("update step")
    b.set_ylabel("codebook perplexity")
    fig.suptitle("VQ-VAE training (paper Fig. 8)")
    fig.tight_layout()
    save(fig, path)


def vqvae_snapshots(image, mask, snapshots, classes, path, max_cols=8):
    """snapshots: [(step, reconstructed image uint8, reconstructed mask as class ids), ...]."""
    if len(snapshots) > max_cols:
        snapshots = [snapshots[int(round(i))] for i in np.linspace(0, len(snapshots) - 1, max_cols)]
    rows = [("real", [(image, mask)])] + [(f"step {step}", [(img, msk)]) for step, img, msk in snapshots]
    pair_grid(rows, classes, path, title="Reconstruction of a validation patch during training (paper Fig. 7)")


def codes_figure(images, masks, grids, rec_images, cleaned, classes, path, n):
    n = min(n, len(images))
    rows = [
        (
            "",
            [
                ("image", images[r]),
                ("mask", masks[r]),
                ("codes", grids[r]),
                ("image", rec_images[r]),
                ("mask", cleaned[r]),
            ],
        )
        for r in range(n)
    ]
    headers = (
        "micrograph",
        "mask",
        f"code grid {grids.shape[1]}x{grids.shape[2]}",
        "reconstruction",
        "cleaned recon. mask",
    )
    _panel_rows(rows, classes, path, "Patches, their VQ-VAE code grids and reconstructions (paper Fig. 9)", headers)


def codebook_usage(usage, path):
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(len(usage)), usage / max(usage.sum(), 1) * 100)
    ax.set_xlabel("code index")
    ax.set_ylabel("% of grid cells")
    ax.set_title(f"Codebook use: {(usage > 0).sum()} of {len(usage)} codes")
    fig.tight_layout()
    save(fig, path)


def pixelcnn_history(hist, kind, path):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for col in [c for c in hist.columns if c != "epoch"]:
        ax.plot(hist["epoch"] if "epoch" in hist else hist.index, hist[col], label=col)
    ax.set_xlabel("epoch")
    maskgit = kind.startswith("maskgit")
    ax.set_ylabel("masked-token cross-entropy (nats per masked cell)" if maskgit else "NLL (nats per grid cell)")
    ax.set_title(f"{'MaskGIT' if maskgit else 'PixelCNN'} prior ({kind})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def cleaning_figure(images, raws, first, cleaned, classes, path, n, first_title):
    """Rows of synthetic micrograph, raw mask (gray, in level units: ``MaskCodec.display``), its first
    classification (``first_title``: k-means, or the largest score of a one-hot mask) and the cleaned mask."""
    n = min(n, len(images))
    rows = [("", [("image", images[r]), ("gray", raws[r]), ("mask", first[r]), ("mask", cleaned[r])]) for r in range(n)]
    _panel_rows(
        rows,
        classes,
        path,
        "Mask post-processing (paper Fig. 11)",
        ("synthetic micrograph", "raw mask", first_title, "cleaned"),
    )


def pretest_figure(images, masks, pred, scores, classes, model_name, path, n):
    """The worst and the best agreements of the real-data model with the synthetic masks, and their histogram."""
    order = np.argsort(scores)
    n = min(n, len(order))
    picks = list(order[: n // 2]) + list(order[len(order) - (n - n // 2) :])
    fig = plt.figure(figsize=(9, 2.0 * len(picks) + 2.2))
    grid = fig.add_gridspec(len(picks) + 1, 3, height_ratios=[1] * len(picks) + [1.1])
    for r, i in enumerate(picks):
        ax = [fig.add_subplot(grid[r, c]) for c in range(3)]
        show_image(ax[0], images[i], "synthetic micrograph" if r == 0 else None)
        mask_panel(ax[1], masks[i], classes, "synthetic mask" if r == 0 else None)
        mask_panel(ax[2], pred[i], classes, f"{model_name} segmentation" if r == 0 else None)
        ax[0].set_ylabel(f"MCIoU {scores[i]:.2f}", fontsize=8)
    h = fig.add_subplot(grid[-1, :])
    h.hist(scores, bins=20, range=(0, 1), color="tab:blue")
    h.set_xlabel("Missing Class IoU (model vs synthetic mask), per synthetic image")
    h.set_ylabel("images")
    fig.suptitle("Quality pre-test of the synthetic pairs (paper Fig. 12)", fontsize=10)
    fig.tight_layout()
    save(fig, path)


# ---------------------------------------------------------------------------------------------- segmentation study


def _mix_series(table):
    """(base, rows sorted by percent) of the level series (not BMQ_aug, not the pretrain or balanced arms)."""
    levels = table[table["arm"].isin(["real + synthetic", "synthetic only"])]
    for base, part in levels.groupby("base", sort=False):
        yield base, part.sort_values("percent")


def _significant(comparisons, key):
    if comparisons is None or not len(comparisons):
        return {}
    rows = comparisons[comparisons["metric"] == key]
    return dict(zip(rows["mix"], rows["significant"].astype(bool)))


def _draw_levels(ax, table, comparisons, key, big_train, legend=True):
    """One series per base with the interval over seeds as error bars; a ring marks a mix whose paired
    difference to its 0 % mix survives Holm; dotted: the 0 % value; dash-dot: BMQ_aug; x: the pretrain arm."""
    sig = _significant(comparisons, key)
    lo, hi = f"{key}_lo", f"{key}_hi"
    for base, part in _mix_series(table):
        color = BASE_COLORS.get(base)
        synthetic_only = part["arm"].eq("synthetic only").all()
        err = np.vstack([part[key] - part[lo], part[hi] - part[key]])
        err = None if np.isnan(err).all() else np.nan_to_num(err)
        ax.errorbar(
            part["percent"],
            part[key],
            yerr=err,
            fmt="s--" if synthetic_only else "o-",
            color=color,
            ms=4,
            capsize=2,
            lw=1.2,
            label=f"{base} (synthetic only)" if synthetic_only else base,
        )
        hits = part[part["mix"].map(lambda m: sig.get(m, False))]
        ax.plot(hits["percent"], hits[key], "o", ms=10, mfc="none", mec=color, mew=1.5)
        zero = part[part["percent"] == 0]
        if len(zero):
            ax.axhline(float(zero[key].iloc[0]), color=color, ls=":", lw=1)
    for _, row in table[table["pretrain"]].iterrows():
        ax.plot(row["percent"], row[key], "x", ms=7, color=BASE_COLORS.get(row["base"]))
    for _, row in table[table["arm"] == "balanced"].iterrows():
        ax.plot(row["percent"], row[key], "^", ms=7, mfc="none", color=BASE_COLORS.get(row["base"]))
    aug = table[table["augmented"]]
    if len(aug):
        ax.axhline(float(aug[key].iloc[0]), color="black", ls="-.", lw=1, label="BMQ_aug (augmentation)")
    if table["arm"].eq("synthetic only").any():
        top = ax.secondary_xaxis("top", functions=(lambda p: p * big_train / 100, lambda n: n * 100 / big_train))
        top.set_xlabel("synthetic images in SyntLQ / SyntMQ", fontsize=8)
    ax.set_xlabel("synthetic data (% of the base training size)")
    if legend:
        ax.legend(fontsize=7, ncol=2)


def metric_figure(table, comparisons, key, label, fig_no, big_train, path, level):
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    _draw_levels(ax, table, comparisons, key, big_train)
    ax.set_ylabel(label)
    n_seeds = int(table["n_seeds"].max())
    ax.set_title(
        f"{label} on the real test set vs synthetic data (paper Fig. {fig_no}): mean of {n_seeds} seed(s), "
        f"{level:.0%} interval over seeds;\nring: differs from its 0 % mix "
        f"(paired, Holm p < {1 - level:.2f}); "
        "x: pretrain-then-finetune; triangle: balanced (conditioned prior); dotted: 0 % value",
        fontsize=8,
    )
    fig.tight_layout()
    save(fig, path)


def per_class_figure(table, comparisons, classes, big_train, path):
    fig, axes = plt.subplots(1, len(classes), figsize=(4 * len(classes), 3.9), squeeze=False)
    for k, (ax, cls) in enumerate(zip(axes[0], classes)):
        _draw_levels(ax, table, comparisons, f"iou_{cls['name']}", big_train, legend=(k == 0))
        ax.set_title(cls["name"], fontsize=9)
        ax.set_ylabel("Missing Class IoU of the class")
    fig.suptitle("Missing Class IoU per class vs synthetic data (paper Fig. 19), intervals over seeds", fontsize=10)
    fig.tight_layout()
    save(fig, path)


def forest_plot(comparisons, key, label, path):
    """Paired differences (mix - its 0 % mix) with their bootstrap intervals, one row per comparison."""
    rows = comparisons[comparisons["metric"] == key].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.5, 0.24 * max(len(rows), 4) + 1.3))
    y = np.arange(len(rows))[::-1]
    colors = np.where(rows["significant"].astype(bool), np.where(rows["mean_diff"] > 0, "tab:green", "tab:red"), "gray")
    ax.errorbar(
        rows["mean_diff"],
        y,
        xerr=np.vstack([rows["mean_diff"] - rows["ci_low"], rows["ci_high"] - rows["mean_diff"]]),
        fmt="none",
        ecolor="lightgray",
        lw=2,
    )
    ax.scatter(rows["mean_diff"], y, c=list(colors), s=16, zorder=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{m} - {r}" for m, r in zip(rows["mix"], rows["reference"])], fontsize=7)
    resample = rows["resample"].iloc[0] if "resample" in rows and len(rows) else "patch"
    ax.set_xlabel(f"difference in {label} (paired over test images; bootstrap unit: {resample})")
    ax.set_title(f"{label}: every mix against its 0 % mix; green/red: Holm p < 0.05", fontsize=9)
    fig.tight_layout()
    save(fig, path)


def overlay_figure(images, masks, preds, classes, path):
    """Test images, their ground truth and the segmentations of chosen mixes (paper Figs. 18, 21).
    preds: {label: class maps (N, H, W)}."""
    cols = 2 + len(preds)
    fig, axes = plt.subplots(len(images), cols, figsize=(2.1 * cols, 2.2 * len(images) + 0.6), squeeze=False)
    for r in range(len(images)):
        panels = [("test image", as_rgb(images[r])), ("ground truth", overlay(images[r], masks[r], classes))]
        panels += [(label, overlay(images[r], p[r], classes)) for label, p in preds.items()]
        for c, (title, img) in enumerate(panels):
            show_image(axes[r, c], img, title if r == 0 else None)
    fig.suptitle("Segmentations of test images (paper Figs. 18, 21)", fontsize=10)
    legend(fig, classes)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    save(fig, path)


WRONG_COLOR = (230, 25, 25)  # the wrong pixels of the whole-micrograph disagreement panels


def _gray_at(image, size):
    """uint8 (H, W): a micrograph as the network saw it (h, w, C) in gray, resized (PIL, bilinear) to ``size``
    (H, W), the truth's resolution (data.scale may have shrunk the image)."""
    from PIL import Image

    image = as_rgb(image)
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3] if image.ndim == 3 else image)).convert("L")
    if pil.size != (size[1], size[0]):
        pil = pil.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(pil, dtype=np.uint8)


def whole_overlay_figure(images, truths, preds, classes, path, names=None):
    """Whole test micrographs at their original resolution, one row each: the ground truth, then per mix its
    segmentation (class colours) and where it is wrong (the micrograph in gray, wrong pixels red, with their share).
    images: the micrographs as the network saw them (resized to the truth's size here); truths: class ids (H, W);
    preds: {label: [class map (H, W) per micrograph]}; names: row labels."""
    names = list(names) if names is not None else [f"micrograph {r + 1}" for r in range(len(images))]
    cols = 1 + 2 * len(preds)
    ratios = [t.shape[0] / t.shape[1] for t in truths]
    width = 2.0
    fig, axes = plt.subplots(
        len(images),
        cols,
        figsize=(width * cols + 0.4, sum((width - 0.25) * r + 0.4 for r in ratios) + 0.8),
        squeeze=False,
        gridspec_kw={"height_ratios": ratios},
    )
    wrong_rgb = np.array(WRONG_COLOR, dtype=np.float32)
    for r, (image, truth) in enumerate(zip(images, truths)):
        gray = _gray_at(image, truth.shape).astype(np.float32)
        mask_panel(axes[r, 0], truth, classes, "ground truth")
        axes[r, 0].set_ylabel(f"{names[r]}\n{truth.shape[1]}x{truth.shape[0]} px", fontsize=8)
        for k, (label, maps) in enumerate(preds.items()):
            pred = np.asarray(maps[r])
            if pred.shape != truth.shape:
                raise ValueError(f"{label}, {names[r]}: class map {pred.shape} vs truth {truth.shape}")
            wrong = pred != truth
            mask_panel(axes[r, 1 + 2 * k], pred, classes, label)
            shown = np.repeat(gray[..., None], 3, -1)
            shown[wrong] = 0.25 * shown[wrong] + 0.75 * wrong_rgb
            axes[r, 2 + 2 * k].imshow(shown.astype(np.uint8))
            _bare(axes[r, 2 + 2 * k], f"wrong: {wrong.mean():.1%} of pixels")
    fig.suptitle(
        "Whole test micrographs at their original resolution: ground truth, each mix's seed ensemble and its errors "
        "(red)",
        fontsize=10,
    )
    legend(fig, classes, extra=[(np.array(WRONG_COLOR) / 255, "wrong pixel")])
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    save(fig, path)


WHOLE_METRICS = (("miou", "mIoU"), ("missing_class_iou", "Missing Class IoU"))


_LABEL_SPOTS = (  # (dx, dy) in points, ha, va: where a point's label may go, first choice first
    (5, 3, "left", "bottom"),
    (5, -3, "left", "top"),
    (-5, 3, "right", "bottom"),
    (-5, -3, "right", "top"),
    (0, 7, "center", "bottom"),
    (0, -7, "center", "top"),
    (9, 0, "left", "center"),
    (-9, 0, "right", "center"),
)


def _place_labels(ax, labels, points, fontsize=7):
    """Name points without covering each other: each label [(x, y, text)] goes to the first spot of _LABEL_SPOTS
    that overlaps no placed label, no marker (``points``, (N, 2) data coordinates) and stays inside the axes (else
    the spot that overlaps least)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pad = 4 * fig.dpi / 72  # half a marker, in pixels
    finite = points[np.isfinite(points).all(axis=1)]
    centres = ax.transData.transform(finite) if len(finite) else np.empty((0, 2))
    taken = [(cx - pad, cy - pad, cx + pad, cy + pad) for cx, cy in centres]

    def overlap(box):
        area = sum(
            max(0.0, min(box[2], b[2]) - max(box[0], b[0])) * max(0.0, min(box[3], b[3]) - max(box[1], b[1]))
            for b in taken
        )
        inside_w = max(0.0, min(box[2], frame.x1) - max(box[0], frame.x0))
        inside_h = max(0.0, min(box[3], frame.y1) - max(box[1], frame.y0))
        return area + (box[2] - box[0]) * (box[3] - box[1]) - inside_w * inside_h

    for x, y, text in labels:
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        best = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            note = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=fontsize, alpha=0.85
            )
            ext = note.get_window_extent(renderer)
            box = (ext.x0, ext.y0, ext.x1, ext.y1)
            cost = overlap(box)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, note, box)
            else:
                note.remove()
            if cost == 0:
                break
        taken.append(best[2])


def whole_vs_patch_figure(table, path, patch_size=None, max_labels=12):
    """Each mix's whole-micrograph score against its patch-level score, one panel per metric of WHOLE_METRICS.
    table: one row per mix with mix, base and per metric <key>_patch (the seed mean on the test patches),
    <key>_whole (the seed mean on whole micrographs) and <key>_ensemble (the seed ensemble on whole micrographs).
    Filled: seed mean, open: ensemble, colour: base; the mixes are named when there are at most ``max_labels``,
    else the few furthest from the identity line."""
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(WHOLE_METRICS), figsize=(5.2 * len(WHOLE_METRICS), 5.0), squeeze=False)
    names = []  # per panel: the labels to place once the layout is fixed
    for ax, (key, label) in zip(axes[0], WHOLE_METRICS):
        x, y, e = (table[f"{key}_{kind}"].to_numpy(float) for kind in ("patch", "whole", "ensemble"))
        colors = [BASE_COLORS.get(b, "black") for b in table["base"]]
        for xi, yi, ei, c in zip(x, y, e, colors):
            ax.plot([xi, xi], [yi, ei], color=c, lw=0.8, alpha=0.5)
        ax.scatter(x, y, c=colors, s=36, zorder=3)
        ax.scatter(x, e, facecolors="none", edgecolors=colors, s=36, lw=1.2, zorder=3)
        values = np.concatenate([x, y, e])
        values = values[np.isfinite(values)]
        lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
        pad = max(0.05 * (hi - lo), 0.01)
        lo, hi = max(lo - pad, 0.0), min(hi + pad, 1.0)
        ax.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        named = np.arange(len(table))
        if len(table) > max_labels:
            far = np.nan_to_num(np.abs(y - x), nan=-1.0)
            named = np.argsort(-far, kind="stable")[:5]
        names.append((ax, [(x[i], y[i], table["mix"].iloc[i]) for i in named], np.column_stack([[*x, *x], [*y, *e]])))
        ax.set_xlabel(f"{label} on test patches (seed mean)", fontsize=9)
        ax.set_ylabel(f"{label} on whole test micrographs", fontsize=9)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=8)
    bases = list(dict.fromkeys(table["base"]))
    handles = [Line2D([], [], ls="", marker="o", color=BASE_COLORS.get(b, "black"), label=b) for b in bases]
    handles += [
        Line2D([], [], ls="", marker="o", color="0.3", label="seed mean"),
        Line2D([], [], ls="", marker="o", mfc="none", color="0.3", label="seed ensemble"),
        Line2D([], [], ls="--", color="0.4", label="whole = patches"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    patches_label = f"{patch_size}-px patches" if patch_size else "patches"
    fig.suptitle(f"Each mix on whole micrographs at original resolution vs {patches_label}", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.canvas.draw()  # fixes the axes (equal aspect) the labels are placed in
    for ax, labels, points in names:
        _place_labels(ax, labels, points)
    save(fig, path)


def equivalence_figure(table, labels, path, max_labels=8):
    """Each mix with synthetic pairs placed on the real-only learning curve, one panel per metric (Missing Class IoU,
    mIoU). table: the study's metrics.csv (mix, base, arm, n_real, <key>, <key>_lo, <key>_hi): the curve is its
    "real only" rows and SHQ_000, one per size (black: the mean with the interval over seeds; line: the isotonic fit
    of ``equivalence.monotone_curve``, linear between sizes as the inversion). labels: label_equivalence.csv (mix,
    metric, n_real, score, equivalent, side, bound, ci_low, ci_high, labels_saved): a mix inside the curve sits on
    the fit at (equivalent, score) with its bootstrap interval as a horizontal bar (an open end: an arrow at the
    axis edge), a mix beyond it at (bound, score) as ">" (more than the largest size) or "<" (fewer than the
    smallest). Colour: the mix's base. Per panel at most ``max_labels`` mixes are named with the labels they saved:
    the one per base that saved most (beyond the curve's top counting as its bound), then those beyond the curve,
    then the largest savings."""
    from matplotlib.lines import Line2D

    from dualgen.report import equivalence

    def saved(r):
        if r["side"] == "above":
            return f"> {round(r['bound'] - r['n_real']):+d}"
        if r["side"] == "below":
            return "none"
        return f"{round(r['labels_saved']):+d}"

    panels = (("missing_class_iou", "Missing Class IoU"), ("miou", "mIoU"))
    base_of = dict(zip(table["mix"], table["base"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 5.8), squeeze=False)
    names = []  # per panel: the labels to place once the layout is fixed
    for ax, (key, label) in zip(axes[0], panels):
        curve = table[(table["arm"] == "real only") | (table["mix"] == "SHQ_000")]
        curve = curve[np.isfinite(curve[key].to_numpy(float))].drop_duplicates("n_real").sort_values("n_real")
        sizes, scores = curve["n_real"].to_numpy(float), curve[key].to_numpy(float)
        rows = labels[labels["metric"] == key].reset_index(drop=True)
        rows = rows.assign(base=rows["mix"].map(base_of))
        inside = (rows["side"] == "inside").to_numpy()
        x = np.where(inside, rows["equivalent"].to_numpy(float), rows["bound"].to_numpy(float))
        y = rows["score"].to_numpy(float)
        xs = np.concatenate([sizes, x])
        xs = xs[np.isfinite(xs)]
        lo_x, hi_x = (xs.min(), xs.max()) if len(xs) else (0.0, 1.0)
        pad = max(0.07 * (hi_x - lo_x), 0.5)
        xlim = (lo_x - pad, hi_x + pad)
        err = np.vstack([scores - curve[f"{key}_lo"], curve[f"{key}_hi"] - scores])
        err = None if not err.size or np.isnan(err).all() else np.clip(np.nan_to_num(err), 0, None)
        ax.errorbar(sizes, scores, yerr=err, fmt="o", color="black", ms=5, capsize=2, lw=1, zorder=4)
        if len(sizes) >= 2:
            grid = np.linspace(sizes[0], sizes[-1], 200)
            ax.plot(grid, np.interp(grid, sizes, equivalence.monotone_curve(sizes, scores)), color="k", lw=1.4)
        for i, r in rows.iterrows():
            color = BASE_COLORS.get(r["base"], "0.3")
            low, high = float(r["ci_low"]), float(r["ci_high"])
            if np.isfinite(y[i]) and not (np.isnan(low) or np.isnan(high)):
                ax.plot(np.clip([low, high], *xlim), [y[i]] * 2, color=color, lw=1.6, alpha=0.55, zorder=2)
                for end, mark, edge in ((low, "<", xlim[0]), (high, ">", xlim[1])):
                    if np.isinf(end):  # an open end: an arrow on the axis edge
                        ax.plot(edge, y[i], mark, color=color, ms=5, alpha=0.8, clip_on=False, zorder=2)
                    else:
                        ax.plot(end, y[i], "|", color=color, ms=6, alpha=0.8, zorder=2)
            marker = "o" if inside[i] else (">" if r["side"] == "above" else "<")
            ax.plot(x[i], y[i], marker, color=color, mec="white", mew=0.8, ms=8 if inside[i] else 10, zorder=5)
        rank = np.where(inside, rows["labels_saved"].to_numpy(float), -np.inf)
        rank = np.where(rows["side"] == "above", x - rows["n_real"].to_numpy(float), rank)
        order = np.argsort(-np.nan_to_num(rank, nan=-np.inf), kind="stable")
        best = rows.iloc[order].drop_duplicates("base").index
        named = list(dict.fromkeys([*best, *(i for i in order if not inside[i]), *order]))[:max_labels]
        text = [(x[i], y[i], f"{rows.at[i, 'mix']} ({saved(rows.loc[i])})") for i in named]
        bars = [
            (n, v)
            for n, a, b in zip(sizes, *curve[[f"{key}_lo", f"{key}_hi"]].to_numpy(float).T)
            for v in np.linspace(a, b, 6)
        ]  # the labels keep off the curve's error bars too
        points = np.array([*zip(sizes, scores), *zip(x, y), *bars], dtype=float).reshape(-1, 2)
        names.append((ax, text, points))
        ax.set_xlim(*xlim)
        ax.set_xlabel("real labelled patches (HQ)", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, lw=0.5)
    bases = list(dict.fromkeys(labels["mix"].map(base_of).dropna()))
    by_base = [Line2D([], [], ls="", marker="o", color=BASE_COLORS.get(b, "0.3"), label=b) for b in bases]
    symbols = [
        Line2D([], [], ls="", marker="o", color="black", label="real only: mean, interval over seeds"),
        Line2D([], [], color="black", lw=1.4, label="isotonic fit"),
        Line2D([], [], color="0.4", lw=1.6, alpha=0.55, label="bootstrap interval of the equivalent"),
        Line2D([], [], ls="", marker=">", color="0.3", ms=8, label="more than the largest size"),
        Line2D([], [], ls="", marker="<", color="0.3", ms=8, label="fewer than the smallest size"),
    ]
    if by_base:
        fig.legend(handles=by_base, loc="lower center", bbox_to_anchor=(0.5, 0.045), ncol=len(by_base), fontsize=8)
    fig.legend(handles=symbols, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=len(symbols), fontsize=8)
    fig.suptitle(
        "What a synthetic pair is worth in labels: each mix placed on the real-only learning curve\n"
        "(in brackets: the labels a mix saved, its equivalent minus its own real patches)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.canvas.draw()  # fixes the axes the labels are placed in
    for ax, text, points in names:
        before = len(ax.texts)
        _place_labels(ax, text, points)
        for note in ax.texts[before:]:  # readable over the interval bars
            note.set_bbox(dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.75))
    save(fig, path)


def convergence_figure(histories, path, calibration=None):
    """Validation IoU against optimizer updates of chosen mixes, every seed, one panel per base (its 0 % mix solid,
    its largest dashed): a flat end means the budget sufficed. histories: {mix: [history DataFrame per seed]}.
    ``calibration`` (unet.updates: auto): budget/budget.json's content with ``curves`` (its curves.csv): the
    calibration curves of each base in grey (to the cap), each seed's plateau point (x: not converged) and the
    chosen budget as a dotted line in every panel."""
    bases = list(dict.fromkeys(mix.split("_")[0] for mix in histories))
    if calibration is not None:
        bases += [b for b in dict.fromkeys(calibration["curves"]["base"]) if b not in bases]
    ncols = min(3, len(bases))
    nrows = -(-len(bases) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.9 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(bases) :]:
        ax.axis("off")
    for ax, base in zip(axes.flat, bases):
        if calibration is not None:
            _calibration_curves(ax, base, calibration)
        mixes = [m for m in histories if m.split("_")[0] == base]
        for k, mix in enumerate(mixes):
            for j, hist in enumerate(histories[mix]):
                x = hist["updates"] if "updates" in hist else hist["epoch"] + 1
                ax.plot(
                    x,
                    hist["val_iou_score"],
                    color=BASE_COLORS.get(base, "black"),
                    ls="-" if k == 0 else "--",
                    lw=1,
                    alpha=0.5 + 0.5 / (j + 1),
                    label=mix if j == 0 else None,
                )
        ax.set_title(base, fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("optimizer updates (epochs for budget: epochs)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation IoU", fontsize=8)
    title = "Validation curves of each base's 0 % (solid) and largest (dashed) mix, one line per seed"
    if calibration is not None:
        title += (
            f"\ngrey: calibration trainings (at most {calibration['cap']} updates), o: plateau (x: not converged), "
            f"dotted: the budget ({calibration['updates']} updates)"
        )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)


def _calibration_curves(ax, base, calibration):
    """One base's calibration curves, their plateau points and the budget line (convergence_figure)."""
    curves = calibration["curves"]
    rows = curves[curves["base"] == base]
    seeds = calibration["per_base"].get(base, {}).get("seeds", {})
    for j, (seed, g) in enumerate(rows.groupby("seed")):
        ax.plot(g["updates"], g["val_iou_score"], color="0.6", lw=0.8, label="calibration" if j == 0 else None)
        plateau = seeds.get(str(seed))
        if plateau is not None:
            at = g.loc[(g["updates"] - plateau["point"]).abs().idxmin()]
            marker = "o" if plateau["converged"] else "x"
            ax.plot(at["updates"], at["val_iou_score"], marker, color="0.3", ms=4, mfc="none")
    ax.axvline(calibration["updates"], color="black", ls=":", lw=1, label=f"budget {calibration['updates']}")


# ---------------------------------------------------------------------------------------------- data: classes, LQ


def class_shares_figure(shares, classes, path):
    """Pixel share of every class in every split (datasets/class_shares.csv) as grouped bars on a log axis, so a
    class under 1 % stays visible; a class absent from a split is marked with an x at the bottom."""
    names = [c["name"] for c in classes]
    colors = class_colors(classes) / 255
    labels = [f"{d}\n{s}" if d != "test" else "test" for d, s in zip(shares["dataset"], shares["split"])]
    n, k = len(shares), len(names)
    width = 0.8 / k
    floor = 1e-4
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * n + 1.5), 3.8))
    for j, name in enumerate(names):
        x = np.arange(n) - 0.4 + width * (j + 0.5)
        v = shares[name].to_numpy(float)
        ax.bar(x, np.where(v > 0, v, np.nan), width, bottom=floor, color=colors[j], label=name)
        zero = ~(v > 0) & (shares["n_patches"].to_numpy() > 0)
        ax.plot(x[zero], np.full(zero.sum(), floor * 1.3), "x", color=colors[j], ms=6, mew=2)
    ax.set_yscale("log")
    ax.set_ylim(floor, 1.5)
    ax.axhline(0.01, color="gray", lw=0.8, ls=":")
    ax.set_xticks(np.arange(n))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("share of pixels (log)")
    ax.set_title("Class shares of every split (x: class absent; dotted: 1 %)", fontsize=9)
    ax.legend(fontsize=7, ncol=min(k, 6), loc="upper right")
    fig.tight_layout()
    save(fig, path)


def hq_lq_figure(images, hq, lq, labels, classes, path, title):
    """A few patches: image, HQ mask, LQ mask and where they differ (white), one row per patch."""
    rows = [
        (label, [("image", img), ("mask", h), ("mask", q), ("gray", (h != q).astype(float))])
        for label, img, h, q in zip(labels, images, hq, lq)
    ]
    _panel_rows(rows, classes, path, title, headers=("image", "HQ mask", "LQ mask", "LQ differs"))


# ---------------------------------------------------------------------------------------------- generator fidelity


def _variant_styles(variants):
    """One colour per generator variant (real data is black)."""
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(variants)}


def _class_axes(n, ncols=None, size=(3.2, 2.6)):
    ncols = ncols or min(n, 4)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows + 0.6), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def _ratio_label(ratios, variant, k, statistic):
    r = ratios.get((variant, k, statistic))
    return f"{variant} (ratio {r:.1f})" if r is not None and np.isfinite(r) else variant


def conditioning_figure(pairs, table, classes, labels, path):
    """Requested vs achieved class fraction of every synthetic pair, one row per pool and one column per class;
    the diagonal is perfect obedience. ``pairs``: pool, class, requested, achieved; ``table``: conditioning.csv."""
    pools = list(dict.fromkeys(pairs["pool"]))
    fig, axes = plt.subplots(
        len(pools), len(classes), figsize=(2.6 * len(classes) + 0.6, 2.5 * len(pools) + 0.8), squeeze=False
    )
    colors = class_colors(classes) / 255
    for r, pool in enumerate(pools):
        for c, cls in enumerate(classes):
            ax = axes[r, c]
            sub = pairs[(pairs["pool"] == pool) & (pairs["class"] == cls["name"])]
            top = max(0.05, float(max(sub["requested"].max(), sub["achieved"].max())) * 1.05)
            ax.plot([0, top], [0, top], color="gray", lw=0.8, ls="--")
            ax.scatter(sub["requested"], sub["achieved"], s=9, color=colors[c], edgecolors="black", linewidths=0.3)
            ax.set_xlim(0, top)
            ax.set_ylim(0, top)
            row = table[(table["pool"] == pool) & (table["class"] == cls["name"])].iloc[0]
            r_text = "n/a" if np.isnan(row["corr"]) else f"{row['corr']:+.2f}"
            ax.set_title(
                f"{cls['name']}: r {r_text}, MAE {row['mae']:.3f}\n"
                f"mean {row['mean_requested']:.3f} asked, {row['mean_achieved']:.3f} made",
                fontsize=7,
            )
            ax.tick_params(labelsize=6)
            if r == len(pools) - 1:
                ax.set_xlabel("requested fraction", fontsize=7)
        axes[r, 0].set_ylabel(f"{labels.get(pool, pool)}\nachieved fraction", fontsize=7)
    fig.suptitle("Conditioned generation: class fractions requested vs made (cleaned masks)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    save(fig, path)


def rare_class_figure(table, comparisons, trios, classes, path, level):
    """The balanced arm: per class, the IoU of each mix of a trio (0 %, unconditioned, balanced; mean over seeds
    with its interval), and the paired differences of the balanced mix against the other two in the title."""
    fig, axes = plt.subplots(
        len(trios), len(classes), figsize=(2.4 * len(classes) + 0.6, 2.6 * len(trios) + 0.6), squeeze=False
    )
    by_mix = table.set_index("mix")
    for r, trio in enumerate(trios):
        for c, cls in enumerate(classes):
            ax = axes[r, c]
            key = f"iou_{cls['name']}"
            x = np.arange(len(trio))
            mean = np.array([by_mix.loc[m, key] for m in trio], float)
            lo = np.array([by_mix.loc[m, f"{key}_lo"] for m in trio], float)
            hi = np.array([by_mix.loc[m, f"{key}_hi"] for m in trio], float)
            err = np.nan_to_num(np.vstack([mean - lo, hi - mean]))
            colors = ["tab:orange" if "_bal" in m else "lightgray" if m.endswith("_000") else "tab:blue" for m in trio]
            ax.bar(x, mean, color=colors, yerr=err, capsize=3)
            ax.set_xticks(x)
            ax.set_xticklabels(trio, fontsize=6, rotation=20)
            ax.tick_params(axis="y", labelsize=6)
            ax.set_ylim(0, 1)
            notes = []
            for ref in trio[:-1]:
                row = comparisons[
                    (comparisons["mix"] == trio[-1])
                    & (comparisons["reference"] == ref)
                    & (comparisons["metric"] == key)
                ]
                if len(row):
                    row = row.iloc[0]
                    star = "*" if bool(row["significant"]) else ""
                    notes.append(f"vs {ref.split('_')[-1]}: {row['mean_diff']:+.3f}{star}")
            ax.set_title(f"{cls['name']}\n" + "; ".join(notes), fontsize=7)
        axes[r, 0].set_ylabel("IoU of the class", fontsize=7)
    fig.suptitle(
        f"Balanced synthetic data and the classes (test IoU, mean over seeds, {level:.0%} interval); "
        "differences of the balanced mix paired over test images, * Holm p < 0.05",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save(fig, path)


def fidelity_curves(profiles, variants, table, classes, out):
    """Real vs synthetic, overlaid, one panel per class: s2.png (S2 curves), chords.png (chord-length
    distributions, rows and columns pooled), phase_fractions.png (per-patch phase fractions) and intensities.png
    (pixel values inside each class, per channel). ``profiles``: the fidelity step's profiles.npz (real__<stat>,
    <variant>__<stat>); ``table``: its fidelity.csv (the ratios go into the legends)."""
    names = [c["name"] for c in classes]
    colors = _variant_styles(variants)
    ratios = {(r["variant"], r["class"], r["statistic"]): float(r["ratio"]) for _, r in table.iterrows()}
    sets = ["real"] + list(variants)

    def style(name):
        return dict(color="black", lw=2.2, alpha=0.8) if name == "real" else dict(color=colors[name], lw=1.3)

    fig, axes = _class_axes(len(names))
    for k, (ax, name) in enumerate(zip(axes, names)):
        for v in sets:
            s2 = profiles[f"{v}__s2"][k]
            label = "real (BMQ train)" if v == "real" else _ratio_label(ratios, v, name, "s2")
            ax.plot(np.arange(len(s2)), s2, label=label, **style(v))
        f = profiles["real__fractions"][:, k].mean()
        ax.axhline(f * f, color="gray", ls=":", lw=0.8)
        ax.set_title(f"{name}: S2(r)", fontsize=9)
        ax.set_xlabel("r (px)", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle("Two-point correlation, real vs synthetic (dotted: real phase fraction squared)", fontsize=10)
    fig.tight_layout()
    save(fig, out / "s2.png")

    fig, axes = _class_axes(len(names))
    for k, (ax, name) in enumerate(zip(axes, names)):
        for v in sets:
            counts = profiles[f"{v}__chords"][k].astype(float)
            if counts.sum() == 0:
                continue
            label = "real (BMQ train)" if v == "real" else _ratio_label(ratios, v, name, "chord_rows")
            ax.step(np.arange(len(counts)), counts / counts.sum(), where="mid", label=label, **style(v))
        ax.set_yscale("log")
        ax.set_title(f"{name}: chord lengths", fontsize=9)
        ax.set_xlabel("chord length (px), rows and columns", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle("Chord-length distributions, real vs synthetic (ratio: along rows)", fontsize=10)
    fig.tight_layout()
    save(fig, out / "chords.png")

    fig, axes = _class_axes(len(names))
    class_rgb = class_colors(classes) / 255
    for k, (ax, name) in enumerate(zip(axes, names)):
        data = [profiles[f"{v}__fractions"][:, k] for v in sets]
        box = ax.boxplot(data, patch_artist=True, widths=0.6, showfliers=False)
        for j, patch in enumerate(box["boxes"]):
            patch.set_facecolor(class_rgb[k] if j == 0 else colors[sets[j]])
            patch.set_alpha(0.7)
        ax.set_xticks(np.arange(1, len(sets) + 1))
        ax.set_xticklabels(
            ["real"] + [_ratio_label(ratios, v, name, "phase_fraction").replace(" (", "\n(") for v in variants],
            fontsize=6,
        )
        ax.set_title(f"{name}: phase fraction per patch", fontsize=9)
    fig.suptitle("Phase fractions, real vs synthetic (boxes: quartiles, whiskers: 1.5 IQR)", fontsize=10)
    fig.tight_layout()
    save(fig, out / "phase_fractions.png")

    channels = profiles["real__intensity"].shape[1]
    fig, axes = plt.subplots(len(names), channels, figsize=(3.0 * channels, 2.1 * len(names) + 0.6), squeeze=False)
    for k, name in enumerate(names):
        for c in range(channels):
            ax = axes[k, c]
            for v in sets:
                counts = profiles[f"{v}__intensity"][k, c].astype(float)
                if counts.sum() == 0:
                    continue
                label = "real (BMQ train)" if v == "real" else _ratio_label(ratios, v, name, f"intensity_c{c}")
                ax.plot(np.arange(256), counts / counts.sum(), label=label, **style(v))
            ax.set_title(f"{name}, channel {c}", fontsize=8)
            ax.set_yticks([])
            ax.legend(fontsize=5)
    fig.suptitle("Pixel intensities inside each class (the image given the mask), real vs synthetic", fontsize=10)
    fig.tight_layout()
    save(fig, out / "intensities.png")


def fidelity_ratios(table, variants, classes, path, target):
    """Heat maps of the ratios to the real-vs-real floor (class x statistic), one per variant; 1 = as close as
    two halves of the real data, cells above ``target`` framed. The image family's statistics of the whole image
    (class "all") get a row of their own."""
    from matplotlib.colors import LogNorm

    names = [c["name"] for c in classes] + (["all"] if (table["class"] == "all").any() else [])
    stats = list(dict.fromkeys(table["statistic"]))
    fig, axes = plt.subplots(
        len(variants),
        1,
        figsize=(1.0 * len(stats) + 2.2, 0.45 * len(names) * len(variants) + 1.2 * len(variants) + 0.4),
        squeeze=False,
    )
    for ax, v in zip(axes[:, 0], variants):
        t = table[table["variant"] == v].set_index(["class", "statistic"])["ratio"]
        grid = np.array([[float(t.get((n, s), np.nan)) for s in stats] for n in names])
        shown = np.clip(np.where(np.isfinite(grid), grid, np.nan), 0.1, 100)
        ax.imshow(shown, cmap="RdYlGn_r", norm=LogNorm(0.25, 16), aspect="auto")
        for i in range(len(names)):
            for j in range(len(stats)):
                value = grid[i, j]
                ax.text(j, i, "-" if np.isnan(value) else f"{value:.1f}", ha="center", va="center", fontsize=7)
                if np.isfinite(value) and value > target or value == np.inf:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=1.2))
        ax.set_xticks(np.arange(len(stats)))
        ax.set_xticklabels(stats, fontsize=7, rotation=30, ha="right")
        ax.set_yticks(np.arange(len(names)))
        ax.set_yticklabels(names, fontsize=7)
        ax.set_title(f"{v}: distance / real-vs-real floor (framed: > {target:g})", fontsize=9)
    fig.tight_layout()
    save(fig, path)
