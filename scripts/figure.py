#!/usr/bin/env python
"""Draw the figures of one step from what the step saved: the only place figure settings arrive.

Kinds (each reads the folders given with --input NAME=PATH, drawn by dualgen.report.kinds.draw_<kind>, and writes
OUT/<figure> + meta.json):
  datasets   preview.png        patches of every base dataset and the test set (datasets, patches)
             class_shares.png   class shares of every split, log axis (datasets)
  lq         hq_vs_lq.png       HQ vs (simulated) LQ masks of a few patches, least to most changed (patches)
  vqvae      recon_steps.png    a validation patch reconstructed during VQ-VAE training (vqvae)
  codes      codes.png          patches, code grids, reconstructions (codes, reconstruction, patches, datasets)
  cleaning   cleaning.png       raw, first classification and cleaned synthetic masks (clean, raw)
  synthetic  synthetic_vs_real.png  synthetic pairs next to real training patches (clean, patches, datasets)
  pretest    pretest.png        the real-data model on synthetic images (pretest, clean)
  study      the study's figures (study, patches, datasets, and unet_<mix>_seeds<chunk> (train_unet outputs) of
             the overlay and curve mixes); balanced.png: the balanced arm per class
  findings   findings.html      the sentences that open the report's Study section (study)
  whole      whole_overlays.png  whole test micrographs at original resolution: truth, each overlay mix's seed
                                 ensemble and its wrong pixels (test, whole_<mix> of the overlay mixes)
             whole_vs_patch.png  each mix's whole-micrograph mIoU / Missing Class IoU vs its patch-level score (study)
  fidelity   s2.png, chords.png, phase_fractions.png, intensities.png, ratios.png: real vs synthetic (fidelity)
  generator_card  card.html   the Generator section's report card (vqvae, reconstruction, sample,
                              pixelcnn_<kind>[_cond], fidelity, pretest)
  conditioning  obedience.png, balanced_pairs.png: requested vs achieved fractions; balanced pairs (conditioning,
                              balanced)
Settings (--settings): classes (with colours) and the kind's own counts.
"""

from dualgen.core import artifacts, cli
from dualgen.report import kinds

KINDS = {
    "datasets": kinds.draw_datasets,
    "lq": kinds.draw_lq,
    "vqvae": kinds.draw_vqvae,
    "codes": kinds.draw_codes,
    "cleaning": kinds.draw_cleaning,
    "synthetic": kinds.draw_synthetic,
    "pretest": kinds.draw_pretest,
    "study": kinds.draw_study,
    "whole": kinds.draw_whole,
    "findings": kinds.draw_findings,
    "fidelity": kinds.draw_fidelity,
    "generator_card": kinds.draw_generator_card,
    "conditioning": kinds.draw_conditioning,
}


def main(args):
    s = cli.settings(args)
    inputs = cli.named_paths(args.input, "--input")
    with artifacts.artifact_dir(args.out, f"figure_{args.kind}", s, None, [], {"input_folders": inputs}) as tmp:
        KINDS[args.kind](inputs, s, tmp)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--kind", required=True, choices=sorted(KINDS))
    p.add_argument("--input", action="append", default=[], help="NAME=PATH of a folder the figure reads (repeat)")
    p.add_argument("--out", required=True, help="output folder (results/<study>/figures/<kind>)")
    cli.run(main, p)
