"""VQ-VAE edge-keeping options: FSQ quantiser (round trip, index range, straight-through gradient, training, spec),
the adversarial term (off until start_step, discriminator updates, adaptive weight, resume), the perceptual term
(zero for equal images, frozen features net), the cross-entropy mask head, and one-line errors for bad settings."""

from pathlib import Path

import numpy as np
import pytest

from dualgen.core import env

tf = env.setup_tensorflow(1, 0)
import sonnet as snt  # noqa: E402  (after dualgen's environment: tf.keras is tf-keras, as for the U-Net)

from dualgen.core.errors import DualgenError  # noqa: E402
from dualgen.generate.mask_codec import MaskCodec  # noqa: E402
from dualgen.generate.vqvae import data as D  # noqa: E402
from dualgen.generate.vqvae import losses as L
from dualgen.generate.vqvae import model as M
from dualgen.generate.vqvae import persist as P
from dualgen.generate.vqvae import train as T
from tests.test_vqvae import pairs  # noqa: E402  (blocky pairs of K_CLASSES classes)

REPO = Path(__file__).resolve().parents[1]
K_CLASSES = 4
LEVEL, ONEHOT = MaskCodec("level", K_CLASSES), MaskCodec("onehot", K_CLASSES)
TINY = dict(num_hiddens=16, num_residual_hiddens=8, num_residual_layers=1, embedding_dim=8, num_embeddings=8)
REST = dict(commitment_cost=0.25, decay=0.99, quantizer="ema", downsample=4, mask_encoding="level", fsq_levels=None)
TRAIN = dict(batch_size=8, learning_rate=5e-3, seed=3, eval_every=5, n_mask=1, mixed_precision=False, mask_weight=1.0)
ADV = dict(weight=0.5, start_step=5, disc_layers=2, disc_filters=8)


def tiny(**over):
    tf.keras.utils.set_random_seed(0)
    return M.VQVAE(4, **{**TINY, **REST, **over})


def train(model, train_x, val_x, **kw):
    return T.train_vqvae(model, train_x, val_x, **{**TRAIN, "log": lambda m: None, **kw})


@pytest.fixture(scope="module")
def data():
    x = D.to_model_input(*pairs(20), LEVEL)
    return x[:16], x[16:]


def weights(model):
    return [v.numpy() for v in sorted(model.variables, key=lambda v: v.name)]


def disc_variables(out_dir):
    """The discriminator's variables in out_dir/last (name -> array)."""
    reader = tf.train.load_checkpoint(str(out_dir / "last" / "ckpt"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith("disc/") and "OPTIMIZER_SLOT" not in n]
    assert names
    return {n: reader.get_tensor(n) for n in names}


def one_line(err):
    text = str(err.value)
    assert text and "\n" not in text
    return text


class RandomFeatures(snt.Module):
    """A fixed random two-layer conv net: images (N,H,W,3) in [0, 255] -> two feature maps."""

    def __init__(self):
        super().__init__()
        self.c1 = snt.Conv2D(8, 3, name="c1")
        self.c2 = snt.Conv2D(8, 3, stride=2, name="c2")

    def __call__(self, images):
        h1 = tf.nn.relu(self.c1(images / 255.0 - 0.5))
        return [h1, tf.nn.relu(self.c2(h1))]


# ---------------------------------------------------------------------------------------------- FSQ


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [5, 3], [2, 4, 3]])
def test_fsq_indices_round_trip_and_cover_the_range(levels):
    fsq = M.FSQ(levels)
    k = int(np.prod(levels))
    assert fsq.num_embeddings == k
    every = tf.range(k, dtype=tf.int32)
    codes = fsq.quantize(every)
    assert codes.shape == (k, len(levels)) and float(tf.reduce_min(codes)) >= -1 and float(tf.reduce_max(codes)) <= 1
    np.testing.assert_array_equal(fsq.codes_to_indices(codes).numpy(), every.numpy())  # index -> code -> index
    assert len(np.unique(codes.numpy(), axis=0)) == k  # one code per index
    z = tf.random.stateless_normal((4, 16, 16, len(levels)), seed=[1, 2]) * 3
    out = fsq(z, is_training=True)
    idx = out["encoding_indices"]
    assert idx.dtype == tf.int32 and idx.shape == (4, 16, 16)
    assert int(tf.reduce_min(idx)) >= 0 and int(tf.reduce_max(idx)) < k
    np.testing.assert_array_equal(fsq.quantize(idx).numpy(), out["quantize"].numpy())  # decode(encode) consistent
    np.testing.assert_array_equal(fsq.codes_to_indices(out["quantize"]).numpy(), idx.numpy())  # re-encode
    for d, n in enumerate(levels):  # wide inputs reach every level of every dimension
        assert len(np.unique(out["quantize"].numpy()[..., d])) == n
    assert float(out["loss"]) == 0.0 and 1.0 <= float(out["perplexity"]) <= k
    assert np.all(fsq.bound(tf.constant([[-100.0] * len(levels), [100.0] * len(levels)])).numpy() != 0)


def test_fsq_straight_through_gradient_is_not_zero():
    fsq = M.FSQ([8, 5, 5, 5])
    z = tf.Variable(tf.random.stateless_normal((2, 4, 4, 4), seed=[3, 4]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(fsq(z)["quantize"] * tf.random.stateless_normal((2, 4, 4, 4), seed=[5, 6]))
    grad = tape.gradient(loss, z).numpy()
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)


def test_fsq_vqvae_spec_encode_decode_save_load(tmp_path):
    spec = P.make_spec({**TINY, **REST, "quantizer": "fsq", "fsq_levels": [5, 3], "num_embeddings": None}, 3, 4)
    assert spec["num_embeddings"] == 15 and spec["fsq_levels"] == [5, 3] and spec["channels"] == 4
    assert P.make_spec({**TINY, **REST, "quantizer": "fsq", "fsq_levels": [5, 3], "num_embeddings": 15}, 3, 4) == spec
    assert "fsq_levels" not in P.make_spec({**TINY, **REST, "fsq_levels": [5, 3]}, 3, 4)  # ema: today's spec
    tf.keras.utils.set_random_seed(0)
    model = P.build(spec)
    assert model.spec == spec and model.num_embeddings == 15
    x = tf.constant(D.to_model_input(*pairs(3), LEVEL))
    codes = model.encode(x)
    assert codes.dtype == tf.int32 and codes.shape == (3, 8, 8)
    assert int(tf.reduce_min(codes)) >= 0 and int(tf.reduce_max(codes)) < 15
    out = model(x, is_training=False)
    np.testing.assert_allclose(model.decode(codes).numpy(), out["x_recon"].numpy(), atol=1e-6)
    assert model.pre_vq(model.encoder(x)).shape[-1] == 2  # projected to len(levels) dimensions
    P.save(model, tmp_path / "fsq", model.spec)
    again, loaded = P.load(tmp_path / "fsq")
    assert loaded == spec
    np.testing.assert_array_equal(again.encode(x).numpy(), codes.numpy())


def test_fsq_vqvae_trains(data, tmp_path):
    model = tiny(quantizer="fsq", fsq_levels=[5, 3], num_embeddings=None)
    before = float(tf.reduce_mean(tf.square(model(tf.constant(data[1]), is_training=False)["x_recon"] - data[1])))
    hist = train(model, *data, steps=30, out_dir=tmp_path, eval_every=10)["history"]
    assert hist[-1]["val_recon"] < 0.6 * before and hist[-1]["val_recon"] < hist[0]["val_recon"]
    assert all(h["train_vq_loss"] == 0.0 and h["perplexity"] > 1.5 for h in hist)
    best, spec = P.load(tmp_path / "best")
    assert spec["quantizer"] == "fsq" and spec["num_embeddings"] == 15


# ---------------------------------------------------------------------------------------------- adversarial


def test_discriminator_losses_and_adaptive_weight():
    disc = L.PatchDiscriminator(num_layers=3, filters=8)
    assert disc(tf.zeros([2, 64, 64, 3])).shape == (2, 8, 8, 1)
    real, fake = tf.constant([2.0, 0.5]), tf.constant([-2.0, 0.0])
    assert float(L.hinge_d_loss(real, fake)) == pytest.approx(0.5 * (0.25 + 0.5))
    assert float(L.generator_loss(fake)) == pytest.approx(1.0)
    rec, g = tf.constant([3.0, 4.0]), tf.constant([0.0, 2.0])  # norms 5 and 2
    assert float(L.adaptive_weight(rec, g)) == pytest.approx(5 / (2 + 1e-4))
    assert float(L.adaptive_weight(rec * 1024, g * 1024, 1024.0)) == pytest.approx(5 / (2 + 1e-4))  # loss scale
    assert float(L.adaptive_weight(rec, tf.zeros(2))) == 1e4  # clipped
    assert float(L.adaptive_weight(rec, tf.constant([np.inf, 0.0]))) == 0.0  # overflow: no adversarial push
    x = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        w = L.adaptive_weight(x * rec, g)
    assert tape.gradient(w, x) is None  # no gradient through the weight


@pytest.fixture(scope="module")
def adversarial_runs(data, tmp_path_factory):
    """Off (8 steps); on with start_step 8 (8 steps: never on); on after step 5: uninterrupted 10 steps, and 5 +
    resumed to 10 (the checkpoint at 5 holds the discriminator before its first update)."""
    root = tmp_path_factory.mktemp("adv")
    runs = {}
    for name, kw in [
        ("off", dict(steps=8)),
        ("late", dict(steps=8, adversarial={**ADV, "start_step": 8})),
        ("on", dict(steps=10, adversarial=ADV)),
    ]:
        model = tiny()
        runs[name] = (model, train(model, *data, out_dir=root / name, **kw))
    train(tiny(), *data, out_dir=root / "part", steps=5, adversarial=ADV)
    model = tiny()
    runs["part"] = (model, train(model, *data, out_dir=root / "part", steps=10, adversarial=ADV))
    return root, runs


def test_adversarial_before_start_step_is_todays_training(adversarial_runs):
    root, runs = adversarial_runs
    (off, res_off), (late, res_late) = runs["off"], runs["late"]
    for a, b in zip(weights(off), weights(late)):
        np.testing.assert_array_equal(a, b)
    plain = ("step", "train_recon", "train_vq_loss", "perplexity", "val_recon")
    assert [{k: h[k] for k in plain} for h in res_late["history"]] == res_off["history"]
    assert all(h["train_d_loss"] is None and h["adv_weight"] is None for h in res_late["history"])
    assert set(res_off["history"][0]) == set(plain)  # off: today's history


def test_adversarial_after_start_step_trains_the_discriminator(adversarial_runs):
    root, runs = adversarial_runs
    untouched, trained = disc_variables(root / "late"), disc_variables(root / "on")
    assert untouched.keys() == trained.keys()
    assert all(not np.array_equal(untouched[n], trained[n]) for n in untouched)  # same start, then updated
    first, second = runs["on"][1]["history"]
    assert first["train_d_loss"] is None and first["train_g_loss"] is None  # steps 1-5: before start_step
    assert np.isfinite(second["train_d_loss"]) and second["train_d_loss"] >= 0 and np.isfinite(second["train_g_loss"])
    assert 0 < second["adv_weight"] <= ADV["weight"] * 1e4
    assert not all(np.array_equal(a, b) for a, b in zip(weights(runs["late"][0]), weights(runs["on"][0])))
    best, spec = P.load(root / "on" / "best")  # the saved model: the VQ-VAE alone
    assert spec == {"channels": 4, **TINY, **{k: v for k, v in REST.items() if k != "fsq_levels"}}  # not fsq


def test_adversarial_resume_is_the_uninterrupted_run(adversarial_runs):
    root, runs = adversarial_runs
    (full, res_full), (part, res_part) = runs["on"], runs["part"]
    assert res_part["resumed_from_step"] == 5 and res_part["history"] == res_full["history"]
    for a, b in zip(weights(full), weights(part)):
        np.testing.assert_array_equal(a, b)
    d_full, d_part = disc_variables(root / "on"), disc_variables(root / "part")
    assert all(np.array_equal(d_full[n], d_part[n]) for n in d_full)


# ---------------------------------------------------------------------------------------------- perceptual


def test_perceptual_loss_zero_for_equal_images_positive_for_blur():
    tf.keras.utils.set_random_seed(1)
    net = RandomFeatures()
    images = tf.constant(pairs(2)[0].astype(np.float32))
    blurred = tf.nn.avg_pool2d(tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), 3, 1, "VALID")
    assert float(L.perceptual_loss(net, images, images)) == 0.0
    assert float(L.perceptual_loss(net, images, blurred)) > 1e-3
    assert float(L.perceptual_loss(net, images, images + 40.0)) > 0  # brightness shifts the features too
    z = tf.Variable(blurred)
    with tf.GradientTape() as tape:
        loss = L.perceptual_loss(net, images, z)
    grads = tape.gradient(loss, [z, *net.trainable_variables])
    assert np.isfinite(grads[0].numpy()).all() and float(tf.reduce_max(tf.abs(grads[0]))) > 0


def test_perceptual_training_leaves_the_features_net_alone(data, tmp_path):
    tf.keras.utils.set_random_seed(1)
    net = RandomFeatures()
    net(tf.zeros([1, 32, 32, 3]))
    frozen = [v.numpy() for v in net.variables]
    result = train(tiny(), *data, steps=6, out_dir=tmp_path, perceptual={"weight": 1.0}, features=net)
    for a, v in zip(frozen, net.variables):
        np.testing.assert_array_equal(a, v.numpy())
    assert all(np.isfinite(h["train_perceptual"]) and h["train_perceptual"] > 0 for h in result["history"])
    with pytest.raises(DualgenError) as err:
        train(tiny(), *data, steps=2, out_dir=tmp_path / "none", perceptual={"weight": 1.0})
    assert "no feature network was given" in one_line(err)


# ---------------------------------------------------------------------------------------------- mask head


def test_xent_mask_head_trains_on_logits_and_validates_with_them(tmp_path):
    x = D.to_model_input(*pairs(12), ONEHOT)
    tf.keras.utils.set_random_seed(0)
    model = M.VQVAE(3 + K_CLASSES, **TINY, **{**REST, "mask_encoding": "onehot"})
    kw = dict(steps=20, eval_every=10, n_mask=K_CLASSES, mask_weight=4.0, mask_head="xent")
    result = train(model, x[:9], x[9:], out_dir=tmp_path, **kw)
    assert result["history"][-1]["val_recon"] < result["history"][0]["val_recon"]
    best, _ = P.load(tmp_path / "best")
    out = best(tf.constant(x[9:]), is_training=False)["x_recon"].numpy()
    image = np.mean(np.square(out[..., :3] - x[9:, ..., :3])) * 3 / 7
    logp = out[..., 3:] - np.log(np.exp(out[..., 3:]).sum(-1, keepdims=True))
    xent = -np.mean(np.sum((x[9:, ..., 3:] > 0) * logp, -1))
    variance = float(np.var(x[:9]))
    assert result["best_val_recon"] == pytest.approx(image + 4.0 / 7 * variance * xent, rel=1e-4)
    with pytest.raises(DualgenError) as err:
        train(tiny(), *[D.to_model_input(*pairs(4), LEVEL)] * 2, steps=1, out_dir=tmp_path / "l", mask_head="xent")
    assert "needs vqvae.mask_encoding onehot" in one_line(err)


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(quantizer="fsq", fsq_levels=[8, 1], num_embeddings=None), r"vqvae.fsq_levels is \[8, 1\]: give a list"),
        (dict(quantizer="fsq", fsq_levels=None), "vqvae.fsq_levels is None"),
        (dict(quantizer="fsq", fsq_levels=[5, 3]), r"num_embeddings is 8 but .* make 15 codes: set num_embeddings"),
        (dict(quantizer="lfq"), "vqvae.quantizer is 'lfq': use 'ema'.*'fsq'"),
    ],
)
def test_bad_model_settings_are_one_line_errors(over, message):
    with pytest.raises(DualgenError, match=message) as err:
        tiny(**over)
    one_line(err)
    if over.get("quantizer") == "fsq":
        with pytest.raises(DualgenError, match=message):
            P.make_spec({**TINY, **REST, **over}, 3, 4)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(adversarial={"weight": -1}), "vqvae.adversarial.weight is -1: it must be a number >= 0"),
        (dict(adversarial={"wieght": 1}), "vqvae.adversarial has unknown key.* wieght: use weight, start_step"),
        (dict(adversarial={"weight": 1, "lr": 0}), r"vqvae.adversarial.lr is 0: it must be a number > 0 \(or null\)"),
        (dict(adversarial={"start_step": 2.5}), "vqvae.adversarial.start_step is 2.5: it must be an integer"),
        (dict(adversarial={"disc_layers": 0}), "vqvae.adversarial.disc_layers is 0: it must be an integer >= 1"),
        (dict(perceptual={"weight": "a"}), "vqvae.perceptual.weight is 'a'"),
        (dict(mask_head="l1"), "vqvae.mask_head is 'l1': use mse"),
    ],
)
def test_bad_training_settings_are_one_line_errors(kw, message):
    with pytest.raises(DualgenError, match=message) as err:
        T.training_options(**kw)
    one_line(err)
    assert T.training_options() == (T.ADVERSARIAL, T.PERCEPTUAL, "mse")  # the defaults: all off


# ---------------------------------------------------------------------------------------------- all on


@pytest.mark.parametrize("mixed_precision", [False, True])
def test_all_options_trace_without_gpu_nondeterministic_ops(mixed_precision, tmp_path):
    """fsq + adversarial (from the first update) + perceptual + xent mask head: finite, and their training steps
    hold no op that raises under op determinism on a GPU (tests/determinism_tools' list); float16 included."""
    from tests import determinism_tools

    x = D.to_model_input(*pairs(6), ONEHOT)
    tf.keras.utils.set_random_seed(1)
    net = RandomFeatures()
    tf.keras.utils.set_random_seed(0)
    model = M.VQVAE(
        3 + K_CLASSES,
        **{**TINY, **REST, "quantizer": "fsq", "fsq_levels": [5, 3], "num_embeddings": 15, "mask_encoding": "onehot"},
    )
    with determinism_tools.captured_functions(T) as graphs:
        result = train(
            model,
            x[:4],
            x[4:],
            steps=2,
            out_dir=tmp_path,
            batch_size=2,
            eval_every=2,
            n_mask=K_CLASSES,
            mixed_precision=mixed_precision,
            adversarial={**ADV, "start_step": 0, "with_mask": True},
            perceptual={"weight": 0.5},
            features=net,
            mask_head="xent",
        )
    (h,) = result["history"]
    assert all(np.isfinite(h[k]) for k in ("train_recon", "val_recon", "train_d_loss", "train_perceptual"))
    assert any("Conv2DBackpropFilter" in determinism_tools.op_types(g) for g in graphs)
    assert [hit for g in graphs for hit in determinism_tools.nondeterministic_ops(g)] == []


def test_train_script_loads_a_unet_encoder_as_features(tmp_path):
    """scripts/train_vqvae.py's --features-model: a saved U-Net's encoder as a frozen feature callable."""
    import importlib.util

    from dualgen.segment import unet

    if not hasattr(unet, "encoder_features"):
        pytest.skip("dualgen.segment.unet.encoder_features not there yet")
    settings = dict(
        backbone="resnet18",
        encoder_weights=None,
        bn_momentum=None,
        mixed_precision=False,
        decoder_filters=[32, 16, 8],
        encoder_depth=3,
    )
    spec = unet.make_spec(settings, K_CLASSES, (32, 32, 3))
    tf.keras.utils.set_random_seed(0)
    unet.save(unet.build_unet(**spec), tmp_path / "unet", spec)
    path = REPO / "scripts" / "train_vqvae.py"
    script = importlib.util.module_from_spec(importlib.util.spec_from_file_location("train_vqvae_script", path))
    script.__spec__.loader.exec_module(script)
    features = script._load_features(tmp_path / "unet")
    images = tf.constant(pairs(2)[0].astype(np.float32))
    maps = features(images)
    assert maps and all(m.dtype == tf.float32 and m.shape[0] == 2 for m in maps)
    blurred = tf.nn.avg_pool2d(images, 3, 1, "SAME")
    assert float(L.perceptual_loss(features, images, images)) == 0.0
    z = tf.Variable(blurred)
    with tf.GradientTape() as tape:
        loss = L.perceptual_loss(features, images, z)
    assert float(loss) > 0 and float(tf.reduce_max(tf.abs(tape.gradient(loss, z)))) > 0
