"""Conditioned generation, numpy side: conditioning vectors, targets, obedience; checked on constructed data."""

import numpy as np
import pytest

from dualgen.core.config import check_config, load_yaml, merge
from dualgen.core.errors import DualgenError
from dualgen.generate import conditioning
from tests.conftest import REPO

NAMES = ["matrix", "oxide", "nd_rich", "eta"]


def test_fractions_and_vectors_have_the_known_values():
    masks = np.zeros((2, 4, 5), np.uint8)
    masks[0, :, :1] = 1  # 4 of 20 pixels oxide
    masks[0, 0, 4] = 3  # 1 eta
    masks[1] = 2  # all nd_rich
    f = conditioning.fractions(masks, 4)
    np.testing.assert_allclose(f, [[15 / 20, 4 / 20, 0, 1 / 20], [0, 0, 1, 0]])
    images = np.stack([np.full((4, 5, 1), 51, np.uint8), np.full((4, 5, 1), 255, np.uint8)])
    v = conditioning.vectors("phase_fractions_and_intensity", masks, images, 4)
    assert v.dtype == np.float32 and v.shape == (2, 5)
    np.testing.assert_allclose(v[:, 4], [0.2, 1.0])
    assert conditioning.vectors("none", masks, images, 4).shape == (2, 0)
    assert conditioning.dim("phase_fractions", 4) == 4
    with pytest.raises(DualgenError, match="outside 0..3"):
        conditioning.fractions(masks + 2, 4)
    with pytest.raises(DualgenError, match="pixelcnn.condition 'areas' is unknown"):
        conditioning.dim("areas", 4)


def test_targets_data_boost_and_fixed_fractions():
    real = np.array([[0.8, 0.1, 0.05, 0.05, 0.3], [0.6, 0.2, 0.2, 0.0, 0.7]], np.float32)
    data, idx = conditioning.draw_targets(real, 50, "data", NAMES, seed=3)
    np.testing.assert_array_equal(data, real[idx])  # data: real patches' vectors, drawn with replacement
    assert set(idx) == {0, 1}
    again, idx2 = conditioning.draw_targets(real, 50, "data", NAMES, seed=3)
    np.testing.assert_array_equal(idx, idx2)  # seeded
    boost, idx3 = conditioning.draw_targets(real, 50, {"boost": {"eta": 2.0, "nd_rich": 3.0}}, NAMES, seed=3)
    np.testing.assert_array_equal(idx3, idx)  # the same patches, only their fractions change
    first = boost[idx == 0][0]
    np.testing.assert_allclose(first[:4], np.array([0.8, 0.1, 0.15, 0.1]) / 1.15, rtol=1e-6)
    second = boost[idx == 1][0]
    np.testing.assert_allclose(second[:4], np.array([0.6, 0.2, 0.6, 0.0]) / 1.4, rtol=1e-6)  # absent eta stays 0
    np.testing.assert_allclose(boost[:, :4].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(boost[:, 4], data[:, 4])  # the intensity of the drawn patch stays
    fixed, _ = conditioning.draw_targets(real, 5, {"fractions": {"matrix": 3, "eta": 1}}, NAMES, seed=0)
    np.testing.assert_allclose(fixed[:, :4], np.tile([0.75, 0, 0, 0.25], (5, 1)))
    # boost_rarest: the same as boost for the rarest classes of these patches (mean eta 0.025 < nd_rich 0.125)
    rare, _ = conditioning.draw_targets(real, 50, {"boost_rarest": {"classes": 2, "factor": 2.0}}, NAMES, seed=3)
    named, _ = conditioning.draw_targets(real, 50, {"boost": {"eta": 2.0, "nd_rich": 2.0}}, NAMES, seed=3)
    np.testing.assert_array_equal(rare, named)
    assert conditioning.rarest(real, NAMES, 3) == ["eta", "nd_rich", "oxide"]
    # a config file merged over config.yaml's boost switches to fractions with boost: null
    merged, _ = conditioning.draw_targets(real, 5, {"boost": None, "fractions": {"matrix": 1}}, NAMES, seed=0)
    np.testing.assert_allclose(merged[:, :4], np.tile([1.0, 0, 0, 0], (5, 1)))


@pytest.mark.parametrize(
    "targets, message",
    [
        ({"boost": {"carbide": 2.0}}, "class 'carbide' is not in classes"),
        ({"boost": {"eta": 0}}, r"must be > 0"),
        ({"fractions": {"eta": 0}}, "sum to 0"),
        ({"boost": {"eta": 2.0}, "fractions": {"eta": 1.0}}, "set the others to null"),
        ("balanced", "is not one target"),
        ({"boost": {"eta": "lots"}}, "is not a number"),
        ({"boost_rarest": {"classes": 4, "factor": 2.0}}, r"give classes \(1..3"),
        ({"boost_rarest": {"classes": 1}}, "boost_rarest"),
        ({"boost_rarest": [2, 2.0]}, "boost_rarest"),
    ],
)
def test_bad_targets_are_one_clear_error(targets, message):
    with pytest.raises(DualgenError, match=message):
        conditioning.check_targets(targets, NAMES)


def test_obedience_perfect_ignored_and_constant_requests():
    rng = np.random.default_rng(0)
    req = rng.dirichlet(np.ones(4), size=400)
    perfect = conditioning.obedience(req, req, NAMES)
    np.testing.assert_allclose(perfect["corr"], 1.0)
    np.testing.assert_allclose(perfect["mae"], 0.0)
    ignored = conditioning.obedience(req, rng.dirichlet(np.ones(4), size=400), NAMES)
    assert (ignored["corr"].abs() < 0.15).all()  # a generator that does not listen: no correlation
    # Dirichlet(1,1,1,1) marginals are Beta(1, 3): E|X - Y| of two independent ones is
    # 2 * int_0^1 int_0^x (x - y) 3(1-x)^2 3(1-y)^2 dy dx = 3/14
    np.testing.assert_allclose(ignored["mae"], 3 / 14, atol=0.02)
    shifted = conditioning.obedience(req, np.clip(req + 0.1, 0, 1), NAMES)
    np.testing.assert_allclose(shifted["mae"], np.mean(np.clip(req + 0.1, 0, 1) - req, axis=0))
    const = conditioning.obedience(np.tile([1.0, 0, 0, 0], (10, 1)), req[:10], NAMES)
    assert const["corr"].isna().all() and list(const["class"]) == NAMES


def test_config_checks_of_conditioning_when_the_workflow_loads():
    base = load_yaml(REPO / "config.yaml")
    assert check_config(merge({}, base))["sample"]["targets"] == {"boost_rarest": {"classes": 2, "factor": 2.0}}
    with pytest.raises(DualgenError, match="mixes.balanced .* needs a conditioned prior"):
        check_config(merge(base, {"pixelcnn": {"condition": "none"}}))
    assert check_config(merge(base, {"pixelcnn": {"condition": "none"}, "mixes": {"balanced": []}}))
    with pytest.raises(DualgenError, match="config: sample.targets.boost: class 'carbide'"):
        check_config(merge(base, {"sample": {"targets": {"boost_rarest": None, "boost": {"carbide": 2.0}}}}))
    with pytest.raises(DualgenError, match="set the others to null"):
        check_config(merge(base, {"sample": {"targets": {"fractions": {"eta": 0.5}}}}))
    fixed = check_config(merge(base, {"sample": {"targets": {"boost_rarest": None, "fractions": {"eta": 0.5}}}}))
    assert fixed["sample"]["targets"]["fractions"] == {"eta": 0.5}


def test_the_default_targets_suit_any_class_names():
    """config.yaml's targets name no class: a lab's own classes load without touching sample.targets."""
    base = load_yaml(REPO / "config.yaml")
    lab = {
        "classes": [{"name": n, "value": v, "color": "#101010"} for n, v in (("matrix", 0), ("grain", 1), ("pore", 2))],
        "data": {"mask_format": "index"},
    }
    assert check_config(merge(base, lab))["sample"]["targets"]["boost_rarest"]["classes"] == 2


def test_requests_are_the_drawn_targets_with_their_table():
    real = np.array([[0.8, 0.1, 0.05, 0.05, 0.3], [0.6, 0.2, 0.2, 0.0, 0.7]], np.float32)
    cond, table = conditioning.requests(["p0", "p1"], real, 6, "data", NAMES, seed=3)
    drawn, idx = conditioning.draw_targets(real, 6, "data", NAMES, seed=3)
    np.testing.assert_array_equal(cond, drawn)
    assert list(table.columns) == ["grid", "from_patch"] + [f"req_{n}" for n in NAMES] + ["req_intensity"]
    assert list(table["from_patch"]) == [["p0", "p1"][i] for i in idx] and list(table["grid"]) == list(range(6))
    np.testing.assert_array_equal(table["req_intensity"], cond[:, 4])
    _, table = conditioning.requests(["p0", "p1"], real[:, :4], 2, "data", NAMES, seed=3)
    assert "req_intensity" not in table
