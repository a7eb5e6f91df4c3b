"""PixelCNN prior: causality and receptive field, the fast sampler's exactness, seeds, chunking, training,
the NaN stop, save/load; the conditional prior (a global vector per grid). Tiny models (8 or 16 filters) so the file
runs in well under a minute on 2 cores."""

import json

import numpy as np
import pytest

from dualgen.core import env

tf = env.setup_tensorflow(2, 0)
from dualgen.core.errors import DualgenError  # noqa: E402
from dualgen.generate import common as generation  # noqa: E402
from dualgen.generate.pixelcnn import model as M  # noqa: E402
from dualgen.generate.pixelcnn import persist as PS
from dualgen.generate.pixelcnn import sample as S
from dualgen.generate.pixelcnn import train as T

K = 6
KINDS = ["plain", "gated"]
DRAW = dict(temperature=1.0, batch_size=16)  # sampling settings where a test does not set them


def tiny(kind, blocks=2, seed=0):
    return M.PixelCNN(K, filters=16, num_blocks=blocks, kind=kind, seed=seed, dilations=None)


def random_grids(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, K, (n, h, w)).astype(np.int32)


def cells_seen(m, g, r, c):
    """(seen, earlier, window) boolean maps over the grid: the cells whose change moves cell (r, c)'s logits, the
    cells before it in raster order, and its receptive window (receptive_rows above, receptive_cols each side)."""
    base = m(g).numpy()[:, r, c]
    seen = np.zeros(g.shape[1:], bool)
    for i in range(g.shape[1]):
        for j in range(g.shape[2]):
            other = g.copy()
            other[:, i, j] = (other[:, i, j] + 1) % K
            seen[i, j] = np.abs(m(other).numpy()[:, r, c] - base).max() > 0
    earlier = np.zeros_like(seen)
    earlier[:r] = True
    earlier[r, :c] = True
    window = np.zeros_like(seen)
    R, C = m.receptive_rows, m.receptive_cols
    window[r - R : r + 1, c - C : c + C + 1] = True
    return seen, earlier, window


@pytest.mark.parametrize("kind", KINDS)
def test_logits_see_only_earlier_cells_inside_the_window(kind):
    m = tiny(kind)
    R, C = m.receptive_rows, m.receptive_cols
    assert (R, C) == (5, 5)  # 7x7 first layer (3) + one row/column per 3x3 block
    g = random_grids(2, 9, 15)
    r, c = 7, 7
    seen, earlier, window = cells_seen(m, g, r, c)
    assert not (seen & ~earlier).any(), "a cell at or after the target changes its logits"
    assert not (seen & ~window).any(), "a cell outside the receptive window changes the logits"
    assert seen[r - 1, c] and seen[r, c - 1] and seen[r - R, c] and seen[r, c - C]
    if kind == "gated":  # no blind spot: every earlier cell of the window counts
        assert np.array_equal(seen, earlier & window)
    else:  # the plain PixelCNN's blind spot (paper, Limitations): up-right of the target
        assert not seen[r - 1, c + C]


@pytest.mark.parametrize("kind", KINDS)
def test_fast_logits_equal_the_whole_network_everywhere(kind):
    m = tiny(kind)
    g = random_grids(3, 7, 9, seed=1)
    full = m(g).numpy()
    canvas = S.Canvas(m, g)
    worst = max(
        np.abs(m.window_logits(*canvas.window(r, c)).numpy() - full[:, r, c]).max() for r in range(7) for c in range(9)
    )  # every cell: corners, edges, interior
    assert worst <= 1e-5
    assert np.abs(S.logits_at(m, g, 6, 8, fast=True) - S.logits_at(m, g, 6, 8, fast=False)).max() <= 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_fast_sampler_draws_the_naive_samplers_grids(kind):
    m = tiny(kind, blocks=1)
    naive = S.sample_naive(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=2)  # 3 chunks
    fast = S.sample_fast(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=2)
    assert fast.shape == (5, 6, 7) and fast.dtype == np.int32
    assert fast.min() >= 0 and fast.max() < K
    assert np.array_equal(naive, fast)
    assert np.array_equal(fast, S.sample_fast(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=5))  # chunking
    assert np.array_equal(fast, S.sample_fast(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=2))  # same seed
    assert not np.array_equal(fast, S.sample_fast(m, 5, 6, 7, seed=4, temperature=0.8, batch_size=2))
    assert np.array_equal(
        S.sample_fast(m, 2, 6, 7, seed=3, temperature=0.8, rows=2, batch_size=16)[:, :2], fast[:2, :2]
    )


@pytest.mark.parametrize("kind", KINDS)
def test_dilated_blocks_reach_further_stay_causal_and_the_window_stays_exact(kind):
    """pixelcnn.dilations [1, 3]: the receptive field is 3 + 1 + 3 = 7 cells (2 blocks of 1 reach 5), no cell at or
    after the target is seen, the far ends are, and the fast sampler's window logits equal the whole network's."""
    m = M.PixelCNN(K, filters=16, num_blocks=2, kind=kind, seed=0, dilations=[1, 3])
    R, C = m.receptive_rows, m.receptive_cols
    assert (R, C) == (7, 7)
    g = random_grids(2, 10, 17, seed=4)
    r, c = 8, 8
    seen, earlier, window = cells_seen(m, g, r, c)
    assert not (seen & ~earlier).any() and not (seen & ~window).any()
    assert seen[r - R, c] and seen[r, c - C] and seen[r - 1, c] and seen[r, c - 1]
    assert seen.sum() > tiny(kind).receptive_rows ** 2  # more cells than the undilated network's window holds
    full = m(g).numpy()
    canvas = S.Canvas(m, g)
    worst = max(
        np.abs(m.window_logits(*canvas.window(i, j)).numpy() - full[:, i, j]).max()
        for i in range(10)
        for j in range(17)
    )
    assert worst <= 1e-5
    same = M.PixelCNN(K, filters=16, num_blocks=2, kind=kind, seed=0, dilations=[1, 1])
    assert np.array_equal(same(g).numpy(), tiny(kind)(g).numpy())  # ones: the paper's network, weight for weight
    assert np.array_equal(
        S.sample_fast(m, 3, 6, 9, seed=2, temperature=1.0, batch_size=2),
        S.sample_naive(m, 3, 6, 9, seed=2, temperature=1.0, batch_size=2),
    )
    grids = stripes(12, size=10)  # it trains (a dilated conv has a gradient on a CPU) and learns the stripes
    hist = T.train_pixelcnn(m, grids[:8], grids[8:], epochs=3, batch_size=4, learning_rate=3e-3, seed=0, log=print)
    assert hist["val_nll"][-1] < hist["val_nll"][0]


@pytest.mark.parametrize("dilations", [[1], [1, 0], [1, 2.0], "2", [1, True]])
def test_dilations_must_be_one_positive_integer_per_block(dilations):
    with pytest.raises(DualgenError, match="pixelcnn.dilations"):
        M.PixelCNN(K, filters=8, num_blocks=2, kind="plain", seed=0, dilations=dilations)


def test_a_dilated_spec_saves_and_loads_and_an_undilated_spec_has_no_key(tmp_path):
    assert "dilations" not in PS.make_spec({"filters": 8, "num_blocks": 2, "dilations": None}, "plain", K, (6, 6))
    spec = PS.make_spec({"filters": 8, "num_blocks": 2, "dilations": [1, 2]}, "gated", K, (6, 6))
    assert spec["dilations"] == [1, 2]
    m = PS.build(spec)
    PS.save(m, tmp_path / "saved", spec)
    other, loaded = PS.load(tmp_path / "saved")
    g = random_grids(2, 6, 6)
    assert loaded == spec and other.dilations == (1, 2)
    assert np.array_equal(m(g).numpy(), other(g).numpy())


def stripes(n, size=8, seed=0):
    """Horizontal stripes: row i holds code (a + i) % 4, a random per grid."""
    a = np.random.default_rng(seed).integers(0, 4, n)
    return ((a[:, None, None] + np.arange(size)[None, :, None]) % 4 + np.zeros((1, 1, size), int)).astype(np.int32)


def test_training_lowers_the_nll_and_save_load_restores_it(tmp_path):
    grids = stripes(24)
    m = M.PixelCNN(4, filters=16, num_blocks=1, seed=0, kind="plain", dilations=None)
    hist = T.train_pixelcnn(
        m, grids[:20], grids[20:], epochs=5, batch_size=4, learning_rate=3e-3, seed=0, log=lambda *a: None
    )
    assert hist["epoch"] == [1, 2, 3, 4, 5]
    assert hist["val_nll"][-1] < 0.5 * hist["val_nll"][0] and hist["val_nll"][-1] < 0.5 * np.log(4)
    assert hist["train_nll"][-1] < hist["train_nll"][0]
    assert abs(T.validation_nll(m, grids[20:]) - hist["val_nll"][-1]) < 1e-6

    spec = PS.make_spec({"filters": 16, "num_blocks": 1}, "plain", 4, grids.shape[1:], position=False)
    assert spec == {
        "kind": "plain",
        "num_embeddings": 4,
        "filters": 16,
        "num_blocks": 1,
        "grid_shape": [8, 8],
        "cond_dim": 0,
        "position": False,
    }
    assert PS.make_spec({"filters": 16, "num_blocks": 1}, "plain", 4, grids.shape[1:])["position"] is True
    PS.save(m, tmp_path / "saved", spec)
    other, loaded = PS.load(tmp_path / "saved")
    assert loaded == spec and (other.kind, other.num_blocks) == ("plain", 1)
    assert np.array_equal(m(grids[:2]).numpy(), other(grids[:2]).numpy())


def test_training_keeps_the_epoch_of_lowest_validation_nll():
    """Four random grids to memorise, other random grids to validate on: the validation NLL falls towards log K, then
    rises as the model memorises; the model must end with the weights of the best epoch, not of the last one."""
    train, val = random_grids(4, 8, 8, seed=1), random_grids(8, 8, 8, seed=2)
    m = M.PixelCNN(K, filters=32, num_blocks=2, seed=0, kind="plain", dilations=None)
    hist = T.train_pixelcnn(m, train, val, epochs=40, batch_size=4, learning_rate=1e-2, seed=0, log=lambda *a: None)
    best = int(np.argmin(hist["val_nll"]))
    assert best < len(hist["val_nll"]) - 1 and hist["val_nll"][-1] > hist["val_nll"][best] + 0.1  # it did overfit
    assert abs(T.validation_nll(m, val) - hist["val_nll"][best]) < 1e-5
    # without validation grids: the last epoch's weights
    m2 = M.PixelCNN(K, filters=32, num_blocks=2, seed=0, kind="plain", dilations=None)
    T.train_pixelcnn(m2, train, val[:0], epochs=40, batch_size=4, learning_rate=1e-2, seed=0, log=lambda *a: None)
    assert np.allclose(T.validation_nll(m2, val), hist["val_nll"][-1], atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_fast_logits_equal_the_whole_network_with_position(kind, tmp_path):
    m = M.PixelCNN(K, filters=16, num_blocks=2, kind=kind, seed=0, grid_shape=(9, 11), dilations=None)
    rng = np.random.default_rng(3)
    m.last_row_bias.assign(rng.normal(0, 1, m.last_row_bias.shape).astype(np.float32))  # trained-like, not zero
    grids = random_grids(2, 9, 11, seed=4)
    full = m(grids).numpy()
    plain = M.PixelCNN(K, filters=16, num_blocks=2, kind=kind, seed=0, dilations=None)(grids).numpy()
    assert np.abs(full[:, -1] - plain[:, -1]).max() > 1e-3 and np.array_equal(full[:, :-1], plain[:, :-1])
    worst = max(
        np.abs(S.logits_at(m, grids, r, c, fast=True) - full[:, r, c]).max() for r in range(9) for c in range(11)
    )
    assert worst < 1e-4
    a = S.sample_fast(m, 3, 9, 11, seed=5, **DRAW)
    assert np.array_equal(a, S.sample_naive(m, 3, 9, 11, seed=5, **DRAW))
    with pytest.raises(DualgenError, match="grid_shape"):
        m(random_grids(1, 8, 11))
    spec = PS.make_spec({"filters": 16, "num_blocks": 2}, kind, K, (9, 11))
    PS.save(m, tmp_path / "saved", spec)
    other, loaded = PS.load(tmp_path / "saved")
    assert loaded["position"] is True and other.grid_shape == (9, 11)
    assert np.array_equal(other(grids).numpy(), full)


def test_position_lets_the_prior_put_a_border_code_on_the_last_row_only():
    """Grids of code 0 whose last row is code 1 (as a VQ-VAE encodes a patch's bottom border): the rows above a cell
    look the same for the last rows, so only the position tells where code 1 goes."""
    grids = np.zeros((16, 10, 8), np.int32)
    grids[:, -1] = 1
    shares = {}
    for position in (False, True):
        m = M.PixelCNN(
            K, filters=16, num_blocks=1, seed=0, grid_shape=(10, 8) if position else None, kind="plain", dilations=None
        )
        T.train_pixelcnn(
            m, grids[:12], grids[12:], epochs=80, batch_size=4, learning_rate=1e-2, seed=0, log=lambda *a: None
        )
        out = S.sample_fast(m, 8, 10, 8, seed=1, **DRAW)
        shares[position] = (np.mean(out[:, -1] == 1), np.mean(out[:, :-1] == 1))
    assert shares[True][0] > 0.95 and shares[True][1] < 0.02  # border code on the border, nowhere else
    assert shares[False][0] < 0.8 or shares[False][1] > 0.05  # without position it cannot


def test_load_errors_name_the_folder(tmp_path):
    spec = PS.make_spec({"filters": 16, "num_blocks": 1}, "gated", 4, (8, 8))
    PS.save(PS.build(spec), tmp_path / "saved", spec)
    with pytest.raises(DualgenError, match=f"{tmp_path / 'nowhere'}: no PixelCNN checkpoint"):
        PS.load(tmp_path / "nowhere")
    (tmp_path / "saved" / "spec.json").write_text(json.dumps({**spec, "filters": 8}))  # another model
    with pytest.raises(DualgenError, match=f"{tmp_path / 'saved'}: cannot load the PixelCNN"):
        PS.load(tmp_path / "saved")


def test_nan_loss_stops_with_one_clear_error():
    grids = stripes(8)
    m = M.PixelCNN(4, filters=16, num_blocks=1, kind="plain", seed=0, dilations=None)
    with pytest.raises(
        DualgenError,
        match=r"PixelCNN loss became NaN/Inf at epoch \d+ step \d+ \(last finite loss "
        r"[-0-9.e+]+\): lower pixelcnn.learning_rate",
    ):
        T.train_pixelcnn(m, grids, grids[:2], epochs=20, batch_size=4, learning_rate=1e9, seed=0, log=lambda *a: None)
    m = M.PixelCNN(4, filters=16, num_blocks=1, kind="plain", seed=0, dilations=None)
    m.logits.b.assign([np.nan, 0.0, 0.0, 0.0])  # a diverged weight: NaN at the first step
    with pytest.raises(DualgenError, match=r"at epoch 1 step 1 \(last finite loss None\)"):
        T.train_pixelcnn(m, grids, grids[:2], epochs=1, batch_size=4, learning_rate=1e-3, seed=0, log=lambda *a: None)


def test_bad_settings_and_data_are_one_clear_error():
    with pytest.raises(DualgenError, match="pixelcnn.kind 'pixel' is unknown"):
        M.PixelCNN(4, kind="pixel", filters=64, num_blocks=4, seed=0, dilations=None)
    m = M.PixelCNN(4, filters=16, num_blocks=0, kind="plain", seed=0, dilations=None)
    with pytest.raises(DualgenError, match="outside 0..3"):
        T.train_pixelcnn(m, stripes(4) + 4, stripes(2), epochs=1, batch_size=2, learning_rate=1e-3, seed=0)
    with pytest.raises(DualgenError, match="temperature 0 must be > 0"):
        S.sample_fast(m, 1, 4, 4, seed=0, temperature=0, batch_size=16)
    m.logits.b.assign([np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(DualgenError, match="NaN/Inf logits while sampling"):
        S.sample_fast(m, 1, 4, 4, seed=0, **DRAW)


# ------------------------------------------------------------------------------------------------- conditioning

CD = 3  # conditioning values per grid in the conditional tests


def tiny_cond(kind, cond_dim=CD, blocks=2, seed=0, name=None):
    return M.PixelCNN(
        5, filters=8, num_blocks=blocks, kind=kind, seed=seed, cond_dim=cond_dim, name=name, dilations=None
    )


def random_cond(n, seed=0, cond_dim=CD):
    return np.random.default_rng([seed, 99]).normal(size=(n, cond_dim)).astype(np.float32)


def grids5(n, seed=0):
    return np.random.default_rng(seed).integers(0, 5, (n, 6, 7)).astype(np.int32)


def cond_variables(m):
    return [v for v in m.trainable_variables if "cond_w" in v.name]


@pytest.mark.parametrize("kind", KINDS)
def test_the_condition_reaches_every_position_and_every_layer(kind):
    m = tiny_cond(kind)
    assert m.cond_dim == CD
    g, c = grids5(2), random_cond(2)
    base = m(g, c).numpy()
    other = m(g, random_cond(2, seed=1)).numpy()
    changed = np.abs(other - base).max(axis=-1)  # (B, H, W)
    assert (changed > 0).all(), "a change of cond leaves some cell's logits (e.g. cell (0, 0)) unchanged"
    projections = cond_variables(m)
    # plain: first conv + 3 convs per block + head + logits; gated: vertical + horizontal per layer + head + logits
    assert len(projections) == (1 + 3 * 2 + 2 if kind == "plain" else 2 * 3 + 2)
    assert all(v.shape == (CD, v.shape[1]) for v in projections)
    for v in projections:  # every layer receives the condition
        kept = v.numpy()
        v.assign(tf.zeros_like(v))
        assert np.abs(m(g, c).numpy() - base).max() > 1e-6, f"zeroing {v.name} does not change the logits"
        v.assign(kept)
    assert np.array_equal(m(g, c).numpy(), base)


@pytest.mark.parametrize("kind", KINDS)
def test_a_zero_condition_is_the_unconditioned_model_with_the_same_weights(kind):
    # conditioning draws its own seeds: the shared weights of the same seed are the unconditioned model's
    same = {v.name: v.numpy() for v in tiny_cond(kind, 0, name="prior").trainable_variables}
    cond_model = tiny_cond(kind, seed=1, name="prior")
    shared = [v for v in cond_model.trainable_variables if "cond_w" not in v.name]
    assert sorted(v.name for v in shared) == sorted(same)
    assert all(
        np.array_equal(v.numpy(), same[v.name])
        for v in tiny_cond(kind, name="prior").trainable_variables
        if v.name in same
    )
    plain = tiny_cond(kind, 0, seed=2, name="prior")  # other weights: copy the conditional model's in
    by_name = {v.name: v for v in shared}
    for v in plain.trainable_variables:
        v.assign(by_name[v.name])
    g = grids5(3)
    zero = cond_model(g, np.zeros((3, CD), np.float32)).numpy()
    assert np.abs(zero - plain(g).numpy()).max() <= 1e-6
    assert np.abs(zero - cond_model(g, random_cond(3)).numpy()).max() > 1e-3  # and a nonzero one differs


@pytest.mark.parametrize("kind", KINDS)
def test_fast_sampler_stays_exact_for_the_conditional_prior(kind):
    m = tiny_cond(kind)
    g, c = grids5(3, seed=1), random_cond(3, seed=2)
    full = m(g, c).numpy()
    canvas = S.Canvas(m, g)
    worst = max(
        np.abs(m.window_logits(*canvas.window(r, col), c).numpy() - full[:, r, col]).max()
        for r in range(6)
        for col in range(7)
    )
    assert worst <= 1e-5
    assert np.abs(S.logits_at(m, g, 5, 6, True, cond=c) - S.logits_at(m, g, 5, 6, False, cond=c)).max() <= 1e-5

    m = tiny_cond(kind, blocks=1)
    c = random_cond(4, seed=3) * 3
    naive = S.sample_naive(m, 4, 6, 7, seed=3, temperature=0.8, batch_size=3, cond=c)  # 2 chunks
    fast = S.sample_fast(m, 4, 6, 7, seed=3, temperature=0.8, batch_size=3, cond=c)
    assert fast.shape == (4, 6, 7) and fast.dtype == np.int32
    assert np.array_equal(naive, fast)
    assert np.array_equal(fast, S.sample_fast(m, 4, 6, 7, seed=3, temperature=0.8, batch_size=4, cond=c))
    assert np.array_equal(
        fast[2:], S.sample_fast(m, 4, 6, 7, seed=3, temperature=0.8, cond=c[[1, 0, 2, 3]], batch_size=16)[2:]
    )
    assert not np.array_equal(fast, S.sample_fast(m, 4, 6, 7, seed=3, temperature=0.8, cond=-c, batch_size=16))


def two_class_grids(n, seed=0):
    """Grid i filled with code 0 where its cond is [1, 0], with code 1 where it is [0, 1]; ~5 % noise cells."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    grids = np.broadcast_to(label[:, None, None], (n, 6, 6)).copy()
    noise = rng.random(grids.shape) < 0.05
    grids[noise] = rng.integers(0, 4, noise.sum())
    return grids.astype(np.int32), np.eye(2, dtype=np.float32)[label]


def test_conditional_training_follows_the_condition_and_save_load_keeps_it(tmp_path):
    grids, cond = two_class_grids(40)
    m = M.PixelCNN(4, filters=16, num_blocks=1, seed=0, cond_dim=2, kind="plain", dilations=None)
    untrained = T.validation_nll(m, grids[32:], cond=cond[32:])
    hist = T.train_pixelcnn(
        m,
        grids[:32],
        grids[32:],
        epochs=6,
        batch_size=4,
        learning_rate=1e-2,
        seed=0,
        log=lambda *a: None,
        train_cond=cond[:32],
        val_cond=cond[32:],
    )
    print("conditional training: validation NLL", untrained, hist["val_nll"])
    assert hist["val_nll"][-1] < 0.5 * untrained and hist["val_nll"][-1] < hist["val_nll"][0]
    assert abs(T.validation_nll(m, grids[32:], cond=cond[32:]) - hist["val_nll"][-1]) < 1e-6
    want = np.eye(2, dtype=np.float32)[[0, 0, 0, 1, 1, 1]]
    first = tf.nn.softmax(S.logits_at(m, np.zeros((6, 6, 6), np.int32), 0, 0, True, cond=want)).numpy()
    print("P(code 0), P(code 1) at cell (0, 0):", first[:, :2].round(3).tolist())
    assert (first[:3, 0] > 0.8).all() and (first[3:, 1] > 0.8).all()  # no earlier codes: the condition decides
    samples = S.sample_fast(m, 6, 6, 6, seed=0, cond=want, **DRAW)
    print("fraction of cells that follow the condition:", (samples[:3] == 0).mean(), (samples[3:] == 1).mean())
    assert (samples[:3] == 0).mean() > 0.8 and (samples[3:] == 1).mean() > 0.8

    spec = PS.make_spec({"filters": 16, "num_blocks": 1}, "plain", 4, grids.shape[1:], cond_dim=2, position=False)
    assert spec["cond_dim"] == 2
    PS.save(m, tmp_path / "saved", spec)
    other, loaded = PS.load(tmp_path / "saved")
    assert loaded == spec and other.cond_dim == 2
    assert np.array_equal(m(grids[:4], cond[:4]).numpy(), other(grids[:4], cond[:4]).numpy())


def test_bad_cond_is_one_clear_error():
    m = tiny_cond("plain", cond_dim=2, blocks=1)
    g = grids5(3)
    for call, match in [
        (lambda: m(g), r"PixelCNN cond: expected a \(3, 2\) float array .*got None"),
        (lambda: m(g, np.zeros((3, 3))), r"PixelCNN cond: expected a \(3, 2\) float array .*got \(3, 3\)"),
        (lambda: m(g, np.zeros((2, 2))), r"expected a \(3, 2\) .*got \(2, 2\)"),
        (lambda: S.sample_fast(m, 2, 4, 4, seed=0, **DRAW), r"PixelCNN sample cond: expected a \(2, 2\) .*got None"),
        (
            lambda: S.sample_naive(m, 2, 4, 4, seed=0, cond=np.zeros((2, 3)), **DRAW),
            r"sample cond: .*got float64 \(2, 3\)",
        ),
        (
            lambda: S.sample_fast(m, 2, 4, 4, seed=0, cond=np.zeros((3, 2)), **DRAW),
            r"sample cond: .*got float64 \(3, 2\)",
        ),
        (lambda: S.sample_fast(m, 2, 4, 4, seed=0, cond=np.zeros(2), **DRAW), r"sample cond: .*got float64 \(2,\)"),
        (lambda: S.sample_fast(m, 1, 4, 4, seed=0, cond=[[np.nan, 0.0]], **DRAW), r"sample cond: holds NaN/Inf"),
        (lambda: S.logits_at(m, g, 0, 0, True), r"PixelCNN cond: expected a \(3, 2\) .*got None"),
        (lambda: T.validation_nll(m, g, cond=np.zeros((2, 2))), r"validation cond: expected a \(3, 2\)"),
        (
            lambda: T.train_pixelcnn(m, g, g, epochs=1, batch_size=2, learning_rate=1e-3, seed=0),
            r"PixelCNN train_cond: expected a \(3, 2\) .*got None",
        ),
        (
            lambda: T.train_pixelcnn(
                m,
                g,
                g[:1],
                epochs=1,
                batch_size=2,
                learning_rate=1e-3,
                seed=0,
                train_cond=np.zeros((3, 2)),
                val_cond=np.zeros((3, 2)),
            ),
            r"PixelCNN val_cond: expected a \(1, 2\) .*got float64 \(3, 2\)",
        ),
        (
            lambda: S.sample_fast(tiny("plain", blocks=0), 1, 4, 4, seed=0, cond=np.zeros((1, 2)), **DRAW),
            r"sample cond: the model is unconditioned \(cond_dim 0\): pass no cond",
        ),
        (lambda: M.PixelCNN(4, 64, 4, "plain", 0, cond_dim=-1, dilations=None), r"cond_dim must be an integer >= 0"),
    ]:
        with pytest.raises(DualgenError, match=match):
            call()


# an unconditioned model's checkpoint before conditioning existed (num_blocks 1, 5 codes, 8 filters)
OLD_CHECKPOINT = {
    "plain": {
        "blocks/0/conv/b": [4],
        "blocks/0/conv/w": [2, 3, 4, 4],
        "blocks/0/expand/b": [8],
        "blocks/0/expand/w": [1, 1, 4, 8],
        "blocks/0/reduce/b": [4],
        "blocks/0/reduce/w": [1, 1, 8, 4],
        "first/b": [8],
        "first/w": [4, 7, 5, 8],
    },
    "gated": {
        f"{layer}/{name}": shape
        for layer, (v_w, h_w) in {
            "first": ([4, 7, 5, 16], [1, 4, 5, 16]),
            "blocks/0": ([2, 3, 8, 16], [1, 2, 8, 16]),
        }.items()
        for name, shape in {
            "v_conv/b": [16],
            "v_conv/w": v_w,
            "h_conv/b": [16],
            "h_conv/w": h_w,
            "v_to_h/b": [16],
            "v_to_h/w": [1, 1, 16, 16],
            "h_out/b": [8],
            "h_out/w": [1, 1, 8, 8],
        }.items()
    },
}


@pytest.mark.parametrize("kind", KINDS)
def test_an_unconditioned_model_is_unchanged(kind, tmp_path):
    m = tiny_cond(kind, 0, blocks=1)
    assert m.cond_dim == 0 and not cond_variables(m)
    spec = PS.make_spec({"filters": 8, "num_blocks": 1}, kind, 5, (6, 7), position=False)
    PS.save(m, tmp_path / "saved", spec)
    keys = {
        name.removeprefix("model/").removesuffix("/.ATTRIBUTES/VARIABLE_VALUE"): shape
        for name, shape in tf.train.list_variables(str(tmp_path / "saved" / "ckpt"))
        if name.startswith("model/")
    }
    head = {"head/b": [8], "head/w": [1, 1, 8, 8], "logits/b": [5], "logits/w": [1, 1, 8, 5]}
    assert keys == {**OLD_CHECKPOINT[kind], **head}
    other, loaded = PS.load(tmp_path / "saved")
    assert other.cond_dim == 0 and loaded == spec
    g = grids5(2)
    assert np.array_equal(m(g).numpy(), other(g).numpy())
    assert np.array_equal(m(g).numpy(), m(g, np.zeros((2, 0), np.float32)).numpy())
    fast = S.sample_fast(m, 2, 6, 7, seed=1, **DRAW)
    assert np.array_equal(fast, S.sample_fast(m, 2, 6, 7, seed=1, cond=np.zeros((2, 0), np.float32), **DRAW))


def test_flips_and_the_augmented_training_grids():
    """The mirror images keep rows as rows; the augmented set is the grids and their encoded mirror images, with
    the cond rows repeated in the same order; a missing or mismatched flips.npy and an unknown mode are one error."""
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    f = generation.flips(x)
    assert f.shape == (3, 2, 3, 4) and len(generation.FLIPS) == 3
    assert (f[0][1] == x[1][:, ::-1]).all() and (f[1][1] == x[1][::-1]).all() and (f[2][1] == x[1][::-1, ::-1]).all()
    grids = np.arange(2 * 5 * 5).reshape(2, 5, 5)
    encoded = 100 + np.arange(3 * 2 * 5 * 5).reshape(3, 2, 5, 5)  # any codes: the VQ-VAE's, not flipped grids
    cond = np.array([[0.1, 0.9], [0.6, 0.4]], np.float32)
    g, c = generation.training_grids(grids, cond, "flips", {"flips.npy": encoded})
    assert g.shape == (8, 5, 5) and (g[:2] == grids).all()
    assert (g[2:4] == encoded[0]).all() and (g[6:] == encoded[2]).all()
    assert (c == np.tile(cond, (4, 1))).all()
    g, c = generation.training_grids(grids, cond, "none", {"flips.npy": encoded})
    assert g is grids and c is cond
    with pytest.raises(DualgenError, match="flips.npy.*rerun encode"):
        generation.training_grids(grids, cond, "flips", {})
    with pytest.raises(DualgenError, match="flips.npy"):
        generation.training_grids(grids, cond, "flips", {"flips.npy": encoded[:, :1]})
    with pytest.raises(DualgenError, match="pixelcnn.augment"):
        generation.training_grids(grids, cond, "rotations", {"flips.npy": encoded})


def test_turns_and_the_dihedral_training_grids():
    """The flips and the turns are the eight symmetries of a square patch, each once (the turns: a 90-degree turn
    either way, the transpose, the anti-transpose); dihedral training grids are the grids, their encoded mirror images,
    then their encoded turns, the cond rows repeated; a missing turns.npy is one error."""
    x = np.arange(2 * 4 * 4).reshape(2, 4, 4)
    t = generation.turns(x)
    assert t.shape == (4, 2, 4, 4) and len(generation.TURNS) == 4
    assert (t[0][1] == x[1].T).all()
    assert generation.TURNS[1:3] == ("turned right", "turned left")
    assert (t[1][1] == np.rot90(x[1], -1)).all() and (t[2][1] == np.rot90(x[1], 1)).all()  # clockwise, then counter-
    assert (t[3][1] == np.rot90(x[1], 2).T).all()  # the anti-transpose
    all8 = generation.symmetric_copies(x)
    assert all8.shape == (16, 4, 4) and (all8[:2] == x).all() and (all8[8:10] == t[0]).all()
    assert len({c.tobytes() for c in all8[::2]}) == 8  # no symmetry twice
    assert generation.symmetric_copies(np.zeros((2, 4, 6))).shape == (8, 4, 6)  # not square: the mirror images
    grids = np.arange(2 * 5 * 5).reshape(2, 5, 5)
    flipped = 100 + np.arange(3 * 2 * 5 * 5).reshape(3, 2, 5, 5)
    turned = 1000 + np.arange(4 * 2 * 5 * 5).reshape(4, 2, 5, 5)
    cond = np.array([[0.1, 0.9], [0.6, 0.4]], np.float32)
    copies = {"flips.npy": flipped, "turns.npy": turned}
    g, c = generation.training_grids(grids, cond, "dihedral", copies)
    assert g.shape == (16, 5, 5) and (g[:2] == grids).all() and (g[2:4] == flipped[0]).all()
    assert (g[8:10] == turned[0]).all() and (g[14:] == turned[3]).all()
    assert (c == np.tile(cond, (8, 1))).all()
    g, _ = generation.training_grids(grids, cond, "flips", copies)  # flips ignores the turns
    assert g.shape == (8, 5, 5)
    with pytest.raises(DualgenError, match="turns.npy.*rerun encode"):
        generation.training_grids(grids, cond, "dihedral", {"flips.npy": flipped})


def test_augment_copies_reads_only_the_files_of_its_mode(tmp_path):
    """augment_copies loads exactly the encode files AUGMENTS names for the mode, cut to the given rows: flips does
    not read turns.npy (here not even a numpy file), none reads nothing; a missing file and an unknown mode are one
    error each."""
    flipped = np.arange(3 * 4 * 2 * 2).reshape(3, 4, 2, 2)
    np.save(tmp_path / "flips.npy", flipped)
    (tmp_path / "turns.npy").write_text("not codes")
    rows = np.array([True, False, True, False])
    copies = generation.augment_copies(tmp_path, "flips", rows)
    assert list(copies) == ["flips.npy"] and (copies["flips.npy"] == flipped[:, rows]).all()
    assert generation.augment_copies(tmp_path, "none", rows) == {}
    (tmp_path / "turns.npy").unlink()
    with pytest.raises(DualgenError, match="turns.npy is missing: rerun encode"):
        generation.augment_copies(tmp_path, "dihedral", rows)
    with pytest.raises(DualgenError, match="pixelcnn.augment: unknown 'rotations'"):
        generation.augment_copies(tmp_path, "rotations", rows)


def test_calibration_matches_the_code_frequencies_and_keeps_the_arrangement():
    """A prior trained on grids whose rows each hold one random code (25 % each) draws such rows; asked for
    55 / 25 / 15 / 5 % it must hit those shares as a tilt of the prior (rows stay uniform, far more often than
    independent cells would make them), with offsets in the order of the wanted shares; a target equal to what the
    prior draws leaves it unbiased. The calibration's draws do not touch the pool's random streams."""
    rows = np.random.default_rng(5).integers(0, 4, (40, 8, 1))
    grids = np.broadcast_to(rows, (40, 8, 8)).astype(np.int32)
    m = M.PixelCNN(4, filters=16, num_blocks=1, seed=0, grid_shape=(8, 8), kind="plain", dilations=None)
    T.train_pixelcnn(m, grids[:36], grids[36:], epochs=8, batch_size=4, learning_rate=3e-3, seed=0, log=lambda *a: None)
    plain = S.sample_fast(m, 48, 8, 8, seed=3, **DRAW)
    target = np.array([0.55, 0.25, 0.15, 0.05])
    assert np.abs(S.code_frequencies(plain, 4) - target).max() > 0.1
    bias, history = S.calibrate(m, target, 8, 8, seed=3, grids=32, log=lambda *a: None, **DRAW)
    first = S._sample(S._fill_fast, m, 32, 8, 8, 3, 1.0, 16, None, None, np.zeros(4), stream=(1, 0))
    assert len(history) == S.CALIBRATION_ROUNDS and np.allclose(history[0][1], S.code_frequencies(first, 4))
    assert not history[0][0].any() and history[0][2] == pytest.approx(S.share_distance(history[0][1], target))
    assert S.share_distance([0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0]) == pytest.approx(0.5)
    best = min(h[2] for h in history)
    assert best < 0.5 * history[0][2] and any(b is bias for b, _, d in history if d == best)
    assert bias[0] > bias[1] > bias[2] > bias[3]
    after = S.sample_fast(m, 48, 8, 8, seed=3, bias=bias, **DRAW)
    assert np.abs(S.code_frequencies(after, 4) - target).max() < 0.07
    uniform_rows = np.mean([len(set(row)) == 1 for g in after for row in g])
    assert uniform_rows > 0.6  # independent cells at these shares would make a uniform row of 8 with p < 0.01
    assert np.array_equal(S.sample_fast(m, 48, 8, 8, seed=3, **DRAW), plain)  # the pool's streams are its own
    same, _ = S.calibrate(
        m, S.code_frequencies(first, 4), 8, 8, seed=3, grids=32, rounds=3, log=lambda *a: None, **DRAW
    )
    assert not same.any()  # the first round (no offsets) drew the target exactly: no later round can be nearer
    with pytest.raises(DualgenError, match="calibration"):
        S.sample_fast(m, 2, 8, 8, seed=0, bias=np.zeros(3), **DRAW)
    with pytest.raises(DualgenError, match="calibration target"):
        S.calibrate(m, np.ones(3) / 3, 8, 8, seed=0, **DRAW)


def test_calibration_on_another_statistic_moves_the_codes_by_their_features():
    """Classes made of codes (A: codes 0 and 1, B: 2 and 3; the features say so): asked for 80 % A, the tilt by the
    expected class counts gets there from where the code calibration left it (``start``), with the offsets of a
    class's codes raised together; the stage's draws are a stream of their own."""
    rows = np.random.default_rng(5).integers(0, 4, (40, 8, 1))
    grids = np.broadcast_to(rows, (40, 8, 8)).astype(np.int32)
    m = M.PixelCNN(4, filters=16, num_blocks=1, seed=0, grid_shape=(8, 8), kind="plain", dilations=None)
    T.train_pixelcnn(m, grids[:36], grids[36:], epochs=8, batch_size=4, learning_rate=3e-3, seed=0, log=lambda *a: None)
    features = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])

    def measure(g):
        return np.array([np.isin(g, [0, 1]).mean(), np.isin(g, [2, 3]).mean()])

    start = np.array([0.1, -0.1, 0.0, 0.0])
    bias, history = S.calibrate(
        m,
        np.array([0.8, 0.2]),
        8,
        8,
        seed=3,
        grids=32,
        rounds=8,
        step=S.CLASS_STEP,
        measure=measure,
        features=features,
        start=start,
        stream=2,
        log=lambda *a: None,
        **DRAW,
    )
    assert np.array_equal(history[0][0], start) and history[0][1].shape == (2,)
    assert bias[0] - start[0] == pytest.approx(bias[1] - start[1]) and bias[2] == pytest.approx(bias[3])
    assert bias[0] > bias[2]
    after = measure(S.sample_fast(m, 64, 8, 8, seed=3, bias=bias, **DRAW))
    assert abs(after[0] - 0.8) < 0.07 and abs(measure(S.sample_fast(m, 64, 8, 8, seed=3, **DRAW))[0] - 0.8) > 0.15
    with pytest.raises(DualgenError, match="features"):
        S.calibrate(m, np.array([0.8, 0.2]), 8, 8, seed=0, measure=measure, features=features[:, :1], **DRAW)
    assert [S.calibration_mode(v) for v in (True, False, "classes", "codes", "none")] == [
        "codes",
        "none",
        "classes",
        "codes",
        "none",
    ]
    with pytest.raises(DualgenError, match="sample.calibrate is 'maybe': use one of classes, codes, none"):
        S.calibration_mode("maybe")


def test_code_class_composition():
    """Two 2x2-pixel cells per patch: code 0 over pure class 1, code 1 over half class 0 / half class 2; code 2 never
    used (a row of zeros)."""
    grids = np.array([[[0, 1]], [[1, 0]]])
    masks = np.array([[[1, 1, 0, 2], [1, 1, 0, 2]], [[2, 0, 1, 1], [2, 0, 1, 1]]])
    comp = generation.code_class_composition(grids, masks, 3, 3)
    assert np.allclose(comp, [[0, 1, 0], [0.5, 0, 0.5], [0, 0, 0]])
    with pytest.raises(DualgenError, match="do not tile"):
        generation.code_class_composition(grids, masks[:, :, :3], 3, 3)


def test_encoded_patches_reads_what_encode_saw(tmp_path):
    """The encode step's split and reconstructions next to the patches it encoded, row by row in encode's order
    (BMQ's train then val patches); patches other than encode's (another manifest) are one error: rerun encode."""
    import pandas as pd

    from dualgen.data import io

    rng = np.random.default_rng(0)
    ids = ["p_b", "p_a", "p_c"]
    for i, pid in enumerate(ids):
        io.write_png(tmp_path / "patches" / "images" / f"{pid}.png", np.full((8, 8, 3), 10 * i, np.uint8))
        io.write_png(tmp_path / "patches" / "HQ" / f"{pid}.png", np.full((8, 8), i, np.uint8))
    (tmp_path / "datasets").mkdir()
    pd.DataFrame({"patch_id": ids, "split": ["val", "train", "train"], "mask": "HQ"}).to_csv(
        tmp_path / "datasets" / "BMQ.csv", index=False
    )
    codes = tmp_path / "codes"
    codes.mkdir()
    order = ["p_a", "p_c", "p_b"]  # train first, then val: generator_patches
    pd.DataFrame({"patch_id": order, "split": ["train", "val", "train"]}).to_csv(codes / "codes.csv", index=False)
    recon = rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    raw = rng.random((3, 8, 8, 1)).astype(np.float32)
    np.savez(codes / "recon.npz", images=recon, raw_masks=raw)
    enc = generation.encoded_patches(codes, tmp_path / "patches", tmp_path / "datasets")
    assert list(enc.split) == ["train", "val", "train"] and list(enc.train) == [True, False, True]
    assert [int(m[0, 0]) for m in enc.masks] == [1, 2, 0] and [int(im[0, 0, 0]) for im in enc.images] == [10, 20, 0]
    assert np.array_equal(enc.recon_images, recon) and np.array_equal(enc.recon_masks, raw)
    pd.DataFrame({"patch_id": ids, "split": ["train", "train", "val"]}).to_csv(codes / "codes.csv", index=False)
    with pytest.raises(DualgenError, match="codes.csv.*rerun encode"):
        generation.encoded_patches(codes, tmp_path / "patches", tmp_path / "datasets")


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_is_seeded_training_only_and_trains(kind):
    """pixelcnn.dropout: the training call with a Dropout changes the logits, the same seed gives the same logits and
    another seed others; rate 0 and no Dropout give the network's own logits (sampling, validation); a prior trained
    with dropout learns the stripes and the same seed retrains it to the same history; out-of-range rates and a MaskGIT
    prior are refused."""
    m = tiny(kind, blocks=2)
    g = random_grids(3, 6, 7)
    plain = m(g).numpy()
    seed = tf.constant([0, 1], tf.int32)
    dropped = m(g, dropout=M.Dropout(0.5, seed)).numpy()
    assert not np.allclose(dropped, plain)
    assert np.array_equal(dropped, m(g, dropout=M.Dropout(0.5, seed)).numpy())
    assert not np.allclose(dropped, m(g, dropout=M.Dropout(0.5, tf.constant([0, 2], tf.int32))).numpy())
    assert np.array_equal(m(g, dropout=M.Dropout(0.0, seed)).numpy(), plain)
    grids = stripes(12, size=8)
    for rate in (-0.1, 1.0):
        with pytest.raises(DualgenError, match="pixelcnn.dropout"):
            T.train_pixelcnn(m, grids, grids[:2], epochs=1, batch_size=4, learning_rate=1e-3, seed=0, dropout=rate)
    if kind == "plain":
        return  # training: the gated kind's (the same loop; its traces take the time)

    def train(dropout):
        net = tiny(kind, blocks=2)
        hist = T.train_pixelcnn(
            net,
            grids[:8],
            grids[8:],
            epochs=3,
            batch_size=4,
            learning_rate=3e-3,
            seed=0,
            log=lambda *a: None,
            dropout=dropout,
        )
        return hist["val_nll"]

    first = train(0.3)
    assert first[-1] < first[0] and train(0.3) == first and train(0.0) != first


@pytest.mark.parametrize("option", ["dropout", "ema"])
def test_dropout_and_ema_are_not_for_a_maskgit_prior(option):
    spec = PS.make_spec(
        {"filters": 8, "num_blocks": 1, "maskgit": {"dim": 8, "depth": 1, "heads": 2, "steps": 2}}, "maskgit", K, (4, 4)
    )
    with pytest.raises(DualgenError, match=f"pixelcnn.{option} is for the PixelCNN kinds"):
        T.train_pixelcnn(
            PS.build(spec),
            random_grids(4, 4, 4),
            None,
            epochs=1,
            batch_size=2,
            learning_rate=1e-3,
            seed=0,
            **{option: 0.1},
        )


def test_weight_average_by_hand():
    """pixelcnn.ema's average on numbers worked by hand: the first updates weigh by (1 + u) / (10 + u), later ones by
    the decay; inside ``swapped`` the variables hold the average, after it the trained weights; decays outside (0, 1)
    are refused."""
    assert T.ema_decay(0.5, 1) == pytest.approx(2 / 11) and T.ema_decay(0.5, 2) == 0.25 and T.ema_decay(0.5, 90) == 0.5
    v = tf.Variable([0.0, 4.0])
    avg = T.WeightAverage([v], 0.5)
    v.assign([10.0, 4.0])
    avg.update(1)  # 2/11 * 0 + 9/11 * 10
    v.assign([20.0, 4.0])
    avg.update(2)  # 0.25 * 90/11 + 0.75 * 20
    want = [0.25 * 90 / 11 + 15, 4.0]
    with avg.swapped():
        assert np.allclose(v.numpy(), want)
    assert np.array_equal(v.numpy(), [20.0, 4.0])
    avg.assign()
    assert np.allclose(v.numpy(), want)
    for decay in (0.0, 1.0):
        with pytest.raises(DualgenError, match="pixelcnn.ema"):
            T.WeightAverage([v], decay)


def test_ema_prior_is_the_average_of_its_kept_epoch():
    """pixelcnn.ema: the prior returned is the weight average of the epoch of lowest validation NLL (its NLL is that
    epoch's, recomputed), it learns the stripes, it differs from the prior trained without the average, and a decay
    outside [0, 1) is refused."""
    grids = stripes(12, size=8)

    def train(ema):
        net = tiny("gated", blocks=2)
        hist = T.train_pixelcnn(
            net, grids[:8], grids[8:], epochs=4, batch_size=4, learning_rate=3e-3, seed=0, log=lambda *a: None, ema=ema
        )
        return net, hist["val_nll"]

    net, val = train(0.9)
    assert val[-1] < val[0]
    assert T.validation_nll(net, grids[8:], 4) == pytest.approx(min(val), abs=1e-5)
    assert train(0.0)[1] != val
    with pytest.raises(DualgenError, match="pixelcnn.ema"):
        T.train_pixelcnn(tiny("plain"), grids, grids[:2], epochs=1, batch_size=4, learning_rate=1e-3, seed=0, ema=1.0)
