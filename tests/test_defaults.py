"""One source of each default: config.yaml. The schema states types, ranges and meanings but no default; a step
run by hand with part of a section gets config.yaml's values, as the workflow passes them; the model classes take
their settings from the caller, with no defaults of their own for config keys."""

import argparse
import importlib
import inspect
import json

import pytest

from dualgen.core import cli
from dualgen.core.config import LEFT_OUT, SCHEMA_PATH, fill_step_settings, load_yaml
from tests.conftest import REPO

CONFIG = load_yaml(REPO / "config.yaml")
SCHEMA = load_yaml(SCHEMA_PATH)


def _defaults_in(node, path=""):
    """(path, value) of every `default:` anywhere in a schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "default":
                yield path, value
            yield from _defaults_in(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _defaults_in(value, f"{path}[{i}]")


def test_the_schema_states_no_default():
    """config.yaml is the source of every default: a `default:` in the schema would be a second one."""
    assert list(_defaults_in(SCHEMA)) == []


def _sections(schema, config, path=""):
    """(path, schema node, config.yaml node) of every section (object with properties) of the schema."""
    yield path, schema, config
    for key, prop in schema["properties"].items():
        if prop.get("type") == "object" and "properties" in prop and isinstance(config.get(key), dict):
            yield from _sections(prop, config[key], f"{path}{key}.")


def test_config_yaml_states_every_optional_key():
    """Every key the schema does not require has its default in config.yaml (the one place to read it)."""
    missing = [
        f"{path}{key}"
        for path, schema, config in _sections(SCHEMA, CONFIG)
        for key in schema["properties"]
        if key not in config and key not in schema.get("required", ())
    ]
    assert missing == [], f"keys without a default in config.yaml: {missing}"


@pytest.mark.parametrize(
    "section",
    sorted(k for k, p in SCHEMA["properties"].items() if p.get("type") == "object" and k not in SCHEMA["required"]),
)
def test_a_step_run_by_hand_gets_config_yaml_values(section):
    """cli.settings fills a section given in part from config.yaml (what the workflow passes), except the keys a
    rule leaves out on purpose (LEFT_OUT), and adds no section that was not given."""
    key = next(iter(CONFIG[section]))
    args = argparse.Namespace(settings=json.dumps({section: {key: CONFIG[section][key]}}))
    filled = cli.settings(args)
    assert filled[section] == {**CONFIG[section], **LEFT_OUT.get(section, {})}
    assert set(filled) == {section, "determinism"} and filled["determinism"] == CONFIG["determinism"]


def test_left_out_keys_are_config_keys_with_valid_values():
    """What a left-out key means is a value the schema allows for that key."""
    import jsonschema

    for section, keys in LEFT_OUT.items():
        for key, value in keys.items():
            assert key in CONFIG[section], f"{section}.{key}"
            prop = dict(SCHEMA["properties"][section]["properties"][key], definitions=SCHEMA["definitions"])
            jsonschema.validate(value, prop)


def test_settings_given_are_never_overwritten():
    given = {"pixelcnn": {"condition": "phase_fractions"}, "sample": {"calibrate": "none"}}
    filled = fill_step_settings(json.loads(json.dumps(given)))
    assert filled["pixelcnn"]["condition"] == "phase_fractions" and filled["sample"]["calibrate"] == "none"


# The model classes and builders, with the config section their arguments come from.
MODELS = [
    ("dualgen.generate.vqvae.model", "VQVAE", "vqvae"),
    ("dualgen.generate.pixelcnn.model", "PixelCNN", "pixelcnn"),
    ("dualgen.segment.unet", "build_unet", "unet"),
]


@pytest.mark.parametrize("module, name, section", MODELS)
def test_model_constructors_have_no_defaults_for_config_keys(module, name, section):
    """A model's constructor takes every config setting from its caller: a default there would be a second one."""
    obj = getattr(importlib.import_module(module), name)
    signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    defaulted = [
        p for p, v in signature.parameters.items() if v.default is not inspect.Parameter.empty and p in CONFIG[section]
    ]
    assert defaulted == [], f"{module}.{name} has defaults for {section} keys: {defaulted}"
