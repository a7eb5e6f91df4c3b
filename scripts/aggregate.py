#!/usr/bin/env python
"""Collect every training's test metrics (mix x seed) into the study's tables; the figures are drawn by
scripts/figure.py study.

Writes OUT/per_image.csv (one row per mix, seed and test image), OUT/metrics.csv (one row per mix: the mean over
seeds of each test-set metric with its Student-t interval over seeds, clipped to [0, 1]), OUT/comparisons.csv
(every mix with synthetic data against its own 0 % mix, paired over test images: mean difference, bootstrap
interval, p value (Wilcoxon over test patches; with stats.resample: source the sign-flip test over test micrographs)
and its Holm adjustment over all comparisons of one metric), and from the whole_image
steps OUT/whole_image.csv (one row per mix, seed or the seed ensemble, and whole test micrograph, scored at the
original resolution) and OUT/whole_comparisons.csv (the same pairs at micrograph level: the seeds' rows paired over
micrographs, each micrograph its own bootstrap cluster, sign-flip test over micrographs), and with the real-only
arm (mixes.real_sizes) OUT/label_equivalence.csv (for every mix with synthetic pairs, the real HQ patch count a
real-only model needs to score as well, Missing Class IoU and mIoU, with a bootstrap interval), OUT/validation.csv
(every mix and seed's validation Missing Class IoU on the real HQ validation patches), meta.json.
"""

from pathlib import Path

from dualgen.core import artifacts, cli
from dualgen.report import stats
from dualgen.segment import evaluation, mixes

HEADLINE = ("accuracy", "miou", "missing_class_iou")


def main(args):
    s = cli.settings(args)
    all_mixes = [mixes.Mix(**m) for m in s["mixes"]]
    names = [c["name"] for c in s["classes"]]
    metric_cols = list(HEADLINE) + [f"iou_{n}" for n in names]
    per_image = evaluation.per_image_table(args.metrics, all_mixes)
    st = s["stats"]
    table = evaluation.mix_table(per_image, all_mixes, metric_cols, st["level"])
    comparisons = stats.comparison_table(
        per_image, mixes.comparison_pairs(all_mixes), metric_cols, st["resample"], st["n_boot"], st["seed"], st["level"]
    )
    for line in stats.sentences(comparisons) if len(comparisons) else ["no comparisons: no mix has a 0 % reference"]:
        print(line, flush=True)
    metas = [artifacts.read_json(Path(d) / "meta.json") for d in args.real]
    short = [m["mix"]["name"] for m in metas if "short" in m]  # sizes the data could not fill: off the curve
    labels = evaluation.equivalence_table(
        per_image,
        all_mixes,
        ["missing_class_iou", "miou"],
        st["resample"],
        st["n_boot"],
        st["seed"],
        st["level"],
        short,
    )
    for line in labels.loc[labels["metric"] == "missing_class_iou", "sentence"]:
        print(line, flush=True)
    whole = evaluation.whole_image_table(args.whole, all_mixes)
    per_micrograph = whole[whole["seed"] != evaluation.ENSEMBLE].assign(image=whole["micrograph"])
    per_micrograph = per_micrograph.assign(source=per_micrograph["micrograph"], seed=per_micrograph["seed"].astype(int))
    whole_comparisons = stats.comparison_table(
        per_micrograph, mixes.comparison_pairs(all_mixes), metric_cols, "source", st["n_boot"], st["seed"], st["level"]
    )
    extra = {
        "n_mixes": len(table),
        "n_trainings": int(per_image.groupby(["mix", "seed"]).ngroups),
        "n_test_images": int(per_image["image"].nunique()),
        "n_sources": int(per_image["source"].nunique()),
    }
    inputs = [Path(d) / "metrics.json" for d in args.metrics] + [Path(d) / evaluation.WHOLE for d in args.whole]
    with artifacts.artifact_dir(args.out, "aggregate", s, st["seed"], inputs, extra) as tmp:
        per_image.to_csv(tmp / "per_image.csv", index=False)
        table.to_csv(tmp / "metrics.csv", index=False)
        comparisons.to_csv(tmp / "comparisons.csv", index=False)
        whole.to_csv(tmp / "whole_image.csv", index=False)
        labels.to_csv(tmp / "label_equivalence.csv", index=False)
        evaluation.validation_table(args.whole).to_csv(tmp / "validation.csv", index=False)
        whole_comparisons.to_csv(tmp / "whole_comparisons.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--metrics", required=True, nargs="+", help="the evaluate folders, one per mix and seed")
    p.add_argument("--whole", required=True, nargs="+", help="the whole_image folders, one per mix")
    p.add_argument("--real", nargs="*", default=[], help="the build_mix folders of the real-only arm")
    p.add_argument("--out", required=True)
    cli.run(main, p)
