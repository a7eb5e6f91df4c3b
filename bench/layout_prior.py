#!/usr/bin/env python
"""Prototype (issue 29): a two-level prior that draws the grain layout first, then the codes under it.

The pool's micrographs miss the polygonal grain network: the PixelCNN gets each code cell and each pair of cells
right (bench/pool_gradients.py) but not a layout a grain (~11 cells at 2 px per cell) across. VQ-VAE-2 answers this
with a coarse top code. This prototype keeps the study's VQ-VAE and builds the coarse level from the data:

- the layout: each training patch's block means (``--block`` code cells square, e.g. 4 cells = 8 px: a third of a
  demo grain) of its micrograph, clustered into ``--k-top`` shades by k-means (fitted on the training patches'
  blocks; the mirror images and turns of a patch have the turned layout of its own);
- a top prior: the paper's PixelCNN over the layout grids (8 x 8 for 64-px patches at 2 px per cell);
- a bottom prior: the folder's PixelCNN (its kind and settings), whose 1x1 head and logits also see the layout code
  of the cell's block and of its 8 neighbouring blocks (one-hot) and the cell's place in its block. The layout is
  known before any cell is drawn, so the prior stays autoregressive and the fast sampler stays exact; the layout
  rides in the library's ``cond`` argument (one value per block), so the library's training loop and samplers run
  it unchanged;
- the pool: layouts from the top prior (code shares calibrated), then code grids from the bottom prior under them,
  calibrated as the sample step does (``sample.calibrate``), written over ``synthetic/codes/grids.npy`` of a COPY of
  a finished results folder; Snakemake then decodes, cleans and scores them (``--forcerun decode``).

``--every`` (plain kind): the layout also enters every block, a learned 1x1 projection added to the features
entering it (the window's region of it: the sampler stays exact). ``--real-layouts``: the pool's codes are drawn
under the training patches' own layouts instead of the top prior's, a bound on what a perfect layout prior gives.

Usage (in a copy of a ``bench/generator.py`` folder, with that run's config files):
python bench/layout_prior.py --workdir <copy> --configfile ... [--k-top 16] [--block 4] [--every] [--real-layouts]
[--seed 0] [--cores 2]
Prints the folder prior's and the layout prior's validation NLL and, last, the pool's worst ratios:
``layout prior: image ratio <r> (<statistic>), mask ratio <m> (<statistic>)``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def block_means(images, px):
    """(N, H/px, W/px, C) mean of each px x px block of (N, H, W, C) images."""
    n, h, w, c = images.shape
    return images.reshape(n, h // px, px, w // px, px, c).mean(axis=(2, 4))


def layouts(images, train, k_top, px, seed):
    """(N, h, w) int32 layout codes of every patch: its px x px block means, clustered into ``k_top`` shades by
    k-means fitted on the ``train`` patches' blocks."""
    from sklearn.cluster import KMeans

    means = block_means(np.asarray(images, np.float64) / 255.0, px)
    km = KMeans(k_top, n_init=4, random_state=seed).fit(means[train].reshape(-1, means.shape[-1]))
    return km.predict(means.reshape(-1, means.shape[-1])).reshape(means.shape[:3]).astype(np.int32)


def as_cond(top):
    """(N, h, w) layout codes as the (N, h * w) float32 ``cond`` rows the layout model reads."""
    return np.asarray(top).reshape(len(top), -1).astype(np.float32)


def make_layout_model(base_cls, k_top, top_shape, block, every=False, **kw):
    """A ``base_cls`` (the library's PixelCNN) whose head and logits also see each cell's layout neighbourhood;
    ``every``: also added (a learned 1x1 projection per block) to the features entering each block (plain kind)."""
    import tensorflow as tf

    from dualgen.generate.pixelcnn import model as pmodel

    class LayoutPixelCNN(base_cls):
        def __init__(self):
            super().__init__(cond_dim=0, **kw)
            self.k_top, self.top_shape, self.block = k_top, tuple(top_shape), block
            s = 9 * k_top + block * block
            rng = np.random.default_rng(kw["seed"] + 7919)
            self.layout_head = tf.Variable(rng.normal(0, s**-0.5, (s, self.filters)).astype(np.float32))
            self.layout_logits = tf.Variable(np.zeros((s, self.num_embeddings), np.float32))
            self.cond_dim = top_shape[0] * top_shape[1]  # the layout codes ride in cond (the layers ignore it)
            self.every = every
            if every:
                self.layout_blocks = [
                    tf.Variable(rng.normal(0, s**-0.5, (s, self.filters)).astype(np.float32) * 0.1)
                    for _ in range(self.num_blocks)
                ]

        def _layout(self, cond, rows, cols):
            top = tf.cast(tf.round(tf.reshape(cond, [-1, *self.top_shape])), tf.int32)
            padded = tf.one_hot(tf.pad(top, [[0, 0], [1, 1], [1, 1]], constant_values=-1), self.k_top)
            br, bc = rows // self.block + 1, cols // self.block + 1
            parts = [
                tf.gather(tf.gather(padded, br + dy, axis=1), bc + dx, axis=2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
            ]
            place = tf.one_hot((rows % self.block)[:, None] * self.block + (cols % self.block)[None, :], self.block**2)
            place = tf.broadcast_to(
                place[None], [tf.shape(top)[0], tf.shape(rows)[0], tf.shape(cols)[0], self.block**2]
            )
            return tf.concat(parts + [place], axis=-1)

        def _region(self, cond, frame, pos, h):
            """The layout vectors of the cells ``h`` stands for: the whole grid, or a window's region ending at the
            cell ``pos`` (bottom row, centred); cells outside the grid are clipped (the next conv zeroes them)."""
            if frame.inside is None:
                rows, cols = tf.range(tf.shape(h)[1]), tf.range(tf.shape(h)[2])
            else:
                hr, hc = h.shape[1], h.shape[2]
                rows = tf.clip_by_value(pos[0] - hr + 1 + tf.range(hr), 0, self.grid_shape[0] - 1)
                cols = tf.clip_by_value(pos[1] - (hc - 1) // 2 + tf.range(hc), 0, self.grid_shape[1] - 1)
            return self._layout(cond, rows, cols)

        def forward(self, codes, frame, cond=None, pos=None, dropout=None):
            """The library's forward pass (``PixelCNN.forward``) with the layout terms added."""
            x = tf.one_hot(tf.cast(codes, tf.int32), self.num_embeddings, dtype=tf.float32)
            if self.kind == "plain":
                h = tf.nn.relu(frame.conv(self.first, x))
                frame.shrink(*[pmodel.FIRST_REACH] * 3)
                for i, block in enumerate(self.blocks):
                    if self.every:
                        h = h + tf.einsum("brcs,sf->brcf", self._region(cond, frame, pos, h), self.layout_blocks[i])
                    h = block(h, frame, None, dropout, i)
            else:
                v, h = self.first(x, x, frame)
                for i, block in enumerate(self.blocks):
                    v, h = block(v, h, frame, None, dropout, i)
            lay = self._region(cond, frame, pos, h)  # the output's cells: the grid, or the window's own cell
            y = self.head(tf.nn.relu(h)) + tf.einsum("brcs,sf->brcf", lay, self.layout_head)
            out = self.logits(tf.nn.relu(y)) + tf.einsum("brcs,sk->brck", lay, self.layout_logits)
            return out + self._position(frame, x, pos)

    return LayoutPixelCNN()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, help="a COPY of a finished bench/generator.py folder")
    ap.add_argument("--configfile", action="append", default=[], help="that run's config files, in order")
    ap.add_argument("--k-top", type=int, default=16)
    ap.add_argument("--block", type=int, default=4, help="code cells per layout block side")
    ap.add_argument("--seed", type=int, default=None, help="pixelcnn.seed (default: the folder prior's)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--every", action="store_true", help="the layout also enters every block (plain kind)")
    ap.add_argument(
        "--real-layouts",
        action="store_true",
        help="a diagnostic bound: the pool's layouts are the training patches' own (cycled), not the top prior's",
    )
    args = ap.parse_args()
    from dualgen.core.config import merged_or_exit

    config = merged_or_exit(args.configfile)
    if args.every and config["pixelcnn"]["kind"] != "plain":
        ap.error("--every is built for the plain kind only")

    from generator import pool_ratios  # bench/generator.py: the families its line reports

    from dualgen.core import env

    work = Path(args.workdir)
    out = work / "results" / config["study"]
    pc, sm = config["pixelcnn"], config["sample"]
    seed = pc["seed"] if args.seed is None else args.seed
    env.setup_tensorflow(args.cores, seed, config["determinism"])
    import pandas as pd

    from dualgen.core import artifacts
    from dualgen.generate import calibrate as pool_calibrate
    from dualgen.generate import common as generation
    from dualgen.generate.pixelcnn import model as pmodel
    from dualgen.generate.pixelcnn import sample as psample
    from dualgen.generate.pixelcnn import train as ptrain

    codes = out / "codes"
    grids = np.load(codes / "grids.npy")
    split = pd.read_csv(codes / "codes.csv")["split"].to_numpy()
    train, val = split == "train", split == "val"
    enc = generation.encoded_patches(codes, out / "patches", out / "datasets")
    px = enc.images.shape[1] // grids.shape[1] * args.block
    top = layouts(enc.images, train, args.k_top, px, seed)
    th, tw = top.shape[1:]
    print(f"layout: {args.k_top} shades of {px}x{px} px blocks, {th}x{tw} per patch", flush=True)
    # the layout of each training copy: the same symmetry as its micrograph (encode's flips.npy / turns.npy order)
    top_copies = {"flips.npy": generation.flips(top[train]), "turns.npy": generation.turns(top[train])}
    copies = generation.augment_copies(codes, pc["augment"], train)
    top_train, _ = generation.training_grids(
        top[train], np.zeros((int(train.sum()), 0), np.float32), pc["augment"], top_copies
    )
    bottom_train, cond_train = generation.training_grids(grids[train], as_cond(top[train]), pc["augment"], copies)
    fit = dict(epochs=pc["epochs"], batch_size=pc["batch_size"], learning_rate=pc["learning_rate"], seed=seed)
    top_model = pmodel.PixelCNN(
        args.k_top, pc["filters"], pc["num_blocks"], "plain", seed, grid_shape=(th, tw), dilations=None
    )
    ptrain.train_pixelcnn(top_model, top_train, top[val], **fit)
    print(f"top prior: validation NLL {ptrain.validation_nll(top_model, top[val]):.4f} nats per block", flush=True)
    model = make_layout_model(
        pmodel.PixelCNN,
        args.k_top,
        (th, tw),
        args.block,
        every=args.every,
        num_embeddings=json.loads((codes / "meta.json").read_text())["num_embeddings"],
        filters=pc["filters"],
        num_blocks=pc["num_blocks"],
        kind=pc["kind"],
        seed=seed,
        grid_shape=grids.shape[1:],
        dilations=pc["dilations"],
    )
    vcond = as_cond(top[val])
    ptrain.train_pixelcnn(
        model, bottom_train, grids[val], **fit, train_cond=cond_train, val_cond=vcond, dropout=pc["dropout"]
    )
    folder_nll = json.loads((out / "pixelcnn" / pc["kind"] / "meta.json").read_text())["val_nll"]
    print(
        f"validation NLL: folder's prior {folder_nll:.4f}, under the real layout "
        f"{ptrain.validation_nll(model, grids[val], cond=vcond):.4f} nats per cell",
        flush=True,
    )

    def draw_layouts(n, seed_, stream):
        return psample._sample(
            psample._fill_fast, top_model, n, th, tw, seed_, 1.0, sm["batch_size"], None, None, top_bias, stream=stream
        )

    top_bias, _ = psample.calibrate(
        top_model,
        psample.code_frequencies(top[train], args.k_top),
        th,
        tw,
        seed=sm["seed"],
        temperature=1.0,
        batch_size=sm["batch_size"],
        stream=101,
        log=lambda m: print("layout " + m, flush=True),
    )

    def calibration_draws(model_, n, height, width, seed_, temperature, batch_size, bias, stream):
        lay = as_cond(draw_layouts(n, seed_, (202, *stream)))
        return psample._sample(
            psample._fill_fast, model_, n, height, width, seed_, temperature, batch_size, None, lay, bias, stream=stream
        )

    psample._calibration_draws = calibration_draws  # the sample step's calibration, with layouts drawn first
    h, w = grids.shape[1:]
    k = model.num_embeddings
    bias, _ = pool_calibrate.calibrate(sm, model, h, w, k, codes, out / "vqvae")
    n = json.loads((out / "synthetic" / "codes" / "meta.json").read_text())["n"]
    if args.real_layouts:
        lay = as_cond(np.resize(top[train], (n, th, tw)))
    else:
        lay = as_cond(draw_layouts(n, sm["seed"], (303,)))
    pool = psample.sample_fast(
        model, n, h, w, seed=sm["seed"], temperature=sm["temperature"], batch_size=sm["batch_size"], cond=lay, bias=bias
    )
    target = out / "synthetic" / "codes" / "grids.npy"
    with artifacts.atomic_path(target) as tmp:
        np.save(tmp, pool.astype(np.int32), allow_pickle=False)
    print(f"wrote {n} layout-prior grids over {target}", flush=True)
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), f"results/{config['study']}/fidelity",
        "--cores", str(args.cores), "--rerun-triggers", "mtime", "--forcerun", "decode",
        "--configfile", *[str(Path(f).resolve()) for f in args.configfile],
    ]  # fmt: skip
    with open(work / "layout_snakemake.log", "w") as log:  # decode, postprocess, fidelity on the new grids
        subprocess.run(cmd, cwd=work, check=True, stdout=log, stderr=subprocess.STDOUT)
    print(f"layout prior: {pool_ratios(json.loads((out / 'fidelity' / 'meta.json').read_text()))}")


if __name__ == "__main__":
    main()
