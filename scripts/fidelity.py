#!/usr/bin/env python
"""Generator fidelity: how close the cleaned synthetic pairs of each generator variant are to real ones.

Real data: the BMQ training patches (what the generator learned from). For each variant (a prior kind at a
sampling temperature; one of them is the study's pool) and each class: phase fraction, two-point correlation S2,
chord lengths along rows and columns, object sizes, boundary density and the pixel intensities of every channel
inside the class, each distance also as a ratio to the real-vs-real floor (dualgen.generate.fidelity.compare: two
disjoint halves of the real patches, the synthetic side drawn at the size of one half). Memorisation: each pair's
distance to its nearest BMQ training patch against the same distance of the real BMQ validation patches (the check
is about the training set, the bulk of what the generator saw). Reference for mask agreement: two real labelings of
the same patches (the HQ vs LQ masks, where patches have both). Reference for the ratios: a second real sample, the
test patches (other micrographs, which nothing trains on), scored against the BMQ training patches exactly as a
variant is; the floor halves share their micrographs, a second sample does not, so its ratios show what "as close
as new real data" reads.
Image family (dualgen.generate.image_stats): the power spectrum, |grad I| and the strong edges inside class 0 of
every set, and with --encoder (a real-only U-Net's training folder, e.g. BMQ_000's first seed) the Fréchet distance
of its encoder's feature maps at strides 4 and 8 (dualgen.segment.unet.encoder_features), on the same splits.
Writes OUT/fidelity.csv (variant x class x statistic), OUT/reference.csv, OUT/memorisation.csv, OUT/profiles.npz
(the curves and histograms figure_fidelity draws: real__<stat> and <variant>__<stat>), meta.json (the worst ratio
of each family of statistics per variant, the pool's variant, the closest variant: fidelity.closest_variant, the
label agreement, the reference sample's worst ratios).
"""

from pathlib import Path

import numpy as np
import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.generate import fidelity, image_stats


def learned_features(folder, threads, seed, determinism):
    """The function of uint8 images to their learned-feature vectors ({"s4", "s8": (N, m, d)}) under the encoder of
    the U-Net trained in ``folder`` (its model/)."""
    env.setup_tensorflow(threads, seed, determinism)
    from dualgen.segment import unet

    model, spec = unet.load(Path(folder) / "model")
    features = unet.encoder_features(model, spec)
    return lambda images: image_stats.encoder_vectors(features, images, unet.FEATURE_STRIDES, seed=seed)


def main(args):
    s = cli.settings(args)
    fs, variants = s["fidelity"], s["variants"]
    names = [c["name"] for c in s["classes"]]
    given = cli.named_paths(args.variant, "--variant", "a postprocess output folder", [v["name"] for v in variants])
    paths = {name: Path(path) for name, path in given.items()}
    manifest = Path(args.datasets) / "BMQ.csv"
    _, real_images, real_masks = datasets.load(args.patches, manifest, "train")
    _, val_images, val_masks = datasets.load(args.patches, manifest, "val")
    if len(real_masks) < 2:
        raise DualgenError(
            f"{manifest}: {len(real_masks)} BMQ training patch(es): fidelity needs at least 2 "
            "(raise datasets.big_train)"
        )
    profiles = {f"real__{k}": v for k, v in fidelity.profile(real_images, real_masks, len(names)).items()}
    real, val = (real_images, real_masks), (val_images, val_masks)
    features = None
    if args.encoder:
        encode = learned_features(args.encoder, args.threads, fs["seed"], s["determinism"])
        features = (encode(real_images), encode)
        print(f"learned features: the encoder of {args.encoder} (strides 4 and 8)", flush=True)
    table, memo, curves = fidelity.score_variants(
        variants, paths, real, val, names, fs["seed"], fs["n_splits"], features
    )
    profiles.update(curves)
    _, test_images, test_masks = datasets.load(args.patches, manifest, "test")
    reference, extra_ref = fidelity.reference_sample(
        real_images, real_masks, test_images, test_masks, names, fs["seed"], fs["n_splits"], features
    )
    if extra_ref is not None:
        print(f"reference, a second real sample ({extra_ref['n']} test patches): {extra_ref['line']}", flush=True)
    agreement = fidelity.label_agreement(args.patches, len(names))
    extra = fidelity.step_meta(variants, table, memo, extra_ref, len(real_masks), len(val_masks), agreement)
    inputs = [manifest, Path(args.patches) / "patches.csv"] + [paths[v["name"]] / "pool.csv" for v in variants]
    if args.encoder:
        from dualgen.segment import unet

        inputs.append(Path(args.encoder) / "model" / unet.WEIGHTS)
    with artifacts.artifact_dir(args.out, "fidelity", s, fs["seed"], inputs, extra) as tmp:
        table.to_csv(tmp / "fidelity.csv", index=False)
        reference.to_csv(tmp / "reference.csv", index=False)
        pd.DataFrame(memo).to_csv(tmp / "memorisation.csv", index=False)
        np.savez(tmp / "profiles.npz", **profiles)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=PATH: a variant's cleaned synthetic pairs (a postprocess output); repeat",
    )
    p.add_argument("--encoder", default=None, help="a U-Net training folder (with model/): learned-feature rows")
    p.add_argument("--out", required=True)
    cli.run(main, p)
