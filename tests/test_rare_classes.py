"""Rare classes and the budget-tied schedule (config unet.class_weights, unet.sampling, unet.lr_schedule): class
weights from known pixel shares, the weighted loss against a hand computation, balanced batch plans' frequencies,
the warm-up + cosine learning rate at known steps, and a tiny training with all three options."""

import copy
import math

import numpy as np
import pytest

import dualgen  # noqa: F401
from dualgen.core import env

env.setup_tensorflow(1, 0)

import tensorflow as tf  # noqa: E402

from dualgen.core.errors import DualgenError  # noqa: E402
from dualgen.segment import unet_data, unet_train  # noqa: E402
from tests.conftest import REPO  # noqa: E402

# ---------------------------------------------------------------------------------------------- class weights


def test_auto_weights_are_inverse_shares_with_mean_one():
    w = unet_data.class_weights([0.5, 0.25, 0.25], "auto", 10)
    assert np.allclose(w, [0.6, 1.2, 1.2])  # 1/share = 2, 4, 4; mean 10/3
    assert np.isclose(np.mean(w), 1.0)


def test_auto_weights_are_capped_relative_to_the_smallest_and_absent_classes_get_zero():
    # 1/share = 1.11, 11.1, 100: the cap holds the last at 10 x 1.11 = 11.1; then mean 1 over the present classes
    w = unet_data.class_weights([0.9, 0.09, 0.01, 0.0], "auto", 10)
    raw = np.array([1 / 0.9, 1 / 0.09, 10 / 0.9])
    assert np.allclose(w[:3], raw / raw.mean()) and w[3] == 0.0
    assert np.isclose(max(w) / min(w[:3]), 10.0)
    assert np.allclose(
        unet_data.class_weights([0.9, 0.09, 0.01], "auto", 1000),
        [1 / 0.9, 1 / 0.09, 100] / np.mean([1 / 0.9, 1 / 0.09, 100]),
    )


def test_no_weights_and_weights_by_class_name():
    assert unet_data.class_weights([0.5, 0.5], None, 10) is None
    names = ["matrix", "grain", "pore"]
    assert unet_data.class_weights([0.6, 0.3, 0.1], {"pore": 4.0}, 10, names) == [1.0, 1.0, 4.0]
    with pytest.raises(DualgenError, match="unet.class_weights: carbide not a class"):
        unet_data.class_weights([0.6, 0.3, 0.1], {"carbide": 4.0}, 10, names)


def test_pixel_shares_and_presence():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2] = 1  # 8 of 32 pixels
    masks[1, 0, 0] = 3  # 1 of 32
    assert np.allclose(unet_data.pixel_shares(masks, 4), [23 / 32, 8 / 32, 0, 1 / 32])
    assert unet_data.class_presence(masks, 4).tolist() == [[True, True, False, False], [True, False, False, True]]


def _config(**unet):
    from dualgen.core.config import load_yaml

    config = copy.deepcopy(load_yaml(REPO / "config.yaml"))
    config["unet"].update(unet)
    return config


def test_the_config_check_names_an_unknown_class_in_one_line():
    from dualgen.core.config import check_config

    names = [c["name"] for c in _config()["classes"]]
    checked = check_config(_config(class_weights={names[-1]: 5.0}, sampling="balanced", lr_schedule="cosine"))
    assert checked["unet"]["class_weights"] == {names[-1]: 5.0}
    with pytest.raises(DualgenError, match=r"^config: unet.class_weights: 'carbide' is not a class \(classes: ") as e:
        check_config(_config(class_weights={"carbide": 5.0}))
    assert "\n" not in str(e.value)


def test_the_weighted_loss_is_weighted_dice_plus_weighted_focal():
    """unet_loss(w) on constructed masks and predictions equals the formula by hand: 1 - mean_k(w_k dice_k) +
    mean over pixels and classes of -gt 0.25 w_k (1 - pr)^2 log(pr)."""
    rng = np.random.default_rng(0)
    gt = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (2, 4, 4))]
    pr = rng.random((2, 4, 4, 3)).astype(np.float32) + 0.1
    pr /= pr.sum(-1, keepdims=True)
    w = np.array([0.5, 1.0, 4.0])
    smooth, eps = 1e-5, 1e-7
    tp, fp, fn = (gt * pr).sum((0, 1, 2)), ((1 - gt) * pr).sum((0, 1, 2)), (gt * (1 - pr)).sum((0, 1, 2))
    dice = (2 * tp + smooth) / (2 * tp + fn + fp + smooth)
    p = np.clip(pr, eps, 1 - eps)
    focal = np.mean(-gt * 0.25 * w * (1 - p) ** 2 * np.log(p))
    expected = 1 - np.mean(w * dice) + focal
    got = float(unet_train.unet_loss(w)(tf.constant(gt), tf.constant(pr)))
    assert math.isclose(got, expected, rel_tol=1e-5)
    plain = float(unet_train.unet_loss(None)(tf.constant(gt), tf.constant(pr)))
    assert math.isclose(plain, 1 - np.mean(dice) + np.mean(-gt * 0.25 * (1 - p) ** 2 * np.log(p)), rel_tol=1e-5)


# ---------------------------------------------------------------------------------------------- balanced sampling


def _one_rare_patch(n=20):
    """``n`` patches: all but the last hold classes 0, 1, 2; the last holds only class 3 (K = 4 classes)."""
    masks = np.zeros((n, 4, 4), np.uint8)
    masks[:, 0] = 1
    masks[:, 1] = 2
    masks[-1] = 3
    return masks


@pytest.mark.parametrize("epoch_mode", [False, True])
def test_balanced_plans_show_the_rare_patch_about_one_in_k_draws(epoch_mode):
    presence = unet_data.class_presence(_one_rare_patch(), 4)
    kw = dict(n_images=20, batch_size=4, periods=50, steps=20, seed=7, epoch_mode=epoch_mode)
    uniform = unet_data.batch_plan(**kw)[..., 2].ravel()
    balanced = unet_data.batch_plan(**kw, sampling="balanced", presence=presence)[..., 2].ravel()
    assert len(balanced) == 4000
    assert abs(np.mean(uniform == 19) - 1 / 20) < 0.01  # epoch mode: 80 draws of a period = 4 passes of 20
    assert abs(np.mean(balanced == 19) - 1 / 4) < 0.03  # binomial sd 0.007
    counts = np.bincount(balanced, minlength=20)[:19]
    assert np.abs(counts / 4000 - 0.75 / 19).max() < 0.015  # the others share the other 3/4 (sd 0.003 each)


def test_balanced_plans_depend_only_on_the_seed_and_resume_where_they_stopped():
    presence = unet_data.class_presence(_one_rare_patch(), 4)
    kw = dict(n_images=20, batch_size=4, periods=6, steps=5, sampling="balanced", presence=presence)
    full = unet_data.batch_plan(seed=1, **kw)
    assert np.array_equal(full, unet_data.batch_plan(seed=1, **kw))
    assert np.array_equal(full[3 * 5 :], unet_data.batch_plan(seed=1, first_period=3, **kw))
    assert not np.array_equal(full, unet_data.batch_plan(seed=2, **kw))
    positions = full[..., 1].ravel()
    assert np.array_equal(positions, np.arange(len(positions)))  # distinct augmentation seeds per sample


def test_balanced_pretrain_phases_draw_from_their_own_images():
    masks = _one_rare_patch()
    presence = unet_data.class_presence(masks, 4)
    synth = np.arange(10)  # synthetic patches 0..9 hold classes 0, 1, 2 only
    plan = unet_data.batch_plan(
        20, 2, 4, 10, 0, pretrain=synth, pretrain_periods=2, sampling="balanced", presence=presence
    )
    first, rest = plan[:20, :, 2].ravel(), plan[20:, :, 2].ravel()
    assert set(first) <= set(synth) and set(rest) <= set(range(10, 20))
    assert abs(np.mean(rest == 19) - 1 / 4) < 0.12  # 40 draws


def test_an_unknown_sampling_is_a_config_error():
    with pytest.raises(DualgenError, match="unet.sampling: unknown 'rare'"):
        unet_data.batch_plan(4, 2, 1, 1, 0, sampling="rare")


# ---------------------------------------------------------------------------------------------- the schedule


def test_warm_up_then_cosine_to_zero():
    base = 1e-3
    assert unet_train.lr_at(0, 200, base, 0.1) == 0.0
    assert math.isclose(unet_train.lr_at(10, 200, base, 0.1), base / 2)  # half-way up the 20 warm-up updates
    assert math.isclose(unet_train.lr_at(20, 200, base, 0.1), base)  # end of the warm-up
    assert math.isclose(unet_train.lr_at(110, 200, base, 0.1), base / 2)  # mid-point of the cosine part
    assert math.isclose(unet_train.lr_at(200 - 1e-9, 200, base, 0.1), 0.0, abs_tol=1e-15)
    assert unet_train.lr_at(200, 200, base, 0.1) == 0.0 and unet_train.lr_at(250, 200, base, 0.1) == 0.0
    assert unet_train.lr_at(0, 200, base, 0.0) == base  # no warm-up: the cosine from the first update
    lrs = [unet_train.lr_at(s, 200, base, 0.1) for s in range(20, 201)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_the_cosine_callback_counts_updates_from_period_and_batch():
    """What a resumed run relies on: the learning rate of an update follows from (period, batch) alone."""
    model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
    model.compile(tf.keras.optimizers.Adam(1e-3), loss="mse")
    cb = unet_train._Cosine(steps=3, total=12, base_lr=1e-3, warmup_share=0.25)
    cb.set_model(model)
    cb.on_epoch_begin(2)  # the first period of a run resumed after two
    cb.on_train_batch_begin(1)
    assert math.isclose(float(model.optimizer.learning_rate.numpy()), unet_train.lr_at(7, 12, 1e-3, 0.25), rel_tol=1e-6)
    logs = {}
    cb.on_epoch_end(2, logs)
    assert math.isclose(logs["lr"], unet_train.lr_at(7, 12, 1e-3, 0.25), rel_tol=1e-6)


# ---------------------------------------------------------------------------------------------- end to end


SIZE, CLASSES = 32, 4


def _rare_set():
    """8 training patches of blocks of classes 0..2 (class-typical gray levels plus noise); class 3 is one 8x8 block
    of the first patch: 64 of 8192 pixels."""
    rng = np.random.default_rng(0)
    masks = np.kron(rng.integers(0, 3, (8, SIZE // 8, SIZE // 8)), np.ones((1, 8, 8), np.int64)).astype(np.uint8)
    masks[0, :8, :8] = 3
    images = np.clip(np.array([60, 200, 250, 130.0])[masks] + rng.normal(0, 15, masks.shape), 0, 255)
    return images.astype(np.uint8), masks


def _train(out_dir, **over):
    """A tiny U-Net (resnet18 cut at 1/8, slim decoder) for 6 updates, validated every 3, with class weights auto,
    balanced sampling and the cosine schedule."""
    images, masks = _rare_set()
    spec = dict(
        backbone="resnet18",
        encoder_weights=None,
        num_classes=CLASSES,
        input_shape=(SIZE, SIZE, 1),
        bn_momentum=None,
        mixed_precision=False,
        decoder_filters=[16, 8, 8],
        encoder_depth=3,
    )
    logs = []
    settings = dict(
        spec=spec,
        budget="updates",
        updates=6,
        validate_every=3,
        epochs=None,
        early_stopping_patience=None,
        batch_size=2,
        val_batch_size=2,
        learning_rate=1e-3,
        reduce_lr_patience=5,
        seed=0,
        out_dir=out_dir,
        pretrain_share=None,
        checkpoint_every_s=60.0,
        class_weights="auto",
        class_weight_cap=10,
        class_names=["a", "b", "c", "rare"],
        sampling="balanced",
        lr_schedule="cosine",
        warmup_share=0.05,
        log=logs.append,
    )
    model, info = unet_train.train_unet(images, masks, images[:2], masks[:2], **{**settings, **over})
    return model, info, logs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("rare"))


def test_a_tiny_training_with_weights_balanced_batches_and_the_cosine(trained):
    model, info, logs = trained
    shares = unet_data.pixel_shares(_rare_set()[1], CLASSES)
    assert info["class_shares"] == pytest.approx(shares.tolist()) and shares[3] == 64 / 8192
    assert info["class_weights"] == pytest.approx(unet_data.class_weights(shares, "auto", 10))
    assert max(info["class_weights"]) == pytest.approx(10 * min(info["class_weights"]))  # the rare class, capped
    assert model._dualgen_class_weights == info["class_weights"] and any("class weights" in line for line in logs)
    assert (info["sampling"], info["lr_schedule"], info["updates"]) == ("balanced", "cosine", 6)
    # lr of each period's last update: updates 2 and 5 of 6 (warm-up 0.3 updates)
    expected = [unet_train.lr_at(s, 6, 1e-3, 0.05) for s in (2, 5)]
    assert info["history"]["lr"] == pytest.approx(expected, rel=1e-5)
    assert expected[1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 4.7 / 5.7)))


class Killed(Exception):
    pass


def test_a_resumed_training_continues_the_schedule(trained, tmp_path, monkeypatch):
    """Killed after its first period, the run resumes at update 3 of the cosine and ends as the unbroken one."""
    _, unbroken, _ = trained
    commit = unet_train._Keeper.on_epoch_end

    def kill_after_first_period(self, epoch, logs=None):
        commit(self, epoch, logs)
        raise Killed()

    monkeypatch.setattr(unet_train._Keeper, "on_epoch_end", kill_after_first_period)
    with pytest.raises(Killed):
        _train(tmp_path, checkpoint_every_s=0.0)
    monkeypatch.setattr(unet_train._Keeper, "on_epoch_end", commit)
    _, info, logs = _train(tmp_path, checkpoint_every_s=0.0)
    assert info["resumed_from_period"] == 1 and any("resuming from period 1" in line for line in logs)
    for key in ("lr", "loss", "val_loss"):
        assert info["history"][key] == pytest.approx(unbroken["history"][key], rel=1e-5, abs=1e-7), key
