"""Config: config.yaml is the one source of defaults, filled in by the one validation when the workflow loads."""

import copy

from tests.conftest import REPO


def test_the_check_fills_every_default_from_config_yaml():
    """A config without the optional keys gets config.yaml's values when it is checked (the workflow's one
    validation); nothing the config states is overwritten."""
    from dualgen.core.config import check_config, load_yaml, merge

    base = load_yaml(REPO / "config.yaml")
    slim = {k: v for k, v in copy.deepcopy(base).items() if k not in ("stats", "determinism")}
    slim["unet"] = {k: v for k, v in base["unet"].items() if k not in ("seeds", "budget", "encoder_depth")}
    slim["unet"]["updates"] = 7
    checked = check_config(merge({}, slim))
    assert checked["stats"] == base["stats"] and checked["determinism"] == base["determinism"]
    assert checked["unet"] == {**base["unet"], "updates": 7}


def test_required_keys_get_no_default():
    """Keys the schema marks required (the study's name, its classes, the data folders) are never filled."""
    from dualgen.core.config import fill_defaults

    filled = fill_defaults({"data": {}})
    assert "study" not in filled and "classes" not in filled
    assert not {"source", "images", "masks"} & set(filled["data"])
    assert filled["data"]["max_band"] == 0.2 and filled["stats"]["level"] == 0.95


def test_a_benchmark_given_a_missing_config_file_says_so_in_one_line(tmp_path):
    """bench/generator.py (and the other benchmarks, through config.merged_or_exit) with a --configfile that is not
    there: one line naming the file, status 1, no traceback, and the work folder is not touched."""
    import subprocess
    import sys

    work = tmp_path / "work"
    work.mkdir()
    (work / "kept.txt").write_text("x")
    missing = tmp_path / "nope.yaml"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "generator.py"), "--configfile", str(missing), "--workdir", str(work)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip() == f"dualgen: error: {missing}: file not found"
    assert (work / "kept.txt").read_text() == "x"
