"""Config: the schema is the one source of defaults, filled in by the one validation when the workflow loads."""
from tests.conftest import REPO


def test_the_schema_fills_every_default_once():
    """The schema is the one source of defaults: a config without the optional keys gets them when it is
    checked (the workflow's one validation), and config.yaml states the same values the schema defaults to."""
    from dualgen.core.config import SCHEMA_PATH, check_config, fill_defaults, load_yaml, merge

    base = load_yaml(REPO / "config.yaml")
    slim = {k: v for k, v in base.items() if k not in ("stats", "determinism")}
    slim["unet"] = {k: v for k, v in base["unet"].items() if k not in ("seeds", "budget", "updates")}
    checked = check_config(merge({}, slim))
    schema = load_yaml(SCHEMA_PATH)
    assert checked["unet"]["seeds"] == schema["properties"]["unet"]["properties"]["seeds"]["default"]
    assert checked["unet"]["budget"] == "updates" and checked["stats"]["resample"] == "patch"
    assert checked["unet"]["updates"] == base["unet"]["updates"]  # config.yaml writes the schema's default out
    full = fill_defaults(merge({}, base))
    assert full == base or all(full[k] == base[k] for k in base)  # nothing the config states is overwritten
