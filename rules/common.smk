# What every stage needs: the checked config, paths, how a rule runs a script, the settings string, the classes,
# the mixes and seeds, and where the conditioned pools are. A stage's own helpers are in its rules file.
import json
import os
import shlex
import sys

from dualgen.core.config import check_config
from dualgen.core import devices
from dualgen.core.errors import DualgenError
from dualgen.segment.mixes import enumerate_mixes, pool_size

try:
    check_config(config)  # once: one clear line naming the key (unknown, wrong type, out of range, ...); fills defaults
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


def as_json(**sections):
    """One JSON string of settings for a script's --settings (params: a change reruns exactly this rule)."""
    return json.dumps(sections, sort_keys=True)


# Classes as the compute steps see them: name and mask value, what results depend on (the figure rules add the
# display colour: rules/report.smk).
CLASSES = [{k: v for k, v in c.items() if k not in ("color", "thin")} for c in config["classes"]]

try:
    MIXES = enumerate_mixes(config["mixes"], config["datasets"])
except DualgenError as err:
    raise SystemExit(f"dualgen: error: {err}")
MIX = {m.name: m for m in MIXES}
POOL_SIZE = pool_size(config["mixes"], config["datasets"])
PRETEST_MIX = "BMQ_000"

# The trained priors: pixelcnn.kind (the pool's) first, then those pixelcnn.compare names (true: gated beside plain,
# plain beside gated or maskgit; a list: those kinds).
PIXELCNN_KINDS = [config["pixelcnn"]["kind"]]
_COMPARE = config["pixelcnn"]["compare"]
if _COMPARE is True:
    _COMPARE = ["gated" if PIXELCNN_KINDS[0] == "plain" else "plain"]
PIXELCNN_KINDS += [k for k in dict.fromkeys(_COMPARE or []) if k != PIXELCNN_KINDS[0]]
CONDITION = config["pixelcnn"]["condition"]
CONDITIONED = CONDITION != "none"
# The conditioned pools (pixelcnn.condition; rules/generate.smk): "balanced" (sample.targets, the balanced arm's
# pairs) and "data" (targets drawn from real patches), under synthetic/conditioned/<target>/.
COND_DIR = f"{OUT}/synthetic/conditioned"


def conditioned_pool(target):
    """The cleaned pairs of a conditioned pool."""
    return f"{COND_DIR}/{target}/clean"


SEEDS = list(config["unet"]["seeds"])
# One train_unet job trains a chunk of a mix's seeds (unet.seeds_per_job, in the order of the list): one TensorFlow
# start and one trace for all of them. A chunk is named by its seeds (unet/<mix>/seeds0_1_2/seed<k>/).
_PER_JOB = int(config["unet"]["seeds_per_job"])
SEED_CHUNKS = {
    "_".join(map(str, SEEDS[i : i + _PER_JOB])): SEEDS[i : i + _PER_JOB] for i in range(0, len(SEEDS), _PER_JOB)
}


def all_targets():
    """What `snakemake` makes by default (the Snakefile asks for it once every stage is included): every stage's
    results and figures this config asks for."""
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
        targets += [f"{OUT}/study", f"{OUT}/figures/study", f"{OUT}/figures/findings", f"{OUT}/model"]
        targets.append(f"{OUT}/figures/whole")
    if MIXES and config["predict"]["images"]:
        targets.append(f"{OUT}/predict")
    return targets
