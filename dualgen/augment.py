"""The paper's augmentation baseline (section 5.3) with Albumentations: pixel-level changes only, so the
masks stay as they are. Names follow the paper's list; they map to albumentations 2 transforms."""
import albumentations as A

from dualgen.errors import DualgenError


def _transforms():
    return {
        "CLAHE": lambda: A.CLAHE(p=0.3),
        "RandomBrightness": lambda: A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=0.3),
        "RandomGamma": lambda: A.RandomGamma(p=0.3),
        "Sharpen": lambda: A.Sharpen(p=0.3),
        "Blur": lambda: A.Blur(blur_limit=3, p=0.3),
        "MotionBlur": lambda: A.MotionBlur(blur_limit=3, p=0.3),
        "GaussianBlur": lambda: A.GaussianBlur(blur_limit=(3, 3), p=0.3),
        "GaussNoise": lambda: A.GaussNoise(p=0.3),
        "RandomContrast": lambda: A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=0.3),
        "HueSaturationValue": lambda: A.HueSaturationValue(p=0.3),
    }


AUGMENTATIONS = tuple(_transforms())
COLOR_ONLY = {"HueSaturationValue"}  # need 3 channels


def build_augmentation(names, seed, channels=3):
    table = _transforms()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DualgenError(f"config: mixes.augmentation: unknown '{unknown[0]}' (allowed: {', '.join(AUGMENTATIONS)})")
    chosen = [table[n]() for n in names if channels == 3 or n not in COLOR_ONLY]
    return A.Compose(chosen, seed=int(seed))
