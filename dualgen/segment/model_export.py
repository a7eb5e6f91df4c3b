"""The study's model for a lab: one mix's seed U-Nets and ``preprocess.json`` in a folder that works alone.

Layout: ``<model>/seeds/seed<k>/`` (``best.weights.h5`` and ``spec.json``, as ``unet.save`` writes them),
``preprocess.json`` and ``meta.json``. ``preprocess.json`` holds what inference must repeat of ingest: the classes
(names, mask values, colours), the info-band rule (``micrographs.crop_rule``), ``data.scale``, the channel count,
the window (patch) size, the input scaling (encoder weights and backbone), ``max_pixels`` and the dualgen
version, with a ``format`` number that ``read_preprocess`` checks.

The mix: ``predict.mix`` names one, or ``best`` takes the highest validation Missing Class IoU (mean over seeds)
on the selection set (``evaluation.selection_set``: real validation patches with HQ masks), never the test set.
"""

import shutil
from pathlib import Path

import numpy as np

import dualgen
from dualgen.core import artifacts
from dualgen.core.errors import DualgenError

PREPROCESS = "preprocess.json"
FORMAT = 1  # preprocess.json's layout; a folder of another format is refused with one line
SEEDS = "seeds"


def choose(validation, requested):
    """The mix to export: ``requested`` itself, or for ``best`` the highest mean validation Missing Class IoU
    (``validation``: {mix: [per-seed values]}, in the study's mix order; a tie goes to the first)."""
    if requested != "best":
        return requested
    means = {mix: float(np.mean(v)) for mix, v in validation.items() if len(v)}
    if not means:
        raise DualgenError("predict.mix: best: no mix has a validation score (no real validation patch with a mask)")
    return max(means, key=lambda m: (means[m], -list(means).index(m)))


def preprocess_record(classes, crop, scale, channels, size, spec, max_pixels):
    return {
        "format": FORMAT,
        "dualgen": dualgen.__version__,
        "classes": classes,
        "crop": crop,
        "scale": float(scale),
        "channels": int(channels),
        "window": int(size),
        "encoder_weights": spec["encoder_weights"],
        "backbone": spec["backbone"],
        "max_pixels": int(max_pixels),
    }


def export(out_dir, seed_dirs, preprocess):
    """Copy each seed's weights and spec (``seed_dirs``: {seed: folder}) and write preprocess.json into
    ``out_dir`` (an atomic folder the caller holds)."""
    from dualgen.segment import unet

    out_dir = Path(out_dir)
    for seed, folder in seed_dirs.items():
        dest = out_dir / SEEDS / f"seed{int(seed)}"
        dest.mkdir(parents=True)
        for name in (unet.WEIGHTS, artifacts.SPEC):
            shutil.copy2(Path(folder) / name, dest / name)
    artifacts.write_json(out_dir / PREPROCESS, preprocess)


def read_preprocess(model_dir):
    """preprocess.json of a model folder, or one line saying why it cannot be used."""
    model_dir = Path(model_dir)
    path = model_dir / PREPROCESS
    if not model_dir.is_dir():
        raise DualgenError(f"{model_dir}: no such model folder: give results/<study>/model (the export_model rule)")
    if not path.exists():
        raise DualgenError(
            f"{model_dir}: no {PREPROCESS}: not a dualgen model folder (export one: snakemake results/<study>/model)"
        )
    record = artifacts.read_json(path)
    if record.get("format") != FORMAT:
        raise DualgenError(
            f"{path}: a model of dualgen {record.get('dualgen', '?')} (format {record.get('format')}); this dualgen "
            f"{dualgen.__version__} reads format {FORMAT}: export the model again with this version"
        )
    return record


def load(model_dir, ensemble=True):
    """(models, preprocess, seeds) of a model folder: every seed's U-Net, or the first seed's without ``ensemble``."""
    from dualgen.segment import unet

    preprocess = read_preprocess(model_dir)
    folders = sorted((Path(model_dir) / SEEDS).glob("seed*"), key=lambda p: int(p.name[len("seed") :]))
    if not folders:
        raise DualgenError(f"{model_dir}: no {SEEDS}/seed<k>/ folders: export the model again")
    folders = folders if ensemble else folders[:1]
    models = [unet.load(f)[0] for f in folders]
    return models, preprocess, [int(f.name[len("seed") :]) for f in folders]
