#!/usr/bin/env python
"""Prototype (issue 29): a two-level VQ-VAE (VQ-VAE-2's idea) whose decoder reads a coarse top code itself.

bench/layout_prior.py gave the code prior a coarse layout and found that a layout the decoder never sees does not
draw grains: the code prior has to translate it into codes and learns that only weakly from 432 grids. Here the
decoder reads the coarse level:

- ``HierVQVAE``: the study's VQ-VAE (its encoder, FSQ bottom quantiser and decoder, the folder's settings) plus a top
  level: two more 4x4 stride-2 convolutions and a residual stack on the encoder's features, a LayerNorm and a 1x1
  convolution to ``--top-levels`` FSQ dimensions (8 x 8 top codes of 8 x 8 px for a 64-px patch at 2 px per bottom
  cell), and two 4x4 stride-2 transposed convolutions back to the bottom grid. The bottom quantiser sees the
  encoder's features and the top level's (so the bottom codes carry what the top does not), the decoder the bottom
  codes and the top level's features. Trained by the library's ``train_vqvae`` with the folder's settings (the
  perceptual term and the cross-entropy mask head of ``edges`` included);
- a top prior: the paper's PixelCNN over the top grids (the mirror images and turns of each patch encoded too);
- a bottom prior: the folder's PixelCNN kind whose head and logits see the top codes around its cell
  (``layout_prior.make_layout_model``: the top codes are its layout; exact fast sampler);
- the pool: top grids drawn (code shares calibrated), bottom grids under them (code shares calibrated: the
  ``codes`` calibration; the class-fraction stage needs the pipeline's single-level decoder), decoded by
  ``HierVQVAE``, written over ``synthetic/raw`` of a COPY of a finished results folder; Snakemake then cleans and
  scores them (``--forcerun postprocess``). ``postprocess.image_noise: spectrum``, if the folder's config sets it,
  keeps the gain fitted on the folder's single-level reconstructions.

Usage (in a copy of a ``bench/generator.py`` folder whose VQ-VAE uses FSQ, with that run's config files):
python bench/hier_vqvae.py --workdir <copy> --configfile ... [--top-levels 4,4,4] [--seed 0] [--cores 2]
Prints the reconstruction mIoU of both VQ-VAEs on the held-out patches, the priors' validation NLLs and, last:
``hierarchical VQ-VAE: image ratio <r> (<statistic>), mask ratio <m> (<statistic>), reconstruction mIoU <x>``.
Then ``--score --compare <the single-level folder>`` (the same folder and config files; the trained VQ-VAE is
reused) prints, for each VQ-VAE, the worst image-family ratio of its reconstructions and of its pool, as decoded
and with the spectrum gain fitted on its own reconstructions (``score``).
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOP_FACTOR = 4  # bottom cells per top cell along each side


def make_hier_vqvae(top_levels, **kw):
    """A ``VQVAE`` (the library's, ``kw`` its constructor's arguments; quantizer fsq) with a top level whose codes
    the bottom quantiser and the decoder both read."""
    import sonnet as snt
    import tensorflow as tf

    from dualgen.generate.vqvae import model as vm

    class HierVQVAE(vm.VQVAE):
        def __init__(self):
            super().__init__(**kw)
            nh, nrl, nrh = kw["num_hiddens"], kw["num_residual_layers"], kw["num_residual_hiddens"]
            self.top_factor = TOP_FACTOR
            self.top_down = [snt.Conv2D(nh, 4, stride=2, name=f"top_down_{i}") for i in range(2)]
            self.top_res = vm.ResidualStack(nh, nrl, nrh, name="top_res")
            self.top_norm = snt.LayerNorm(-1, True, True, name="top_norm")
            self.top_pre = snt.Conv2D(len(top_levels), 1, name="top_to_vq")
            self.top_vq = vm.FSQ(top_levels, name="top_fsq")
            self.num_top = self.top_vq.num_embeddings
            self.top_in = snt.Conv2D(nh, 3, name="top_in")
            self.top_up = [snt.Conv2DTranspose(nh, 4, stride=2, name=f"top_up_{i}") for i in range(2)]

        def _top(self, h):
            t = h
            for conv in self.top_down:
                t = tf.nn.relu(conv(t))
            return self.top_vq(self.top_pre(self.top_norm(self.top_res(t))))

        def top_features(self, top_codes):
            """Quantised top codes (N, h/4, w/4, d) -> features on the bottom grid (N, h, w, num_hiddens)."""
            u = tf.nn.relu(self.top_in(top_codes))
            return self.top_up[1](tf.nn.relu(self.top_up[0](u)))

        def _levels(self, x):
            h = self.encoder(x)
            top = self._top(h)
            u = self.top_features(top["quantize"])
            bottom = self.vq(self.pre_vq(self.pre_norm(tf.concat([h, u], -1))))
            return top, bottom, u

        def __call__(self, x, is_training):
            top, bottom, u = self._levels(x)
            return {
                "x_recon": self.decoder(tf.concat([bottom["quantize"], u], -1)),
                "vq_loss": bottom["loss"],
                "perplexity": bottom["perplexity"],
                "encoding_indices": bottom["encoding_indices"],
            }

        def encode_both(self, x):
            """(N,H,W,C+M) -> int32 top grids (N,H/8,W/8) and bottom grids (N,H/2,W/2)."""
            top, bottom, _ = self._levels(x)
            return top["encoding_indices"], bottom["encoding_indices"]

        def decode_both(self, top, bottom):
            u = self.top_features(self.top_vq.quantize(tf.cast(top, tf.int32)))
            return self.decoder(tf.concat([self.vq.quantize(tf.cast(bottom, tf.int32)), u], -1))

    return HierVQVAE()


def batched(fn, *arrays, batch=16):
    """``fn`` over the arrays' rows, ``batch`` at a time; the outputs' rows concatenated (a tuple of arrays if fn
    returns several)."""
    import tensorflow as tf

    outs = [fn(*[tf.constant(a[i : i + batch]) for a in arrays]) for i in range(0, len(arrays[0]), batch)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate([o[j].numpy() for o in outs]) for j in range(len(outs[0])))
    return np.concatenate([o.numpy() for o in outs])


def mask_miou(raw, masks, num_classes):
    """Mean IoU (over the classes present in either) of the raw masks' largest class against the masks."""
    from dualgen.segment import metrics

    pred = np.argmax(raw, axis=-1) if raw.ndim == 4 else raw
    return float(np.nanmean(metrics.ious(metrics.confusion(masks, pred, num_classes))))


def image_worst(real_images, real_masks, synth_images, synth_masks, fs, class_name):
    """``"<statistic> <ratio>"``: the worst image-family ratio of synthetic against real patches (the fidelity
    step's ``image_stats.image_family``, its splits and seed)."""
    from dualgen.generate import image_stats

    table = image_stats.image_family(
        real_images, real_masks, synth_images, synth_masks, fs["n_splits"], fs["seed"], class_name=class_name
    )
    worst = table.loc[table["ratio"].astype(float).idxmax()]
    return f"{worst['statistic']} {float(worst['ratio']):.2f}"


def score(args, config, out, model, x, images, masks, tr, codec, ids):
    """``--score``: the image family against the BMQ training patches (the fidelity step's real set) of (1) their
    reconstructions by both VQ-VAEs, as decoded and with ``postprocess.image_noise`` fitted on that VQ-VAE's own
    reconstructions of the generator's training patches (as the postprocess step fits it), and (2) the single-level
    pool (``--compare``: another folder's) and the hierarchical pool (this folder's) as decoded
    (``synthetic/clean/decoded``), and each with the gain of its own VQ-VAE (the pipeline's postprocess step fitted
    the single-level VQ-VAE's gain to both)."""
    from dualgen.data import datasets, io
    from dualgen.generate import common as generation
    from dualgen.generate import noise
    from dualgen.generate.vqvae import data

    n, fs, mode = len(config["classes"]), config["fidelity"], config["postprocess"]["image_noise"]
    name = config["classes"][0]["name"]
    folder_vq, _ = generation.load_vqvae(out / "vqvae")
    bmq, real, real_masks = datasets.load(out / "patches", out / "datasets" / "BMQ.csv", "train")
    rows = [list(ids).index(i) for i in bmq]
    recon = {
        "single-level": data.from_model_output(data.reconstruct(folder_vq, x), codec)[0],
        "hierarchical": data.from_model_output(batched(lambda a: model(a, is_training=False)["x_recon"], x), codec)[0],
    }
    pools = {"hierarchical": out, "single-level": Path(args.compare) / out.relative_to(args.workdir)}
    for level, rec in recon.items():
        line = f"{level}: reconstructions {image_worst(real, real_masks, rec[rows], real_masks, fs, name)}"
        clean = pools[level] / "synthetic" / "clean"
        pairs = sorted(p.stem for p in (clean / "decoded").glob("*.png"))
        decoded = np.stack([io.read_png(clean / "decoded" / f"{i}.png") for i in pairs])
        pool_masks = np.stack([io.read_png(clean / "masks" / f"{i}.png") for i in pairs])
        line += f"; pool as decoded {image_worst(real, real_masks, decoded, pool_masks, fs, name)}"
        if mode != "none":
            fit = (images[tr], rec[tr], masks[tr], n)
            seed = config["postprocess"]["seed"]
            restored = noise.restore(mode, *fit, rec[rows], real_masks, seed)[0]
            pool = noise.restore(mode, *fit, decoded, pool_masks, seed)[0]
            line += (
                f"; with image_noise {mode} of its own VQ-VAE: reconstructions "
                f"{image_worst(real, real_masks, restored, real_masks, fs, name)}, pool "
                f"{image_worst(real, real_masks, pool, pool_masks, fs, name)}"
            )
        print(line, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="a COPY of a finished bench/generator.py folder (FSQ VQ-VAE)")
    ap.add_argument("--configfile", action="append", default=[], help="that run's config files, in order")
    ap.add_argument("--top-levels", default="4,4,4", help="FSQ levels of the top code (product: its codebook)")
    ap.add_argument("--seed", type=int, default=None, help="pixelcnn.seed (default: the folder prior's)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument(
        "--score",
        action="store_true",
        help="after a run in this folder: score the reconstructions and pools of both VQ-VAEs (``score``)",
    )
    ap.add_argument("--compare", default=None, help="with --score: the folder of the single-level pool")
    args = ap.parse_args()
    if args.score and not args.compare:
        ap.error("--score needs --compare <folder of the single-level pool>")
    from dualgen.core.config import merged_or_exit

    config = merged_or_exit(args.configfile)
    v, pc, sm = config["vqvae"], config["pixelcnn"], config["sample"]
    if v["quantizer"] != "fsq" or v["mask_encoding"] != "onehot" or v["downsample"] != 2:
        ap.error("built for the edges VQ-VAE: vqvae.quantizer fsq, mask_encoding onehot, downsample 2")
    top_levels = [int(k) for k in args.top_levels.split(",")]

    from generator import pool_ratios  # bench/generator.py: the families its line reports
    from layout_prior import as_cond, make_layout_model

    from dualgen.core import env

    work = Path(args.workdir)
    out = work / "results" / config["study"]
    seed = pc["seed"] if args.seed is None else args.seed
    env.setup_tensorflow(args.cores, v["seed"], config["determinism"])
    import tensorflow as tf

    from dualgen.core import artifacts
    from dualgen.data import io
    from dualgen.generate import common as generation
    from dualgen.generate.mask_codec import MaskCodec
    from dualgen.generate.pixelcnn import model as pmodel
    from dualgen.generate.pixelcnn import sample as psample
    from dualgen.generate.pixelcnn import train as ptrain
    from dualgen.generate.vqvae import data, persist, train
    from dualgen.segment import unet

    n_classes = len(config["classes"])
    ids, images, masks = generation.generator_patches(out / "patches", out / "datasets")
    tr, va = generation.holdout(len(ids), v["val_images"], v["seed"])
    codec = MaskCodec(v["mask_encoding"], n_classes)
    x = data.to_model_input(images, masks, codec)
    spec = persist.make_spec(v, images.shape[3], n_classes)
    model = make_hier_vqvae(top_levels, **{k: spec[k] for k in persist.SPEC_KEYS}, fsq_levels=spec["fsq_levels"])
    adversarial, perceptual, mask_head = train.training_options(v["adversarial"], v["perceptual"], v["mask_head"])
    features = None
    if perceptual["weight"] > 0:
        from dualgen.generate.vqvae.model import build_variables

        build_variables(model)
        unet_dir = work / json.loads((out / "vqvae" / "meta.json").read_text())["features_model"]
        net, uspec = unet.load(unet_dir)
        net.trainable = False
        features = unet.encoder_features(net, uspec, *([perceptual["strides"]] if perceptual["strides"] else []))
    vq_work = work / "hier_vqvae"
    result = train.train_vqvae(
        model, x[tr], x[va], steps=v["steps"], batch_size=v["batch_size"], learning_rate=v["learning_rate"],
        seed=v["seed"], out_dir=str(vq_work), eval_every=v["eval_every"], mask_weight=v["mask_weight"],
        n_mask=codec.channels, mixed_precision=False, adversarial=adversarial, perceptual=perceptual,
        mask_head=mask_head, features=features,
    )  # fmt: skip
    tf.train.Checkpoint(model=model).read(str(vq_work / "best" / "ckpt")).expect_partial()
    if args.score:
        return score(args, config, out, model, x, images, masks, tr, codec, ids)
    folder_vq, _ = generation.load_vqvae(out / "vqvae")
    recon = {
        "folder": batched(lambda a: folder_vq(a, is_training=False)["x_recon"], x[va]),
        "hierarchical": batched(lambda a: model(a, is_training=False)["x_recon"], x[va]),
    }
    miou = {k: mask_miou(data.from_model_output(r, codec)[1], masks[va], n_classes) for k, r in recon.items()}
    print(
        f"VQ-VAE validation error {result['best_val_recon']:.4f} (step {result['best_step']}); reconstruction mIoU "
        f"on the {len(va)} held-out patches: hierarchical {miou['hierarchical']:.3f}, the folder's "
        f"{miou['folder']:.3f}",
        flush=True,
    )

    def encode(arr):
        return batched(lambda a: model.encode_both(a), arr)

    top, bottom = encode(x)
    copies_top, copies_bottom = {}, {}
    for name, fn in (("flips.npy", generation.flips), ("turns.npy", generation.turns)):
        pairs = [encode(c) for c in fn(x[tr])]
        copies_top[name] = np.stack([p[0] for p in pairs])
        copies_bottom[name] = np.stack([p[1] for p in pairs])
    th, tw = top.shape[1:]
    k_top = model.num_top
    print(f"top codes: {th}x{tw} per patch, {len(np.unique(top))} of {k_top} used", flush=True)
    no_cond = np.zeros((len(tr), 0), np.float32)
    top_train, _ = generation.training_grids(top[tr], no_cond, pc["augment"], copies_top)
    bottom_train, cond_train = generation.training_grids(bottom[tr], as_cond(top[tr]), pc["augment"], copies_bottom)
    env.setup_tensorflow(args.cores, seed, config["determinism"])
    fit = dict(epochs=pc["epochs"], batch_size=pc["batch_size"], learning_rate=pc["learning_rate"], seed=seed)
    top_model = pmodel.PixelCNN(
        k_top, pc["filters"], pc["num_blocks"], "plain", seed, grid_shape=(th, tw), dilations=None
    )
    ptrain.train_pixelcnn(top_model, top_train, top[va], **fit)
    bottom_model = make_layout_model(
        pmodel.PixelCNN, k_top, (th, tw), TOP_FACTOR, num_embeddings=model.num_embeddings, filters=pc["filters"],
        num_blocks=pc["num_blocks"], kind=pc["kind"], seed=seed, grid_shape=bottom.shape[1:], dilations=None,
    )  # fmt: skip
    vcond = as_cond(top[va])
    ptrain.train_pixelcnn(
        bottom_model, bottom_train, bottom[va], **fit, train_cond=cond_train, val_cond=vcond, dropout=pc["dropout"]
    )
    print(
        f"validation NLL: top {ptrain.validation_nll(top_model, top[va]):.4f} nats per top cell, bottom "
        f"{ptrain.validation_nll(bottom_model, bottom[va], cond=vcond):.4f} per bottom cell given the top",
        flush=True,
    )
    n = json.loads((out / "synthetic" / "raw" / "meta.json").read_text())["n"]
    calibrate = dict(seed=sm["seed"], temperature=1.0, batch_size=sm["batch_size"], log=lambda m: print(m, flush=True))
    top_bias, _ = psample.calibrate(
        top_model, psample.code_frequencies(top_train, k_top), th, tw, stream=101, **calibrate
    )

    def draw_tops(count, seed_, stream):
        return psample._sample(
            psample._fill_fast, top_model, count, th, tw, seed_, 1.0, sm["batch_size"], None, None, top_bias,
            stream=stream,
        )  # fmt: skip

    def calibration_draws(model_, count, height, width, seed_, temperature, batch_size, bias, stream):
        tops = as_cond(draw_tops(count, seed_, (202, *stream)))
        return psample._sample(
            psample._fill_fast, model_, count, height, width, seed_, temperature, batch_size, None, tops, bias,
            stream=stream,
        )  # fmt: skip

    psample._calibration_draws = calibration_draws  # the calibration draws the top grids first
    h, w = bottom.shape[1:]
    bias, _ = psample.calibrate(
        bottom_model, psample.code_frequencies(bottom_train, model.num_embeddings), h, w, **calibrate
    )
    pool_top = draw_tops(n, sm["seed"], (303,))
    pool = psample.sample_fast(
        bottom_model, n, h, w, seed=sm["seed"], temperature=sm["temperature"], batch_size=sm["batch_size"],
        cond=as_cond(pool_top), bias=bias,
    )  # fmt: skip
    decoded = batched(lambda t, b: model.decode_both(t, b), pool_top.astype(np.int32), pool.astype(np.int32))
    pool_images, raws = data.from_model_output(decoded, codec)
    raw_dir = out / "synthetic" / "raw"
    shown = np.clip(np.rint(codec.display(raws) * 255), 0, 255).astype(np.uint8)
    for i, (img, raw) in enumerate(zip(pool_images, shown)):
        io.write_png(raw_dir / "images" / f"synth_{i:05d}.png", img)
        io.write_png(raw_dir / "raw_masks" / f"synth_{i:05d}.png", raw)
    with artifacts.atomic_path(raw_dir / "raw_masks.npy") as tmp:
        np.save(tmp, raws.astype(np.float32), allow_pickle=False)
    print(f"wrote {n} hierarchical pairs over {raw_dir}", flush=True)
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), f"results/{config['study']}/fidelity",
        f"results/{config['study']}/figures/synthetic", "--cores", str(args.cores), "--rerun-triggers", "mtime",
        "--forcerun", "postprocess", "figure_synthetic",
        "--configfile", *[str(Path(f).resolve()) for f in args.configfile],
    ]  # fmt: skip
    with open(work / "hier_snakemake.log", "w") as log:  # postprocess, fidelity, the figure on the new pairs
        subprocess.run(cmd, cwd=work, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(
        f"hierarchical VQ-VAE: {pool_ratios(json.loads((out / 'fidelity' / 'meta.json').read_text()))}, "
        f"reconstruction mIoU {miou['hierarchical']:.3f}"
    )


if __name__ == "__main__":
    main()
