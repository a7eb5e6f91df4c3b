"""PixelCNN prior: causality, the fast sampler's exactness, seeds, training, NaN stop, checkpoints."""
import numpy as np
import pytest

from dualgen import env

tf = env.setup_tensorflow(1, 0)
from dualgen import pixelcnn as P  # noqa: E402
from dualgen.errors import DualgenError  # noqa: E402

K, H, W = 6, 20, 22


def model(kind, blocks=2, filters=16):
    tf.keras.utils.set_random_seed(0)
    return P.build(P.PixelCNN(K, filters=filters, num_blocks=blocks, kind=kind), H, W)


@pytest.mark.parametrize("kind", ["plain", "gated"])
def test_logits_depend_only_on_earlier_pixels(kind):
    m = model(kind)
    g = np.random.default_rng(0).integers(0, K, (2, H, W)).astype(np.int32)
    full = m(tf.constant(g)).numpy()
    for r, c in [(0, 0), (7, 9), (H - 1, W - 1), (10, 0)]:
        later = g.copy()
        later[:, r, c:] = (later[:, r, c:] + 1) % K
        later[:, r + 1:] = (later[:, r + 1:] + 2) % K
        assert np.abs(m(tf.constant(later)).numpy()[:, r, c] - full[:, r, c]).max() == 0
    earlier = g.copy()
    earlier[:, 6, 9] = (earlier[:, 6, 9] + 1) % K  # the pixel straight above is seen
    assert np.abs(m(tf.constant(earlier)).numpy()[:, 7, 9] - full[:, 7, 9]).max() > 0


@pytest.mark.parametrize("kind", ["plain", "gated"])
def test_fast_window_logits_equal_the_whole_grid_logits(kind):
    m = model(kind)
    g = np.random.default_rng(1).integers(0, K, (3, H, W)).astype(np.int32)
    full = m(tf.constant(g)).numpy()
    w = P._Windows(m)
    canvas = np.zeros((3, H + w.R, W + 2 * w.C), np.int32)
    valid = np.zeros(canvas.shape + (1,), np.float32)
    canvas[:, w.R:, w.C:w.C + W], valid[:, w.R:, w.C:w.C + W] = g, 1
    worst = max(np.abs(w.logits(canvas, valid, r, c) - full[:, r, c]).max() for r in range(H) for c in range(W))
    assert worst <= 1e-5


@pytest.mark.parametrize("kind", ["plain", "gated"])
def test_fast_sampler_draws_what_the_naive_one_draws(kind):
    m = model(kind, blocks=1)
    a = P.sample_naive(m, 3, 9, 10, seed=5, batch_size=2, temperature=0.9)
    b = P.sample_fast(m, 3, 9, 10, seed=5, batch_size=2, temperature=0.9)
    assert a.shape == (3, 9, 10) and np.array_equal(a, b)
    assert np.array_equal(b, P.sample_fast(m, 3, 9, 10, seed=5, batch_size=2, temperature=0.9))
    assert not np.array_equal(b, P.sample_fast(m, 3, 9, 10, seed=6, batch_size=2, temperature=0.9))


def test_training_lowers_nll_and_checkpoint_round_trip(tmp_path):
    stripes = np.tile((np.arange(8) % 2)[None, :, None] * 3, (24, 1, 8)).astype(np.int32)  # rows alternate 0 / 3
    m = P.PixelCNN(4, filters=16, num_blocks=1)
    hist = P.train_pixelcnn(m, stripes[:20], stripes[20:], epochs=6, batch_size=4, learning_rate=3e-3, seed=0,
                            log=lambda *a: None)
    assert hist[-1]["val_nll"] < hist[0]["val_nll"] * 0.7 and hist[-1]["val_nll"] < np.log(4)
    tf.train.Checkpoint(model=m).write(str(tmp_path / "ckpt"))
    m2 = P.build(P.PixelCNN(4, filters=16, num_blocks=1), 8, 8)
    tf.train.Checkpoint(model=m2).read(str(tmp_path / "ckpt")).assert_existing_objects_matched()
    assert np.array_equal(m(tf.constant(stripes[:2])).numpy(), m2(tf.constant(stripes[:2])).numpy())


def test_nan_loss_stops_with_a_clear_error():
    grids = np.random.default_rng(0).integers(0, 4, (8, 6, 6)).astype(np.int32)
    m = P.build(P.PixelCNN(4, filters=8, num_blocks=1), 6, 6)
    m.out.b.assign([np.inf, 0, 0, 0])  # a diverged weight
    with pytest.raises(DualgenError, match="PixelCNN loss became NaN/Inf at epoch 1 step 1"):
        P.train_pixelcnn(m, grids, grids[:2], epochs=2, batch_size=4, learning_rate=1e-3, seed=0, log=lambda *a: None)
