# Paths, config checks and helpers shared by all rules.
import json
import os
import sys

from snakemake.utils import validate

from dualgen.config import check_config
from dualgen import devices
from dualgen.errors import DualgenError
from dualgen.mixes import enumerate_mixes, pool_size

try:
    check_config(config)  # one clear line naming the key (unknown key, wrong type, out of range, ...)
except DualgenError as err:
    raise SystemExit(f"dualgen: error: {err}")
validate(config, "../schemas/config.schema.yaml")

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
    return "python" if any("conda" in m for m in methods) else sys.executable


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


try:
    MIXES = enumerate_mixes(config["mixes"], config["datasets"])
except DualgenError as err:
    raise SystemExit(f"dualgen: error: {err}")
POOL_SIZE = pool_size(config["mixes"], config["datasets"])
PIXELCNN_KINDS = [config["pixelcnn"]["kind"]]
if config["pixelcnn"].get("compare"):
    PIXELCNN_KINDS.append("gated" if PIXELCNN_KINDS[0] == "plain" else "plain")


def pixelcnn_settings():
    """PixelCNN settings that change the trained model (not which kind the sampler uses)."""
    return {k: v for k, v in config["pixelcnn"].items() if k not in ("kind", "compare")}


MIX = {m.name: m for m in MIXES}
MIX_PATTERN = "|".join(MIX) or "NO_MIX"
PRETEST_MIX = "BMQ_000"


def pool_input(wildcards):
    """The synthetic pool, only for mixes that use synthetic pairs (0 % mixes need no generator)."""
    return [f"{OUT}/synthetic/clean"] if MIX[wildcards.mix].n_synth > 0 else []


def unet_settings(mix):
    augmentation = config["mixes"].get("augmentation", []) if MIX[mix].augment else []
    return as_json(unet=config["unet"], classes=config["classes"], augmentation=augmentation)


def all_targets():
    targets = [f"{OUT}/datasets", f"{OUT}/codes"]
    targets += [f"{OUT}/pixelcnn/{kind}" for kind in PIXELCNN_KINDS]
    if POOL_SIZE > 0:
        targets += [f"{OUT}/synthetic/clean", f"{OUT}/figures/synthetic"]
        if PRETEST_MIX in MIX:
            targets.append(f"{OUT}/pretest")
    if MIXES:
        targets.append(f"{OUT}/study")
    return targets
