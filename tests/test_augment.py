"""The paper's augmentation list: pixel-level only, seeded, 1- and 3-channel images (no TensorFlow)."""

import warnings

import numpy as np
import pytest

from dualgen.core.errors import DualgenError
from dualgen.segment import augment


def sample(channels, seed=0, size=32):
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, 4, (size // 8, size // 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
    shape = (size, size) if channels == 0 else (size, size, channels)
    image = np.clip(rng.normal(120, 30, shape), 0, 255).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("channels", [0, 1, 3])  # 0: a plain (H, W) gray image
def test_every_transform_keeps_the_mask_and_the_image_format(channels):
    image, mask = sample(channels)
    changed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning spam per sample (e.g. HueSaturationValue on gray)
        for name in augment.AUGMENTATIONS:
            aug = augment.build_augmentation([name], seed=1)
            for t in aug.transforms:
                t.p = 1.0
            out = aug(image=image, mask=mask)
            assert np.array_equal(out["mask"], mask), name
            assert out["image"].shape == image.shape and out["image"].dtype == np.uint8, name
            changed += not np.array_equal(out["image"], image)
    assert changed >= len(augment.AUGMENTATIONS) - 1  # all of them do something (at p = 1)


def test_the_full_list_is_seed_deterministic_and_masks_stay():
    image, mask = sample(3)
    runs = []
    for seed in (7, 7, 8):
        aug = augment.build_augmentation(list(augment.AUGMENTATIONS), seed=seed)
        outs = [aug(image=image, mask=mask) for _ in range(12)]
        assert all(np.array_equal(o["mask"], mask) for o in outs)
        runs.append(np.stack([o["image"] for o in outs]))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_transforms_fire_independently():
    """albumentations 2 gives every child the Compose's seed, so all would fire together; reseed fixes that."""
    aug = augment.build_augmentation(["RandomGamma", "Blur", "GaussNoise", "Sharpen"], seed=5)
    patterns = {tuple(t.should_apply() for t in aug.transforms) for _ in range(200)}
    assert len(patterns) > 4


def test_reseed_gives_the_same_augmentation_for_the_same_key():
    image, mask = sample(1)
    aug = augment.build_augmentation(list(augment.AUGMENTATIONS), seed=0)
    a = [augment.reseed(aug, (0, 3, k))(image=image, mask=mask)["image"] for k in range(6)]
    b = [augment.reseed(aug, (0, 3, k))(image=image, mask=mask)["image"] for k in range(6)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(DualgenError) as err:
        augment.build_augmentation(["GaussNoise", "RandomRotate90"], seed=0)
    msg = str(err.value)
    assert "RandomRotate90" in msg and "HueSaturationValue" in msg and "\n" not in msg
    assert augment.build_augmentation([], seed=0)(image=sample(3)[0])["image"].shape == (32, 32, 3)
