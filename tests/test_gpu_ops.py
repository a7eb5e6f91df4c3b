"""Issue 15: every training step must run on a GPU with op determinism on (env.setup_tensorflow), where kernels
without a deterministic GPU implementation raise UnimplementedError. No GPU here: each model's training step
is traced as a graph on the CPU and searched for the ops listed in tests/determinism_tools.py (nested function bodies
included). Plus: the list catches models known to use such ops, and the deterministic nearest upsampling that
replaces UpSampling2D in the U-Net is exact (values, gradient, weights files)."""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import dualgen  # noqa: F401
from dualgen.core import env

tf = env.setup_tensorflow(1, 0)  # op determinism on while tracing, as in every training script

import segmentation_models as sm  # noqa: E402

from dualgen.generate.pixelcnn import model as pixelcnn
from dualgen.generate.pixelcnn import train as pixelcnn_train
from dualgen.generate.vqvae import model as vqvae
from dualgen.generate.vqvae import train as vqvae_train
from dualgen.segment import unet, unet_train, upsampling  # noqa: E402
from tests import determinism_tools
from tests.conftest import TINY_VQVAE

REPO = Path(__file__).resolve().parents[1]


def assert_runs_on_gpu(what, graphs):
    found = [hit for g in graphs for hit in determinism_tools.nondeterministic_ops(g)]
    assert not found, f"{what}: ops that raise under op determinism on a GPU:\n" + "\n".join(
        f"  {op} ({node}): {reason}" for op, node, reason in found
    )


def train_step_graph(model, x, y, mixed_precision=False):
    """The step Keras' fit runs (forward, loss, gradient, Adam, metrics) for a model compiled as train_unet does."""
    unet_train.compile_unet(model, 1e-3, mixed_precision)
    return determinism_tools.trace(model.train_step, (x, y))


def unet_batch(size=64, classes=4, channels=1):
    x = tf.random.stateless_uniform([1, size, size, channels], [1, 2])
    y = tf.one_hot(tf.random.stateless_uniform([1, size, size], [3, 4], 0, classes, tf.int32), classes)
    return x, y


def test_the_list_was_derived_for_the_installed_tensorflow():
    assert tf.__version__ == determinism_tools.TENSORFLOW_VERSION, (
        f"TensorFlow is {tf.__version__}: re-derive tests/determinism_tools.py's op lists from this version's kernels "
        "(see its docstring), then update TENSORFLOW_VERSION"
    )


# ---------------------------------------------------------------------------------------------- the upsampling


@pytest.mark.parametrize(
    "size,data_format",
    [((2, 2), "channels_last"), ((3, 2), "channels_last"), ((1, 3), "channels_last"), ((2, 3), "channels_first")],
)
def test_deterministic_upsampling_equals_keras_nearest_bit_for_bit(size, data_format):
    x = tf.random.stateless_normal([2, 5, 7, 3], [5, 6])
    expected = tf.keras.layers.UpSampling2D(size, data_format=data_format, interpolation="nearest")(x)
    got = upsampling.DeterministicUpSampling2D(size, data_format=data_format)(x)
    assert got.shape == expected.shape
    assert np.array_equal(got.numpy(), expected.numpy())


def test_deterministic_upsampling_gradient_is_the_block_sums_without_resize_grad():
    x = tf.random.stateless_normal([2, 3, 4, 5], [7, 8])
    upstream = tf.cast(tf.random.stateless_uniform([2, 6, 12, 5], [9, 10], -50, 50, tf.int32), tf.float32)
    layer = upsampling.DeterministicUpSampling2D((2, 3))

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(layer(x) * upstream)
        return tape.gradient(y, x)

    expected = upstream.numpy().reshape(2, 3, 2, 4, 3, 5).sum(axis=(2, 4))  # integers: exact in any order
    assert np.array_equal(grad(x).numpy(), expected)
    graph = determinism_tools.trace(grad, x)
    assert "ResizeNearestNeighborGrad" not in determinism_tools.op_types(graph)
    assert determinism_tools.nondeterministic_ops(graph) == []


def test_deterministic_upsampling_is_serialisable_and_takes_unknown_sizes():
    layer = upsampling.DeterministicUpSampling2D(3, name="up")
    again = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert type(again) is upsampling.DeterministicUpSampling2D and again.get_config() == layer.get_config()
    inp = tf.keras.Input((None, None, 2))
    model = tf.keras.Model(inp, layer(inp))
    assert model.output_shape == (None, None, None, 2)
    assert model(tf.ones([1, 2, 3, 2])).shape == (1, 6, 9, 2)
    rebuilt = tf.keras.models.model_from_json(model.to_json())
    assert isinstance(rebuilt.layers[-1], upsampling.DeterministicUpSampling2D)


# ---------------------------------------------------------------------------------------------- the list itself


def _tiny_model(middle):
    inp = tf.keras.Input((8, 8, 2))
    h = tf.keras.layers.Conv2D(3, 3, padding="same", name="conv_a")(inp)
    h = middle(h)
    out = tf.keras.layers.Conv2D(1, 3, padding="same", name="conv_b")(h)
    return tf.keras.Model(inp, out)


def _keras_step(model):
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="mse")
    x = tf.random.stateless_normal([2, 8, 8, 2], [1, 1])
    y = tf.zeros([2] + list(model.output_shape[1:]))
    return determinism_tools.trace(model.train_step, (x, y))


def test_the_list_catches_keras_upsampling_and_replace_upsampling_removes_it():
    model = _tiny_model(tf.keras.layers.UpSampling2D((2, 3), name="up"))
    found = determinism_tools.nondeterministic_ops(_keras_step(model))
    assert [op for op, _, _ in found] == ["ResizeNearestNeighborGrad"], found
    assert "up" in found[0][1]

    fixed = upsampling.replace_upsampling(model)
    assert isinstance(fixed.get_layer("up"), upsampling.DeterministicUpSampling2D)
    assert [layer.name for layer in fixed.layers] == [layer.name for layer in model.layers]
    x = tf.random.stateless_normal([2, 8, 8, 2], [3, 4])
    assert np.array_equal(fixed(x).numpy(), model(x).numpy())
    assert determinism_tools.nondeterministic_ops(_keras_step(fixed)) == []


def test_the_list_catches_batchnorm_backprop_in_inference_mode_only():
    frozen = tf.keras.layers.BatchNormalization(name="bn")
    frozen.trainable = False  # tf-keras: a frozen BatchNormalization runs in inference mode (is_training=False)
    found = determinism_tools.nondeterministic_ops(_keras_step(_tiny_model(frozen)))
    assert {op for op, _, _ in found} == {"FusedBatchNormGradV3"}, found
    assert determinism_tools.nondeterministic_ops(_keras_step(_tiny_model(tf.keras.layers.BatchNormalization()))) == []


def test_gather_gradients_are_unsorted_segment_sums_which_are_deterministic_in_this_tensorflow():
    # e.g. a codebook learned by gradient (VectorQuantizer) or the deterministic sparse cross-entropy: the gradient
    # of a gather is an UnsortedSegmentSum, for which TF 2.21 has deterministic GPU kernels (see determinism_tools.py)
    table = tf.Variable(tf.random.stateless_normal([10, 4], [1, 2]))
    opt = tf.keras.optimizers.Adam(1e-3)

    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(table, ids)))
        opt.apply_gradients([(tf.convert_to_tensor(tape.gradient(loss, table)), table)])
        return loss

    graph = determinism_tools.trace(step, tf.constant([1, 3, 3]))
    assert "UnsortedSegmentSum" in determinism_tools.op_types(graph)
    assert determinism_tools.nondeterministic_ops(graph) == []


def test_the_softmax_cross_entropy_kernel_is_caught_when_traced_without_determinism():
    logits, labels = tf.random.stateless_normal([4, 5], [1, 2]), tf.constant([0, 1, 4, 2])

    def loss(logits):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))

    from tensorflow.python.framework import config as tf_config  # no public disable_op_determinism in 2.21

    tf_config.disable_op_determinism()
    try:
        found = determinism_tools.nondeterministic_ops(determinism_tools.trace(loss, logits))
    finally:
        tf.config.experimental.enable_op_determinism()
    assert [op for op, _, _ in found] == ["SparseSoftmaxCrossEntropyWithLogits"]
    # traced with determinism on (as the training scripts do), the Python API takes a deterministic path
    assert determinism_tools.nondeterministic_ops(determinism_tools.trace(loss, logits)) == []


def test_the_list_looks_into_nested_and_xla_compiled_functions():
    pool = tf.function(lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), jit_compile=True)

    def grad_of(f):
        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.reduce_sum(f(x))
            return tape.gradient(y, x)

        return step

    x = tf.random.stateless_normal([1, 4, 4, 2], [1, 2])
    found = determinism_tools.nondeterministic_ops(determinism_tools.trace(grad_of(pool), x))
    assert [op for op, _, _ in found] == ["MaxPoolGrad"]  # only in XLA: the TF kernel uses cuDNN, deterministic
    assert found[0][1].startswith("__inference")  # in a nested function body
    assert determinism_tools.nondeterministic_ops(determinism_tools.trace(grad_of(pool.python_function), x)) == []


# ---------------------------------------------------------------------------------------------- the models


@pytest.mark.parametrize("mixed_precision", [False, True])
@pytest.mark.parametrize("quantizer", ["ema", "vq"])
def test_vqvae_training_step_runs_under_gpu_determinism(quantizer, mixed_precision, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (3, 16, 16, 2)).astype(np.float32)
    model = vqvae.VQVAE(2, quantizer=quantizer, **TINY_VQVAE)
    with determinism_tools.captured_functions(vqvae_train) as graphs:  # the real train_vqvae, one update
        vqvae_train.train_vqvae(
            model,
            x[:2],
            x[2:],
            steps=1,
            batch_size=2,
            learning_rate=1e-3,
            seed=0,
            out_dir=str(tmp_path),
            eval_every=1,
            log=lambda *a: None,
            mask_weight=1.0,
            n_mask=1,
            mixed_precision=mixed_precision,
        )
    assert any("Conv2DBackpropFilter" in determinism_tools.op_types(g) for g in graphs), "no training step traced"
    assert_runs_on_gpu(f"VQ-VAE (quantizer {quantizer}{', mixed precision' if mixed_precision else ''})", graphs)


@pytest.mark.parametrize(
    "kind, cond_dim, dropout", [("plain", 0, 0.0), ("gated", 0, 0.2), ("plain", 3, 0.2), ("gated", 3, 0.0)]
)
def test_pixelcnn_training_step_runs_under_gpu_determinism(kind, cond_dim, dropout):
    grids = np.random.default_rng(0).integers(0, 5, (3, 6, 6)).astype(np.int32)
    cond = np.random.default_rng(1).dirichlet(np.ones(3), 3).astype(np.float32)[:, :cond_dim]
    model = pixelcnn.PixelCNN(5, filters=8, num_blocks=1, kind=kind, seed=0, cond_dim=cond_dim, dilations=None)
    with determinism_tools.captured_functions(pixelcnn_train) as graphs:  # the real train_pixelcnn, one update
        pixelcnn_train.train_pixelcnn(
            model,
            grids[:2],
            grids[2:],
            epochs=1,
            batch_size=2,
            learning_rate=1e-3,
            seed=0,
            log=lambda *a: None,
            train_cond=cond[:2],
            val_cond=cond[2:],
            dropout=dropout,  # pixelcnn.dropout: stateless random ops in the step
        )
    assert any("Conv2DBackpropFilter" in determinism_tools.op_types(g) for g in graphs), "no training step traced"
    logits = model.grid_logits.get_concrete_function(tf.constant(grids), tf.constant(cond))
    assert_runs_on_gpu(f"PixelCNN ({kind}{', conditioned' if cond_dim else ''})", graphs + [logits])


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnetb3"])
@pytest.mark.parametrize("decoder", ["upsampling", "transpose"])
def test_unet_training_step_runs_under_gpu_determinism(backbone, decoder):
    x, y = unet_batch()
    if decoder == "upsampling":  # what train_unet builds (segmentation_models' default decoder)
        model = unet.build_unet(backbone, None, 4, (64, 64, 1), None, False, None, 5)
        assert not any(isinstance(layer, tf.keras.layers.UpSampling2D) for layer in model.layers)
        assert model.dualgen_backbone == backbone
    else:  # Conv2DTranspose: Conv2DBackpropInput / Conv2DBackpropFilter, deterministic (cuDNN)
        model = upsampling.replace_upsampling(
            sm.Unet(
                backbone,
                encoder_weights=None,
                classes=4,
                activation="softmax",
                input_shape=(64, 64, 1),
                decoder_block_type="transpose",
            )
        )
    assert_runs_on_gpu(f"U-Net {backbone} (decoder {decoder})", [train_step_graph(model, x, y)])


@pytest.mark.parametrize("mixed_precision", [True, "bfloat16"])
def test_mixed_precision_unet_training_step_runs_under_gpu_determinism(mixed_precision):
    x, y = unet_batch()
    model = unet.build_unet("resnet18", None, 4, (64, 64, 1), None, mixed_precision, None, 5)
    graph = train_step_graph(model, x, y, mixed_precision=mixed_precision)
    assert "Conv2DBackpropFilter" in determinism_tools.op_types(graph)
    assert_runs_on_gpu(f"U-Net resnet18 (mixed precision {mixed_precision})", [graph])


def test_unet_without_the_replacement_would_fail_and_with_it_is_the_same_network():
    x, y = unet_batch()
    tf.keras.utils.set_random_seed(3)
    old = sm.Unet("resnet18", encoder_weights=None, classes=4, activation="softmax", input_shape=(64, 64, 1))
    ops = {op for op, _, _ in determinism_tools.nondeterministic_ops(train_step_graph(old, x, y))}
    assert ops == {"ResizeNearestNeighborGrad"}  # the raw segmentation_models U-Net: the issue
    new = upsampling.replace_upsampling(old)
    assert [layer.name for layer in new.layers] == [layer.name for layer in old.layers]
    assert [w.name for w in new.weights] == [w.name for w in old.weights]
    assert np.array_equal(new(x, training=False).numpy(), old(x, training=False).numpy())

    # weight files of the raw segmentation_models U-Net load into the replaced one, and back
    with tempfile.TemporaryDirectory() as tmp:
        for name, save in (
            ("old.weights.h5", lambda p: unet.save_weights(old, p)),
            ("old.h5", lambda p: old.save_weights(p)),
        ):
            tf.keras.utils.set_random_seed(4)  # other initial weights
            fresh = unet.build_unet("resnet18", None, 4, (64, 64, 1), None, False, None, 5)
            assert not np.array_equal(fresh(x).numpy(), old(x).numpy())
            save(str(Path(tmp) / name))
            fresh.load_weights(str(Path(tmp) / name))
            assert np.array_equal(fresh(x, training=False).numpy(), old(x, training=False).numpy()), name
        tf.keras.utils.set_random_seed(5)
        back = sm.Unet("resnet18", encoder_weights=None, classes=4, activation="softmax", input_shape=(64, 64, 1))
        unet.save_weights(fresh, str(Path(tmp) / "new.weights.h5"))
        back.load_weights(str(Path(tmp) / "new.weights.h5"))
        assert np.array_equal(back(x, training=False).numpy(), fresh(x, training=False).numpy())


# ---------------------------------------------------------------------------------------------- the benchmark


@pytest.mark.slow
def test_gpu_smoke_benchmark_runs_every_training_on_the_cpu():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_smoke.py"), "--steps", "2", "--size", "64", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "gpu smoke: 8 trainings ok", proc.stdout
    assert sum("steps/s" in line for line in lines) == 8


@pytest.mark.slow
def test_gpu_study_benchmark_plans_jobs_per_gpu_on_the_cpu():
    """bench/gpu_study.py: concurrent U-Net jobs on one device, updates/s each and in total (CPU: tiny)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_study.py"), "--jobs", "1", "--steps", "1", "--size", "32"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("gpu study: best 1 jobs per GPU:") and "updates/s in total" in last, proc.stdout


def test_deterministic_upsampling_trains_bit_identically_on_the_cpu():
    """Replacing UpSampling2D changes no result on the CPU: the same losses and weights after a few updates."""
    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 1)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (4, 64, 64))]

    def run(replace):
        tf.keras.utils.set_random_seed(3)
        model = sm.Unet(
            "resnet18",
            encoder_weights=None,
            classes=4,
            activation="softmax",
            input_shape=(64, 64, 1),
            decoder_filters=(128, 64, 32, 16, 8),
        )
        model = upsampling.replace_upsampling(model) if replace else model
        model.compile(tf.keras.optimizers.Adam(1e-3), loss=sm.losses.DiceLoss() + sm.losses.CategoricalFocalLoss())
        return [float(model.train_on_batch(x, y)) for _ in range(4)], model.get_weights()

    (loss_a, w_a), (loss_b, w_b) = run(False), run(True)
    assert loss_a == loss_b
    assert all(np.array_equal(a, b) for a, b in zip(w_a, w_b))
