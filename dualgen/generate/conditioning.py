"""Conditioned generation (the paper's outlook): the PixelCNN prior sees a global vector per code grid, the class
(phase) fractions of the patch's mask (optionally also its mean intensity), and at sampling time it is asked for
the fractions a study needs, for example more of the rare classes.

This module holds what is numpy: the conditioning vector of real patches (``vectors``), the targets a sampler is
asked for (``draw_targets``, with their table ``requests``: ``data`` = fractions of real training patches drawn at
random, the unconditioned behaviour; ``{"boost": {class: factor}}`` = such fractions with the named classes
multiplied by their factor and renormalised; ``{"boost_rarest": {"classes": n, "factor": f}}`` = the same for the n
classes with the smallest mean share in the real patches, whatever their names; ``{"fractions": {class: value}}`` =
one fixed composition), and whether the generator obeyed (``obedience``: requested vs achieved fractions of the
cleaned masks, per class). The sample step asks a conditioned prior for ``sample_targets``; the conditioning step
reads them back (``read_requests``) and tabulates the obedience of its pools (``obedience_tables``,
``obedience_summary``).
The network is dualgen.generate.pixelcnn.model (``cond_dim``).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core.errors import DualgenError

MODES = ("none", "phase_fractions", "phase_fractions_and_intensity")
TARGET_KINDS = ("boost", "boost_rarest", "fractions")


def dim(mode, n_classes):
    """Length of the conditioning vector of a mode (0: unconditioned)."""
    if mode not in MODES:
        raise DualgenError(f"pixelcnn.condition {mode!r} is unknown: use one of {', '.join(MODES)}")
    return {"none": 0, "phase_fractions": n_classes, "phase_fractions_and_intensity": n_classes + 1}[mode]


def fractions(masks, n_classes):
    """(N, K) class fractions of (N, H, W) class-id masks (rows sum to one)."""
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise DualgenError(f"class fractions need (N, H, W) masks, got shape {masks.shape}")
    flat = masks.reshape(len(masks), -1).astype(np.int64)
    if flat.min() < 0 or flat.max() >= n_classes:
        raise DualgenError(
            f"masks hold class ids {flat.min()}..{flat.max()}, outside 0..{n_classes - 1}: "
            "the masks and the classes of the config disagree"
        )
    counts = np.stack([np.bincount(row, minlength=n_classes) for row in flat])
    return counts / flat.shape[1]


def vectors(mode, masks, images, n_classes):
    """(N, dim) float32 conditioning vectors of real patches: class fractions, then (with ``..._and_intensity``)
    the mean intensity over all pixels and channels in [0, 1]."""
    d = dim(mode, n_classes)
    if d == 0:
        return np.zeros((len(masks), 0), np.float32)
    out = fractions(masks, n_classes)
    if mode == "phase_fractions_and_intensity":
        images = np.asarray(images, np.float64)
        out = np.concatenate([out, images.reshape(len(images), -1).mean(axis=1, keepdims=True) / 255.0], axis=1)
    return out.astype(np.float32)


def parse_targets(targets, where="sample.targets"):
    """ "data", or (kind, {class: value}) with kind boost or fractions. A key set to null is absent (a config file
    merged over config.yaml's boost can switch to fractions with boost: null)."""
    if targets == "data":
        return "data"
    given = {k: v for k, v in targets.items() if v is not None} if isinstance(targets, dict) else None
    if given is None or len(given) != 1 or next(iter(given)) not in TARGET_KINDS:
        hint = (
            " (set the others to null: config files merge into config.yaml's targets)"
            if given and len(given) > 1
            else ""
        )
        raise DualgenError(
            f"{where}: {targets!r} is not one target: use data, {{boost: {{class: factor}}}}, "
            f"{{boost_rarest: {{classes: n, factor: f}}}} or {{fractions: {{class: value}}}}{hint}"
        )
    return next(iter(given.items()))


def check_targets(targets, class_names, where="sample.targets"):
    """One clear error for targets that name unknown classes, non-positive factors or an empty composition."""
    parsed = parse_targets(targets, where)
    if parsed == "data":
        return
    kind, values = parsed
    if kind == "boost_rarest":
        n, factor = (values.get("classes"), values.get("factor")) if isinstance(values, dict) else (None, None)
        if (
            not isinstance(values, dict)
            or set(values) != {"classes", "factor"}
            or isinstance(n, bool)
            or not isinstance(n, int)
            or not 1 <= n < len(class_names)
            or not isinstance(factor, (int, float))
            or isinstance(factor, bool)
            or not factor > 0
        ):
            raise DualgenError(
                f"{where}.boost_rarest: {values!r}: give classes (1..{len(class_names) - 1}, how many "
                "of the rarest classes) and factor (> 0), e.g. {classes: 2, factor: 2.0}"
            )
        return
    if not isinstance(values, dict) or not values:
        raise DualgenError(f"{where}.{kind}: expected a mapping of class names to numbers, got {values!r}")
    for name, value in values.items():
        if name not in class_names:
            raise DualgenError(
                f"{where}.{kind}: class {name!r} is not in classes ({', '.join(class_names)}): "
                "use a class name of the config"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise DualgenError(f"{where}.{kind}.{name}: {value!r} is not a number")
        if (kind == "boost" and value <= 0) or (kind == "fractions" and value < 0):
            raise DualgenError(
                f"{where}.{kind}.{name}: {value} must be "
                f"{'> 0 (1 leaves the class as it is)' if kind == 'boost' else '>= 0'}"
            )
    if kind == "fractions" and sum(values.values()) <= 0:
        raise DualgenError(f"{where}.fractions: the fractions sum to 0: give at least one class a share")


def draw_targets(real, n, targets, class_names, seed):
    """(n, dim) float32 targets and the (n,) indices of the real patches they were drawn from.
    Every target starts from a real patch's vector drawn with replacement (seeded); its fractions (the first
    len(class_names) entries) are then kept (``data``), multiplied per class and renormalised (``boost``), or
    replaced by a fixed composition (``fractions``, normalised); an intensity entry keeps the drawn patch's."""
    check_targets(targets, class_names)
    real = np.asarray(real, np.float64)
    k = len(class_names)
    if real.ndim != 2 or real.shape[0] == 0 or real.shape[1] < k:
        raise DualgenError(f"targets need real conditioning vectors (N, >= {k}), got shape {real.shape}")
    idx = np.random.default_rng(seed).integers(0, len(real), size=n)
    out = real[idx].copy()
    parsed = parse_targets(targets)
    if parsed != "data":
        kind, values = parsed
        if kind == "boost_rarest":  # the same as boost, naming the rarest classes of these real patches
            kind, values = "boost", {name: values["factor"] for name in rarest(real, class_names, values["classes"])}
        if kind == "boost":
            factors = np.array([float(values.get(name, 1.0)) for name in class_names])
            f = out[:, :k] * factors
        else:
            f = np.tile(np.array([float(values.get(name, 0.0)) for name in class_names]), (n, 1))
        out[:, :k] = f / f.sum(axis=1, keepdims=True)
    return out.astype(np.float32), idx


def requests(ids, real, n, targets, class_names, seed):
    """(n, dim) float32 targets for a conditioned sampler (``draw_targets`` from the real patches ``ids`` with
    conditioning vectors ``real``) and their table (targets.csv): grid, from_patch, req_<class> per class and
    req_intensity where the vectors have it."""
    cond, idx = draw_targets(real, n, targets, class_names, seed)
    table = pd.DataFrame({"grid": np.arange(n), "from_patch": [ids[i] for i in idx]})
    for k, name in enumerate(class_names):
        table[f"req_{name}"] = cond[:, k]
    if cond.shape[1] > len(class_names):
        table["req_intensity"] = cond[:, len(class_names)]
    return cond, table


def sample_targets(s, cond_dim, n, patches_dir, datasets_dir, prior):
    """(n, cond_dim) targets and their table (``requests``) for the sample step of a prior with ``cond_dim``-long
    conditioning vectors (the step's settings ``s``: classes, condition, sample.targets and sample.seed; the real
    fractions from the patches and datasets folders), or (None, None) for an unconditioned prior (cond_dim 0).
    ``prior``: the prior's folder, for the error lines."""
    from dualgen.generate import common

    if cond_dim == 0:
        return None, None
    if not (patches_dir and datasets_dir):
        raise DualgenError(
            f"{prior} is a conditioned prior: --patches and --datasets are needed (the real "
            "fractions the targets start from): the rule sample_conditioned passes them"
        )
    names = [c["name"] for c in s["classes"]]
    ids, real = common.condition_vectors(s["condition"], patches_dir, datasets_dir, len(names))
    if real.shape[1] != cond_dim:
        raise DualgenError(
            f"{prior}: the prior was trained on {cond_dim}-long conditioning vectors, "
            f"pixelcnn.condition {s['condition']} makes {real.shape[1]}: "
            "rerun train_pixelcnn_conditioned"
        )
    wanted = s["sample"]["targets"]
    cond, table = requests(ids, real, n, wanted, names, s["sample"]["seed"])
    print(
        f"targets: {describe(wanted)}; mean requested fractions "
        + ", ".join(f"{c} {v:.3f}" for c, v in zip(names, cond[:, : len(names)].mean(axis=0))),
        flush=True,
    )
    return cond, table


def read_requests(codes_dir, class_names):
    """(n, K) requested class fractions of a conditioned sample folder (its targets.csv, ``sample_targets``)."""
    path = Path(codes_dir) / "targets.csv"
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise DualgenError(
            f"{path}: missing: {codes_dir} was not sampled from a conditioned prior (rerun sample_conditioned)"
        )
    return table[[f"req_{n}" for n in class_names]].to_numpy()


def rarest(real, class_names, n):
    """The n class names with the smallest mean fraction over real conditioning vectors (ties: the later class)."""
    means = np.asarray(real, np.float64)[:, : len(class_names)].mean(axis=0)
    order = sorted(range(len(class_names)), key=lambda k: (means[k], -k))
    return [class_names[k] for k in order[:n]]


def describe(targets):
    """One line for logs and the report."""
    parsed = parse_targets(targets)
    if parsed == "data":
        return "fractions of real training patches (drawn at random)"
    kind, values = parsed
    if kind == "boost_rarest":
        return f"real patches' fractions with the {values['classes']} rarest classes {values['factor']:g} times as much"
    items = ", ".join(f"{name} {v:g}" for name, v in values.items())
    return (
        f"real patches' fractions with {items} times as much, renormalised"
        if kind == "boost"
        else f"fixed fractions {items} (normalised)"
    )


def _pearson(x, y):
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def obedience(requested, achieved, class_names):
    """Per class: n, mean requested and achieved fraction, Pearson correlation of requested vs achieved over the
    pairs (NaN where either is constant), mean absolute error. ``requested`` / ``achieved``: (n, >= K) / (n, K)."""
    requested = np.asarray(requested, np.float64)[:, : len(class_names)]
    achieved = np.asarray(achieved, np.float64)
    if requested.shape != achieved.shape:
        raise DualgenError(f"requested {requested.shape} and achieved {achieved.shape} fractions differ in shape")
    rows = []
    for k, name in enumerate(class_names):
        r, a = requested[:, k], achieved[:, k]
        rows.append(
            {
                "class": name,
                "n": len(r),
                "mean_requested": float(r.mean()),
                "mean_achieved": float(a.mean()),
                "corr": _pearson(r, a),
                "mae": float(np.abs(r - a).mean()),
            }
        )
    return pd.DataFrame(rows)


def obedience_tables(pools, class_names):
    """(table, pairs) of the conditioning step for ``pools`` ({pool: (requested, achieved)}, in order): table is
    ``obedience`` per pool with a leading pool column (printed, one line per class); pairs has one row per pool,
    class and grid: pool, grid, class, requested, achieved."""
    tables, pairs = [], []
    for pool, (req, ach) in pools.items():
        table = obedience(req, ach, class_names)
        table.insert(0, "pool", pool)
        tables.append(table)
        for k, name in enumerate(class_names):
            pairs.append(
                pd.DataFrame(
                    {
                        "pool": pool,
                        "grid": range(len(req)),
                        "class": name,
                        "requested": req[:, k],
                        "achieved": ach[:, k],
                    }
                )
            )
        for r in table.to_dict("records"):
            print(
                f"{pool:13s} {r['class']:10s} requested {r['mean_requested']:.3f} achieved {r['mean_achieved']:.3f} "
                f"r {r['corr']:+.2f} MAE {r['mae']:.3f}",
                flush=True,
            )
    return pd.concat(tables, ignore_index=True), pd.concat(pairs, ignore_index=True)


def obedience_summary(table, pools):
    """{pool: {class: {corr, mae, mean_requested, mean_achieved}}} of an ``obedience_tables`` table, for each of
    ``pools`` (meta.json)."""
    return {
        p: {
            r["class"]: {
                "corr": r["corr"],
                "mae": r["mae"],
                "mean_requested": r["mean_requested"],
                "mean_achieved": r["mean_achieved"],
            }
            for r in table[table["pool"] == p].to_dict("records")
        }
        for p in pools
    }
