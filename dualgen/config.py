"""Config checks: the JSON schema (schemas/config.schema.yaml) plus the cross-key rules a schema cannot say.

Every problem becomes one DualgenError line that names the key, what is wrong and what is allowed.
"""
from pathlib import Path

import yaml

from dualgen.errors import DualgenError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


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
        options = [s.get("type") or s.get("$ref", "").split("/")[-1] for s in err.validator_value]
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
        raise DualgenError("config: classes[].value: mix of gray levels and [r, g, b] colours: use one kind for all classes")
    if config["data"].get("mask_format") == "index":
        for i, cls in enumerate(classes):
            if cls["value"] != i:
                raise DualgenError(
                    f"config: classes[{i}].value is {cls['value']} but data.mask_format is 'index': "
                    f"set it to {i} (index masks store class ids 0..{len(classes) - 1})"
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
    if patches.get("stride", 1) > 4 * patches["size"]:
        raise DualgenError(f"config: patches.stride {patches['stride']} is more than 4x patches.size: most pixels would be skipped")


def check_config(config):
    """Validate a merged config dict; raises DualgenError with one line."""
    check_schema(config)
    check_rules(config)
    return config


def merge(base, over):
    """Merge ``over`` into a copy of ``base`` recursively (dicts merge, everything else replaces), as Snakemake
    merges --configfile files over the workflow's config."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
