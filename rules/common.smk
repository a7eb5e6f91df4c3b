# Paths, config checks and helpers shared by all rules.
import json
import os
import re
import shlex
import sys

from dualgen.core.config import check_config
from dualgen.core import devices
from dualgen.core.errors import DualgenError
from dualgen.segment import mixes
from dualgen.segment.mixes import enumerate_mixes, pool_size
from dualgen.segment.common import seed_dir

try:
    check_config(config)  # once: one clear line naming the key (unknown, wrong type, out of range, ...); defaults
except DualgenError as err:
    raise SystemExit(f"dualgen: error: {err}")

STUDY = config["study"]
OUT = f"results/{STUDY}"
LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"
ENV = "../envs/dualgen.yaml"
DEMO_DIR = "data/demo"
GPU_PER_JOB = 1 if devices.available() else 0  # CPU-only hosts: no gpu cap on parallel jobs
SCRIPTS = os.path.join(workflow.basedir, "scripts")


def _python():
    """The Python that runs Snakemake (its venv), or the conda env's `python` under --sdm conda."""
    methods = {str(m).lower() for m in getattr(workflow.deployment_settings, "deployment_method", ())}
    if any("conda" in m for m in methods):  # the env has the pinned packages; dualgen itself comes from the checkout
        return f"PYTHONPATH={shlex.quote(workflow.basedir)} python"
    return sys.executable


PYTHON = _python()


def script(name):
    """The command that runs scripts/<name>.py (absolute paths, so --directory and cluster jobs work)."""
    return f"{PYTHON} {SCRIPTS}/{name}.py"


def work_dir(output):
    """Where a training step keeps its resumable checkpoints: results/<study>/work/<output path>."""
    return os.path.join(OUT, "work", os.path.relpath(output, OUT))


def data_settings():
    """The data section, with the demo folders filled in when dualgen makes the data itself."""
    data = dict(config["data"])
    if data["source"] == "demo":
        data.update(images=f"{DEMO_DIR}/images", masks=f"{DEMO_DIR}/masks_lq", hq_masks=f"{DEMO_DIR}/masks_hq",
                    mask_format="palette", crop_height=None)
    return data


def data_inputs():
    if config["data"]["source"] == "demo":
        return [DEMO_DIR]
    data = config["data"]
    return [d for d in (data["images"], data["masks"], data.get("hq_masks")) if d]


def as_json(**sections):
    """One JSON string of settings for a script's --settings (params: a change reruns exactly this rule)."""
    return json.dumps(sections, sort_keys=True)


# Classes as the compute steps see them (name and mask value: what results depend on) and as the figure rules
# see them (with the display colour). A colour therefore reaches only figure rules.
CLASSES = [{k: v for k, v in c.items() if k not in ("color", "thin")} for c in config["classes"]]
FIGURE_CLASSES = [{k: v for k, v in c.items() if k != "thin"} for c in config["classes"]]
THIN_CLASSES = [c["name"] for c in config["classes"] if c.get("thin")]  # only the cleaning reads it


def postprocess_settings():
    """The post-processing settings that change the cleaned masks (not the figure's pair count), with the classes
    the smoothing leaves alone (classes[].thin) as smooth_keep."""
    return {**{k: v for k, v in config["postprocess"].items() if k != "figure_pairs"}, "smooth_keep": THIN_CLASSES}


def mix_settings(mix):
    """What build_mix needs of one mix: its own fields (adding a level does not touch the other mixes)."""
    return as_json(mix=mixes.fields(MIX[mix]))


try:
    MIXES = enumerate_mixes(config["mixes"], config["datasets"])
except DualgenError as err:
    raise SystemExit(f"dualgen: error: {err}")
POOL_SIZE = pool_size(config["mixes"], config["datasets"])
CONDITION = config["pixelcnn"]["condition"]
CONDITIONED = CONDITION != "none"
PIXELCNN_KINDS = [config["pixelcnn"]["kind"]]
if config["pixelcnn"].get("compare"):
    PIXELCNN_KINDS.append("gated" if PIXELCNN_KINDS[0] == "plain" else "plain")


def pixelcnn_settings(conditioned=False):
    """PixelCNN settings that change the trained model (not which kind the sampler uses); the conditioning mode
    only for the conditioned prior (switching it on leaves the unconditioned priors as they are)."""
    drop = ("kind", "compare") + (() if conditioned else ("condition",))
    return {k: v for k, v in config["pixelcnn"].items() if k not in drop}


MIX = {m.name: m for m in MIXES}
MIX_PATTERN = "|".join(MIX) or "NO_MIX"
PRETEST_MIX = "BMQ_000"


def pool_input(wildcards):
    """The synthetic pool, only for mixes that use synthetic pairs (0 % mixes need no generator): the balanced pool
    for the balanced arm."""
    mix = MIX[wildcards.mix]
    if mix.n_synth == 0:
        return []
    return [conditioned_pool("balanced") if mix.balanced else f"{OUT}/synthetic/clean"]


SEEDS = list(config["unet"]["seeds"])
# One train_unet job trains a chunk of a mix's seeds (unet.seeds_per_job, in the order of the list): one TensorFlow
# start and one trace for all of them. A chunk is named by its seeds (unet/<mix>/seeds0_1_2/seed<k>/).
_PER_JOB = int(config["unet"]["seeds_per_job"])  # the schema fills its default when the workflow loads
SEED_CHUNKS = {"_".join(map(str, SEEDS[i:i + _PER_JOB])): SEEDS[i:i + _PER_JOB] for i in range(0, len(SEEDS), _PER_JOB)}
CHUNK_OF_SEED = {seed: chunk for chunk, seeds in SEED_CHUNKS.items() for seed in seeds}


def unet_chunk(mix, seed):
    """The train_unet output that holds the training (mix, seed)."""
    return f"{OUT}/unet/{mix}/seeds{CHUNK_OF_SEED[int(seed)]}"


def unet_run(mix, seed):
    """The folder of the training (mix, seed) inside its chunk."""
    return str(seed_dir(unet_chunk(mix, seed), seed))


# unet keys one budget uses and the other does not (unet_settings gives the unused ones as null)
UNET_BUDGET_KEYS = {"updates": ("updates", "validate_every"), "epochs": ("epochs", "early_stopping_patience")}
# unet keys a training does not depend on: the list (a training gets its own seed) and how often it saves a
# resumable state (the job gets that as a resource, so changing it reruns nothing)
UNET_NOT_SETTINGS = ("seeds", "seeds_per_job", "checkpoint_every_s")


def unet_settings(mix, chunk):
    """Everything the trainings of a chunk of seeds depend on, and nothing else: a new seed in the list trains only
    its own jobs; the other budget's keys, and pretrain_share outside the pretrain arm, are null. The job trains
    each seed of ``seeds`` with these settings and ``seed`` set to it (each training's meta.json has its own)."""
    augmentation = config["mixes"].get("augmentation", []) if MIX[mix].augment else []
    u = config["unet"]
    unused = [k for budget, keys in UNET_BUDGET_KEYS.items() if budget != u["budget"] for k in keys]
    unused += [] if MIX[mix].pretrain else ["pretrain_share"]
    unet = {k: None if k in unused else v for k, v in u.items() if k not in UNET_NOT_SETTINGS}
    return as_json(unet=unet, seeds=SEED_CHUNKS[chunk], classes=CLASSES, augmentation=augmentation,
                   mix=mixes.fields(MIX[mix]), determinism=config["determinism"])


def all_targets():
    targets = [f"{OUT}/datasets", f"{OUT}/codes", f"{OUT}/reconstruction"]
    targets += [f"{OUT}/pixelcnn/{kind}" for kind in PIXELCNN_KINDS]
    targets += [f"{OUT}/figures/{kind}" for kind in ("datasets", "lq", "vqvae", "codes")]
    if POOL_SIZE > 0:
        targets += [f"{OUT}/synthetic/clean", f"{OUT}/figures/synthetic", f"{OUT}/figures/cleaning"]
        targets += [f"{OUT}/fidelity", f"{OUT}/figures/fidelity", f"{OUT}/figures/generator_card"]
        if PRETEST_MIX in MIX:
            targets += [f"{OUT}/pretest", f"{OUT}/figures/pretest"]
    if CONDITIONED:
        targets += [f"{OUT}/pixelcnn/{kind}_cond" for kind in PIXELCNN_KINDS]
        targets += [f"{OUT}/conditioning", f"{OUT}/figures/conditioning"]
    if MIXES:
        targets += [f"{OUT}/study", f"{OUT}/figures/study", f"{OUT}/figures/findings"]
    return targets


def overlay_mixes():
    """report.overlay_mixes that this config trains (a figure setting: reaches only figure_study)."""
    return [m for m in config["report"]["overlay_mixes"] if m in MIX]


def curve_mixes():
    """The mixes whose validation curves show that trainings converged: each base's 0 % and largest level."""
    out = []
    series = [m for m in MIXES if not (m.augment or m.pretrain or m.balanced)]
    for base in dict.fromkeys(m.base for m in series):
        levels = [m for m in series if m.base == base]
        out += sorted({levels[0].name, max(levels, key=lambda m: m.percent).name})
    return out


def study_figure_inputs(wildcards):
    """figure_study reads the study tables, the test set, and the U-Nets of the overlay and curve mixes."""
    inputs = {"study": f"{OUT}/study", "patches": f"{OUT}/patches", "datasets": f"{OUT}/datasets"}
    for mix in dict.fromkeys(overlay_mixes() + curve_mixes()):
        for chunk in SEED_CHUNKS:
            inputs[f"unet_{mix}_seeds{chunk}"] = f"{OUT}/unet/{mix}/seeds{chunk}"
    return inputs


def figure_rule_shell():
    """The command of every figure rule: scripts/figure.py with the rule's kind, inputs and settings."""
    return "{params.run} --kind {params.kind} {params.inputs} --out {output} --settings {params.settings:q} --log {log}"


def figure_inputs(wildcards, input):
    """--input NAME=PATH for each named input of a figure rule."""
    return " ".join(f"--input {name}={path}" for name, path in input.items())


# Generator variants for the fidelity step (rules/generate.smk): the study's pool (pixelcnn.kind at
# sample.temperature) and each trained prior at each of sample.temperatures, named <kind>_t<temperature>.
def sample_settings(temperature=None):
    """The sample section as one unconditioned sampling run uses it: its own temperature, not the list of fidelity
    variants, nor the conditioned sampler's targets."""
    sm = {k: v for k, v in config["sample"].items() if k not in ("temperatures", "targets")}
    return sm if temperature is None else {**sm, "temperature": float(temperature)}


def variant_name(kind, temperature):
    return f"{kind}_t{float(temperature):g}"


POOL_VARIANT = variant_name(config["pixelcnn"]["kind"], config["sample"]["temperature"])
VARIANTS = {POOL_VARIANT: (config["pixelcnn"]["kind"], float(config["sample"]["temperature"]))}
for _kind in PIXELCNN_KINDS:
    for _t in config["sample"].get("temperatures", [config["sample"]["temperature"]]):
        VARIANTS.setdefault(variant_name(_kind, _t), (_kind, float(_t)))
EXTRA_VARIANTS = [v for v in VARIANTS if v != POOL_VARIANT]
VARIANT_PATTERN = "|".join(re.escape(v) for v in EXTRA_VARIANTS) or "NO_VARIANT"
VARIANT_DIR = f"{OUT}/synthetic/variants"


def variant_pool(name):
    """The cleaned pairs of a generator variant: the study's pool itself, or its own small sample."""
    return f"{OUT}/synthetic/clean" if name == POOL_VARIANT else f"{VARIANT_DIR}/{name}/clean"


def scored_variants():
    """Every variant the fidelity step scores: name -> (kind, temperature, its cleaned pairs). With
    pixelcnn.condition also the conditioned prior asked for real patches' fractions (its "data" pool)."""
    out = {name: (kind, t, variant_pool(name)) for name, (kind, t) in VARIANTS.items()}
    if CONDITIONED:
        t = float(config["sample"]["temperature"])
        out[f"{COND_KIND}_data_t{t:g}"] = (COND_KIND, t, conditioned_pool("data"))
    return out


def fidelity_inputs(wildcards):
    inputs = {"patches": f"{OUT}/patches", "datasets": f"{OUT}/datasets"}
    inputs.update({f"variant_{name}": pool for name, (_, _, pool) in scored_variants().items()})
    return inputs


def fidelity_variants():
    return [{"name": name, "kind": kind, "temperature": t, "pool": name == POOL_VARIANT}
            for name, (kind, t, _) in scored_variants().items()]


def generator_card_inputs(wildcards):
    """The card reads what the generator's steps measured: VQ-VAE, reconstruction, each prior, fidelity, the
    pre-test."""
    inputs = {"vqvae": f"{OUT}/vqvae", "reconstruction": f"{OUT}/reconstruction", "fidelity": f"{OUT}/fidelity",
              "sample": f"{OUT}/synthetic/codes"}
    inputs.update({f"pixelcnn_{kind}": f"{OUT}/pixelcnn/{kind}" for kind in PIXELCNN_KINDS})
    if CONDITIONED:
        inputs.update({f"pixelcnn_{kind}_cond": f"{OUT}/pixelcnn/{kind}_cond" for kind in PIXELCNN_KINDS})
    if PRETEST_MIX in MIX:
        inputs["pretest"] = f"{OUT}/pretest"
    return inputs


# Conditioned generation (pixelcnn.condition): a conditioned prior of each trained kind next to the unconditioned
# one (pixelcnn/<kind>_cond); from the study's kind, two conditioned pools: "balanced" (sample.targets; the
# balanced arm's pairs) and "data" (targets drawn from real patches: does the prior obey?), each sampled, decoded
# and cleaned like the study's pool, under synthetic/conditioned/<target>/.
COND_KIND = f"{config['pixelcnn']['kind']}_cond"
COND_TARGETS = {"balanced": config["sample"]["targets"], "data": "data"}
COND_DIR = f"{OUT}/synthetic/conditioned"
BALANCED_POOL_SIZE = pool_size(config["mixes"], config["datasets"], balanced=True)


def conditioned_pool(target):
    return f"{COND_DIR}/{target}/clean"


def conditioned_pool_size(target):
    """The balanced pool holds what the balanced mixes need (at least fidelity.n pairs to measure obedience)."""
    n = config["fidelity"]["n"]
    return max(BALANCED_POOL_SIZE, n) if target == "balanced" else n


def conditioned_sample_settings(target):
    """The unconditioned sampler's settings plus the targets of this pool (calibrate is for unconditioned priors)."""
    plain = {k: v for k, v in sample_settings().items() if k != "calibrate"}
    return as_json(sample={**plain, "targets": COND_TARGETS[target]}, condition=CONDITION, classes=CLASSES,
                   determinism=config["determinism"])


def conditioning_inputs(wildcards):
    inputs = {}
    if POOL_SIZE > 0:  # the unconditioned pool: what fractions come out when nobody asks
        inputs["reference"] = f"{OUT}/synthetic/clean"
    for target in COND_TARGETS:
        inputs[f"{target}_codes"] = f"{COND_DIR}/{target}/codes"
        inputs[f"{target}_clean"] = conditioned_pool(target)
    return inputs
