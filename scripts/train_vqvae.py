#!/usr/bin/env python
"""Train the VQ-VAE on micrograph + mask stacked as one image (paper step 4; C+1 channels, or C+K with
vqvae.mask_encoding onehot).

Data: BMQ's training + validation patches (paper: 62 = 56 train + 6 val held out for choosing the
checkpoint with the lowest reconstruction error). Resumable: checkpoints live in --work; a rerun after a
kill continues from the last one. Writes OUT/checkpoint (best), history.csv, loss.png and snapshots.npz (the
reconstructions of one validation patch during training, drawn by scripts/figure.py vqvae).

Edge-keeping options (settings, all off by default): vqvae.quantizer fsq (with vqvae.fsq_levels),
vqvae.adversarial (a PatchGAN discriminator), vqvae.perceptual (feature distance under the real-only U-Net given
by --features-model, loaded only where vqvae.perceptual.weight > 0), vqvae.mask_head xent.
"""

import shutil
import time
from pathlib import Path

import pandas as pd

from dualgen.core import artifacts, cli, env
from dualgen.core.errors import DualgenError
from dualgen.generate import common as generation
from dualgen.generate.mask_codec import MaskCodec
from dualgen.report import figures


def _load_features(folder, strides=None):
    """The perceptual term's feature network: the encoder of the U-Net saved in ``folder`` (``dualgen.segment.unet``
    ``save``), as ``unet.encoder_features`` gives it: float32 images (N,H,W,C) in [0, 255] -> the list of its feature
    maps at ``strides`` (None: unet's default), frozen."""
    from dualgen.segment import unet

    model, spec = unet.load(folder)
    model.trainable = False
    return unet.encoder_features(model, spec) if strides is None else unet.encoder_features(model, spec, strides)


def main(args):
    s = cli.settings(args)
    v, n = s["vqvae"], len(s["classes"])
    env.setup_tensorflow(args.threads, v["seed"], s["determinism"])
    from dualgen.generate.vqvae import data, persist, train
    from dualgen.generate.vqvae import model as vqvae_model

    ids, images, masks = generation.generator_patches(args.patches, args.datasets)
    vqvae_model.check_patch_size(images.shape[1], v["downsample"])
    tr, va = generation.holdout(len(ids), v["val_images"], v["seed"])
    codec = MaskCodec(v["mask_encoding"], n)
    x = data.to_model_input(images, masks, codec)
    work = generation.resume_dir(args.work, s)
    snaps = work / "snapshots"
    snaps.mkdir(exist_ok=True)
    monitor = train.snapshot_monitor(snaps, x[va[:1]])  # one validation patch at checkpoints (paper Fig. 7)
    spec = persist.make_spec(v, images.shape[3], n)
    model = persist.build(spec)
    adversarial, perceptual, mask_head = train.training_options(
        v.get("adversarial"), v.get("perceptual"), v.get("mask_head", "mse")
    )
    features = None
    if perceptual["weight"] > 0:
        if not args.features_model:
            raise DualgenError(
                f"vqvae.perceptual.weight is {perceptual['weight']:g}: give the real-only U-Net's folder "
                "(--features-model), or set the weight to 0"
            )
        vqvae_model.build_variables(model)  # first: the VQ-VAE's initial weights are those of a run without it
        features = _load_features(args.features_model, perceptual["strides"])
    elif args.features_model:
        print(f"--features-model {args.features_model}: not used (vqvae.perceptual.weight is 0)", flush=True)
    quantizer = f"FSQ levels {spec['fsq_levels']}" if spec["quantizer"] == "fsq" else f"D={v['embedding_dim']}"
    print(
        f"VQ-VAE: {len(tr)} training / {len(va)} validation patches of {images.shape[1]} px, "
        f"{images.shape[3]}+{codec.channels} channels ({codec.encoding} mask), K={spec['num_embeddings']}, "
        f"{quantizer}, downsample {spec['downsample']}, mask weight {v['mask_weight']}",
        flush=True,
    )
    if adversarial["weight"] > 0 or perceptual["weight"] > 0 or mask_head != "mse":
        print(
            f"edge terms: adversarial weight {adversarial['weight']:g} from step {adversarial['start_step']}, "
            f"perceptual weight {perceptual['weight']:g}, mask head {mask_head}",
            flush=True,
        )
    started = time.perf_counter()
    result = train.train_vqvae(
        model,
        x[tr],
        x[va],
        steps=v["steps"],
        batch_size=v["batch_size"],
        learning_rate=v["learning_rate"],
        seed=v["seed"],
        out_dir=str(work),
        eval_every=v["eval_every"],
        mask_weight=v["mask_weight"],
        n_mask=codec.channels,
        monitor=monitor,
        mixed_precision=bool(v["mixed_precision"]),
        adversarial=adversarial,
        perceptual=perceptual,
        mask_head=mask_head,
        features=features,
    )
    hist = pd.DataFrame(result["history"])
    extra = {
        "patch_size": int(images.shape[1]),
        "n_train": len(tr),
        "n_val": len(va),
        "best_step": result["best_step"],
        "best_val_recon": result["best_val_recon"],
        "resumed_from_step": result["resumed_from_step"],
        "val_ids": [ids[i] for i in va],
        "mixed_precision": bool(v["mixed_precision"]),
        "train_seconds": round(time.perf_counter() - started, 1),
        "num_embeddings": spec["num_embeddings"],  # the codes' K (with fsq: the product of the levels)
        "quantizer": spec["quantizer"],
        "adversarial": adversarial,  # the training-only settings as run (defaults filled in)
        "perceptual": perceptual,
        "mask_head": mask_head,
        "features_model": str(args.features_model) if features is not None else None,
    }
    inputs = [Path(args.datasets) / "BMQ.csv", Path(args.patches) / "patches.csv"]
    with artifacts.artifact_dir(args.out, "train_vqvae", s, v["seed"], inputs, extra) as tmp:
        shutil.copytree(work / "best", tmp / "checkpoint")
        hist.to_csv(tmp / "history.csv", index=False)
        figures.vqvae_history(hist, tmp / "loss.png", extra["best_step"])
        train.save_snapshots(snaps, codec, tmp / "snapshots.npz", images[va[0]], masks[va[0]])


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--patches", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--work", required=True, help="folder for resumable checkpoints (kept after a kill)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--features-model",
        default=None,
        help="a U-Net folder (dualgen.segment.unet.save) whose encoder gives the perceptual term's features; "
        "read only where vqvae.perceptual.weight > 0",
    )
    cli.run(main, p)
