"""bench/layout_prior.py (issue 29's prototype): the layout of a constructed micrograph, and a code prior that sees
the layout still samples exactly (the fast window sampler gives the whole network's draws) and does read it."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "layout_prior.py"


@pytest.fixture(scope="module")
def layout_prior():
    spec = importlib.util.spec_from_file_location("layout_prior", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layouts_are_the_shades_of_the_blocks(layout_prior):
    """Two patches of 8x8 px: a dark left half and a bright right half, and the mirror image. Blocks of 4 px: two
    shades, each block the shade of its half."""
    left = np.zeros((8, 8, 3), np.uint8)
    left[:, 4:] = 200
    images = np.stack([left, left[:, ::-1]])
    top = layout_prior.layouts(images, np.array([True, True]), 2, 4, seed=0)
    assert top.shape == (2, 2, 2)
    assert (top[0, :, 0] == top[0, 0, 0]).all() and (top[0, :, 1] != top[0, 0, 0]).all()
    assert (top[1] == top[0][:, ::-1]).all()
    assert layout_prior.block_means(images.astype(float), 4)[0, 0, 1, 0] == 200


@pytest.mark.parametrize("kind, every", [("plain", True), ("plain", False), ("gated", False)])
def test_the_layout_prior_samples_exactly_and_reads_the_layout(layout_prior, kind, every):
    from dualgen.generate.pixelcnn import model as pmodel
    from dualgen.generate.pixelcnn import sample, train

    model = layout_prior.make_layout_model(
        pmodel.PixelCNN, 5, (4, 4), 2, every=every, num_embeddings=7, filters=8, num_blocks=2, kind=kind, seed=0,
        grid_shape=(8, 8), dilations=None,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    top = rng.integers(0, 5, (3, 16)).astype(np.float32)
    grids = rng.integers(0, 7, (3, 8, 8))
    train.train_pixelcnn(
        model, np.tile(grids, (4, 1, 1)), grids, epochs=2, batch_size=4, learning_rate=1e-2, seed=0,
        train_cond=np.tile(top, (4, 1)), val_cond=top, log=lambda *a: None,
    )  # fmt: skip
    args = dict(seed=1, temperature=1.0, batch_size=3)
    fast = sample.sample_fast(model, 3, 8, 8, cond=top, **args)
    assert (fast == sample.sample_naive(model, 3, 8, 8, cond=top, **args)).all()
    assert (fast != sample.sample_fast(model, 3, 8, 8, cond=np.zeros_like(top), **args)).any()
