# Helpers of the segmentation stage (rules/segment.smk).
from dualgen.segment import mixes
from dualgen.segment.evaluation import seed_dir

MIX_PATTERN = "|".join(MIX) or "NO_MIX"
CHUNK_OF_SEED = {seed: chunk for chunk, seeds in SEED_CHUNKS.items() for seed in seeds}
# unet keys one budget uses and the other does not (unet_settings gives the unused ones as null)
UNET_BUDGET_KEYS = {"updates": ("updates", "validate_every"), "epochs": ("epochs", "early_stopping_patience")}
# unet keys a training does not depend on: the list (a training gets its own seed), how often it saves a
# resumable state (the job gets that as a resource, so changing it reruns nothing) and how the budget is calibrated
# (with unet.updates: auto the trainings read the calibrated budget, an input file: budget/budget.json)
UNET_NOT_SETTINGS = ("seeds", "seeds_per_job", "checkpoint_every_s", "calibration")
# unet.updates: auto (budget: updates): calibrate_budget trains each base's 0 % mix with unet.calibration.cap
# updates, choose_budget fixes one budget from the curves (budget/budget.json), every train_unet job reads it
AUTO_BUDGET = config["unet"]["budget"] == "updates" and config["unet"]["updates"] == "auto"
CALIBRATION_BASES = list(config["mixes"]["bases"]) if AUTO_BUDGET else []
BUDGET = f"{OUT}/budget"


def mix_settings(mix):
    """What build_mix needs of one mix: its own fields (adding a level does not touch the other mixes)."""
    return as_json(mix=mixes.fields(MIX[mix]))


def pool_input(wildcards):
    """The synthetic pool, only for mixes that use synthetic pairs (0 % mixes need no generator): the balanced pool
    for the balanced arm."""
    mix = MIX[wildcards.mix]
    if mix.n_synth == 0:
        return []
    return [conditioned_pool("balanced") if mix.balanced else f"{OUT}/synthetic/clean"]


def unet_chunk(mix, seed):
    """The train_unet output that holds the training (mix, seed)."""
    return f"{OUT}/unet/{mix}/seeds{CHUNK_OF_SEED[int(seed)]}"


def mix_chunks(mix):
    """Every train_unet output of ``mix`` (its chunks of seeds)."""
    return [f"{OUT}/unet/{mix}/seeds{chunk}" for chunk in SEED_CHUNKS]


def unet_run(mix, seed):
    """The folder of the training (mix, seed) inside its chunk."""
    return str(seed_dir(unet_chunk(mix, seed), seed))


def unet_section(mix):
    """The unet settings a training of ``mix`` depends on: the other budget's keys, and pretrain_share outside the
    pretrain arm, are null; the keys of UNET_NOT_SETTINGS are left out."""
    u = config["unet"]
    unused = [k for budget, keys in UNET_BUDGET_KEYS.items() if budget != u["budget"] for k in keys]
    unused += [] if MIX[mix].pretrain else ["pretrain_share"]
    return {k: None if k in unused else v for k, v in u.items() if k not in UNET_NOT_SETTINGS}


def unet_settings(mix, chunk):
    """Everything the trainings of a chunk of seeds depend on, and nothing else: a new seed in the list trains only
    its own jobs. The job trains each seed of ``seeds`` with these settings and ``seed`` set to it (each training's
    meta.json has its own). With unet.updates: auto the number of updates is the budget file's (budget_input)."""
    augmentation = config["mixes"]["augmentation"] if MIX[mix].augment else []
    return as_json(
        unet=unet_section(mix),
        seeds=SEED_CHUNKS[chunk],
        classes=CLASSES,
        augmentation=augmentation,
        mix=mixes.fields(MIX[mix]),
        determinism=config["determinism"],
    )


def budget_input(wildcards):
    """The calibrated budget every training reads (unet.updates: auto), else nothing."""
    return [BUDGET] if AUTO_BUDGET else []


def calibration_settings(base):
    """What the calibration trainings of ``base`` depend on: the training settings of its 0 % mix with the cap as
    the number of updates and the calibration's validation period, every seed of unet.seeds. The learning rate
    follows the plateau schedule (cut when validation stalls): a schedule tied to the budget (cosine) would end
    at the cap and put every curve's plateau there. A training stops after unet.calibration.patience validations
    without a better validation IoU (stop_patience): the plateau rule needs no more of its curve."""
    mix, cal = f"{base}_000", config["unet"]["calibration"]
    every = cal["validate_every"] or config["unet"]["validate_every"]
    return as_json(
        unet=unet_section(mix)
        | {"updates": cal["cap"], "validate_every": every, "lr_schedule": "plateau", "stop_patience": cal["patience"]},
        seeds=SEEDS,
        classes=CLASSES,
        mix=mixes.fields(MIX[mix]),
        determinism=config["determinism"],
    )


def budget_settings():
    """What choose_budget depends on: the plateau rule's settings, the margin and cap, and the study's validation
    period (the budget is a multiple of it)."""
    cal = config["unet"]["calibration"]
    keep = ("cap", "smooth", "min_delta", "patience", "margin")
    return as_json(calibration={k: cal[k] for k in keep}, round_to=config["unet"]["validate_every"])
