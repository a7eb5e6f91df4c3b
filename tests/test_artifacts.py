"""The one atomic-write helper: files and folders appear whole under their final name, or not at all."""

import json
import os

import pytest

from dualgen.core import artifacts
from dualgen.core.errors import DualgenError


def test_atomic_path_keeps_the_ending_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "best.weights.h5"
    with artifacts.atomic_path(target) as tmp:
        assert tmp.name == f".tmp-{os.getpid()}-best.weights.h5" and tmp.parent == target.parent
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), artifacts.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["best.weights.h5"]


def test_atomic_dir_replaces_a_folder_whole_and_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "best"
    for text in ("one", "two"):
        with artifacts.atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text(text)
    assert (target / "a.txt").read_text() == "two"
    with pytest.raises(RuntimeError), artifacts.atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["best"]


def test_atomic_dir_recovers_a_kill_between_the_renames(tmp_path):
    (tmp_path / ".old-12-best").mkdir()  # the old folder moved aside, the new one never renamed in
    (tmp_path / ".old-12-best" / "a.txt").write_text("old")
    (tmp_path / ".tmp-12-best").mkdir()
    artifacts.recover(tmp_path / "best")
    assert (tmp_path / "best" / "a.txt").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["best"]


def test_artifact_dir_writes_meta_last_and_names_an_unwritable_folder(tmp_path):
    with artifacts.artifact_dir(tmp_path / "out", "demo", {"a": 1}, 7, [], {"n": 2}) as tmp:
        (tmp / "x.txt").write_text("x")
        assert not (tmp_path / "out").exists()
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert (meta["step"], meta["settings"], meta["seed"], meta["n"]) == ("demo", {"a": 1}, 7, 2)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(DualgenError, match=f"{locked}: cannot write results there"):
            with artifacts.artifact_dir(locked / "out", "demo", {}, None, []):
                pass


def test_read_spec_errors_are_one_line(tmp_path):
    with pytest.raises(DualgenError, match=f"{tmp_path}: no U-Net checkpoint \\(spec.json\\) there"):
        artifacts.read_spec(tmp_path, "U-Net", ["backbone"], "train_unet")
    artifacts.write_spec(tmp_path, {"other": 1})
    with pytest.raises(DualgenError, match="lacks backbone"):
        artifacts.read_spec(tmp_path, "U-Net", ["backbone"], "train_unet")
    (tmp_path / "spec.json").write_text("[1, 2")
    with pytest.raises(DualgenError, match="unreadable or damaged"):
        artifacts.read_spec(tmp_path, "U-Net", ["backbone"], "train_unet")
