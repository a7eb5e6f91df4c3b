#!/usr/bin/env python
"""Clean the raw synthetic masks as the paper did (step 7, Fig. 11): k-means on the mask values into as many
clusters as classes, clusters mapped to the nearest class level, in-between rims removed (the blur of an edge
between two classes whose levels are not neighbours: dualgen.generate.postprocess.remove_rims), then objects smaller
than min_object_px (the paper's 200 px at 256 px patches, scaled with the patch area; or one size per class) filled
from the neighbouring class; with smooth_px > 1 the edges then smoothed by a window vote that keeps every class's
area (classes marked thin in config left alone: smooth_keep; dualgen.generate.postprocess.smooth_classes).
One-hot raw masks (vqvae.mask_encoding onehot, recorded in the decode step's meta.json: (N, H, W, K) class scores)
take the class of the largest score instead of k-means and rims; small objects and smoothing as above (the default
config switches both off).
With postprocess.image_noise residual (--codes, --patches, --datasets: the encode step's reconstructions of the
VQ-VAE's training patches and the patches themselves) each micrograph gets the decoder's noise back
(dualgen.generate.noise): filtered by the Wiener gain of real on reconstructed training patches, plus Gaussian noise
of their residuals' spectrum, scaled by the noise level of each pixel's class in the cleaned mask; seeded by
postprocess.seed. With postprocess.image_noise spectrum (same inputs) each micrograph is only filtered, by the gain
sqrt(S_xx / S_yy) that gives the reconstructions the real power spectrum (no noise).
Writes OUT/images (the synthetic micrographs), OUT/masks (class ids), OUT/pool.csv, OUT/first_classes.npy (the first
classification, k-means or largest score, before rims, small objects and smoothing; for scripts/figure.py cleaning),
meta.json; with image_noise on also OUT/decoded (the micrographs as decoded, which the fidelity step's memorisation
check judges: new noise or a sharpening filter would hide a copy).
"""

from pathlib import Path

import numpy as np

from dualgen.core import artifacts, cli
from dualgen.core.errors import DualgenError
from dualgen.data import datasets, io
from dualgen.generate import common as generation
from dualgen.generate import noise, postprocess


def decoder_noise(args, ids, raw_dir, masks, n_classes, seed, mode):
    """The decoded micrographs with the decoder's noise or spectrum put back (``noise.restore``, fitted on the VQ-VAE's
    training patches and their reconstructions; the noise under the cleaned masks), and the fit's summary for
    meta.json."""
    if not (args.codes and args.patches and args.datasets):
        raise DualgenError(f"postprocess.image_noise {mode} needs --codes, --patches and --datasets")
    enc = generation.encoded_patches(args.codes, args.patches, args.datasets)
    train = enc.train
    decoded = np.stack([io.read_png(raw_dir / "images" / f"{i}.png") for i in ids])
    images, summary = noise.restore(
        mode, enc.images[train], enc.recon_images[train], enc.masks[train], n_classes, decoded, np.stack(masks), seed
    )
    summary["train_patches"] = int(train.sum())
    print(f"decoder {mode} from {summary['train_patches']} training patches: {summary}", flush=True)
    return images, summary


def main(args):
    s = cli.settings(args)
    pp, classes = s["postprocess"], s["classes"]
    raw_dir = Path(args.raw)
    raws = np.load(raw_dir / "raw_masks.npy", allow_pickle=False)
    n = len(classes)
    codec = generation.mask_codec(raw_dir, "decode", n)
    options = postprocess.cleaning_options(pp, [c["name"] for c in classes], raws.shape[1])
    min_px = options["min_object_px"]
    print(
        f"cleaning {len(raws)} masks: {codec.first_step} into {n} classes, objects < {min_px} px filled "
        f"({pp['min_object_px']} px at 256 px, scaled to {raws.shape[1]} px patches)"
        + (
            f", edges smoothed over {options['smooth_px']} x {options['smooth_px']} px keeping each class's area"
            if options["smooth_px"] > 1
            else ""
        ),
        flush=True,
    )
    first, cleaned = [], []
    for i, raw in enumerate(raws):
        k, c = postprocess.clean_mask(raw, codec, seed=pp["seed"] + i, **options)
        first.append(k)
        cleaned.append(c)
        if (i + 1) % 25 == 0 or i + 1 == len(raws):
            print(f"cleaned {i + 1}/{len(raws)}", flush=True)
    ids = sorted(p.stem for p in (raw_dir / "images").glob("synth_*.png"))
    images, fitted = None, None
    if pp.get("image_noise", "none") != "none":
        images, fitted = decoder_noise(args, ids, raw_dir, cleaned, n, pp["seed"], pp["image_noise"])
    changed = float(np.mean([np.mean(a != b) for a, b in zip(first, cleaned)]))  # rims, small objects, smoothing
    extra = {
        "n": len(raws),
        "min_object_px_at_256": pp["min_object_px"],
        "min_object_px": min_px,
        "smooth_px": options["smooth_px"],
        "smooth_keep": pp.get("smooth_keep", []),
        "patch_size": int(raws.shape[1]),
        "fraction_changed_by_cleaning": changed,
    }
    if fitted is not None:
        extra["decoder_noise"] = fitted
    inputs = [raw_dir / "raw_masks.npy"] + ([Path(args.codes) / "recon.npz"] if images is not None else [])
    with artifacts.artifact_dir(args.out, "postprocess", s, pp["seed"], inputs, extra) as tmp:
        fractions = datasets.write_pool(tmp, ids, cleaned, n, images_from=raw_dir / "images", images=images)
        extra["class_fractions"] = {c["name"]: float(fractions[:, k].mean()) for k, c in enumerate(classes)}
        np.save(tmp / "first_classes.npy", np.stack(first).astype(np.uint8), allow_pickle=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--raw", required=True, help="the decode step's folder")
    p.add_argument("--codes", default=None, help="the encode step's folder (postprocess.image_noise not none)")
    p.add_argument("--patches", default=None, help="the patches folder (postprocess.image_noise not none)")
    p.add_argument("--datasets", default=None, help="the datasets folder (postprocess.image_noise not none)")
    p.add_argument("--out", required=True)
    cli.run(main, p)
