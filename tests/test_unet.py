"""The U-Net: building (ImageNet weights only from the cache, never downloaded), the data pipeline and its batch
plans (equal budgets, the pretrain arm), a tiny training with its files, resume after a kill, the NaN stop,
prediction."""

import json
import math
import socket

import numpy as np
import pytest

import dualgen  # noqa: F401
from dualgen.core import env

env.setup_tensorflow(1, 0)

import segmentation_models as sm  # noqa: E402
import tensorflow as tf  # noqa: E402

from dualgen.core.errors import DualgenError  # noqa: E402
from dualgen.segment import augment, unet, unet_data, unet_train  # noqa: E402

SIZE, CLASSES, BACKBONE = 32, 4, "resnet18"


def phantom(n, seed, channels=3, size=SIZE):
    """Blocks of 4 classes with class-typical gray levels and noise (like the demo micrographs, tiny)."""
    rng = np.random.default_rng(seed)
    masks = np.kron(rng.integers(0, CLASSES, (n, size // 8, size // 8)), np.ones((1, 8, 8), np.int64)).astype(np.uint8)
    gray = np.array([60, 200, 250, 130], np.float64)[masks] + rng.normal(0, 15, masks.shape)
    images = np.clip(gray, 0, 255).astype(np.uint8)[..., None]
    return (np.repeat(images, 3, -1) if channels == 3 else images), masks


ARCH = dict(bn_momentum=None, mixed_precision=False, decoder_filters=None, encoder_depth=5)  # sm.Unet's own
SPEC = dict(backbone=BACKBONE, encoder_weights=None, num_classes=CLASSES, input_shape=(SIZE, SIZE, 3), **ARCH)
SETTINGS = dict(
    spec=SPEC,
    budget="epochs",
    epochs=2,
    batch_size=4,
    val_batch_size=1,
    learning_rate=1e-3,
    early_stopping_patience=5,
    reduce_lr_patience=5,
    seed=3,
    updates=None,
    validate_every=None,
    pretrain_share=None,
    checkpoint_every_s=60.0,
)
UNET_SETTINGS = dict(backbone=BACKBONE, encoder_weights=None, **ARCH)  # config's unet keys that make_spec reads


def build_unet(backbone, encoder_weights, input_shape, **arch):
    """``unet.build_unet`` with ``CLASSES`` and ``ARCH`` (what ``arch`` does not override)."""
    return unet.build_unet(backbone, encoder_weights, CLASSES, input_shape, **{**ARCH, **arch})


def train(out_dir, **overrides):
    x, y = phantom(8, 0)
    xv, yv = phantom(2, 1)
    logs = []
    kwargs = dict(
        SETTINGS,
        out_dir=out_dir,
        log=logs.append,
        augment=augment.build_augmentation(["RandomBrightness", "GaussNoise", "Blur"], seed=3),
    )
    kwargs.update(overrides)
    model, info = unet_train.train_unet(x, y, xv, yv, **kwargs)
    return model, info, logs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("unet")
    model, info, logs = train(out)
    return out, model, info


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty Keras cache and no network: any connection attempt fails the test."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_HOME", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path


def test_build_shapes_for_1_and_3_channels():
    for channels in (1, 3):
        model = build_unet(BACKBONE, None, (SIZE, SIZE, channels))
        assert model.input_shape == (None, SIZE, SIZE, channels)
        assert model.output_shape == (None, SIZE, SIZE, CLASSES)
    with pytest.raises(DualgenError, match="multiples of 32"):
        build_unet(BACKBONE, None, (48, 48, 3))
    with pytest.raises(DualgenError, match="unknown 'resnet19'"):
        build_unet("resnet19", None, (SIZE, SIZE, 3))


def test_a_shallower_unet_is_segmentation_models_unet_without_its_deepest_level(tmp_path):
    """encoder_depth 4: the same backbone layers up to the 1/16 feature layer (resnet18's stage 4, 8.4 M weights,
    gone), 4 decoder blocks on the same skips, a full-size softmax; sizes need only be multiples of 16; saved
    and loaded through spec.json like any U-Net."""
    full = build_unet(BACKBONE, None, (64, 64, 1), decoder_filters=(128, 64, 32, 16, 8))
    shallow = build_unet(BACKBONE, None, (64, 64, 1), decoder_filters=(64, 32, 16, 8), encoder_depth=4)
    assert shallow.output_shape == (None, 64, 64, CLASSES)
    full_layers = {layer.name: layer for layer in full.layers}
    encoder = [layer for layer in shallow.layers if layer.name in full_layers and not layer.name.startswith("decoder")]
    assert {layer.name for layer in encoder} >= {"bn_data", "stage1_unit1_conv1", "stage3_unit2_conv2"}
    # the cut: stage 4's input activation (1/16, the deepest skip of sm.Unet) is the encoder's output
    assert {layer.name for layer in shallow.layers if layer.name.startswith("stage4")} == {
        "stage4_unit1_bn1",
        "stage4_unit1_relu1",
    }
    assert shallow.get_layer("stage4_unit1_relu1").output.shape[1:3] == (4, 4)
    for layer in encoder:  # the same layers, the same weight shapes
        assert [w.shape for w in layer.weights] == [w.shape for w in full_layers[layer.name].weights], layer.name
    stage4 = sum(
        int(np.prod(w.shape)) for layer in full.layers if layer.name.startswith("stage4") for w in layer.weights
    )
    assert stage4 > 8_000_000 and shallow.count_params() < full.count_params() - stage4
    assert build_unet(BACKBONE, None, (48, 48, 1), encoder_depth=4).output_shape == (None, 48, 48, 4)
    with pytest.raises(DualgenError, match="multiples of 16"):
        build_unet(BACKBONE, None, (40, 40, 1), encoder_depth=4)
    with pytest.raises(DualgenError, match="5 widths for unet.encoder_depth 4"):
        build_unet(BACKBONE, None, (64, 64, 1), decoder_filters=(128, 64, 32, 16, 8), encoder_depth=4)
    spec = unet.make_spec(dict(UNET_SETTINGS, encoder_depth=4, decoder_filters=[64, 32, 16, 8]), CLASSES, (64, 64, 1))
    assert spec["encoder_depth"] == 4
    unet.save(shallow, tmp_path / "saved", spec)
    loaded, _ = unet.load(tmp_path / "saved")
    x, _ = phantom(2, 5, channels=1, size=64)
    assert np.array_equal(unet.predict(loaded, x), unet.predict(shallow, x))


def test_encoder_features_are_the_skip_maps_of_the_loaded_model(tmp_path):
    """The feature maps behind the image-domain fidelity statistic and the perceptual loss: the encoder's skip
    layers at strides 4 and 8, from a model as ``load`` rebuilds it, on the images scaled as ``predict`` scales
    them, differentiable in the images."""
    model = build_unet(BACKBONE, None, (64, 64, 1), decoder_filters=(64, 32, 16, 8), encoder_depth=4)
    spec = unet.make_spec(dict(UNET_SETTINGS, encoder_depth=4, decoder_filters=[64, 32, 16, 8]), CLASSES, (64, 64, 1))
    unet.save(model, tmp_path / "saved", spec)
    loaded, spec = unet.load(tmp_path / "saved")
    features = unet.encoder_features(loaded, spec)
    x, _ = phantom(2, 5, channels=1, size=64)
    maps = features(x.astype(np.float32))
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 64), (2, 8, 8, 128)]
    probe = tf.keras.Model(model.input, model.get_layer("stage3_unit1_relu1").get_output_at(-1))
    assert np.allclose(maps[1].numpy(), probe(x.astype(np.float32) / 255.0, training=False).numpy(), atol=1e-5)
    images = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(features(images)[0])
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, images)))) > 0
    with pytest.raises(DualgenError, match="no encoder feature map at stride 32: use one of 2, 4, 8, 16"):
        unet.encoder_features(loaded, spec, strides=(32,))


def test_missing_imagenet_weights_name_the_file_and_where_it_goes(offline_home):
    expected = offline_home / ".keras" / "models" / "resnet18_imagenet_1000_no_top.h5"
    with pytest.raises(DualgenError) as err:
        build_unet("resnet18", "imagenet", (SIZE, SIZE, 3))
    msg = str(err.value)
    assert str(expected) in msg and "unet.encoder_weights: null" in msg and "\n" not in msg
    expected.parent.mkdir(parents=True, exist_ok=True)
    expected.write_bytes(b"an interrupted download")
    with pytest.raises(DualgenError, match="corrupt or incomplete"):
        build_unet("resnet18", "imagenet", (SIZE, SIZE, 3))


def test_imagenet_weights_from_the_cache_and_gray_images(offline_home):
    """A weights file in the cache is used (mobilenetv2's has no hash, so a stand-in works); a gray image gets a
    3-channel model and the backbone's own scaling in predict."""
    fname = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    cache = offline_home / ".keras" / "models"
    cache.mkdir(parents=True)
    submodules = dict(
        backend=sm._KERAS_BACKEND, layers=sm._KERAS_LAYERS, models=sm._KERAS_MODELS, utils=sm._KERAS_UTILS
    )
    stand_in = sm.Backbones.get_backbone(
        "mobilenetv2", input_shape=(SIZE, SIZE, 3), weights=None, include_top=False, **submodules
    )
    stand_in.save_weights(str(cache / fname))  # legacy h5, as keras_applications reads it
    model = build_unet("mobilenetv2", "imagenet", (SIZE, SIZE, 1))
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert np.array_equal(model.get_layer("Conv1").get_weights()[0], stand_in.get_layer("Conv1").get_weights()[0])
    x, _ = phantom(2, 5, channels=1)
    scaled = unet.preprocess(x, "imagenet", "mobilenetv2")
    assert scaled.shape == (2, SIZE, SIZE, 3) and scaled.min() >= -1 and scaled.max() <= 1  # mobilenet: [-1, 1]
    pred = unet.predict(model, x, encoder_weights="imagenet")
    assert pred.shape == (2, SIZE, SIZE)
    spec = unet.make_spec(dict(UNET_SETTINGS, backbone="mobilenetv2", encoder_weights="imagenet"), CLASSES, x.shape[1:])
    unet.save(model, offline_home / "saved", spec)
    (cache / fname).unlink()  # loading a trained U-Net never needs the ImageNet file
    again, spec = unet.load(offline_home / "saved")
    assert again.input_shape == (None, SIZE, SIZE, 3) and spec["input_shape"] == [SIZE, SIZE, 1]
    assert np.array_equal(unet.predict(again, x, encoder_weights=spec["encoder_weights"]), pred)


def _scale(images):
    return unet.preprocess(images)


def test_dataset_order_augmentation_and_one_hot_masks():
    x, y = phantom(10, 2)
    aug = augment.build_augmentation(list(augment.AUGMENTATIONS), seed=1)

    def batches(first=0):
        plan = unet_data.batch_plan(10, 4, 2, math.ceil(10 / 4), 9, first_period=first, epoch_mode=True)
        ds = unet_data.make_dataset(x, y, CLASSES, 4, plan=plan, seed=9, augment=aug, preprocess=_scale)
        return [(a.numpy(), b.numpy()) for a, b in ds]

    full = batches()
    assert len(full) == 2 * math.ceil(10 / 4) and all(a.shape == (4, SIZE, SIZE, 3) for a, _ in full)
    again = batches()
    assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(full, again))
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(full[3:], batches(first=1)))  # resume: same epoch 1
    originals = {y[i].tobytes(): i for i in range(10)}
    for images, onehot in full:
        assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
        assert np.all(onehot.sum(-1) == 1)
        for mask in onehot.argmax(-1).astype(np.uint8):  # every mask is one of the inputs, unchanged
            assert mask.tobytes() in originals
    val = list(unet_data.make_dataset(x, y, CLASSES, 4, preprocess=_scale))
    assert [len(a) for a, _ in val] == [4, 4, 2]
    assert np.array_equal(np.concatenate([b.numpy() for _, b in val]).argmax(-1), y)


def test_a_reused_model_trains_as_a_fresh_one(tmp_path):
    """train_unet(reuse=model): the model traced for one seed, trained again for another from that seed's own
    initial weights and a fresh Adam, gives the weights and curves a new model gives (bit for bit), without
    tracing its train function again."""
    first, _, _ = train(tmp_path / "a")
    traced = first.train_function
    reused, info_r, _ = train(tmp_path / "b", seed=5, reuse=first)
    assert reused is first and reused.train_function is traced
    fresh, info_f, _ = train(tmp_path / "c", seed=5)
    assert fresh is not first
    for a, b in zip(reused.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for key in ("loss", "val_loss", "val_iou_score", "lr"):
        assert info_r["history"][key] == info_f["history"][key], key
    assert info_r["best_period"] == info_f["best_period"]
    with pytest.raises(ValueError, match="mixed precision"):
        train(tmp_path / "d", seed=5, reuse=first, spec=dict(SPEC, mixed_precision=True))


def test_fused_adam_computes_keras_adam():
    """FusedAdam (one ResourceApplyAdam kernel per variable) takes Keras' Adam steps: 30 updates of a least-squares
    fit, a learning-rate change half way (as ReduceLROnPlateau makes it) and a reset of the state (as a reused
    model gets it), inside tf.function as in fit; the weights agree to float32 rounding, the variables are the
    same list."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    start = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)]

    def run(optimizer):
        w = [tf.Variable(v) for v in start]

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.matmul(a, w[0]) + w[1] - b) ** 2)
            optimizer.apply_gradients(zip(tape.gradient(loss, w), w))

        for i in range(30):
            if i == 15:
                optimizer.learning_rate.assign(0.01)
            if i == 20:
                for var in optimizer.variables:
                    var.assign(tf.zeros_like(var))
            step()
        return [v.numpy() for v in w], [v.name for v in optimizer.variables]

    fused, names = run(unet_train.FusedAdam(0.05))
    keras, keras_names = run(tf.keras.optimizers.Adam(0.05))
    assert names == keras_names
    moved = np.abs(fused[0] - start[0]).max()
    assert moved > 0.1  # the steps did move the weights
    for f, k in zip(fused, keras):
        np.testing.assert_allclose(f, k, rtol=0, atol=1e-5)


def test_pipelines_run_without_the_tf_data_autotuner():
    # with it on, deleting the iterator at the end of fit waited up to ~20 s for the autotuner's thread
    x, y = phantom(4, 3)
    plan = unet_data.batch_plan(4, 2, 1, 2, 0)
    for ds in (
        unet_data.make_dataset(x, y, CLASSES, 2, plan=plan, preprocess=_scale),
        unet_data.make_dataset(x, y, CLASSES, 2, preprocess=_scale),
    ):
        assert ds.options().autotune.enabled is False
    import tensorflow as tf

    assert env.without_autotune(tf.data.Dataset.range(3)).options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is not False  # the default it switches off


def test_batch_plans_equal_budgets_and_pretrain_arm():
    """updates: the same number of updates whatever the set size, one continuous stream of seeded permutations
    (every image once per pass); resuming at a period gives the same batches; the pretrain arm draws its first
    periods from the synthetic images only, then only from the real ones."""
    for n in (5, 40):
        periods, steps = unet_data.periods_and_steps("updates", n, 4, updates=24, validate_every=6)
        plan = unet_data.batch_plan(n, 4, periods, steps, seed=1)
        assert (periods, steps) == (4, 6) and plan.shape == (24, 4, 3)
        stream = plan[..., 2].ravel()
        for start in range(0, len(stream) - n + 1, n):  # full passes: each image exactly once
            assert sorted(stream[start : start + n]) == list(range(n))
        assert np.array_equal(unet_data.batch_plan(n, 4, periods, steps, seed=1, first_period=2), plan[12:])
        assert not np.array_equal(unet_data.batch_plan(n, 4, periods, steps, seed=2), plan)
    assert unet_data.periods_and_steps("epochs", 10, 4, epochs=3) == (3, 3)
    synth = np.arange(6, 14)  # images 6..13 synthetic, 0..5 real
    plan = unet_data.batch_plan(14, 2, 4, 3, seed=0, pretrain=synth, pretrain_periods=2)
    assert set(plan[:6, :, 2].ravel()) <= set(synth) and set(plan[6:, :, 2].ravel()) <= set(range(6))
    with pytest.raises(DualgenError, match="unknown 'steps'"):
        unet_data.periods_and_steps("steps", 10, 4)


def test_training_writes_history_and_best_weights_and_predicts(trained):
    out, model, info = trained
    lines = (out / "history.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 3
    assert {"epoch", "loss", "val_loss", "iou_score", "val_iou_score", "lr", "seconds"} <= set(header)
    assert {"updates"} <= set(header) and info["updates"] == 2 * 2  # 8 images, batch 4: 2 updates per epoch
    assert info["periods"] == 2 and info["resumed_from_period"] is None and not info["stopped_early"]
    assert info["best_val_iou_score"] == max(info["history"]["val_iou_score"])
    assert info["first_step_seconds"] > 0 and len(info["seconds_per_period"]) == 2
    state = json.loads((out / "last_epoch.json").read_text())
    assert state["finished"] and state["epoch"] == 1 and not (out / "last.weights.h5").exists()
    size = (out / "best.weights.h5").stat().st_size  # weights only: 1x the model, not 3x (with Adam's moments)
    assert 4 * model.count_params() < size < 1.2 * 4 * model.count_params()
    x, y = phantom(3, 7)
    pred = unet.predict(model, x)
    assert pred.shape == (3, SIZE, SIZE) and pred.dtype == np.uint8 and pred.max() < CLASSES
    spec = unet.make_spec({**UNET_SETTINGS, "bn_momentum": 0.9}, CLASSES, model.input_shape[1:])
    unet.save(model, out / "saved", spec)
    fresh, loaded = unet.load(out / "saved")
    assert loaded == {
        "backbone": BACKBONE,
        "num_classes": CLASSES,
        "input_shape": [SIZE, SIZE, 3],
        "encoder_weights": None,
        "bn_momentum": 0.9,
        "mixed_precision": False,
        "decoder_filters": None,
        "encoder_depth": 5,
    }
    assert np.array_equal(unet.predict(fresh, x, encoder_weights=loaded["encoder_weights"]), pred)
    (out / "saved" / unet.WEIGHTS).write_bytes(b"damaged")
    with pytest.raises(DualgenError, match=f"{out / 'saved' / unet.WEIGHTS}: cannot load the U-Net weights"):
        unet.load(out / "saved")
    with pytest.raises(DualgenError, match=f"{out / 'nowhere'}: no U-Net checkpoint"):
        unet.load(out / "nowhere")


class Killed(Exception):
    pass


def test_a_killed_training_resumes_at_the_next_epoch_and_ends_the_same(trained, tmp_path, monkeypatch):
    out_a, _, info_a = trained
    commit = unet_train._Keeper.on_epoch_end

    def kill_after_first_epoch(self, epoch, logs=None):
        commit(self, epoch, logs)
        raise Killed()

    monkeypatch.setattr(unet_train._Keeper, "on_epoch_end", kill_after_first_epoch)
    with pytest.raises(Killed):
        train(tmp_path, checkpoint_every_s=0.0)  # commit after every epoch
    assert json.loads((tmp_path / "last_epoch.json").read_text())["epoch"] == 0
    assert (tmp_path / "last.weights.h5").exists()
    monkeypatch.setattr(unet_train._Keeper, "on_epoch_end", commit)
    model, info, logs = train(tmp_path, checkpoint_every_s=0.0)
    assert any("resuming from period 1" in line for line in logs)
    assert info["resumed_from_period"] == 1 and info["updates"] == 4 and len(info["seconds_per_period"]) == 1
    for key in ("loss", "val_loss", "val_iou_score"):  # same data order, augmentation and Adam state as unbroken
        assert np.allclose(info["history"][key], info_a["history"][key], rtol=1e-5, atol=1e-6), key
    _, info_again, logs_again = train(tmp_path)  # finished: nothing to do
    assert any("finished already" in line for line in logs_again) and info_again["updates"] == 4


def test_checkpoints_between_commits_keep_the_best_weights(tmp_path):
    """Commits happen at most every ``every_s`` seconds: an improvement in between is kept in memory and
    written at the next commit, whatever the weights are by then."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    model.compile(tf.keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    keeper = unet_train._Keeper(tmp_path, None, None, [], 60.0)
    keeper.set_model(model)
    keeper.set_params({"epochs": 5})
    keeper.on_train_begin()
    keeper.every_s = 1e9
    w0 = [w.copy() for w in model.get_weights()]
    keeper.on_epoch_end(0, {"val_iou_score": 0.5})  # better, not committed
    assert not (tmp_path / "last_epoch.json").exists()
    model.set_weights([w + 1 for w in w0])
    keeper.every_s = 0.0
    keeper.on_epoch_end(1, {"val_iou_score": 0.4})  # worse, committed: best = epoch 0's weights
    state = json.loads((tmp_path / "last_epoch.json").read_text())
    assert (state["epoch"], state["best"], state["best_epoch"], state["finished"]) == (1, 0.5, 0, False)
    assert all(np.array_equal(a, b + 1) for a, b in zip(model.get_weights(), w0))  # the model is left as it was
    probe = tf.keras.models.clone_model(model)
    probe.load_weights(str(tmp_path / "best.weights.h5"))
    assert all(np.array_equal(a, b) for a, b in zip(probe.get_weights(), w0))
    probe.load_weights(str(tmp_path / "last.weights.h5"))
    assert all(np.array_equal(a, b + 1) for a, b in zip(probe.get_weights(), w0))
    keeper.every_s = 1e9
    keeper.on_epoch_end(4, {"val_iou_score": 0.6})  # the final epoch always commits
    state = json.loads((tmp_path / "last_epoch.json").read_text())
    assert state["finished"] and state["best_epoch"] == 4


def test_nan_loss_stops_with_a_clear_error(tmp_path, monkeypatch):
    stop = unet_train._StopOnNaN()
    stop.on_epoch_begin(2)
    stop.on_train_batch_end(0, {"loss": 0.75})
    with pytest.raises(DualgenError, match=r"NaN/Inf at epoch 3 \(last finite loss 0.75\): lower unet.learning_rate"):
        stop.on_train_batch_end(1, {"loss": float("nan")})
    # in a real fit: a huge learning rate or NaN inputs do not do it here (the losses clip the softmax output),
    # so the dice loss is poisoned

    class InfiniteDice(sm.losses.DiceLoss):
        def __call__(self, gt, pr):
            return super().__call__(gt, pr) + float("inf")

    monkeypatch.setattr(sm.losses, "DiceLoss", InfiniteDice)
    with pytest.raises(DualgenError, match=r"NaN/Inf at epoch 1 \(last finite loss none\): lower unet.learning_rate"):
        train(tmp_path, augment=None)
    assert not (tmp_path / "best.weights.h5").exists()


def test_bad_masks_are_one_line_errors(tmp_path):
    x, y = phantom(4, 0)
    with pytest.raises(DualgenError, match="outside 0..3"):
        unet_train.train_unet(x, y + 1, x, y, **dict(SETTINGS, out_dir=tmp_path))
