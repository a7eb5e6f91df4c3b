"""MaskGIT prior (dualgen.generate.pixelcnn.maskgit): shapes, seeds, the sampler's schedule and output, conditioning,
training on grids with a known answer, the masked-token validation number, save/load, the calibration bias, and the
dispatch by kind in persist/train/sample. Tiny transformers (dim 16-32, 6x6 grids) so the file runs in well under a
minute on 2 cores."""

import math

import numpy as np
import pytest

from dualgen.core import env

tf = env.setup_tensorflow(2, 0)
from dualgen.core.errors import DualgenError
from dualgen.generate.pixelcnn import maskgit as MG
from dualgen.generate.pixelcnn import persist as PS
from dualgen.generate.pixelcnn import sample as S
from dualgen.generate.pixelcnn import train as T

K = 6
SHAPE = (6, 6)
DRAW = dict(temperature=1.0, batch_size=16)
QUIET = dict(log=lambda *a: None)


def tiny(seed=0, cond_dim=0, dim=16, depth=1, steps=None, shape=SHAPE):
    return MG.MaskGIT(K, shape, dim=dim, depth=depth, heads=4, seed=seed, cond_dim=cond_dim, steps=steps)


def random_grids(n, seed=0, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, K, (n, *shape)).astype(np.int32)


def uniform_grids(n, p, seed=0):
    """Grids holding one code each (every cell the same), the code drawn with frequencies ``p``."""
    codes = np.random.default_rng(seed).choice(len(p), n, p=p)
    return np.broadcast_to(codes[:, None, None], (n, *SHAPE)).astype(np.int32).copy()


def test_logits_have_the_grid_shape_and_the_mask_token_is_an_input_only():
    m = tiny()
    g = random_grids(3)
    logits = m(g).numpy()
    assert logits.shape == (3, *SHAPE, K) and np.isfinite(logits).all()
    masked = g.copy()
    masked[:, 2, 3] = m.mask_id  # id K: an input the head never predicts
    assert m(masked).shape == (3, *SHAPE, K)
    assert not np.allclose(m(masked).numpy(), logits)  # every cell sees every other: no causal mask
    assert np.allclose(m.grid_logits(tf.constant(g), tf.zeros((3, 0))).numpy(), logits, atol=1e-5)
    assert np.array_equal(tiny(seed=0)(g).numpy(), logits)  # seeded initial weights
    assert not np.allclose(tiny(seed=1)(g).numpy(), logits)
    with pytest.raises(DualgenError, match="grid_shape"):
        m(random_grids(1, shape=(5, 6)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=18, heads=4), "multiple of pixelcnn.maskgit.heads"),
        (dict(dim=16, heads=0), "pixelcnn.maskgit.heads"),
        (dict(dim=16, heads=4, depth=0), "pixelcnn.maskgit.depth"),
        (dict(dim=16, heads=4, cond_dim=-1), "cond_dim"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs, match):
    args = dict(dim=16, depth=1, heads=4, seed=0) | kwargs
    with pytest.raises(DualgenError, match=match) as err:
        MG.MaskGIT(K, SHAPE, **args)
    assert "\n" not in str(err.value)


def test_the_schedule_follows_the_cosine_and_ends_unmasked():
    assert MG.schedule(1024, 12) == [math.floor(1024 * math.cos(math.pi / 2 * t / 12)) for t in range(1, 12)] + [0]
    assert MG.schedule(4, 12) == [3, 2, 1, 0] + [0] * 8  # every step fixes a cell, even when steps > cells
    masks = MG.training_masks(np.random.default_rng(0), 500, 36)
    counts = masks.sum(axis=1)
    assert counts.min() >= 1 and counts.max() <= 36
    # the cosine schedule's ratio: P(ratio <= 1/2) = P(u >= 2/3) = 1/3
    assert abs((counts <= 18).mean() - 1 / 3) < 0.06
    assert np.array_equal(masks, MG.training_masks(np.random.default_rng(0), 500, 36))


def test_sampler_is_seeded_and_leaves_no_mask_token():
    m = tiny(depth=2)
    a = MG.sample_maskgit(m, 5, *SHAPE, seed=3, temperature=1.0, batch_size=2)  # 3 batches
    assert a.shape == (5, *SHAPE) and a.dtype == np.int32
    assert a.min() >= 0 and a.max() < K  # no [MASK] (id K) left
    assert np.array_equal(a, MG.sample_maskgit(m, 5, *SHAPE, seed=3, temperature=1.0, batch_size=2))
    assert np.array_equal(a, MG.sample_maskgit(m, 5, *SHAPE, seed=3, temperature=1.0, batch_size=5))  # batches
    assert np.array_equal(a[:2], MG.sample_maskgit(m, 2, *SHAPE, seed=3, temperature=1.0, batch_size=5))
    assert not np.array_equal(a, MG.sample_maskgit(m, 5, *SHAPE, seed=4, temperature=1.0, batch_size=2))
    assert not np.array_equal(a, MG.sample_maskgit(m, 5, *SHAPE, seed=3, temperature=1.0, batch_size=2, steps=3))
    one = MG.sample_maskgit(m, 3, *SHAPE, seed=3, temperature=1.0, batch_size=3, steps=1)  # one step: all at once
    assert one.min() >= 0 and one.max() < K
    # sample_fast routes a MaskGIT prior to sample_maskgit (the model's steps)
    assert np.array_equal(a, S.sample_fast(m, 5, *SHAPE, seed=3, temperature=1.0, batch_size=5))
    with pytest.raises(DualgenError, match="grid_shape"):
        MG.sample_maskgit(m, 2, 5, 6, seed=0, **DRAW)
    with pytest.raises(DualgenError, match="temperature"):
        MG.sample_maskgit(m, 2, *SHAPE, seed=0, temperature=0.0, batch_size=2)
    with pytest.raises(DualgenError, match="raster"):
        S.sample_naive(m, 2, *SHAPE, seed=0, **DRAW)
    with pytest.raises(DualgenError, match="bias"):
        MG.sample_maskgit(m, 2, *SHAPE, seed=0, bias=np.zeros(K + 1), **DRAW)


def test_the_condition_changes_the_logits_and_a_wrong_one_is_one_clear_error():
    m = tiny(cond_dim=3)
    g = random_grids(2)
    c = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]], np.float32)
    base = m(g, c).numpy()
    assert not np.allclose(base, m(g, c[::-1]).numpy())  # each grid its own condition
    other = c.copy()
    other[0, 0] = 0.2
    changed = m(g, other).numpy()
    assert not np.allclose(changed[0], base[0]) and np.allclose(changed[1], base[1], atol=1e-6)
    assert np.abs(changed[0] - base[0]).min() > 0  # every cell sees it
    for bad in (np.zeros((2, 2), np.float32), None):
        with pytest.raises(DualgenError, match=r"\(2, 3\)"):
            m(g, bad)
        with pytest.raises(DualgenError, match="sample cond"):
            MG.sample_maskgit(m, 2, *SHAPE, seed=0, cond=bad, **DRAW)
    with pytest.raises(DualgenError, match="unconditioned"):
        tiny()(g, c)
    drawn = MG.sample_maskgit(m, 2, *SHAPE, seed=0, cond=c, **DRAW)
    assert not np.array_equal(drawn, MG.sample_maskgit(m, 2, *SHAPE, seed=0, cond=c[::-1], **DRAW))


P = np.array([0.5, 0.3, 0.2, 0.0, 0.0, 0.0])


def test_training_learns_grids_of_one_code_and_their_frequencies():
    """Every training grid holds a single code (drawn 0.5 / 0.3 / 0.2 from codes 0, 1, 2; 3..5 never): a masked cell
    is the code of any visible cell, so the validation number falls to its floor (the entropy of P at the ratios
    where every cell is masked), and the sampled grids hold one code each, with about P's frequencies."""
    grids = uniform_grids(160, P)
    m = MG.MaskGIT(K, SHAPE, dim=32, depth=2, heads=4, seed=0)
    untrained = MG.validation_nll(m, grids[128:])
    hist = T.train_pixelcnn(  # the dispatch: a MaskGIT prior is trained by train_maskgit
        m, grids[:128], grids[128:], epochs=30, batch_size=16, learning_rate=2e-3, seed=0, **QUIET
    )
    assert hist["epoch"] == list(range(1, 31)) and set(hist) == {"epoch", "train_nll", "val_nll"}
    entropy = -(P[:3] * np.log(P[:3])).sum()
    all_masked = sum(math.ceil(r * 36) >= 36 for r in MG.VAL_RATIOS) / len(MG.VAL_RATIOS)
    floor = all_masked * entropy
    print("validation masked CE", untrained, hist["val_nll"][::5], "floor", floor)
    assert untrained > 1.0 and min(hist["val_nll"]) < floor + 0.08
    best = min(hist["val_nll"])
    assert abs(T.validation_nll(m, grids[128:]) - best) < 1e-5  # the best epoch's weights were kept

    drawn = MG.sample_maskgit(m, 200, *SHAPE, seed=0, temperature=1.0, batch_size=100)
    uniform = (drawn == drawn[:, :1, :1]).all(axis=(1, 2)).mean()
    shares = S.code_frequencies(drawn, K)
    print("uniform grids", uniform, "code shares", shares)
    assert uniform >= 0.8
    assert shares[3:].sum() < 0.02
    assert np.abs(shares[:3] - P[:3]).max() < 0.12  # (MaskGIT's confidence order favours likely codes: not exact)

    # the calibration's tilt works with MaskGIT draws: no farther from P than uncalibrated
    bias, history = S.calibrate(m, P, *SHAPE, seed=0, temperature=1.0, batch_size=64, grids=64, rounds=3, **QUIET)
    assert bias.shape == (K,) and min(d for _, _, d in history) <= history[0][2]


def test_training_is_seeded_and_the_validation_number_does_not_depend_on_the_batch_size():
    grids = random_grids(24, seed=1)
    runs = []
    for seed in (0, 0, 1):
        m = tiny()
        MG.train_maskgit(m, grids[:16], grids[16:], epochs=2, batch_size=8, learning_rate=1e-2, seed=seed, **QUIET)
        runs.append(m(grids[:2]).numpy())
    assert np.array_equal(runs[0], runs[1]) and not np.allclose(runs[0], runs[2])
    assert abs(MG.validation_nll(m, grids[16:], batch_size=3) - MG.validation_nll(m, grids[16:], batch_size=8)) < 1e-5
    assert MG.validation_nll(m, grids[16:], seed=1) != MG.validation_nll(m, grids[16:])
    assert math.isnan(T.validation_nll(m, grids[:0]))
    with pytest.raises(DualgenError, match="outside 0..5"):
        MG.train_maskgit(m, grids + 1, grids[:0], epochs=1, batch_size=8, learning_rate=1e-3, seed=0)
    with pytest.raises(DualgenError, match="NaN"):
        MG.train_maskgit(m, grids, grids[:0], epochs=1, batch_size=8, learning_rate=1e30, seed=0, **QUIET)


def test_bias_tilts_the_sampled_code_frequencies():
    m = tiny(depth=2)
    plain = S.code_frequencies(MG.sample_maskgit(m, 32, *SHAPE, seed=0, **DRAW), K)
    bias = np.zeros(K)
    bias[0], bias[1] = 1.5, -1.5
    tilted = S.code_frequencies(MG.sample_maskgit(m, 32, *SHAPE, seed=0, bias=bias, **DRAW), K)
    print("code shares", plain, "tilted", tilted)
    assert tilted[0] > plain[0] + 0.1 and tilted[1] < plain[1] - 0.05


def test_spec_save_and_load_give_the_same_logits(tmp_path):
    settings = {"filters": 64, "num_blocks": 4, "maskgit": {"dim": 16, "depth": 1, "steps": 5}}
    spec = PS.make_spec(settings, "maskgit", K, SHAPE, cond_dim=2)
    assert spec == {
        "kind": "maskgit",
        "num_embeddings": K,
        "grid_shape": [6, 6],
        "cond_dim": 2,
        "dim": 16,
        "depth": 1,
        "heads": 4,
        "steps": 5,
    }
    assert PS.make_spec({"filters": 8, "num_blocks": 1}, "maskgit", K, SHAPE) | {"cond_dim": 0} == {
        **spec,
        "cond_dim": 0,
        **MG.DEFAULTS,
    }
    model = PS.build(spec)
    assert isinstance(model, MG.MaskGIT) and (model.steps, model.dim) == (5, 16)
    grids, cond = random_grids(3), np.random.default_rng(0).random((3, 2)).astype(np.float32)
    model.head.b.assign(tf.fill([K], 0.25))  # weights other than the initial ones
    PS.save(model, tmp_path / "saved", spec)
    other, loaded = PS.load(tmp_path / "saved")
    assert loaded == spec and isinstance(other, MG.MaskGIT)
    assert np.array_equal(model(grids, cond).numpy(), other(grids, cond).numpy())
    assert other.steps == 5  # sample_fast decodes in the spec's steps
    for bad, match in (
        ({"maskgit": {"layers": 2}}, r"pixelcnn.maskgit.layers is not"),
        ({"maskgit": {"dim": 30}}, "multiple of pixelcnn.maskgit.heads"),
        ({"maskgit": {"steps": 0}}, r"pixelcnn.maskgit.steps is 0"),
    ):
        with pytest.raises(DualgenError, match=match):
            PS.make_spec(bad, "maskgit", K, SHAPE)
