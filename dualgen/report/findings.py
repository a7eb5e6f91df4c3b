"""The sentences that open the report's Study section (figures/findings/findings.html), from the study's tables."""

import html

from dualgen.core.artifacts import atomic_path
from dualgen.report import stats

TITLE = "Findings: Missing Class IoU of every mix against its 0 % mix"


def lines(table, comparisons, level, classes):
    """The findings as lines: ``stats.sentences`` of the Missing Class IoU of every comparison, how the intervals
    and p values were made, and for the balanced arm the IoU of each class against its references. ``table``,
    ``comparisons``: the study's metrics.csv and comparisons.csv; ``level``: its stats.level."""
    if not len(comparisons):
        return ["No comparisons: the config trains no 0 % mix to compare with."]
    unit = comparisons["resample"].iloc[0]
    out = stats.sentences(comparisons) + [
        f"Intervals: {level:.0%} percentile bootstrap over test {'micrographs' if unit == 'source' else 'patches'}"
        f" (seeds resampled within each), Wilcoxon signed-rank over test images, Holm over the comparisons of"
        f" each metric; {int(table['n_seeds'].max())} seed(s) per mix."
    ]
    balanced = comparisons[comparisons["mix"].isin(table.loc[table["arm"] == "balanced", "mix"])]
    if len(balanced):
        out.append(
            "Balanced arm (synthetic pairs from the conditioned prior asked for sample.targets), IoU of "
            "each class against the 0 % mix and against the unconditioned mix of the same size:"
        )
        for name in (c["name"] for c in classes):
            out += [line for line in stats.sentences(balanced, f"iou_{name}", f"{name} IoU") if " vs " in line]
    return out


def write_html(title, sentences, path):
    """``sentences`` as a list under ``title`` in a small HTML page."""
    items = "\n".join(f"<li>{html.escape(line)}</li>" for line in sentences)
    text = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family: sans-serif; font-size: 14px'><h3>{html.escape(title)}</h3>"
        f"<ul>\n{items}\n</ul></body></html>\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text)
