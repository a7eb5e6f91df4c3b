#!/usr/bin/env python
"""Segment new micrographs with an exported model (results/<study>/model, from the export_model rule): every
micrograph prepared as the study's ingest prepared its own (info band, data.scale, channels: preprocess.json),
segmented whole (overlapping windows, blended; the seed ensemble's mean softmax; optional flip TTA) at its original
resolution. Works from the model folder alone:
    python scripts/predict.py --model results/<study>/model --images new_micrographs/ --out segmented/

Writes OUT/masks/<name>.png (class ids 0..K-1, preprocess.json's class order), OUT/overlays/<name>.png (the
micrograph in the class colours), OUT/phase_fractions.csv (per micrograph and class: the ensemble's area fraction
and its spread over the seeds), meta.json (model, mix, seeds, settings, files skipped and why). An unreadable file
is named, skipped and listed; the others are written, and the exit status is then 1.
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.core.config import DEFAULTS_PATH, load_yaml
from dualgen.core.errors import DualgenError
from dualgen.data import io, micrographs
from dualgen.report import figures
from dualgen.segment import model_export


def main(args):
    files = micrographs.list_new(args.images)
    preprocess = model_export.read_preprocess(args.model)
    s = cli.settings(args)  # determinism (config's, or config.yaml's when run by hand)
    env.setup_tensorflow(args.threads, None, s["determinism"])
    from dualgen.segment import unet, whole

    models, preprocess, seeds = model_export.load(args.model, args.ensemble)
    names = [c["name"] for c in preprocess["classes"]]
    prep = unet.preprocessor({"encoder_weights": preprocess["encoder_weights"], "backbone": preprocess["backbone"]})
    rows, skipped = [], {}
    settings = {"predict": {k: getattr(args, k) for k in ("overlap", "ensemble", "tta", "batch_size")}}
    meta = Path(args.model) / "meta.json"
    mix = artifacts.read_json(meta).get("mix") if meta.exists() else None
    extra = {"model": {"folder": str(args.model), "mix": mix, "seeds": seeds}, "skipped": skipped}
    inputs = [Path(args.model) / model_export.PREPROCESS]
    with artifacts.artifact_dir(args.out, "predict", settings, None, inputs, extra) as tmp:
        for sub in ("masks", "overlays"):
            (tmp / sub).mkdir()
        for k, (stem, path) in enumerate(files.items(), 1):
            try:
                m = micrographs.new_micrograph(path, preprocess)
            except DualgenError as err:
                skipped[path.name] = str(err)
                print(f"skipped: {err}", flush=True)
                continue
            scores = whole.predict_scores(
                models, m.image, size=preprocess["window"], overlap=args.overlap, preprocess=prep,
                batch_size=args.batch_size, tta=args.tta, out_size=m.size,
            )  # fmt: skip
            label = whole.labels(whole.ensemble(scores))
            io.write_png(tmp / "masks" / f"{stem}.png", label)
            io.write_png(tmp / "overlays" / f"{stem}.png", figures.overlay(m.original, label, preprocess["classes"]))
            fractions = whole.area_fractions(label, len(names))
            per_seed = np.array([whole.area_fractions(whole.labels(sc), len(names)) for sc in scores])
            for c, name in enumerate(names):
                rows.append(
                    {"micrograph": stem, "class": name, "fraction": fractions[c], "seed_min": per_seed[:, c].min(),
                     "seed_max": per_seed[:, c].max(), "seed_sd": per_seed[:, c].std()}
                )  # fmt: skip
            print(f"[{k}/{len(files)}] {path.name}: {m.size[1]}x{m.size[0]} px", flush=True)
        columns = ["micrograph", "class", "fraction", "seed_min", "seed_max", "seed_sd"]
        pd.DataFrame(rows, columns=columns).to_csv(tmp / "phase_fractions.csv", index=False)
    if skipped:
        raise DualgenError(f"{len(skipped)} of {len(files)} micrographs skipped (listed in {args.out}/meta.json)")


if __name__ == "__main__":
    defaults = load_yaml(DEFAULTS_PATH)["predict"]
    p = cli.parser(__doc__)
    p.add_argument("--model", required=True, help="an exported model folder (results/<study>/model)")
    p.add_argument("--images", required=True, help="a folder of micrographs (PNG, TIFF, JPEG)")
    p.add_argument("--out", required=True, help="the output folder")
    p.add_argument(
        "--overlap", type=float, default=defaults["overlap"], help="share of a window its neighbours overlap"
    )
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=defaults["tta"], help="average the 4 flips")
    p.add_argument("--ensemble", action=argparse.BooleanOptionalAction, default=defaults["ensemble"],
                   help="average the seeds' softmax (--no-ensemble: the first seed)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="windows per network call")
    cli.run(main, p)
