#!/usr/bin/env python
"""Collect every training's test metrics (mix x seed) into the study's tables; the figures are drawn by
scripts/figure.py study.

Writes OUT/per_image.csv (one row per mix, seed and test image), OUT/metrics.csv (one row per mix: the mean over
seeds of each test-set metric with its Student-t interval over seeds, clipped to [0, 1]), OUT/comparisons.csv
(every mix with synthetic data against its own 0 % mix, paired over test images: mean difference, bootstrap
interval, Wilcoxon and Holm-adjusted p values; Holm over all comparisons of one metric), meta.json.
"""

from pathlib import Path

import numpy as np
import pandas as pd

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

    summary = stats.mix_summary(per_image, metric_cols, level=st["level"])
    wide = summary.pivot(index="mix", columns="metric", values=["mean", "ci_low", "ci_high"])
    rows = []
    for m in all_mixes:
        row = {
            "mix": m.name,
            "base": m.base,
            "percent": m.percent,
            "arm": evaluation.arm(m),
            "n_real": m.n_real,
            "n_synth": m.n_synth,
            "augmented": m.augment,
            "pretrain": m.pretrain,
            "n_seeds": int(per_image.loc[per_image["mix"] == m.name, "seed"].nunique()),
        }
        for col in metric_cols:  # every metric lies in [0, 1]: a t interval over few seeds is clipped to it
            row[col] = wide.loc[m.name, ("mean", col)]
            row[f"{col}_lo"] = float(np.clip(wide.loc[m.name, ("ci_low", col)], 0.0, 1.0))  # NaN (one seed) stays
            row[f"{col}_hi"] = float(np.clip(wide.loc[m.name, ("ci_high", col)], 0.0, 1.0))
        rows.append(row)
    table = pd.DataFrame(rows)

    pairs = mixes.comparison_pairs(all_mixes)
    parts = (
        [
            stats.paired_comparisons(
                per_image,
                pairs,
                [col],
                resample=st["resample"],
                n_boot=st["n_boot"],
                seed=st["seed"],
                level=st["level"],
            )
            for col in metric_cols
        ]
        if pairs
        else []
    )
    comparisons = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(
            columns=[
                "mix",
                "reference",
                "metric",
                "n_images",
                "n_seeds",
                "mean_diff",
                "ci_low",
                "ci_high",
                "p_wilcoxon",
                "p_holm",
                "significant",
            ]
        )
    )
    comparisons.insert(2, "resample", st["resample"])

    for line in stats.sentences(comparisons) if len(comparisons) else ["no comparisons: no mix has a 0 % reference"]:
        print(line, flush=True)
    extra = {
        "n_mixes": len(table),
        "n_trainings": int(per_image.groupby(["mix", "seed"]).ngroups),
        "n_test_images": int(per_image["image"].nunique()),
        "n_sources": int(per_image["source"].nunique()),
    }
    inputs = [Path(d) / "metrics.json" for d in args.metrics]
    with artifacts.artifact_dir(args.out, "aggregate", s, st["seed"], inputs, extra) as tmp:
        per_image.to_csv(tmp / "per_image.csv", index=False)
        table.to_csv(tmp / "metrics.csv", index=False)
        comparisons.to_csv(tmp / "comparisons.csv", index=False)


if __name__ == "__main__":
    p = cli.parser(__doc__)
    p.add_argument("--metrics", required=True, nargs="+", help="the evaluate folders, one per mix and seed")
    p.add_argument("--out", required=True)
    cli.run(main, p)
