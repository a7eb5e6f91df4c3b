"""The 46 mixes of the paper (+ BMQ_aug): names, sizes, nested synthetic prefixes, real validation."""

import pandas as pd
import pytest

from dualgen.core.config import load_yaml
from dualgen.core.errors import DualgenError
from dualgen.data import datasets
from dualgen.segment.mixes import enumerate_mixes, pool_size
from tests.conftest import REPO

CFG = load_yaml(REPO / "config.yaml")


def test_default_config_has_the_papers_46_mixes_plus_augmentation():
    mixes = enumerate_mixes(CFG["mixes"], CFG["datasets"])
    names = [m.name for m in mixes]
    assert len(names) == 55 and names[-7] == "BMQ_aug" and names[-9:-7] == ["BMQ_bal050", "BMQ_bal100"]
    assert len([m for m in mixes if not (m.augment or m.balanced or m.real_only)]) == 46
    real = [m for m in mixes if m.real_only]  # the learning curve: 25..300 % of the 16 small-set patches, real HQ only
    assert [(m.name, m.n_real, m.n_synth) for m in real] == [
        ("SHQr025", 4, 0),
        ("SHQr050", 8, 0),
        ("SHQr075", 12, 0),
        ("SHQr150", 24, 0),
        ("SHQr200", 32, 0),
        ("SHQr300", 48, 0),
    ]
    assert {"SHQ_000", "SLQ_075", "BLQ_300", "BMQ_100", "SyntLQ_050", "SyntMQ_300"} <= set(names)
    assert not any(n.startswith("SyntMQ_000") for n in names)
    by_name = {m.name: m for m in mixes}
    shq50 = by_name["SHQ_050"]
    assert (shq50.n_real, shq50.n_synth) == (16, 8)  # paper: SHQ [50 %] = 16 real + 8 synthetic
    synt = by_name["SyntMQ_300"]
    assert (synt.n_real, synt.n_synth, synt.val_from) == (0, 144, "BMQ")
    assert by_name["SyntLQ_050"].n_synth == 24
    assert pool_size(CFG["mixes"], CFG["datasets"]) == 144


def test_subset_of_mixes_from_config():
    sub = {
        "bases": ["BMQ"],
        "levels": [0, 100],
        "synthetic": [],
        "synthetic_levels": [],
        "augmentation": [],
        "pretrain": [],
        "balanced": [],
        "balanced_bases": [],
        "real_sizes": [],
    }
    assert [m.name for m in enumerate_mixes(sub, CFG["datasets"])] == ["BMQ_000", "BMQ_100"]


def _bases():
    table = pd.DataFrame([{"patch_id": f"{s}_{i}", "source": s, "has_hq": True} for s in "abt" for i in range(40)])
    sizes = {k: CFG["datasets"][k] for k in datasets.SIZE_KEYS}
    manifests, _ = datasets.split(table, sizes, ["t"], seed=0)
    return manifests


def test_mix_manifests_nested_prefixes_and_real_validation():
    bases = _bases()
    pool = [f"synth_{i:05d}" for i in range(144)]
    by_name = {m.name: m for m in enumerate_mixes(CFG["mixes"], CFG["datasets"])}
    small = datasets.mix_manifest(by_name["BMQ_050"], bases, pool)
    big = datasets.mix_manifest(by_name["BMQ_100"], bases, pool)
    synth = lambda m: list(m.loc[m.origin == "synth", "id"])  # noqa: E731
    assert len(synth(small)) == 24 and len(synth(big)) == 48
    assert synth(big)[:24] == synth(small)  # a bigger mix contains the smaller one's images
    for m in (small, big):
        assert (m.loc[m.split == "val", "origin"] == "real").all()
        assert (m.loc[m.origin == "real", "split"].isin(["train", "val"])).all()
        assert (m["split"] != "test").all()
    pure = datasets.mix_manifest(by_name["SyntLQ_100"], bases, pool)
    assert (pure.loc[pure.split == "train", "origin"] == "synth").all()
    assert list(pure.loc[pure.split == "val", "id"]) == list(bases["BLQ"].loc[bases["BLQ"].split == "val", "patch_id"])
    with pytest.raises(DualgenError, match="needs 144 synthetic images but the pool has 10"):
        datasets.mix_manifest(by_name["SyntMQ_300"], bases, pool[:10])


def test_pretrain_arm_and_the_reference_of_every_mix():
    from dualgen.segment.mixes import comparison_pairs, reference

    cfg = dict(CFG["mixes"], pretrain=[100, 300])
    all_mixes = enumerate_mixes(cfg, CFG["datasets"])
    by_name = {m.name: m for m in all_mixes}
    pt = by_name["SHQ_pt300"]
    assert pt.pretrain and (pt.n_real, pt.n_synth, pt.real_from) == (16, 48, "SHQ") and len(all_mixes) == 55 + 8
    assert pool_size(cfg, CFG["datasets"]) == 144  # the pretrain arm needs no more than the levels do
    refs = dict(comparison_pairs(all_mixes))
    assert refs["SHQ_pt300"] == "SHQ_000" and refs["SyntLQ_050"] == "BLQ_000" and refs["BMQ_aug"] == "BMQ_000"
    assert refs["BLQ_075"] == "BLQ_000" and "BMQ_000" not in refs and reference(by_name["SHQ_000"]) is None
    assert len(refs) == len(all_mixes) - 4 - 6  # every mix but the four 0 % mixes and the real-only curve (6 sizes)
    assert not any(name.startswith("SHQr") for name in refs)


def test_balanced_arm_its_pool_and_its_two_references():
    from dualgen.segment.mixes import Mix, comparison_pairs, fields

    cfg = dict(CFG["mixes"], balanced=[50, 100], balanced_bases=["SHQ", "BMQ"])
    all_mixes = enumerate_mixes(cfg, CFG["datasets"])
    by_name = {m.name: m for m in all_mixes}
    bal = by_name["BMQ_bal100"]
    assert bal.balanced and (bal.n_real, bal.n_synth, bal.real_from, bal.val_from) == (48, 48, "BMQ", "BMQ")
    assert by_name["SHQ_bal050"].n_synth == by_name["SHQ_050"].n_synth == 8  # same sizes as the unconditioned mixes
    assert pool_size(cfg, CFG["datasets"]) == 144  # the unconditioned pool is not enlarged by the arm
    assert pool_size(cfg, CFG["datasets"], balanced=True) == 48  # the balanced pool: BMQ_bal100's 48 pairs
    pairs = comparison_pairs(all_mixes)
    assert ("BMQ_bal100", "BMQ_000") in pairs and ("BMQ_bal100", "BMQ_100") in pairs
    assert ("SHQ_bal050", "SHQ_050") in pairs and len(pairs) == len(
        all_mixes
    ) - 4 - 6 + 4  # no pair for 0 % or real-only mixes
    assert fields(by_name["BMQ_100"])["balanced"] is False and fields(bal)["balanced"] is True
    assert Mix(**fields(by_name["BMQ_100"])) == by_name["BMQ_100"] and Mix(**fields(bal)) == bal
    # without bases the arm adds nothing; a base the study leaves out gets no balanced mixes either
    assert not [m for m in enumerate_mixes(dict(cfg, balanced_bases=[]), CFG["datasets"]) if m.balanced]
    assert [m.name for m in enumerate_mixes(dict(cfg, bases=["SHQ"]), CFG["datasets"]) if m.balanced] == [
        "SHQ_bal050",
        "SHQ_bal100",
    ]
