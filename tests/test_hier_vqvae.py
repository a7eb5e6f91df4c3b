"""bench/hier_vqvae.py (issue 29's prototype): the two-level VQ-VAE's grids have the sizes its levels promise, its
decoder reads the top code, encoding then decoding gives the model's own reconstruction, and the library's training
loop trains it."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def hier():
    sys.path.insert(0, str(BENCH))  # it imports layout_prior and generator beside it
    spec = importlib.util.spec_from_file_location("hier_vqvae", BENCH / "hier_vqvae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(hier):
    import tensorflow as tf

    tf.random.set_seed(0)  # the weights' initialisation (op determinism needs a seed)
    return hier.make_hier_vqvae(
        [3, 2], channels=5, num_hiddens=8, num_residual_hiddens=4, num_residual_layers=1, embedding_dim=4,
        num_embeddings=8, commitment_cost=0.25, decay=0.99, quantizer="fsq", downsample=2, mask_encoding="onehot",
        fsq_levels=[2, 2, 2],
    )  # fmt: skip


def test_levels_sizes_round_trip_and_the_decoder_reads_the_top(hier):
    import tensorflow as tf

    model = tiny(hier)
    x = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16, 16, 5)).astype(np.float32))
    top, bottom = model.encode_both(x)
    assert top.shape == (2, 2, 2) and bottom.shape == (2, 8, 8) and model.num_top == 6
    assert int(tf.reduce_max(top)) < 6 and int(tf.reduce_max(bottom)) < 8
    recon = model(x, is_training=False)["x_recon"].numpy()
    assert recon.shape == (2, 16, 16, 5)
    assert np.allclose(model.decode_both(top, bottom).numpy(), recon, atol=1e-5)
    other = (top.numpy() + 1) % 6
    assert not np.allclose(model.decode_both(other, bottom).numpy(), recon)


def test_the_library_loop_trains_it(hier, tmp_path):
    from dualgen.generate.vqvae import train

    model = tiny(hier)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (8, 16, 16, 5)).astype(np.float32)
    x[..., 2:] = np.eye(3, dtype=np.float32)[(np.arange(16) // 6)[None, :, None].repeat(16, 2)] - 0.5
    result = train.train_vqvae(
        model, x[:6], x[6:], steps=40, batch_size=2, learning_rate=3e-3, seed=0, out_dir=str(tmp_path),
        eval_every=20, mask_weight=2.0, n_mask=3, mixed_precision=False, log=lambda *a: None,
    )  # fmt: skip
    val = [h["val_recon"] for h in result["history"]]
    assert val[-1] < val[0] and (tmp_path / "best" / "ckpt.index").exists()
