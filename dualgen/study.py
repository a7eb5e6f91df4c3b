"""Glue of the segmentation study shared by its scripts: the test set, loading a trained U-Net."""
from pathlib import Path

from dualgen import datasets, generation
from dualgen.errors import DualgenError


def test_set(patches_dir, datasets_dir):
    """The real HQ test patches (the same for every mix)."""
    return datasets.load(patches_dir, Path(datasets_dir) / "SHQ.csv", "test")


def load_unet(unet_dir):
    from dualgen import unet

    meta = generation.read_meta(unet_dir, "train_unet")
    u = meta["settings"]["unet"]
    model = unet.build_unet(u["backbone"], None, meta["num_classes"], tuple(meta["input_shape"]))
    try:
        model.load_weights(str(Path(unet_dir) / "best.weights.h5"))
    except (OSError, ValueError) as err:
        raise DualgenError(f"{unet_dir}/best.weights.h5: cannot load the U-Net weights ({type(err).__name__}): "
                           "delete the folder and rerun train_unet")
    return model, meta
