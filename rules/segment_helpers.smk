# Helpers of the segmentation stage (rules/segment.smk).
from dualgen.segment import mixes
from dualgen.segment.evaluation import seed_dir

MIX_PATTERN = "|".join(MIX) or "NO_MIX"
CHUNK_OF_SEED = {seed: chunk for chunk, seeds in SEED_CHUNKS.items() for seed in seeds}
# unet keys one budget uses and the other does not (unet_settings gives the unused ones as null)
UNET_BUDGET_KEYS = {"updates": ("updates", "validate_every"), "epochs": ("epochs", "early_stopping_patience")}
# unet keys a training does not depend on: the list (a training gets its own seed) and how often it saves a
# resumable state (the job gets that as a resource, so changing it reruns nothing)
UNET_NOT_SETTINGS = ("seeds", "seeds_per_job", "checkpoint_every_s")


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


def unet_run(mix, seed):
    """The folder of the training (mix, seed) inside its chunk."""
    return str(seed_dir(unet_chunk(mix, seed), seed))


def unet_settings(mix, chunk):
    """Everything the trainings of a chunk of seeds depend on, and nothing else: a new seed in the list trains only
    its own jobs; the other budget's keys, and pretrain_share outside the pretrain arm, are null. The job trains
    each seed of ``seeds`` with these settings and ``seed`` set to it (each training's meta.json has its own)."""
    augmentation = config["mixes"]["augmentation"] if MIX[mix].augment else []
    u = config["unet"]
    unused = [k for budget, keys in UNET_BUDGET_KEYS.items() if budget != u["budget"] for k in keys]
    unused += [] if MIX[mix].pretrain else ["pretrain_share"]
    unet = {k: None if k in unused else v for k, v in u.items() if k not in UNET_NOT_SETTINGS}
    return as_json(
        unet=unet,
        seeds=SEED_CHUNKS[chunk],
        classes=CLASSES,
        augmentation=augmentation,
        mix=mixes.fields(MIX[mix]),
        determinism=config["determinism"],
    )
