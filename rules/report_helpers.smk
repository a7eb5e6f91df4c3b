# Helpers of the figure rules (rules/report.smk).
# The classes with their display colour: a colour reaches only figure rules.
FIGURE_CLASSES = [{k: v for k, v in c.items() if k != "thin"} for c in config["classes"]]
FRONT_PAGE = os.path.abspath(f"{OUT}/figures/findings/front.rst")  # the report's first page (Snakefile)


def figure_rule_shell():
    """The command of every figure rule: scripts/figure.py with the rule's kind, inputs and settings."""
    return "{params.run} --kind {params.kind} {params.inputs} --out {output} --settings {params.settings:q} --log {log}"


def figure_inputs(wildcards, input):
    """--input NAME=PATH for each named input of a figure rule."""
    return " ".join(f"--input {name}={path}" for name, path in input.items())


def overlay_mixes():
    """report.overlay_mixes that this config trains (a figure setting: reaches only figure_study and figure_whole)."""
    return [m for m in config["report"]["overlay_mixes"] if m in MIX]


def curve_mixes():
    """The mixes whose validation curves show that trainings converged: each base's 0 % and largest level."""
    out = []
    series = [m for m in MIXES if not (m.augment or m.pretrain or m.balanced or m.real_only)]
    for base in dict.fromkeys(m.base for m in series):
        levels = [m for m in series if m.base == base]
        out += sorted({levels[0].name, max(levels, key=lambda m: m.percent).name})
    return out


def study_figure_inputs(wildcards):
    """figure_study reads the study tables, the test set, the U-Nets of the overlay and curve mixes, and the
    calibrated budget (unet.updates: auto) for the convergence figure."""
    inputs = {"study": f"{OUT}/study", "patches": f"{OUT}/patches", "datasets": f"{OUT}/datasets"}
    if AUTO_BUDGET:
        inputs["budget"] = BUDGET
    for mix in dict.fromkeys(overlay_mixes() + curve_mixes()):
        for chunk in SEED_CHUNKS:
            inputs[f"unet_{mix}_seeds{chunk}"] = f"{OUT}/unet/{mix}/seeds{chunk}"
    return inputs


def whole_figure_inputs(wildcards):
    """figure_whole reads the study tables (whole_image.csv against metrics.csv), the test micrographs with their
    truth, and the whole_image outputs (the seed ensemble's class maps) of the overlay mixes."""
    inputs = {"study": f"{OUT}/study", "test": f"{OUT}/whole/test"}
    inputs.update({f"whole_{mix}": f"{OUT}/whole/{mix}" for mix in overlay_mixes()})
    return inputs


def generator_card_inputs(wildcards):
    """The card reads what the generator's steps measured: VQ-VAE, reconstruction, each prior, fidelity, the
    pre-test."""
    inputs = {
        "vqvae": f"{OUT}/vqvae",
        "reconstruction": f"{OUT}/reconstruction",
        "fidelity": f"{OUT}/fidelity",
        "sample": f"{OUT}/synthetic/codes",
    }
    inputs.update({f"pixelcnn_{kind}": f"{OUT}/pixelcnn/{kind}" for kind in PIXELCNN_KINDS})
    if CONDITIONED:
        inputs.update({f"pixelcnn_{kind}_cond": f"{OUT}/pixelcnn/{kind}_cond" for kind in PIXELCNN_KINDS})
    if PRETEST_MIX in MIX:
        inputs["pretest"] = f"{OUT}/pretest"
    return inputs
