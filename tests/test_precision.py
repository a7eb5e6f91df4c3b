"""Issue 15 parts 3-4: the determinism setting (strict / fast, each in its own process, recorded in meta.json) and
mixed precision for the U-Net and the VQ-VAE (a few float16 training steps on the CPU: finite losses, float32
variables and outputs, loss scaling, resume)."""

import json
import subprocess
import textwrap

import numpy as np
import pytest

import dualgen  # noqa: F401
from dualgen.core import env
from dualgen.core.errors import DualgenError
from tests.conftest import PY, REPO, TINY_VQVAE
from tests.conftest import env as proc_env

tf = env.setup_tensorflow(1, 0)

from dualgen.core import artifacts, precision
from dualgen.generate.vqvae import model as vqvae  # noqa: E402
from dualgen.generate.vqvae import train as vqvae_train
from dualgen.segment import unet, unet_train
from tests import determinism_tools  # noqa: E402

# ---------------------------------------------------------------------------------------------- determinism

PROBE = textwrap.dedent("""
    import json, os, sys
    from dualgen.core import artifacts, env
    tf = env.setup_tensorflow(1, 0, sys.argv[1])
    from tensorflow.python.framework import config as tf_config
    try:
        tf.timestamp()  # raises on every device while op determinism is on
        timestamp = "ran"
    except Exception as err:
        timestamp = type(err).__name__
    print("RESULT " + json.dumps({"enabled": tf_config.is_op_determinism_enabled(), "mode": env.mode,
                                  "timestamp": timestamp,
                                  "environ": {k: os.environ.get(k) for k in set().union(*env.DETERMINISM.values())},
                                  "meta": artifacts.meta("probe", {}, 0, [], 0.0)["determinism"]}))
""")


def probe(mode):
    e = proc_env()
    for key in set().union(*env.DETERMINISM.values()):  # as in a fresh shell: dualgen sets them itself
        e.pop(key, None)
    proc = subprocess.run([PY, "-c", PROBE, mode], capture_output=True, text=True, env=e, cwd=REPO, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize("mode", ["strict", "fast"])
def test_determinism_mode_turns_op_determinism_on_or_off_and_is_recorded(mode):
    got = probe(mode)
    assert got["mode"] == got["meta"] == mode
    assert got["enabled"] is (mode == "strict")
    assert got["timestamp"] == ("ran" if mode == "fast" else "FailedPreconditionError")
    assert {k: v for k, v in got["environ"].items() if v is not None} == env.DETERMINISM[mode]


def test_meta_says_na_in_a_step_without_tensorflow():
    code = (
        "import sys; from dualgen.core import artifacts; m = artifacts.meta('x', {}, None, [], 0.0); "
        "print(m['determinism'], 'tensorflow' in sys.modules)"
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=proc_env(), timeout=120)
    assert proc.stdout.split() == ["n/a", "False"], proc.stderr


def test_this_process_records_its_mode_and_unknown_modes_are_refused():
    assert artifacts.meta("x", {}, None, [], 0.0)["determinism"] == env.mode == "strict"
    with pytest.raises(DualgenError, match="determinism: 'exact' is not one of"):
        env.setup_tensorflow(1, 0, "exact")
    from tensorflow.python.framework import config as tf_config

    assert env.mode == "strict" and tf_config.is_op_determinism_enabled()


def test_every_model_step_passes_its_mode_from_settings():
    """Every script that sets TensorFlow up takes the mode from --settings, and its rule passes config's."""
    scripts = sorted(p.name for p in (REPO / "scripts").glob("*.py") if "setup_tensorflow(" in p.read_text())
    assert scripts == [
        "calibrate_budget.py",
        "decode.py",
        "encode.py",
        "fidelity.py",
        "predict.py",
        "pretest.py",
        "sample.py",
        "train_pixelcnn.py",
        "train_unet.py",
        "train_vqvae.py",
        "whole_image.py",
    ]
    for name in scripts:
        assert 's["determinism"])' in (REPO / "scripts" / name).read_text(), name
    rules = "".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    for start in (
        "rule train_vqvae:",
        "rule encode:",
        "rule fidelity:",
        "rule train_pixelcnn:",
        "rule sample:",
        "rule decode:",
        "rule pretest:",
        "rule whole_image:",
        "rule predict:",
        "def unet_settings(",
        "def calibration_settings(",
    ):  # the last two: train_unet's and calibrate_budget's settings
        rest = rules[rules.index(start) + len(start) :]
        ends = [i for i in (rest.find(m) for m in ("\nrule ", "\ndef ", "\nuse rule ")) if i >= 0]
        assert 'determinism=config["determinism"]' in rest[: min(ends, default=len(rest))], start


# ---------------------------------------------------------------------------------------------- the U-Net

SIZE, CLASSES = 32, 4


def phantom(n, seed):
    rng = np.random.default_rng(seed)
    masks = np.kron(rng.integers(0, CLASSES, (n, SIZE // 8, SIZE // 8)), np.ones((1, 8, 8), np.int64)).astype(np.uint8)
    gray = np.array([60, 200, 250, 130], np.float64)[masks] + rng.normal(0, 15, masks.shape)
    return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, -1), masks


SPEC = dict(
    backbone="resnet18",
    encoder_weights=None,
    num_classes=CLASSES,
    input_shape=[SIZE, SIZE, 3],
    bn_momentum=0.9,
    mixed_precision=True,
    decoder_filters=None,
    encoder_depth=5,
)
UNET_SETTINGS = dict(
    backbone="resnet18", encoder_weights=None, bn_momentum=0.9, decoder_filters=None, encoder_depth=5
)  # config's unet keys that make_spec reads, less mixed_precision
UNET = dict(
    spec=SPEC,
    budget="updates",
    updates=4,
    validate_every=2,
    batch_size=4,
    val_batch_size=1,
    learning_rate=1e-3,
    reduce_lr_patience=5,
    seed=3,
    epochs=None,
    early_stopping_patience=None,
    pretrain_share=None,
    checkpoint_every_s=60.0,
)


def train_unet(out_dir, **over):
    (x, y), (xv, yv) = phantom(8, 0), phantom(2, 1)
    logs = []
    model, info = unet_train.train_unet(x, y, xv, yv, out_dir=out_dir, log=logs.append, **{**UNET, **over})
    return model, info, logs


def compute_dtypes(model):
    return {layer.compute_dtype for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)}


@pytest.fixture(scope="module")
def mixed_unet(tmp_path_factory):
    out = tmp_path_factory.mktemp("unet_mixed")
    return (out, *train_unet(out))


def test_mixed_precision_unet_trains_in_float16_with_float32_softmax_and_loss_scaling(mixed_unet):
    out, model, info, logs = mixed_unet
    assert compute_dtypes(model) == {"float16"}
    assert model.layers[-1].name == "softmax" and model.layers[-1].compute_dtype == "float32"
    assert model.output.dtype == tf.float32 and all(w.dtype == tf.float32 for w in model.weights)
    assert isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert info["updates"] == 4
    for key in ("loss", "val_loss", "iou_score"):
        assert np.isfinite(info["history"][key]).all(), key
    assert any("meant for GPUs" in line for line in logs)  # no GPU here
    x = unet.preprocess(phantom(2, 5)[0])
    probs = model(x, training=False).numpy()
    assert probs.dtype == np.float32 and np.allclose(probs.sum(-1), 1, atol=1e-5)


def test_mixed_precision_unet_spec_round_trip(mixed_unet, tmp_path):
    _, model, _, _ = mixed_unet
    x = unet.preprocess(phantom(2, 5)[0])
    unet.save(model, tmp_path / "mixed", SPEC)
    again, spec = unet.load(tmp_path / "mixed")
    assert spec["mixed_precision"] is True and compute_dtypes(again) == {"float16"}
    assert np.array_equal(again(x, training=False).numpy(), model(x, training=False).numpy())
    assert unet.make_spec(dict(UNET_SETTINGS, mixed_precision=False), 4, (32, 32, 3))["mixed_precision"] is False


def killed_then_resumed(out_dir, monkeypatch, **over):
    """``train_unet`` killed right after its first period's commit, then called again on the same folder:
    (model, info, logs) of the resumed call, which must say it resumed."""
    commit = unet_train._Keeper.on_epoch_end

    class Killed(Exception):
        pass

    def kill_after_first_period(self, epoch, logs=None):
        commit(self, epoch, logs)
        raise Killed()

    over = dict(over, checkpoint_every_s=0.0)  # commit after every period
    monkeypatch.setattr(unet_train._Keeper, "on_epoch_end", kill_after_first_period)
    with pytest.raises(Killed):
        train_unet(out_dir, **over)
    monkeypatch.setattr(unet_train._Keeper, "on_epoch_end", commit)
    model, info, logs = train_unet(out_dir, **over)
    assert any("resuming from period 1" in line for line in logs)
    return model, info, logs


def test_a_killed_mixed_precision_unet_resumes_with_its_loss_scale(mixed_unet, tmp_path, monkeypatch):
    _, _, info_a, _ = mixed_unet
    _, info, _ = killed_then_resumed(tmp_path, monkeypatch)
    for key in ("loss", "val_loss", "val_iou_score"):  # Adam's and the loss scale's state restored
        assert np.allclose(info["history"][key], info_a["history"][key], rtol=1e-4, atol=1e-5), key


def test_bfloat16_support_is_read_from_the_cpu_flags_and_auto_resolves_by_it(tmp_path, monkeypatch):
    def cpu(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return precision.cpu_bfloat16(path)

    assert cpu("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16\n") == "native"
    assert cpu("flags\t\t: fpu avx2 amx_bf16 amx_tile\n") == "native"
    assert cpu("flags\t\t: fpu avx2 avx512f avx512bw avx512vl\n") == "emulated"
    assert cpu("flags\t\t: fpu sse4_2 avx avx2 fma\n") is None
    assert cpu("processor\t: 0\nFeatures\t: fp asimd bf16\n") == "unknown"  # not x86: nothing to read
    assert precision.cpu_bfloat16(tmp_path / "missing") == "unknown"

    logs = []
    for found, gpu, auto, outcome in [
        ("native", False, "bfloat16", None),
        ("emulated", False, False, "warning"),
        (None, False, False, "error"),
        ("native", True, False, None),
    ]:
        monkeypatch.setattr(precision, "cpu_bfloat16", lambda found=found: found)
        monkeypatch.setattr(precision, "on_gpu", lambda gpu=gpu: gpu)
        assert precision.resolve("auto") == auto
        assert precision.resolve("bfloat16") == "bfloat16" and precision.resolve(False) is False
        logs.clear()
        if outcome == "error":
            with pytest.raises(DualgenError, match="unet.mixed_precision: bfloat16 needs a CPU with AVX512"):
                precision.check(logs.append, "unet.mixed_precision", "bfloat16")
        else:
            precision.check(logs.append, "unet.mixed_precision", "bfloat16")
            assert len(logs) == (outcome == "warning")
        precision.check(logs.append, "unet.mixed_precision", False)  # float32 runs everywhere
        assert len(logs) == (outcome == "warning")
    with pytest.raises(ValueError, match="none of false, true, float16, bfloat16"):
        precision.mode("half")


@pytest.mark.skipif(
    precision.cpu_bfloat16() in (None, "unknown") and not precision.on_gpu(),
    reason="this machine cannot compute bfloat16",
)
def test_a_bfloat16_unet_trains_deterministically_resumes_and_is_reused(tmp_path, monkeypatch):
    """bfloat16 compute, float32 variables and softmax, Adam without a loss scale; two trainings agree exactly, a
    killed one resumes to the same curves, a reused (traced) model trains as a fresh one, and the spec keeps
    "bfloat16" so that a loaded model predicts as the trained one."""
    spec = {**SPEC, "mixed_precision": "bfloat16"}
    model, info, _ = train_unet(tmp_path / "a", spec=spec)
    assert compute_dtypes(model) == {"bfloat16"}
    assert model.output.dtype == tf.float32 and all(w.dtype == tf.float32 for w in model.weights)
    assert not isinstance(model.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert unet_train.reusable(spec) and np.isfinite(info["history"]["loss"]).all()
    _, again, _ = train_unet(tmp_path / "b", spec=spec)
    _, reused, _ = train_unet(tmp_path / "c", spec=spec, reuse=model)
    for other in (again, reused):
        assert other["history"]["loss"] == info["history"]["loss"]
        assert other["history"]["val_iou_score"] == info["history"]["val_iou_score"]

    fresh, resumed, _ = killed_then_resumed(tmp_path / "d", monkeypatch, spec=spec)
    assert resumed["history"]["val_loss"] == info["history"]["val_loss"]

    unet.save(fresh, tmp_path / "saved", spec)
    loaded, kept = unet.load(tmp_path / "saved")
    assert kept["mixed_precision"] == "bfloat16" and compute_dtypes(loaded) == {"bfloat16"}
    x = unet.preprocess(phantom(2, 5)[0])
    assert np.array_equal(loaded(x, training=False).numpy(), fresh(x, training=False).numpy())
    assert (
        unet.make_spec(dict(UNET_SETTINGS, mixed_precision="bfloat16"), 4, (32, 32, 3))["mixed_precision"] == "bfloat16"
    )


def test_float32_outputs_rebuilds_an_activation_or_adds_a_cast():
    with precision.keras_policy(True):
        inp = tf.keras.Input((4,))
        h = tf.keras.layers.Dense(3, name="dense")(inp)
        act = tf.keras.Model(inp, tf.keras.layers.Activation("softmax", name="softmax")(h))
        dense = tf.keras.Model(inp, h)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored
    for model in (act, dense):
        assert model.output.dtype == tf.float16
        fixed = precision.float32_outputs(model)
        assert fixed.output.dtype == tf.float32
        assert fixed.get_layer("dense") is model.get_layer("dense")
        x = tf.ones([2, 4])
        assert np.allclose(fixed(x).numpy(), model(x).numpy().astype(np.float32), atol=1e-3)
    assert precision.float32_outputs(fixed) is fixed


# ---------------------------------------------------------------------------------------------- the VQ-VAE


def tiny_vqvae(quantizer="ema"):
    tf.keras.utils.set_random_seed(0)
    return vqvae.VQVAE(4, quantizer=quantizer, **TINY_VQVAE)


def half_convolutions(graph):
    return [n for n, _, _ in determinism_tools.walk(graph) if n.op == "Conv2D" and n.attr["T"].type == tf.float16]


@pytest.mark.parametrize("quantizer", ["ema", "vq"])
def test_mixed_precision_vqvae_trains_in_float16_with_float32_codebook_outputs_and_loss_scale(quantizer, tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 16, 16, 4)).astype(np.float32)
    model, logs = tiny_vqvae(quantizer), []
    with determinism_tools.captured_functions(vqvae_train) as graphs:
        result = vqvae_train.train_vqvae(
            model,
            x[:8],
            x[8:],
            steps=6,
            batch_size=4,
            learning_rate=1e-3,
            seed=0,
            out_dir=tmp_path,
            eval_every=3,
            log=logs.append,
            mask_weight=1.0,
            n_mask=1,
            mixed_precision=True,
        )
    step = next(g for g in graphs if "train_step" in g.name.decode())
    assert half_convolutions(step), "the training step computes no float16 convolution"
    assert not any(half_convolutions(g) for g in graphs if g is not step)  # validation: float32
    assert {v.dtype for v in model.variables if v.dtype.is_floating} == {tf.float32}
    assert all(np.isfinite([h["train_recon"], h["train_vq_loss"], h["val_recon"]]).all() for h in result["history"])
    assert model(tf.constant(x[:2]), is_training=False)["x_recon"].dtype == tf.float32
    assert any("meant for GPUs" in line for line in logs)
    scale = tf.train.load_variable(str(tmp_path / "last" / "ckpt"), "opt/loss_scale/scale/.ATTRIBUTES/VARIABLE_VALUE")
    assert np.isfinite(scale) and scale >= 1
    again = vqvae_train.train_vqvae(
        model,
        x[:8],
        x[8:],
        steps=9,
        batch_size=4,
        learning_rate=1e-3,
        seed=0,
        out_dir=tmp_path,
        eval_every=3,
        log=logs.append,
        mask_weight=1.0,
        n_mask=1,
        mixed_precision=True,
    )
    assert again["resumed_from_step"] == 6 and len(again["history"]) == 3


def test_float32_vqvae_step_is_unchanged_by_the_casts():
    """In float32 the casts of VQVAE.__call__ are no-ops: no Cast op in the forward pass."""
    model = tiny_vqvae()
    graph = determinism_tools.trace(lambda x: model(x, is_training=True)["x_recon"], tf.zeros([2, 16, 16, 4]))
    casts = [n for n, _, _ in determinism_tools.walk(graph) if n.op == "Cast" and n.attr["DstT"].type == tf.float16]
    assert casts == [] and not half_convolutions(graph)


def test_loss_scale_skips_non_finite_updates_halves_and_grows():
    import sonnet as snt

    var = tf.Variable([1.0, 2.0])
    opt, scale = snt.optimizers.Adam(0.1), precision.LossScale(initial=8.0, growth_steps=2)
    assert float(scale.scaled(tf.constant(3.0))) == 24.0
    assert not bool(scale.apply(opt, [tf.constant([np.inf, 1.0])], [var]))  # skipped, scale halved
    assert float(scale.scale) == 4.0 and var.numpy().tolist() == [1.0, 2.0] and int(opt.step) == 0
    for _ in range(2):
        assert bool(scale.apply(opt, [tf.constant([4.0, -4.0])], [var]))
    assert float(scale.scale) == 8.0 and int(scale.good_steps) == 0 and int(opt.step) == 2
    assert var.numpy()[0] < 1.0 < var.numpy()[1] - 1.0
