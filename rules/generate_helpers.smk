# Helpers of the generation stage (rules/generate.smk).
import re

from dualgen.segment.mixes import pool_size

THIN_CLASSES = [c["name"] for c in config["classes"] if c.get("thin")]  # only the cleaning reads it
COND_KIND = f"{config['pixelcnn']['kind']}_cond"  # the conditioned prior the conditioned pools come from


# The decoder's noise (postprocess.image_noise: residual) or spectrum (spectrum) is measured on the encode step's
# reconstructions of the VQ-VAE's training patches: every postprocess rule then reads them.
IMAGE_NOISE = config["postprocess"]["image_noise"] != "none"
NOISE_INPUTS = (
    {"codes": f"{OUT}/codes", "patches": f"{OUT}/patches", "datasets": f"{OUT}/datasets"} if IMAGE_NOISE else {}
)


def postprocess_command(wildcards, input):
    """The postprocess script, with --codes, --patches and --datasets where IMAGE_NOISE (without the noise the
    command is what it was before the option existed, so a finished study does not rerun)."""
    noise = f" --codes {input.codes} --patches {input.patches} --datasets {input.datasets}" if IMAGE_NOISE else ""
    return script("postprocess") + noise


def postprocess_settings():
    """The post-processing settings that change the cleaned pairs (not the figure's pair count), with the classes
    the smoothing leaves alone (classes[].thin) as smooth_keep; image_noise only when on (a study cleaned before the
    option existed is not redone)."""
    drop = ("figure_pairs",) + (() if IMAGE_NOISE else ("image_noise",))
    return {**{k: v for k, v in config["postprocess"].items() if k not in drop}, "smooth_keep": THIN_CLASSES}


# The VQ-VAE's edge options at their off values change nothing, so its settings leave them out: a VQ-VAE trained
# before they existed is not retrained.
VQVAE_OFF = {
    "adversarial": lambda v: v["weight"] == 0,
    "perceptual": lambda v: v["weight"] == 0,
    "mask_head": lambda v: v == "mse",
    "fsq_levels": lambda v: config["vqvae"]["quantizer"] != "fsq",
}


def vqvae_settings():
    """The vqvae section as the VQ-VAE's training depends on it (VQVAE_OFF's options left out when off)."""
    return {k: v for k, v in config["vqvae"].items() if not (k in VQVAE_OFF and VQVAE_OFF[k](v))}


def pixelcnn_settings(kind, conditioned=False):
    """The prior settings that change a trained prior of ``kind`` (not which kind the sampler uses); the
    conditioning mode only for the conditioned prior (switching it on leaves the unconditioned priors as they are);
    the maskgit section only for a maskgit prior; dropout and ema only for a PixelCNN, and each only when on (a
    prior trained without them keeps its settings; the step takes 0, config.LEFT_OUT)."""
    drop = ("kind", "compare") + (() if conditioned else ("condition",)) + (() if kind == "maskgit" else ("maskgit",))
    drop += tuple(k for k in ("dropout", "ema") if kind == "maskgit" or not config["pixelcnn"][k])
    return {k: v for k, v in config["pixelcnn"].items() if k not in drop}


def sample_settings(temperature=None):
    """The sample section as one unconditioned sampling run uses it: its own temperature, not the list of fidelity
    variants, nor the conditioned sampler's targets."""
    sm = {k: v for k, v in config["sample"].items() if k not in ("temperatures", "targets")}
    return sm if temperature is None else {**sm, "temperature": float(temperature)}


# Generator variants scored by the fidelity step: the study's pool and each trained prior at each of
# sample.temperatures.
def variant_name(kind, temperature):
    """A variant's name: <kind>_t<temperature>."""
    return f"{kind}_t{float(temperature):g}"


POOL_VARIANT = variant_name(config["pixelcnn"]["kind"], config["sample"]["temperature"])
VARIANTS = {POOL_VARIANT: (config["pixelcnn"]["kind"], float(config["sample"]["temperature"]))}
for _kind in PIXELCNN_KINDS:
    for _t in config["sample"]["temperatures"]:
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


# The image family's learned features: the encoder of the real-only U-Net the pretest uses (fidelity.features, and
# only where the study trains that mix).
FEATURE_ENCODER = config["fidelity"]["features"] and PRETEST_MIX in MIX


# The VQ-VAE's perceptual term (vqvae.perceptual.weight > 0) takes its features from the same real-only U-Net.
PERCEPTUAL = config["vqvae"]["perceptual"]["weight"] > 0
if PERCEPTUAL and PRETEST_MIX not in MIX:
    raise SystemExit(
        f"dualgen: error: config: vqvae.perceptual.weight > 0 takes its features from the real-only U-Net "
        f"{PRETEST_MIX}, which this study does not train: add BMQ to mixes.bases and 0 to mixes.levels, or set "
        "vqvae.perceptual.weight: 0"
    )


def vqvae_inputs(wildcards):
    """The VQ-VAE reads the patches and, with PERCEPTUAL, the real-only U-Net's training chunk."""
    inputs = {"patches": f"{OUT}/patches", "datasets": f"{OUT}/datasets"}
    if PERCEPTUAL:
        inputs["features"] = unet_chunk(PRETEST_MIX, SEEDS[0])
    return inputs


def vqvae_command(wildcards):
    """The train_vqvae script, with --features-model (the real-only U-Net's first seed's saved model) where
    PERCEPTUAL (without it the command is what it was before the option existed)."""
    return script("train_vqvae") + (f" --features-model {unet_run(PRETEST_MIX, SEEDS[0])}/model" if PERCEPTUAL else "")


def fidelity_inputs(wildcards):
    """The fidelity step reads the real patches, every scored variant's cleaned pairs and, with FEATURE_ENCODER,
    the training chunk that holds the real-only U-Net's first seed."""
    inputs = {"patches": f"{OUT}/patches", "datasets": f"{OUT}/datasets"}
    inputs.update({f"variant_{name}": pool for name, (_, _, pool) in scored_variants().items()})
    if FEATURE_ENCODER:
        inputs["encoder"] = unet_chunk(PRETEST_MIX, SEEDS[0])
    return inputs


def fidelity_encoder(wildcards):
    """The --encoder argument: the real-only U-Net's first seed (its folder inside the chunk), or nothing."""
    return f"--encoder {unet_run(PRETEST_MIX, SEEDS[0])}" if FEATURE_ENCODER else ""


def fidelity_variants():
    """The variants as the fidelity step's settings declare them."""
    return [
        {"name": name, "kind": kind, "temperature": t, "pool": name == POOL_VARIANT}
        for name, (kind, t, _) in scored_variants().items()
    ]


# Conditioned generation: each pool's targets and size, the conditioned sampler's settings, what the conditioning
# step reads.
COND_TARGETS = {"balanced": config["sample"]["targets"], "data": "data"}
BALANCED_POOL_SIZE = pool_size(config["mixes"], config["datasets"], balanced=True)


def conditioned_pool_size(target):
    """The balanced pool holds what the balanced mixes need (at least fidelity.n pairs to measure obedience)."""
    n = config["fidelity"]["n"]
    return max(BALANCED_POOL_SIZE, n) if target == "balanced" else n


def conditioned_sample_settings(target):
    """The unconditioned sampler's settings plus the targets of this pool (calibrate is for unconditioned priors)."""
    plain = {k: v for k, v in sample_settings().items() if k != "calibrate"}
    return as_json(
        sample={**plain, "targets": COND_TARGETS[target]},
        condition=CONDITION,
        classes=CLASSES,
        determinism=config["determinism"],
    )


def conditioning_inputs(wildcards):
    """The conditioning step reads both conditioned pools (targets and cleaned pairs) and the unconditioned pool."""
    inputs = {}
    if POOL_SIZE > 0:  # the unconditioned pool: what fractions come out when nobody asks
        inputs["reference"] = f"{OUT}/synthetic/clean"
    for target in COND_TARGETS:
        inputs[f"{target}_codes"] = f"{COND_DIR}/{target}/codes"
        inputs[f"{target}_clean"] = conditioned_pool(target)
    return inputs
