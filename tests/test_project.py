"""The house: config schema and its one-line errors, scripts' --help, pinned environments, lint."""

import copy
import re
import subprocess

import pytest
import yaml

from dualgen.core.config import check_config, load_yaml, merge
from dualgen.core.errors import DualgenError
from tests.conftest import PY, REPO, env, snakemake

CONFIG = load_yaml(REPO / "config.yaml")


def merged(over):
    return merge(copy.deepcopy(CONFIG), over)


@pytest.mark.parametrize("preset", [None, "presets/ci.yaml", "presets/paper.yaml"])
def test_default_config_and_presets_are_valid(preset):
    check_config(merged(load_yaml(REPO / preset)) if preset else copy.deepcopy(CONFIG))


@pytest.mark.parametrize(
    "over, message",
    [
        ({"patches": {"sizee": 64}}, "unknown key 'patches.sizee'"),
        ({"patches": {"size": "big"}}, "patches.size: 'big' has the wrong type"),
        ({"datasets": {"big_train": -2}}, "datasets.big_train: -2 is less than the minimum of 1"),
        ({"datasets": {"test": 0}}, "datasets.test: 0 is less than the minimum of 1"),
        ({"patches": {"size": 0}}, "patches.size: 0 is less than the minimum"),
        ({"data": {"source": "web"}}, "data.source: 'web' is not one of"),
        (
            {"classes": [{"name": "a", "value": 0, "color": "#000000"}, {"name": "b", "value": 0, "color": "#ffffff"}]},
            "'a' and 'b' share the value 0",
        ),
        ({"datasets": {"small_train": 60}}, "must fit inside the big set"),
        ({"postprocess": {"min_object_px": [64, 200]}}, "postprocess.min_object_px has 2 sizes for 4 classes"),
        ({"unet": {"seeds_per_job": 0}}, "unet.seeds_per_job: 0 is less than the minimum of 1"),
        ({"unet": {"encoder_depth": 5}}, "unet.decoder_filters has 4 widths but unet.encoder_depth is 5: give 5"),
        ({"unet": {"encoder_depth": 6}}, "unet.encoder_depth: 6 is greater than the maximum of 5"),
        ({"postprocess": {"smooth_px": 4}}, "postprocess.smooth_px 4 is even: use an odd window"),
        ({"postprocess": {"smooth_keep": ["nd_rich"]}}, "unknown key 'postprocess.smooth_keep'"),
    ],
)
def test_config_errors_name_the_key(over, message):
    with pytest.raises(DualgenError) as err:
        check_config(merged(over))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_snakemake_stops_on_bad_config_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {big_val: -1}\n")
    proc = snakemake("-n", "--configfile", bad, workdir=tmp_path)
    assert proc.returncode != 0
    assert "dualgen: error: config: datasets.big_val: -1 is less than the minimum of 1" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_dry_run_and_lint_are_clean(tmp_path):
    proc = snakemake("-n", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = snakemake("--lint", workdir=tmp_path)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")))
def test_every_script_has_help(script):
    proc = subprocess.run(
        [PY, str(REPO / "scripts" / script), "--help"], capture_output=True, text=True, env=env(), timeout=120
    )
    assert proc.returncode == 0 and "usage:" in proc.stdout and "--settings" in proc.stdout, proc.stderr


def pins(lines):
    return {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in (re.match(r"\s*-?\s*([A-Za-z0-9_.-]+)==(\S+)", ln) for ln in lines)
        if m
    }


def test_envs_match_requirements():
    req = pins((REPO / "requirements.txt").read_text().splitlines())
    lock = pins((REPO / "requirements.lock").read_text().splitlines())
    assert len(req) >= 15
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        spec = yaml.safe_load(env_file.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        assert pins(pip) == req, f"{env_file.name} and requirements.txt differ"
    for name, version in req.items():
        assert lock.get(name) == version, f"requirements.lock has {name}=={lock.get(name)}, requirements.txt {version}"


def test_environment_variables_set_in_one_place():
    names = ("TF_USE_LEGACY_KERAS", "TF_DETERMINISTIC_OPS", "TF_CUDNN_USE_AUTOTUNE")  # the last two: determinism
    hits = [
        p
        for p in REPO.rglob("*.py")
        if ".venv" not in p.parts
        and any(n in p.read_text() for n in names)
        and p.name not in ("env.py", "test_project.py")
    ]
    assert hits == [], f"set only in dualgen/core/env.py: {hits}"


def test_no_pickle_on_user_files():
    """Arrays are read with allow_pickle=False; no pickle, no unsafe YAML loader anywhere in the code."""
    for p in list((REPO / "dualgen").rglob("*.py")) + list((REPO / "scripts").glob("*.py")):
        text = p.read_text()
        assert "import pickle" not in text and "yaml.load(" not in text, p.name
        for line in text.splitlines():
            if "np.load(" in line:
                assert "allow_pickle=False" in line, f"{p.name}: {line.strip()}"


def test_scripts_draw_nothing_themselves():
    """Scripts stay thin: every figure is drawn by dualgen/report/figures.py (the one place for matplotlib and the
    palette)."""
    drawing = [p.name for p in (REPO / "scripts").glob("*.py") if "matplotlib" in p.read_text()]
    assert drawing == [], f"scripts importing matplotlib: {drawing} (move the plotting into dualgen/report/figures.py)"
    users = [p.name for p in (REPO / "dualgen").rglob("*.py") if "import matplotlib" in p.read_text()]
    assert users == ["figures.py"], users
