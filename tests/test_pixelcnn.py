"""PixelCNN prior: causality and receptive field, the fast sampler's exactness, seeds, chunking, training,
the NaN stop, save/load. Tiny models (16 filters) so the file runs in well under a minute on 2 cores."""
import json

import numpy as np
import pytest

from dualgen import env

tf = env.setup_tensorflow(2, 0)
from dualgen import pixelcnn as P  # noqa: E402
from dualgen.errors import DualgenError  # noqa: E402

K = 6
KINDS = ["plain", "gated"]


def tiny(kind, blocks=2, seed=0):
    return P.PixelCNN(K, filters=16, num_blocks=blocks, kind=kind, seed=seed)


def random_grids(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, K, (n, h, w)).astype(np.int32)


@pytest.mark.parametrize("kind", KINDS)
def test_logits_see_only_earlier_cells_inside_the_window(kind):
    m = tiny(kind)
    R, C = m.receptive_rows, m.receptive_cols
    assert (R, C) == (5, 5)  # 7x7 first layer (3) + one row/column per 3x3 block
    g = random_grids(2, 9, 15)
    r, c = 7, 7
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
    window[r - R:r + 1, c - C:c + C + 1] = True
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
    canvas = P.Canvas(m, g)
    worst = max(np.abs(m.window_logits(*canvas.window(r, c)).numpy() - full[:, r, c]).max()
                for r in range(7) for c in range(9))  # every cell: corners, edges, interior
    assert worst <= 1e-5
    assert np.abs(P.logits_at(m, g, 6, 8, fast=True) - P.logits_at(m, g, 6, 8, fast=False)).max() <= 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_fast_sampler_draws_the_naive_samplers_grids(kind):
    m = tiny(kind, blocks=1)
    naive = P.sample_naive(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=2)  # 3 chunks
    fast = P.sample_fast(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=2)
    assert fast.shape == (5, 6, 7) and fast.dtype == np.int32
    assert fast.min() >= 0 and fast.max() < K
    assert np.array_equal(naive, fast)
    assert np.array_equal(fast, P.sample_fast(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=5))  # chunking
    assert np.array_equal(fast, P.sample_fast(m, 5, 6, 7, seed=3, temperature=0.8, batch_size=2))  # same seed
    assert not np.array_equal(fast, P.sample_fast(m, 5, 6, 7, seed=4, temperature=0.8, batch_size=2))
    assert np.array_equal(P.sample_fast(m, 2, 6, 7, seed=3, temperature=0.8, rows=2)[:, :2], fast[:2, :2])


def stripes(n, size=8, seed=0):
    """Horizontal stripes: row i holds code (a + i) % 4, a random per grid."""
    a = np.random.default_rng(seed).integers(0, 4, n)
    return ((a[:, None, None] + np.arange(size)[None, :, None]) % 4 + np.zeros((1, 1, size), int)).astype(np.int32)


def test_training_lowers_the_nll_and_save_load_restores_it(tmp_path):
    grids = stripes(24)
    m = P.PixelCNN(4, filters=16, num_blocks=1, seed=0)
    hist = P.train_pixelcnn(m, grids[:20], grids[20:], epochs=5, batch_size=4, learning_rate=3e-3, seed=0,
                            log=lambda *a: None)
    assert hist["epoch"] == [1, 2, 3, 4, 5]
    assert hist["val_nll"][-1] < 0.5 * hist["val_nll"][0] and hist["val_nll"][-1] < 0.5 * np.log(4)
    assert hist["train_nll"][-1] < hist["train_nll"][0]
    assert abs(P.validation_nll(m, grids[20:]) - hist["val_nll"][-1]) < 1e-6

    spec = P.make_spec({"filters": 16, "num_blocks": 1}, "plain", 4, grids.shape[1:])
    assert spec == {"kind": "plain", "num_embeddings": 4, "filters": 16, "num_blocks": 1, "grid_shape": [8, 8]}
    P.save(m, tmp_path / "saved", spec)
    other, loaded = P.load(tmp_path / "saved")
    assert loaded == spec and (other.kind, other.num_blocks) == ("plain", 1)
    assert np.array_equal(m(grids[:2]).numpy(), other(grids[:2]).numpy())


def test_load_errors_name_the_folder(tmp_path):
    spec = P.make_spec({"filters": 16, "num_blocks": 1}, "gated", 4, (8, 8))
    P.save(P.build(spec), tmp_path / "saved", spec)
    with pytest.raises(DualgenError, match=f"{tmp_path / 'nowhere'}: no PixelCNN checkpoint"):
        P.load(tmp_path / "nowhere")
    (tmp_path / "saved" / "spec.json").write_text(json.dumps({**spec, "filters": 8}))  # another model
    with pytest.raises(DualgenError, match=f"{tmp_path / 'saved'}: cannot load the PixelCNN"):
        P.load(tmp_path / "saved")


def test_nan_loss_stops_with_one_clear_error():
    grids = stripes(8)
    m = P.PixelCNN(4, filters=16, num_blocks=1)
    with pytest.raises(DualgenError, match=r"PixelCNN loss became NaN/Inf at epoch \d+ step \d+ \(last finite loss "
                                           r"[-0-9.e+]+\): lower pixelcnn.learning_rate"):
        P.train_pixelcnn(m, grids, grids[:2], epochs=20, batch_size=4, learning_rate=1e9, seed=0, log=lambda *a: None)
    m = P.PixelCNN(4, filters=16, num_blocks=1)
    m.logits.b.assign([np.nan, 0.0, 0.0, 0.0])  # a diverged weight: NaN at the first step
    with pytest.raises(DualgenError, match=r"at epoch 1 step 1 \(last finite loss None\)"):
        P.train_pixelcnn(m, grids, grids[:2], epochs=1, batch_size=4, learning_rate=1e-3, seed=0, log=lambda *a: None)


def test_bad_settings_and_data_are_one_clear_error():
    with pytest.raises(DualgenError, match="pixelcnn.kind 'pixel' is unknown"):
        P.PixelCNN(4, kind="pixel")
    m = P.PixelCNN(4, filters=16, num_blocks=0)
    with pytest.raises(DualgenError, match="outside 0..3"):
        P.train_pixelcnn(m, stripes(4) + 4, stripes(2), epochs=1, batch_size=2, learning_rate=1e-3, seed=0)
    with pytest.raises(DualgenError, match="temperature 0 must be > 0"):
        P.sample_fast(m, 1, 4, 4, seed=0, temperature=0)
    m.logits.b.assign([np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(DualgenError, match="NaN/Inf logits while sampling"):
        P.sample_fast(m, 1, 4, 4, seed=0)
