#!/usr/bin/env python
"""Export the study's model for new micrographs: the seed U-Nets of one mix (predict.mix; best = the highest
validation Missing Class IoU, mean over seeds, from the whole_image steps' selection-set scores, never the test
set) with preprocess.json (classes with names, values and colours; the info-band rule, data.scale, channels,
window size, input scaling, dualgen version). scripts/predict.py --model OUT works from this folder alone.

Writes OUT/seeds/seed<k>/ (best.weights.h5, spec.json), OUT/preprocess.json, OUT/validation.csv (every mix's
validation score), meta.json (the mix, its seeds, why it was chosen).
"""

from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import micrographs
from dualgen.segment import evaluation, model_export


def main(args):
    s = cli.settings(args)
    chunks = {}
    for item in args.unet:
        name, _, path = item.partition("=")
        chunks.setdefault(name, []).append(path)
    validation = {}
    for folder in args.whole:
        w = artifacts.read_json(Path(folder) / evaluation.WHOLE)
        validation[w["mix"]] = [v for v in w["validation"].values() if v == v]  # NaN: no validation patch
    mix = model_export.choose(validation, s["predict"]["mix"])
    if mix not in chunks:
        raise DualgenError(f"predict.mix: '{mix}' has no trained U-Nets in this study")
    seed_dirs = {k: Path(v) / "model" for c in chunks[mix] for k, v in evaluation.seed_dirs(c).items()}
    spec = artifacts.read_json(next(iter(seed_dirs.values())) / artifacts.SPEC)
    sources = pd.read_csv(Path(args.patches) / "sources.csv")
    data = s["data"]
    preprocess = model_export.preprocess_record(
        s["classes"], micrographs.crop_rule(data["crop_height"], sources), data["scale"],
        int(sources["channels"].iloc[0]), s["patches"]["size"], spec, data["max_pixels"],
    )  # fmt: skip
    table = pd.DataFrame(
        [{"mix": m, "n_seeds": len(v), "validation_missing_class_iou": sum(v) / len(v) if v else None}
         for m, v in validation.items()]
    )  # fmt: skip
    how = "named by predict.mix" if s["predict"]["mix"] != "best" else "best validation Missing Class IoU"
    print(f"model: {mix} ({how}), seeds {sorted(seed_dirs)}", flush=True)
    inputs = [f / "best.weights.h5" for f in seed_dirs.values()] + [Path(args.patches) / "sources.csv"]
    extra = {"mix": mix, "chosen_by": how, "seeds": sorted(seed_dirs)}
    with artifacts.artifact_dir(args.out, "export_model", s, None, inputs, extra) as tmp:
        model_export.export(tmp, seed_dirs, preprocess)
        table.to_csv(tmp / "validation.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--unet", required=True, nargs="+", help="MIX=PATH: the train_unet folders of each mix")
    p.add_argument("--whole", nargs="*", default=[], help="the whole_image folders (their validation scores)")
    p.add_argument("--patches", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
