"""The paper's augmentation baseline (section 5.3) with Albumentations 2: pixel-level changes only, so the
masks are never changed.

The paper lists the transforms by their Albumentations 0.x/1.x names (the list of qubvel's segmentation_models
example); they map to albumentations 2.0.8 as follows, each applied independently with p = 0.3:

=================== ====================================================================================
paper name          albumentations 2.0.8
=================== ====================================================================================
CLAHE               CLAHE (clip limit 1..4, 8x8 tiles; works on 1- and 3-channel uint8)
RandomBrightness    RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0)
RandomGamma         RandomGamma (gamma 80..120 %)
Sharpen             Sharpen (IAASharpen of the old versions)
Blur                Blur(blur_limit=3)              (as in qubvel's example)
MotionBlur          MotionBlur(blur_limit=3)        (as in qubvel's example)
GaussianBlur        GaussianBlur(blur_limit=(3, 7)) (the old default kernel sizes)
GaussNoise          GaussNoise(std_range=(sqrt(10), sqrt(50)) / 255), the old var_limit=(10, 50); the
                    2.x default (std 20-44 % of the range) would drown a micrograph
RandomContrast      RandomBrightnessContrast(brightness_limit=0, contrast_limit=0.2)
HueSaturationValue  HueSaturationValue (20 / 30 / 20); on a 1-channel image only its value (brightness)
                    shift applies, silently (hue and saturation do not exist there)
=================== ====================================================================================

Seeding: ``albumentations.Compose(seed=s)`` hands the *same* seed to every child transform, so with equal
p all of them fire together or not at all. ``reseed`` gives the Compose and each child its own stream
derived from the seed (``numpy.random.SeedSequence``); ``build_augmentation`` uses it, and the U-Net data
pipeline reseeds per sample from (seed, epoch, position) so that a resumed training sees the same
augmentations as an uninterrupted one.
"""

import math

import albumentations as A
import numpy as np
from albumentations.augmentations.pixel import functional as _fpixel

from dualgen.core.errors import DualgenError

P = 0.3


class _HueSaturationValue(A.HueSaturationValue):
    """HueSaturationValue that applies only its value shift to a 1-channel image, without a warning."""

    def apply(self, img, hue_shift, sat_shift, val_shift, **params):
        if img.ndim == 2 or img.shape[-1] == 1:
            return _fpixel.shift_hsv(img, 0, 0, val_shift)
        return super().apply(img, hue_shift, sat_shift, val_shift, **params)


def _transforms():
    noise = (math.sqrt(10.0) / 255.0, math.sqrt(50.0) / 255.0)
    return {
        "CLAHE": lambda: A.CLAHE(clip_limit=(1, 4), tile_grid_size=(8, 8), p=P),
        "RandomBrightness": lambda: A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=P),
        "RandomGamma": lambda: A.RandomGamma(gamma_limit=(80, 120), p=P),
        "Sharpen": lambda: A.Sharpen(alpha=(0.2, 0.5), lightness=(0.5, 1.0), p=P),
        "Blur": lambda: A.Blur(blur_limit=3, p=P),
        "MotionBlur": lambda: A.MotionBlur(blur_limit=3, p=P),
        "GaussianBlur": lambda: A.GaussianBlur(blur_limit=(3, 7), p=P),
        "GaussNoise": lambda: A.GaussNoise(std_range=noise, p=P),
        "RandomContrast": lambda: A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=P),
        "HueSaturationValue": lambda: _HueSaturationValue(
            hue_shift_limit=20, sat_shift_limit=30, val_shift_limit=20, p=P
        ),
    }


AUGMENTATIONS = tuple(_transforms())  # the allowed names, in the paper's order


def build_augmentation(names, seed):
    """An ``albumentations.Compose`` of the paper's transforms ``names`` (pixel-level only, p = 0.3 each).

    Call it as ``aug(image=img, mask=mask)``; ``img`` uint8 (H, W), (H, W, 1) or (H, W, 3). Unknown names are a
    DualgenError listing the allowed ones.
    """
    if isinstance(names, str):
        names = [names]
    table = _transforms()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DualgenError(f"config: mixes.augmentation: unknown '{unknown[0]}' (allowed: {', '.join(AUGMENTATIONS)})")
    compose = A.Compose([table[n]() for n in names], seed=int(seed))
    reseed(compose, seed)
    return compose


def reseed(compose, seed):
    """Give ``compose`` and each of its transforms an independent random stream derived from ``seed`` (an int
    or a sequence of ints, e.g. (seed, epoch, position))."""
    entropy = [int(s) for s in np.atleast_1d(seed)]
    states = np.random.SeedSequence(entropy).generate_state(len(compose.transforms) + 1)
    compose.set_random_seed(int(states[0]))  # also seeds the children, all with the same value ...
    for transform, state in zip(compose.transforms, states[1:]):  # ... so give each its own
        transform.set_random_seed(int(state))
    return compose
