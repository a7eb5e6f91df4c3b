"""The sentences that open the report's Study section (figures/findings/findings.html), from the study's tables."""

import html

from dualgen.core.artifacts import atomic_path
from dualgen.report import stats

TITLE = "Findings: Missing Class IoU of every mix against its 0 % mix"
FRONT = "front.rst"  # the report's first page (Snakefile: report directive), written by figure_findings


def lines(table, comparisons, level, classes):
    """The findings as lines: ``stats.sentences`` of the Missing Class IoU of every comparison, how the intervals
    and p values were made, and for the balanced arm the IoU of each class against its references. ``table``,
    ``comparisons``: the study's metrics.csv and comparisons.csv; ``level``: its stats.level."""
    if not len(comparisons):
        return ["No comparisons: the config trains no 0 % mix to compare with."]
    unit = comparisons["resample"].iloc[0]
    out = stats.sentences(comparisons) + [
        f"Intervals: {level:.0%} percentile bootstrap over test {'micrographs' if unit == 'source' else 'patches'}"
        f" (seeds resampled within each), "
        f"{'sign-flip test over test micrographs' if unit == 'source' else 'Wilcoxon signed-rank over test images'}"
        f", Holm over the comparisons of"
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


def _effect(comparisons, mix, reference, metric="missing_class_iou"):
    """'+0.031 [+0.012, +0.050] Missing Class IoU over SHQ_000 (sign-flip over 16 micrographs, Holm p = 0.004)'."""
    row = comparisons[(comparisons["mix"] == mix) & (comparisons["reference"] == reference)]
    row = row[row["metric"] == metric]
    if not len(row):
        return f"no comparison with {reference}"
    r = row.iloc[0]
    if r["test"] == "sign-flip":
        n = int(r["n_sources"])
        unit = f"sign-flip over {n} test micrograph{'' if n == 1 else 's'}"
    else:
        n = int(r["n_images"])
        unit = f"Wilcoxon over {n} test patch{'' if n == 1 else 'es'}"
    return (
        f"{stats._number(r['mean_diff'], True)} [{stats._number(r['ci_low'], True)}, "
        f"{stats._number(r['ci_high'], True)}] Missing Class IoU over {reference} ({unit}, Holm p "
        f"{stats._format_p(r['p_holm'])}{'' if r['significant'] else ', not significant'})"
    )


def front(table, comparisons, labels, validation):
    """The report's first page as reStructuredText lines: per base, the mix that validation picks (mean over seeds
    of the validation Missing Class IoU), its effect on the test set (the comparisons table, at its unit), the
    labels it saved (label_equivalence.csv); one line each on the pure-synthetic sets and on augmentation."""
    score = validation.groupby("mix")["validation_missing_class_iou"].mean()
    out = []
    series = table[table["arm"] == "real + synthetic"]
    for base in dict.fromkeys(series["base"]):
        mixes = [m for m in series.loc[series["base"] == base, "mix"] if m in score.index]
        if not mixes:
            continue
        best = max(mixes, key=lambda m: (score[m], -mixes.index(m)))
        zero = f"{base}_000"
        line = f"- **{base}**: validation picks **{best}** (validation Missing Class IoU {score[best]:.3f})"
        if best == zero:
            out.append(line + ": no amount of synthetic pairs beat the real data alone on validation.")
            continue
        line += f"; on the test set {_effect(comparisons, best, zero)}"
        row = labels[(labels["mix"] == best) & (labels["metric"] == "missing_class_iou")] if len(labels) else labels
        out.append(line + (f". {row['sentence'].iloc[0]}." if len(row) else "."))
    synthetic = table[table["arm"] == "synthetic only"]
    if len(synthetic):
        best = max(synthetic["mix"], key=lambda m: score.get(m, float("-inf")))
        ref = comparisons.loc[comparisons["mix"] == best, "reference"]
        effect = _effect(comparisons, best, ref.iloc[0]) if len(ref) else "no reference trained"
        out.append(f"- **Synthetic only**: the best by validation, **{best}**, scores {effect}.")
    augmented = table[table["arm"] == "augmentation"]
    for mix in augmented["mix"]:
        ref = comparisons.loc[comparisons["mix"] == mix, "reference"]
        if len(ref):
            out.append(f"- **Augmentation** ({mix}, no synthetic data): {_effect(comparisons, mix, ref.iloc[0])}.")
    return out


def write_front(intro, lines, path):
    """The report's first page: ``intro`` (report/workflow.rst, a Jinja template the report renders) and the
    findings ``lines`` under a heading."""
    text = (
        intro.rstrip() + "\n\n**The answer of this study** (details: Study > Findings; numbers in ``study/*.csv``)\n\n"
    )
    text += "\n".join(lines) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
