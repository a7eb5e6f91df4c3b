"""VQ-VAE: shapes, data round trip, tiny training, best checkpoint, resume, save/load and clear load errors,
NaN stop."""

import hashlib
import json
import shutil

import numpy as np
import pytest

from dualgen.core import env

tf = env.setup_tensorflow(1, 0)
from dualgen.core import artifacts  # noqa: E402
from dualgen.core.errors import DualgenError  # noqa: E402
from dualgen.generate.mask_codec import MaskCodec, mask_levels  # noqa: E402
from dualgen.generate.vqvae import data as D  # noqa: E402
from dualgen.generate.vqvae import model as M
from dualgen.generate.vqvae import persist as P
from dualgen.generate.vqvae import train as T

K_CLASSES = 4
LEVEL, ONEHOT = MaskCodec("level", K_CLASSES), MaskCodec("onehot", K_CLASSES)
TINY = dict(num_hiddens=16, num_residual_hiddens=8, num_residual_layers=1, embedding_dim=8, num_embeddings=8)
REST = dict(commitment_cost=0.25, decay=0.99, quantizer="ema", downsample=4, mask_encoding="level", fsq_levels=None)
TRAIN = dict(batch_size=8, learning_rate=5e-3, seed=3, eval_every=10, n_mask=1, mixed_precision=False)


def tiny(**over):
    tf.keras.utils.set_random_seed(0)
    return M.VQVAE(4, **{**TINY, **REST, **over})


def train(model, train_x, val_x, **kw):
    """T.train_vqvae with TRAIN's settings and mask weight 1 unless given."""
    return T.train_vqvae(model, train_x, val_x, **{**TRAIN, "mask_weight": 1.0, **kw})


def pairs(n, size=32, seed=0):
    """Blocky masks and RGB images whose colour follows the class (plus noise), as uint8."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, K_CLASSES, (n, size // 8, size // 8))
    masks = np.kron(ids, np.ones((1, 8, 8), np.int64)).astype(np.uint8)
    colours = np.array([[40, 40, 50], [200, 60, 60], [240, 230, 90], [90, 160, 220]], np.int16)
    images = np.clip(colours[masks] + rng.integers(-15, 16, masks.shape + (3,)), 0, 255).astype(np.uint8)
    return images, masks


@pytest.fixture(scope="module")
def data():
    images, masks = pairs(24)
    x = D.to_model_input(images, masks, LEVEL)
    return x[:18], x[18:]


def mse(model, x):
    return float(tf.reduce_mean(tf.square(model(tf.constant(x), is_training=False)["x_recon"] - x)))


def weights(model):
    return [v.numpy() for v in sorted(model.variables, key=lambda v: v.name)]


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """One uninterrupted 60-step run and one stopped at 30 and resumed to 60."""
    train_x, val = data
    root = tmp_path_factory.mktemp("vqvae")
    full = tiny()
    before = mse(full, val)
    res_full = train(full, train_x, val, steps=60, out_dir=root / "full", log=lambda m: None)
    part, logs = tiny(), []
    train(part, train_x, val, steps=30, out_dir=root / "part", log=logs.append)
    part = tiny()  # a fresh process would build a fresh model
    res_part = train(part, train_x, val, steps=60, out_dir=root / "part", log=logs.append)
    return dict(
        root=root,
        full=full,
        before=before,
        res_full=res_full,
        hist_full=res_full["history"],
        part=part,
        res_part=res_part,
        hist_part=res_part["history"],
        logs=logs,
    )


@pytest.mark.parametrize("quantizer", ["ema", "vq"])
def test_shapes_64px_rgb_mask_gives_16x16_codes(quantizer):
    m = M.VQVAE(
        4,
        num_hiddens=16,
        num_residual_hiddens=8,
        num_residual_layers=2,
        embedding_dim=64,
        num_embeddings=10,
        **{**REST, "quantizer": quantizer},
    )
    x = tf.zeros([2, 64, 64, 4])
    out = m(x, is_training=True)
    assert out["x_recon"].shape == (2, 64, 64, 4) and out["encoding_indices"].shape == (2, 16, 16)
    codes = m.encode(x)
    assert codes.dtype == tf.int32 and codes.shape == (2, 16, 16)
    assert m.decode(codes).shape == (2, 64, 64, 4)
    assert np.isfinite(float(out["vq_loss"])) and float(out["perplexity"]) >= 1


def test_check_patch_size():
    M.check_patch_size(64, 4)
    with pytest.raises(
        DualgenError, match=r"patch size 66 is not divisible .* factor 4: use a multiple of 4 \(e\.g\. 64\)"
    ):
        M.check_patch_size(66, 4)


def test_model_input_round_trip():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 8, 12, 3)).astype(np.uint8)
    masks = rng.integers(0, K_CLASSES, (3, 8, 12)).astype(np.uint8)
    x = D.to_model_input(images, masks, LEVEL)
    assert x.dtype == np.float32 and x.shape == (3, 8, 12, 4)
    assert x.min() >= -0.5 and x.max() <= 0.5
    assert np.allclose(np.unique(x[..., 3]) + 0.5, mask_levels(K_CLASSES))
    img, raw = D.from_model_output(x, LEVEL)
    assert img.dtype == np.uint8 and np.array_equal(img, images)
    assert raw.dtype == np.float32 and raw.shape == masks.shape
    assert np.array_equal(np.rint(raw * (K_CLASSES - 1)).astype(np.uint8), masks)
    img, raw = D.from_model_output(x * 3, LEVEL)  # out-of-range outputs are clipped
    assert raw.min() >= 0 and raw.max() <= 1
    with pytest.raises(DualgenError, match="not a class index"):
        D.to_model_input(images, masks + 4, LEVEL)


def test_training_lowers_reconstruction_error_and_keeps_the_best(runs, data):
    hist = runs["hist_full"]
    assert [h["step"] for h in hist] == [10, 20, 30, 40, 50, 60]
    assert set(hist[0]) == {"step", "train_recon", "train_vq_loss", "perplexity", "val_recon"}
    assert min(h["val_recon"] for h in hist) < 0.6 * runs["before"]
    assert all(np.isfinite(list(h.values())).all() for h in hist)
    best, spec = P.load(runs["root"] / "full" / "best")
    assert spec == {"channels": 4, **TINY, **{k: v for k, v in REST.items() if k != "fsq_levels"}}  # not fsq
    assert mse(best, data[1]) == pytest.approx(min(h["val_recon"] for h in hist), rel=1e-4)
    result = runs["res_full"]
    assert result["best_val_recon"] == min(h["val_recon"] for h in hist) and result["resumed_from_step"] is None
    assert result["best_step"] == min(hist, key=lambda h: h["val_recon"])["step"]
    assert not list(runs["root"].glob("full/.*"))  # no temp folders left
    assert not hasattr(runs["full"], "resumed_from_step")  # results are returned, not set on the model


def test_best_checkpoint_is_the_lowest_validation_error_not_the_last(data, tmp_path):
    """Validation on blank patches: the untrained model (output ~0) fits them best, training makes it worse."""
    seen = []
    result = train(
        tiny(),
        data[0],
        np.zeros((4, 32, 32, 4), np.float32),
        steps=20,
        out_dir=tmp_path,
        log=lambda m: None,
        monitor=lambda step, model: seen.append(step),
        eval_every=5,
    )
    vals = [h["val_recon"] for h in result["history"]]
    assert seen == [5, 10, 15, 20] and np.argmin(vals) < len(vals) - 1
    assert result["best_step"] == 5 * (int(np.argmin(vals)) + 1)
    best, _ = P.load(tmp_path / "best")
    assert mse(best, np.zeros((4, 32, 32, 4), np.float32)) == pytest.approx(min(vals), rel=1e-4)


def test_resume_continues_from_the_last_step(runs):
    assert "resuming from step 30" in " ".join(runs["logs"])
    assert runs["res_part"]["resumed_from_step"] == 30
    assert {k: v for k, v in runs["res_part"].items() if k != "resumed_from_step"} == {
        k: v for k, v in runs["res_full"].items() if k != "resumed_from_step"
    }
    assert [h["step"] for h in runs["hist_part"]] == [10, 20, 30, 40, 50, 60]
    assert runs["hist_part"] == runs["hist_full"]
    for a, b in zip(weights(runs["full"]), weights(runs["part"])):
        np.testing.assert_array_equal(a, b)  # same batches, restored Adam + EMA state: bit-identical
    logs = []
    again = train(
        tiny(), *[np.zeros((2, 32, 32, 4), np.float32)] * 2, steps=60, out_dir=runs["root"] / "part", log=logs.append
    )
    assert len(again["history"]) == 6 and "nothing to do" in logs[-1]


def test_save_and_load_round_trip(runs, data, tmp_path):
    model = runs["full"]
    P.save(model, tmp_path / "saved", model.spec)
    assert {p.name for p in (tmp_path / "saved").iterdir()} == {"ckpt.index", "ckpt.data-00000-of-00001", "spec.json"}
    again, spec = P.load(tmp_path / "saved")
    assert spec == dict(model.spec) and again.spec == spec
    np.testing.assert_array_equal(
        again(tf.constant(data[1]), is_training=False)["x_recon"].numpy(),
        model(tf.constant(data[1]), is_training=False)["x_recon"].numpy(),
    )


def test_checkpoint_errors_name_the_folder(runs, tmp_path):
    best = runs["root"] / "full" / "best"
    mismatch = tmp_path / "mismatch"
    shutil.copytree(best, mismatch)
    spec = json.loads((mismatch / "spec.json").read_text())
    (mismatch / "spec.json").write_text(json.dumps({**spec, "num_embeddings": 5}))
    with pytest.raises(DualgenError, match=f"{mismatch}.*does not match.*num_embeddings=5"):
        P.load(mismatch)
    (mismatch / "spec.json").write_text(json.dumps({**spec, "num_residual_layers": 2}))
    with pytest.raises(DualgenError, match="does not match"):
        P.load(mismatch)
    with pytest.raises(DualgenError, match=f"{tmp_path / 'nowhere'}: no VQ-VAE checkpoint"):
        P.load(tmp_path / "nowhere")
    (mismatch / "spec.json").write_text("{not json")
    with pytest.raises(DualgenError, match=f"{mismatch / 'spec.json'}: unreadable or damaged"):
        P.load(mismatch)
    (mismatch / "spec.json").write_text(json.dumps({k: v for k, v in spec.items() if k != "channels"}))
    with pytest.raises(DualgenError, match="lacks channels"):
        P.load(mismatch)
    (mismatch / "spec.json").write_text(
        json.dumps({k: v for k, v in spec.items() if k not in ("downsample", "mask_encoding")})
    )
    with pytest.raises(DualgenError, match="lacks downsample, mask_encoding"):
        P.load(mismatch)
    broken = tmp_path / "broken"
    shutil.copytree(best, broken)
    for f in broken.glob("ckpt.data-*"):
        f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DualgenError, match=str(broken)):
        P.load(broken)


def test_nan_loss_stops_with_a_clear_error_and_keeps_best(runs, data, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(runs["root"] / "full", work)
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (work / "best").iterdir()}
    with pytest.raises(DualgenError, match=r"NaN/Inf at step 6\d .*lower vqvae.learning_rate"):
        train(tiny(), *data, steps=80, out_dir=work, log=lambda m: None, learning_rate=1e10)
    assert digest == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (work / "best").iterdir()}
    with pytest.raises(DualgenError, match="NaN/Inf values"):
        bad = data[0].copy()
        bad[0, 0, 0, 0] = np.nan
        train(tiny(), bad, data[1], steps=5, out_dir=tmp_path / "bad")


def test_decode_of_encode_equals_the_reconstruction(runs, data):
    model = runs["full"]
    x = tf.constant(data[1])
    codes = model.encode(x)
    assert codes.shape == (6, 8, 8) and int(tf.reduce_max(codes)) < TINY["num_embeddings"]
    np.testing.assert_allclose(model.decode(codes).numpy(), model(x, is_training=False)["x_recon"].numpy(), atol=1e-5)


def test_a_kill_between_the_two_renames_is_recovered(tmp_path):
    (tmp_path / ".old-99-last").mkdir()
    (tmp_path / ".old-99-last" / "history.json").write_text("[]")
    (tmp_path / ".tmp-98-last").mkdir()  # half written
    (tmp_path / ".tmp-97-first-last").mkdir()  # another folder's ("first-last"): not ours to touch
    artifacts.recover(tmp_path / "last")
    assert (tmp_path / "last" / "history.json").exists()
    assert [p.name for p in tmp_path.glob(".*")] == [".tmp-97-first-last"]


def test_onehot_mask_encoding_one_channel_per_class():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 8, 12, 3)).astype(np.uint8)
    masks = rng.integers(0, K_CLASSES, (3, 8, 12)).astype(np.uint8)
    x = D.to_model_input(images, masks, ONEHOT)
    assert x.shape == (3, 8, 12, 3 + K_CLASSES) and ONEHOT.channels == K_CLASSES
    assert np.array_equal(x[..., 3:].argmax(-1), masks) and np.array_equal(np.sort(np.unique(x[..., 3:])), [-0.5, 0.5])
    assert np.array_equal((x[..., 3:] > 0).sum(-1), np.ones(masks.shape))  # exactly one class per pixel
    img, raw = D.from_model_output(x, ONEHOT)
    assert np.array_equal(img, images) and raw.shape == masks.shape + (K_CLASSES,)
    assert np.array_equal(raw.argmax(-1), masks) and set(np.unique(raw)) == {0.0, 1.0}
    assert np.array_equal(D.to_model_input(images, masks, LEVEL)[..., :3], x[..., :3])  # the image is the same
    with pytest.raises(DualgenError, match="expected the micrograph's and 4 for the mask"):
        D.from_model_output(x[..., :4], ONEHOT)
    # the mask weighs mask_weight in either encoding, shared by its channels
    assert T.channel_weights(7, 4.0, 4).tolist() == [1] * 7 and T.channel_weights(5, 2.0, 2).tolist() == [1] * 5
    spec = P.make_spec({**TINY, **REST, "downsample": 2, "mask_encoding": "onehot"}, 3, K_CLASSES)
    assert spec["channels"] == 7 and spec["mask_encoding"] == "onehot"
    model = P.build(spec)
    codes = model.encode(tf.constant(x[:, :8, :8]))
    assert codes.shape == (3, 4, 4) and model.decode(codes).shape == (3, 8, 8, 7)
    with pytest.raises(DualgenError, match="vqvae.mask_encoding is 'x'"):
        M.VQVAE(7, **TINY, **{**REST, "mask_encoding": "x"})


def test_onehot_training_weights_the_mask_as_a_level_mask_is(tmp_path):
    images, masks = pairs(12)
    x = D.to_model_input(images, masks, ONEHOT)
    tf.keras.utils.set_random_seed(0)
    model = M.VQVAE(3 + K_CLASSES, **TINY, **{**REST, "mask_encoding": "onehot"})
    result = train(
        model,
        x[:9],
        x[9:],
        steps=20,
        out_dir=tmp_path / "oh",
        log=lambda m: None,
        mask_weight=4.0,
        n_mask=K_CLASSES,
        eval_every=10,
    )
    best, spec = P.load(tmp_path / "oh" / "best")
    assert spec["mask_encoding"] == "onehot" and best.channels == 7
    error = np.square(best(tf.constant(x[9:]), is_training=False)["x_recon"].numpy() - x[9:])
    weighted = float(np.mean(error * T.channel_weights(7, 4.0, K_CLASSES)))
    assert result["best_val_recon"] == pytest.approx(weighted, rel=1e-4)
    assert result["history"][-1]["val_recon"] < result["history"][0]["val_recon"]


def test_downsample_2_gives_grids_twice_as_fine_and_is_checked():
    m = M.VQVAE(
        4,
        num_hiddens=16,
        num_residual_hiddens=8,
        num_residual_layers=2,
        embedding_dim=64,
        num_embeddings=10,
        **{**REST, "downsample": 2},
    )
    x = tf.zeros([2, 64, 64, 4])
    codes = m.encode(x)
    assert codes.shape == (2, 32, 32) and m.decode(codes).shape == (2, 64, 64, 4)
    assert m(x, is_training=False)["x_recon"].shape == (2, 64, 64, 4) and m.spec["downsample"] == 2
    M.check_patch_size(66, 2)
    with pytest.raises(DualgenError, match="factor 2: use a multiple of 2"):
        M.check_patch_size(65, 2)
    with pytest.raises(DualgenError, match="vqvae.downsample is 3: use one of 2, 4"):
        M.VQVAE(4, **TINY, **{**REST, "downsample": 3})


def test_the_batch_helpers_encode_reconstruct_and_decode_in_order(runs, data):
    """Encoding, reconstructing and decoding in batches of data.BATCH give what one call on all patches gives."""
    model = runs["full"]
    x = np.concatenate([data[0], data[1]])  # 24 patches: two batches, the second part full
    assert len(x) > D.BATCH
    codes = D.encode(model, x)
    assert codes.dtype == np.int32 and np.array_equal(codes, model.encode(tf.constant(x)).numpy())
    np.testing.assert_allclose(
        D.reconstruct(model, x), model(tf.constant(x), is_training=False)["x_recon"].numpy(), atol=1e-5
    )
    parts = list(D.decode(model, codes, LEVEL))
    assert [done for done, _, _ in parts] == [D.BATCH, len(x)]
    images, raws = D.from_model_output(model.decode(tf.constant(codes)).numpy(), LEVEL)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), images)
    np.testing.assert_allclose(np.concatenate([p[2] for p in parts]), raws, atol=1e-6)


def test_mask_weight_weights_the_mask_channel_in_loss_and_validation(data, tmp_path):
    assert T.channel_weights(4, 5.0, 1).tolist() == [1, 1, 1, 5] and T.channel_weights(2, 1.0, 1).tolist() == [1, 1]
    train_x, val = data
    result = train(
        tiny(), train_x, val, steps=4, out_dir=tmp_path / "w", log=lambda m: None, mask_weight=5.0, eval_every=4
    )
    best, _ = P.load(tmp_path / "w" / "best")
    error = np.square(best(tf.constant(val), is_training=False)["x_recon"].numpy() - val)
    weighted = float(np.mean(error * T.channel_weights(4, 5.0, 1)))
    assert result["history"][-1]["val_recon"] == pytest.approx(weighted, rel=1e-4)
    assert weighted > float(np.mean(error)) * 1.05  # the mask channel counts more than the plain MSE
    with pytest.raises(DualgenError, match="vqvae.mask_weight is 0.0: it must be a positive number"):
        train(tiny(), train_x, val, steps=2, out_dir=tmp_path / "z", log=lambda m: None, mask_weight=0.0)
