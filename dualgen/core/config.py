"""Config checks: the JSON schema (schemas/config.schema.yaml) plus the cross-key rules a schema cannot say, and
the defaults.

Every problem becomes one DualgenError line that names the key, what is wrong and what is allowed. The schema
states types, ranges and meanings; config.yaml, the default study, is the one source of defaults: every key the
schema does not mark ``required`` takes config.yaml's value when a config (or a step's --settings) leaves it out.
"""

import copy
import math
from pathlib import Path

import yaml

from dualgen.core.errors import DualgenError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "schemas" / "config.schema.yaml"
DEFAULTS_PATH = REPO_ROOT / "config.yaml"

# Keys a rule leaves out of a step's settings on purpose, and what the step takes for them instead of config.yaml's
# value: the rule train_pixelcnn passes the pixelcnn section without ``condition`` (it trains the unconditioned
# prior; train_pixelcnn_conditioned passes the mode), and without ``dropout`` or ``ema`` when off or the prior is a
# MaskGIT (rules: pixelcnn_settings). Not defaults: a config that leaves the key out gets config.yaml's.
LEFT_OUT = {"pixelcnn": {"condition": "none", "dropout": 0.0, "ema": 0.0}}

# Names checked when the workflow loads, without importing TensorFlow or albumentations (seconds per snakemake
# call). Tests keep them equal to the libraries' lists: dualgen.segment.augment.AUGMENTATIONS and
# segmentation_models.Backbones.models_names() (tests/test_lab_data.py).
AUGMENTATIONS = (
    "CLAHE",
    "RandomBrightness",
    "RandomGamma",
    "Sharpen",
    "Blur",
    "MotionBlur",
    "GaussianBlur",
    "GaussNoise",
    "RandomContrast",
    "HueSaturationValue",
)
BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "seresnet18",
    "seresnet34",
    "seresnet50",
    "seresnet101",
    "seresnet152",
    "seresnext50",
    "seresnext101",
    "senet154",
    "resnext50",
    "resnext101",
    "vgg16",
    "vgg19",
    "densenet121",
    "densenet169",
    "densenet201",
    "inceptionresnetv2",
    "inceptionv3",
    "mobilenet",
    "mobilenetv2",
    "efficientnetb0",
    "efficientnetb1",
    "efficientnetb2",
    "efficientnetb3",
    "efficientnetb4",
    "efficientnetb5",
    "efficientnetb6",
    "efficientnetb7",
)


def load_yaml(path):
    """Read a YAML file into a dict, or fail with one line naming the file."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise DualgenError(f"{path}: file not found")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise DualgenError(f"{path}: not valid YAML{where}: fix the syntax")
    if not isinstance(data, dict):
        raise DualgenError(f"{path}: expected a mapping of keys at the top level")
    return data


def _key(path):
    return ".".join(str(p) for p in path) or "<top level>"


def _schema_error(err):
    key = _key(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        where = _key(list(err.absolute_path) + [extra[0]]) if extra else key
        return f"config: unknown key '{where}' (allowed here: {', '.join(allowed)})"
    if err.validator == "required":
        return f"config: {key}: {err.message}"
    if err.validator == "oneOf":
        options = [
            s.get("type") or (" or ".join(map(repr, s["enum"])) if "enum" in s else s.get("$ref", "").split("/")[-1])
            for s in err.validator_value
        ]
        return f"config: {key}: {err.instance!r} is not valid (allowed: {' or '.join(map(str, options))})"
    if err.validator == "enum":
        return f"config: {key}: {err.instance!r} is not one of {err.validator_value}"
    if err.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"config: {key}: {err.message} (out of range)"
    if err.validator == "type":
        return f"config: {key}: {err.instance!r} has the wrong type (expected {err.validator_value})"
    return f"config: {key}: {err.message}"


def check_schema(config):
    import jsonschema

    schema = load_yaml(SCHEMA_PATH)
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise DualgenError(_schema_error(error))


def check_rules(config):
    """The rules across keys that the schema cannot express."""
    classes = config["classes"]
    seen_names, seen_values = {}, {}
    for i, cls in enumerate(classes):
        if cls["name"] in seen_names:
            raise DualgenError(f"config: classes[{i}].name: '{cls['name']}' is used twice: class names must be unique")
        value = tuple(cls["value"]) if isinstance(cls["value"], list) else cls["value"]
        if value in seen_values:
            raise DualgenError(
                f"config: classes: '{seen_values[value]}' and '{cls['name']}' share the value {cls['value']}: "
                "each class needs its own mask value"
            )
        seen_names[cls["name"]] = i
        seen_values[value] = cls["name"]
    kinds = {isinstance(c["value"], list) for c in classes}
    if len(kinds) > 1:
        raise DualgenError(
            "config: classes[].value: mix of gray levels and [r, g, b] colours: use one kind for all classes"
        )
    if config["data"].get("mask_format") == "index":
        for i, cls in enumerate(classes):
            if cls["value"] != i:
                raise DualgenError(
                    f"config: classes[{i}].value is {cls['value']} but data.mask_format is 'index': "
                    f"set it to {i} (index masks store class ids 0..{len(classes) - 1})"
                )
    smooth = config["postprocess"]["smooth_px"]
    if smooth % 2 == 0:
        raise DualgenError(f"config: postprocess.smooth_px {smooth} is even: use an odd window (1 = off, 3, 5)")
    min_px = config["postprocess"]["min_object_px"]
    if isinstance(min_px, list) and len(min_px) != len(classes):
        raise DualgenError(
            f"config: postprocess.min_object_px has {len(min_px)} sizes for {len(classes)} classes: "
            "give one per class, in the order of classes, or one number for all"
        )
    ds = config["datasets"]
    small, big = ds["small_train"] + ds["small_val"], ds["big_train"] + ds["big_val"]
    if small > big:
        raise DualgenError(
            f"config: datasets: the small set ({small} patches) must fit inside the big set ({big}): "
            "lower small_train/small_val or raise big_train/big_val"
        )
    patches = config["patches"]
    if patches["size"] % 32:
        raise DualgenError(
            f"config: patches.size {patches['size']} is not a multiple of 32 (the U-Net downsamples 5 times, the "
            f"VQ-VAE 2 times): use e.g. {max(32, patches['size'] // 32 * 32)}"
        )
    if (patches.get("stride") or 1) > 4 * patches["size"]:
        raise DualgenError(
            f"config: patches.stride {patches['stride']} is more than 4x patches.size: most pixels would be skipped"
        )
    _check_data(config)
    _check_names(config)
    _check_unet(config)
    _check_budget(config)
    _check_mixes(config)
    _check_conditioning(config)
    v = config["vqvae"]
    if v["quantizer"] == "fsq" and v["num_embeddings"] != math.prod(v["fsq_levels"]):
        raise DualgenError(
            f"config: vqvae.num_embeddings {v['num_embeddings']} but vqvae.fsq_levels {v['fsq_levels']} make "
            f"{math.prod(v['fsq_levels'])} codes: set num_embeddings to {math.prod(v['fsq_levels'])}"
        )
    if v["mask_head"] == "xent" and v["mask_encoding"] != "onehot":
        raise DualgenError("config: vqvae.mask_head xent needs vqvae.mask_encoding onehot (one channel per class)")
    pc = config["pixelcnn"]
    if pc["dilations"] is not None and len(pc["dilations"]) != pc["num_blocks"]:
        raise DualgenError(
            f"config: pixelcnn.dilations {pc['dilations']} has {len(pc['dilations'])} values for "
            f"{pc['num_blocks']} blocks (pixelcnn.num_blocks): give one per block, or null"
        )
    mg = pc.get("maskgit") or {}
    if mg.get("dim", 0) % mg.get("heads", 1):
        raise DualgenError(
            f"config: pixelcnn.maskgit.dim {mg['dim']} does not divide into {mg['heads']} heads: use a multiple of "
            f"pixelcnn.maskgit.heads (e.g. {mg['heads'] * max(1, mg['dim'] // mg['heads'])})"
        )


def _check_conditioning(config):
    """sample.targets names classes of the config; the balanced arm needs a conditioned prior."""
    from dualgen.generate.conditioning import check_targets

    names = [c["name"] for c in config["classes"]]
    mixes = config["mixes"]
    check_targets(config["sample"]["targets"], names, "config: sample.targets")
    condition = config["pixelcnn"]["condition"]
    bases = set(mixes["balanced_bases"]) & set(mixes["bases"])
    if mixes["balanced"] and bases and condition == "none":
        raise DualgenError(
            f"config: mixes.balanced {mixes['balanced']} needs a conditioned prior, but "
            "pixelcnn.condition is none: set it to phase_fractions, or mixes.balanced: []"
        )


def _check_data(config):
    data, names = config["data"], [c["name"] for c in config["classes"]]
    for name in config["patches"]["keep_rare"]:
        if name not in names:
            raise DualgenError(f"config: patches.keep_rare: '{name}' is not a class (classes: {', '.join(names)})")
    splits = {k: v for k, v in (data.get("splits") or {}).items() if v}
    if splits and set(splits) != {"test"} and set(splits) != {"train", "val", "test"}:
        lack = sorted({"train", "val", "test"} - set(splits))
        raise DualgenError(
            f"config: data.splits has no {' and no '.join(lack)} list: give train, val and test lists "
            "(or only test, to reserve the test images)"
        )
    if data.get("simulate_lq") and data.get("source") == "folder" and data.get("hq_masks"):
        raise DualgenError(
            "config: data.simulate_lq derives the LQ masks from data.masks (taken as the truth), but "
            "data.hq_masks is set too: set data.hq_masks: null, or drop data.simulate_lq"
        )


def _check_names(config):
    for name in config["mixes"]["augmentation"]:
        if name not in AUGMENTATIONS:
            raise DualgenError(f"config: mixes.augmentation: unknown '{name}' (allowed: {', '.join(AUGMENTATIONS)})")
    backbone = config["unet"]["backbone"]
    if backbone is not None and backbone not in BACKBONES:
        close = [b for b in BACKBONES if b.startswith(backbone.rstrip("0123456789")[:6].lower())][:6]
        raise DualgenError(
            f"config: unet.backbone: unknown '{backbone}' (segmentation_models has "
            f"{', '.join(close or BACKBONES[:6])}, ... {len(BACKBONES)} in all: "
            "dualgen/core/config.py BACKBONES)"
        )


def _check_budget(config):
    """unet.updates: auto calibrates on each base's 0 % mix: it needs a base and the level 0."""
    u, mixes = config["unet"], config["mixes"]
    if u["budget"] != "updates" or u["updates"] != "auto":
        return
    if not mixes["bases"] or 0 not in mixes["levels"]:
        lack = "mixes.bases is empty" if not mixes["bases"] else f"mixes.levels {mixes['levels']} has no 0"
        raise DualgenError(
            f"config: unet.updates: auto calibrates the budget on each base's 0 % mix, but {lack}: "
            "add a base and the level 0, or set unet.updates to a number"
        )


def _check_unet(config):
    """unet.decoder_filters: one width per decoder block, as many blocks as unet.encoder_depth; unet.class_weights
    given as {class: weight} names classes of the config."""
    u = config["unet"]
    depth, filters = u["encoder_depth"], u["decoder_filters"]
    if filters and len(filters) != depth:
        raise DualgenError(
            f"config: unet.decoder_filters has {len(filters)} widths but unet.encoder_depth is "
            f"{depth}: give {depth} (one per decoder block, deepest first), or null"
        )
    weights, names = u.get("class_weights"), [c["name"] for c in config["classes"]]
    unknown = sorted(set(weights) - set(names)) if isinstance(weights, dict) else []
    if unknown:
        raise DualgenError(
            f"config: unet.class_weights: '{unknown[0]}' is not a class (classes: {', '.join(names)}): "
            "name classes of config classes"
        )


def _check_mixes(config):
    """Mixes the sizes cannot serve: a synthetic level that rounds to no synthetic image, a VQ-VAE hold-out
    that leaves nothing to train on."""
    from dualgen.segment.mixes import enumerate_mixes

    ds = config["datasets"]
    for mix in enumerate_mixes(config["mixes"], ds):
        if mix.percent > 0 and mix.n_synth == 0 and not (mix.augment or mix.real_only):
            size = "small_train" if mix.base in ("SHQ", "SLQ") else "big_train"  # SyntLQ/SyntMQ: big_train
            n = ds[size]
            key = (
                "synthetic_levels"
                if mix.pure_synthetic
                else "pretrain"
                if mix.pretrain
                else "balanced"
                if mix.balanced
                else "levels"
            )
            raise DualgenError(
                f"config: mixes.{key}: {mix.percent} % of {n} training patches is no synthetic image (mix {mix.name}): "
                f"use at least {-(-50 // n)} % or raise datasets.{size}"
            )
    real = config["mixes"]["real_sizes"]
    if 100 in real and "SHQ" in config["mixes"]["bases"] and 0 in config["mixes"]["levels"]:
        raise DualgenError(
            "config: mixes.real_sizes: 100 % is SHQ_000 (the learning curve takes it from there): leave 100 out"
        )
    chosen = config["predict"]["mix"]
    names = [m.name for m in enumerate_mixes(config["mixes"], ds)]
    if chosen != "best" and chosen not in names:
        close = [n for n in names if n.startswith(chosen[:3])] or names
        raise DualgenError(
            f"config: predict.mix: '{chosen}' is not a mix of this study (e.g. {', '.join(close[:6])}): "
            "name one of its mixes, or best"
        )
    vq = config["vqvae"]
    n_gen = ds["big_train"] + ds["big_val"]
    if vq["val_images"] is not None and vq["val_images"] >= n_gen:
        raise DualgenError(
            f"config: vqvae.val_images {vq['val_images']} leaves no BMQ patch to train the VQ-VAE on (BMQ has "
            f"{n_gen} = datasets.big_train + big_val): lower it"
        )


def patches_data_settings(data, demo_dir):
    """What the patches step depends on of the data section (rules/data.smk): not the split lists or test images,
    which only the datasets step reads. The demo with simulate_lq: its exact masks are the truth the LQ masks
    derive from."""
    out = {k: v for k, v in data.items() if k not in ("test_sources", "splits", "demo")}
    if data.get("source") == "demo" and out.get("simulate_lq"):
        out.update(masks=f"{demo_dir}/masks_hq", hq_masks=None)
    return out


def split_list_files(data):
    """The data.splits list files: inputs of the datasets step (editing a list reruns it)."""
    return [p for p in (data.get("splits") or {}).values() if p]


def fill_defaults(config, new_sections=True):
    """Add every key config.yaml states and the config lacks, in place, except the keys the schema marks
    ``required`` (those have no default): in the sections the config has (with the sections nested in them, such
    as ``unet.calibration``) and, with ``new_sections``, also whole top-level sections it lacks. The schema says
    which keys are sections (an object with properties, filled key by key); any other value (a list,
    ``sample.targets``) is taken whole. Rules and scripts index settings directly, with no fallbacks of their own."""
    schema, defaults = load_yaml(SCHEMA_PATH), load_yaml(DEFAULTS_PATH)

    def fill(node, sub, default, top=True):
        required = set(sub.get("required", ()))
        for key, prop in sub["properties"].items():
            if key not in default:
                continue
            section = prop.get("type") == "object" and "properties" in prop
            if key not in node:
                if key not in required and (new_sections or not section or not top):
                    node[key] = copy.deepcopy(default[key])
            elif section and isinstance(node[key], dict):
                fill(node[key], prop, default[key], top=False)

    fill(config, schema, defaults)
    return config


def fill_step_settings(settings):
    """A step's --settings as the step uses them, in place: the keys the rule leaves out on purpose (LEFT_OUT),
    then config.yaml's value for every other key missing from the sections given (no section is added). A step run
    by hand with part of a section therefore gets the values the workflow passes."""
    for section, keys in LEFT_OUT.items():
        if isinstance(settings.get(section), dict):
            for key, value in keys.items():
                settings[section].setdefault(key, value)
    return fill_defaults(settings, new_sections=False)


def check_config(config):
    """Validate a merged config dict (the schema, then the rules across keys) and fill in config.yaml's defaults;
    raises DualgenError with one line. The workflow calls it once, when it loads."""
    check_schema(config)
    fill_defaults(config)
    check_rules(config)
    return config


def merged(files, base=DEFAULTS_PATH):
    """The config file ``base`` (config.yaml) with the config ``files`` merged over it in order, as Snakemake merges
    --configfile files over the workflow's config (unchecked: ``check_config`` checks it)."""
    config = load_yaml(base)
    for f in files:
        config = merge(config, load_yaml(f))
    return config


def merged_or_exit(files, base=DEFAULTS_PATH):
    """``merged`` for a command line (the benchmarks): a missing or unreadable file exits with its one line
    (``dualgen: error: ...``, status 1), not a traceback."""
    try:
        return merged(files, base)
    except DualgenError as err:
        raise SystemExit(f"dualgen: error: {err}") from None


def merge(base, over):
    """Merge ``over`` into a copy of ``base`` recursively (dicts merge, everything else replaces), as Snakemake
    merges --configfile files over the workflow's config."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
