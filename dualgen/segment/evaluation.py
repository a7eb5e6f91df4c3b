"""Glue of the segmentation study shared by its scripts: the test set, the test segmentations a training job
leaves for the numpy-only evaluation, the per-image table of all trainings and the per-mix table of the study; the
whole-micrograph scores (whole_image step) and the selection set the exported model is chosen on."""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts
from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.report import stats
from dualgen.segment import metrics

PREDICTIONS = "test_predictions.npz"  # in every training's folder: ids, class maps, the weights' sha256
WHOLE = "whole.json"  # the whole_image step's scores of one mix (per seed and ensemble, per test micrograph)
ENSEMBLE = "ensemble"  # the seed column of the seed ensemble's rows
BASE_SETS = ("SHQ", "SLQ", "BLQ", "BMQ")


def seed_dir(chunk_dir, seed):
    """The folder of one training inside a train_unet output (unet/<mix>/seeds<chunk>/ holds one per seed)."""
    return Path(chunk_dir) / f"seed{int(seed)}"


def seed_dirs(chunk_dir):
    """{seed: folder} of the trainings in a train_unet output, by seed."""
    found = {int(p.name[len("seed") :]): p for p in Path(chunk_dir).glob("seed*") if p.name[len("seed") :].isdigit()}
    return dict(sorted(found.items()))


def test_set(patches_dir, datasets_dir, images=False):
    """The real HQ test patches (the same for every mix): (ids, masks, source micrographs[, images])."""
    ids, imgs, masks = datasets.load(patches_dir, Path(datasets_dir) / "SHQ.csv", "test")
    table = pd.read_csv(Path(patches_dir) / "patches.csv").set_index("patch_id")
    sources = [str(table.loc[i, "source"]) for i in ids]
    return (ids, masks, sources, imgs) if images else (ids, masks, sources)


def selection_set(patches_dir, datasets_dir):
    """The patches the exported model's mix is chosen on (never the test set): every real validation patch of the
    base sets that has an HQ mask, scored against it: (ids, images, HQ masks)."""
    ids = []
    for base in BASE_SETS:
        path = Path(datasets_dir) / f"{base}.csv"
        if path.exists():
            m = pd.read_csv(path)
            ids += list(m.loc[m["split"] == "val", "patch_id"])
    ids = [i for i in dict.fromkeys(ids) if (Path(patches_dir) / "hq" / f"{i}.png").exists()]
    manifest = pd.DataFrame({"patch_id": ids, "split": "val", "mask": "hq"})
    return datasets.load(patches_dir, manifest, "val")


def whole_row(truth, pred, class_names):
    """The scores of one whole micrograph: accuracy, miou, missing_class_iou, iou_<class> (NaN where absent) and
    area_error_<class>: predicted minus true share of the micrograph's pixels (the phase-fraction error)."""
    k = len(class_names)
    row = metrics.image_metrics(truth, pred, k)
    out = {key: v for key, v in row.items() if not key.startswith("iou_")}
    out |= {f"iou_{name}": row[f"iou_{i}"] for i, name in enumerate(class_names)}
    share = (
        np.bincount(pred.ravel(), minlength=k)[:k] / pred.size
        - np.bincount(truth.ravel(), minlength=k)[:k] / truth.size
    )
    return out | {f"area_error_{name}": float(e) for name, e in zip(class_names, share)}


def whole_image_table(whole_dirs, all_mixes):
    """study/whole_image.csv: one row per mix, seed (or ``ensemble``) and test micrograph, with mix, base, percent
    and arm first (as ``per_image_table``) and the ``whole_row`` scores."""
    by_name = {m.name: m for m in all_mixes}
    frames = []
    for folder in whole_dirs:
        w = artifacts.read_json(Path(folder) / WHOLE)
        mix = by_name.get(w["mix"])
        if mix is None:
            raise DualgenError(f"{folder}: whole-image scores of mix {w['mix']}, which this config does not have")
        frame = pd.DataFrame(w["rows"])
        for i, (col, value) in enumerate(
            (("mix", mix.name), ("base", mix.base), ("percent", mix.percent), ("arm", arm(mix)))
        ):
            frame.insert(i, col, value)
        frames.append(frame)
    if not frames:
        raise DualgenError("no whole-image scores to aggregate: the config trains no mix")
    return pd.concat(frames, ignore_index=True)


def validation_table(whole_dirs):
    """study/validation.csv: mix, seed and the validation Missing Class IoU the whole_image step scored on the
    selection set (real validation patches with HQ masks, the same for every mix; never the test set)."""
    rows = []
    for folder in whole_dirs:
        w = artifacts.read_json(Path(folder) / WHOLE)
        rows += [
            {"mix": w["mix"], "seed": int(k), "validation_missing_class_iou": v} for k, v in w["validation"].items()
        ]
    return pd.DataFrame(rows, columns=["mix", "seed", "validation_missing_class_iou"])


def real_curve(all_mixes, short=()):
    """The real-only learning curve of the study: [(n_real, mix)] increasing, from the real-only arm (``mixes.
    real_sizes``) and SHQ_000 (the 100 % point), without the sizes the data could not fill (``short``: mix names
    whose build_mix meta.json says "short") and without repeated sizes (the first kept)."""
    points = {}
    for m in all_mixes:
        if (m.real_only or m.name == "SHQ_000") and m.name not in short:
            points.setdefault(m.n_real, m.name)
    return sorted(points.items())


def equivalence_table(per_image, all_mixes, metrics, resample, n_boot, seed, level, short=()):
    """study/label_equivalence.csv: for every mix with synthetic pairs and each of ``metrics``, the real HQ patch
    count a real-only model needs to score as well (``equivalence.label_equivalence`` on ``real_curve``, bootstrap
    over the same units as the comparisons), with n_synth and the report sentence; empty (the columns alone) when
    the curve has fewer than 2 sizes."""
    from dualgen.report import equivalence

    curve = real_curve(all_mixes, short)
    targets = {m.name: m.n_real for m in all_mixes if m.n_synth > 0}
    columns = [*equivalence.COLUMNS, "n_synth", "sentence"]
    if len(curve) < 2 or not targets:
        return pd.DataFrame(columns=columns)
    sizes, names = [n for n, _ in curve], [name for _, name in curve]
    synth = {m.name: m.n_synth for m in all_mixes}
    parts = []
    for metric in metrics:
        table = equivalence.label_equivalence(
            per_image, names, sizes, targets, metric, "source" if resample == "source" else None, n_boot, seed, level
        )
        table["n_synth"] = table["mix"].map(synth)
        table["sentence"] = [equivalence.sentence(r, synth[r["mix"]], sizes) for _, r in table.iterrows()]
        parts.append(table)
    return pd.concat(parts, ignore_index=True)[columns]


def write_test_predictions(folder, ids, pred, weights):
    """The training job's segmentation of the test set, tied (by sha256) to the weights file it came from."""
    folder = Path(folder)
    with artifacts.atomic_path(folder / PREDICTIONS) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                ids=np.array(ids, dtype=str),
                pred=np.asarray(pred, np.uint8),
                weights=np.array(str(Path(weights).relative_to(folder))),
                weights_sha256=np.array(artifacts.sha256_file(weights)),
            )


def read_test_predictions(unet_dir):
    """(ids, class maps) of a train_unet folder; checks they belong to the weights next to them."""
    path = Path(unet_dir) / PREDICTIONS
    try:
        data = np.load(path, allow_pickle=False)
        ids, pred = list(data["ids"]), data["pred"]
        weights, sha = Path(unet_dir) / str(data["weights"]), str(data["weights_sha256"])
    except FileNotFoundError:
        raise DualgenError(f"{path}: missing: rerun train_unet for this mix (it writes the test segmentations)")
    except (OSError, ValueError, KeyError) as err:
        raise DualgenError(f"{path}: damaged ({type(err).__name__}): delete {unet_dir} and rerun train_unet")
    if not weights.exists() or artifacts.sha256_file(weights) != sha:
        raise DualgenError(f"{path}: not made by the weights {weights}: delete {unet_dir} and rerun train_unet")
    return ids, pred


def per_image_table(metrics_dirs, all_mixes):
    """One long table of every training's per-image results: mix, base, percent, arm, seed, image, source,
    accuracy, miou, missing_class_iou, iou_<class> (NaN where the class is absent from the image)."""
    by_name = {m.name: m for m in all_mixes}
    frames = []
    for folder in metrics_dirs:
        m = artifacts.read_json(Path(folder) / "metrics.json")
        mix = by_name.get(m["mix"])
        if mix is None:
            raise DualgenError(f"{folder}: metrics of mix {m['mix']}, which this config does not have")
        frame = pd.DataFrame(m["per_image"])
        frame.insert(0, "seed", int(m["seed"]))
        frame.insert(0, "arm", arm(mix))
        frame.insert(0, "percent", mix.percent)
        frame.insert(0, "base", mix.base)
        frame.insert(0, "mix", mix.name)
        frames.append(frame)
    if not frames:
        raise DualgenError("no metrics to aggregate: the config trains no mix")
    return pd.concat(frames, ignore_index=True)


def mix_table(per_image, all_mixes, metrics, level):
    """One row per mix (the study's metrics.csv): mix, base, percent, arm, n_real, n_synth, augmented, pretrain,
    n_seeds, and for each of ``metrics`` its mean over seeds with the Student-t interval over seeds at ``level``
    (``stats.mix_summary``) as <metric>_lo / <metric>_hi, clipped to [0, 1] (NaN with one seed)."""
    summary = stats.mix_summary(per_image, metrics, level=level)
    wide = summary.pivot(index="mix", columns="metric", values=["mean", "ci_low", "ci_high"])
    rows = []
    for m in all_mixes:
        row = {
            "mix": m.name,
            "base": m.base,
            "percent": m.percent,
            "arm": arm(m),
            "n_real": m.n_real,
            "n_synth": m.n_synth,
            "augmented": m.augment,
            "pretrain": m.pretrain,
            "n_seeds": int(per_image.loc[per_image["mix"] == m.name, "seed"].nunique()),
        }
        for col in metrics:  # every metric lies in [0, 1]: a t interval over few seeds is clipped to it
            row[col] = wide.loc[m.name, ("mean", col)]
            row[f"{col}_lo"] = float(np.clip(wide.loc[m.name, ("ci_low", col)], 0.0, 1.0))  # NaN (one seed) stays
            row[f"{col}_hi"] = float(np.clip(wide.loc[m.name, ("ci_high", col)], 0.0, 1.0))
        rows.append(row)
    return pd.DataFrame(rows)


def arm(mix):
    """The arm of the study a mix belongs to: real+synthetic, synthetic only, augmentation, pretrain, balanced or
    real only (the learning curve)."""
    if mix.real_only:
        return "real only"
    if mix.augment:
        return "augmentation"
    if mix.pretrain:
        return "pretrain"
    if mix.balanced:
        return "balanced"
    return "synthetic only" if mix.pure_synthetic else "real + synthetic"
