#!/usr/bin/env python
"""How well the VQ-VAE reproduces a real pair's mask: clean its reconstructed masks like synthetic ones (the first
classification of the VQ-VAE's mask encoding, recorded in the encode step's meta.json: k-means to the class levels or
the largest class score; small objects filled: the postprocess settings) and score them against the real masks (mIoU and
Missing Class IoU, on the VQ-VAE's training and held-out validation patches). numpy only.
The reconstructed micrographs of the training patches are scored against the real ones with the image family of
the fidelity statistics (dualgen.generate.image_stats.image_family: spectrum, gradients, edges inside class 0; the
fidelity settings' splits): what the VQ-VAE alone keeps of the fine structure, before any prior samples a code
(a synthetic pool cannot be sharper than the reconstructions its decoder makes).
With postprocess.image_noise on, the reconstructions are also scored as the pool's micrographs are made, with the
decoder's noise or spectrum put back (dualgen.generate.noise.restore, fitted on these same training patches: the
bound for a pool whose prior sampled the training codes; OUT/image_fidelity_postprocessed.csv).
Writes OUT/cleaned.npz (cleaned reconstructed masks, class ids), OUT/agreement.json, OUT/image_fidelity.csv,
meta.json (``recon_mask_agreement``: the generator's reconstruction figure of merit; ``recon_image_ratio``: the worst
ratio of image_fidelity.csv with its statistic; ``recon_image_ratio_postprocessed``: that of
image_fidelity_postprocessed.csv).
"""

from pathlib import Path

import numpy as np

from dualgen.core import artifacts, cli
from dualgen.generate import common as generation
from dualgen.generate import image_stats, noise, postprocess
from dualgen.segment import metrics


def main(args):
    s = cli.settings(args)
    n, pp = len(s["classes"]), s["postprocess"]
    codes = Path(args.codes)
    enc = generation.encoded_patches(codes, args.patches, args.datasets)
    raw, split, images, masks = enc.recon_masks, enc.split, enc.images, enc.masks
    codec = generation.mask_codec(codes, "encode", n)
    options = postprocess.cleaning_options(pp, [c["name"] for c in s["classes"]], raw.shape[1])
    min_px = options["min_object_px"]
    cleaned = np.stack([postprocess.clean_mask(r, codec, seed=pp["seed"], **options)[1] for r in raw])
    per_image = [metrics.image_metrics(m, c, n) for m, c in zip(masks, cleaned)]
    agreement = {}
    for part in ("train", "val"):
        rows = [p for p, sp in zip(per_image, split) if sp == part]
        agg = metrics.aggregate(rows)
        agreement[part] = {"miou": agg.get("miou"), "missing_class_iou": agg.get("missing_class_iou"), "n": len(rows)}
    print(
        f"reconstructed masks vs real masks: validation mIoU {agreement['val']['miou']:.3f}, "
        f"Missing Class IoU {agreement['val']['missing_class_iou']:.3f}; training mIoU "
        f"{agreement['train']['miou']:.3f}",
        flush=True,
    )
    train, recon_images = enc.train, enc.recon_images
    fs = s["fidelity"]

    def score(synthetic):  # the image family of reconstructed training patches against the real ones
        return image_stats.image_family(
            images[train],
            masks[train],
            synthetic,
            cleaned[train],
            fs["n_splits"],
            fs["seed"],
            class_name=s["classes"][0]["name"],
        )

    image = score(recon_images[train])
    extra = {"min_object_px": min_px, "recon_mask_agreement": agreement, "recon_image_ratio": _worst(image, "")}
    restored = None
    mode = pp.get("image_noise", "none")
    if mode != "none":  # the reconstructions as the pool's micrographs are made
        real, recon = images[train], recon_images[train]
        restored = score(noise.restore(mode, real, recon, masks[train], n, recon, cleaned[train], pp["seed"])[0])
        extra["recon_image_ratio_postprocessed"] = _worst(restored, f" with image_noise {mode}")
    with artifacts.artifact_dir(args.out, "reconstruction", s, pp["seed"], [codes / "recon.npz"], extra) as tmp:
        np.savez(tmp / "cleaned.npz", masks=cleaned.astype(np.uint8))
        artifacts.write_json(tmp / "agreement.json", agreement)
        image.to_csv(tmp / "image_fidelity.csv", index=False)
        if restored is not None:
            restored.to_csv(tmp / "image_fidelity_postprocessed.csv", index=False)


def _worst(table, label):
    """The worst ratio of an image-family table (statistic, ratio), printed."""
    worst = table.loc[table["ratio"].astype(float).idxmax()]
    print(
        f"reconstructed micrographs{label} vs real: image-family ratio {worst['statistic']} {worst['ratio']:.2f}",
        flush=True,
    )
    return {"statistic": worst["statistic"], "ratio": float(worst["ratio"])}


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--codes", required=True, help="the encode step's folder (recon.npz, codes.csv)")
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--out", required=True)
    cli.run(main, p)
