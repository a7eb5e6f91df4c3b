"""Whole-micrograph inference (dualgen.segment.whole) on constructed data with known answers: window placement,
blending weights that sum to one, exact tiling at overlap 0, padding of small images, the original resolution,
flip TTA, the seed ensemble; and the preprocessing ingest and inference share (patches.prepare_image)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dualgen  # noqa: F401
from dualgen.core import env

env.setup_tensorflow(1, 0)

import tensorflow as tf

from dualgen.data import io, patches
from dualgen.segment import unet, whole

K = 3  # classes of the test models
SCALE = unet.preprocessor({"encoder_weights": None, "backbone": None})  # pixels / 255, as a random-init U-Net


def conv_model(kernel, channels=1, seed=0, symmetric=False):
    """A fully convolutional softmax model: one kernel x kernel convolution ('same' zero padding), fixed random
    weights; ``symmetric``: the kernel mirrored in both axes (the model commutes with flips)."""
    model = tf.keras.Sequential(
        [tf.keras.Input((None, None, channels)), tf.keras.layers.Conv2D(K, kernel, padding="same")]
    )
    model.add(tf.keras.layers.Softmax())
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 3, (kernel, kernel, channels, K)).astype(np.float32)
    if symmetric:
        w = (w + w[::-1] + w[:, ::-1] + w[::-1, ::-1]) / 4
    model.layers[0].set_weights([w, rng.normal(0, 1, K).astype(np.float32)])
    return model


def micrograph(h, w, seed=0, channels=1):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def quiet(_):
    pass


# ---------------------------------------------------------------------------------------------- windows, blending


@pytest.mark.parametrize("length,size,overlap", [(64, 64, 0.5), (100, 32, 0.5), (97, 32, 0.25), (33, 32, 0.9)])
def test_window_starts_cover_every_pixel(length, size, overlap):
    starts = whole.window_starts(length, size, overlap)
    assert starts.dtype.kind == "i" and starts[0] == 0 and starts[-1] == length - size
    assert np.array_equal(starts, np.unique(starts))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
    assert covered.all()
    assert (np.diff(starts) <= max(1, round(size * (1 - overlap)))).all()


def test_window_starts_overlap_zero_tiles():
    assert np.array_equal(whole.window_starts(96, 32, 0.0), [0, 32, 64])
    assert np.array_equal(whole.window_starts(100, 32, 0.5), [0, 16, 32, 48, 64, 68])
    with pytest.raises(ValueError):
        whole.window_starts(31, 32, 0.0)


def test_blend_window_positive_and_peaked():
    for size in (1, 7, 32):
        w = whole.blend_window(size)
        assert w.shape == (size, size) and w.dtype == np.float32 and (w > 0).all()
        assert w[size // 2, size // 2] == w.max()
    assert whole.blend_window(32)[0, 0] < 1e-4


@pytest.mark.parametrize("height,width,size,overlap", [(64, 64, 32, 0.5), (77, 101, 32, 0.5), (45, 33, 16, 0.3)])
def test_stitch_weights_sum_to_one(height, width, size, overlap):
    ys, xs = whole.window_starts(height, size, overlap), whole.window_starts(width, size, overlap)
    sy, sx = np.repeat(ys, len(xs)), np.tile(xs, len(ys))
    out = whole.stitch(np.ones((len(sy), size, size, 2), np.float32), sy, sx, height, width)
    assert out.shape == (height, width, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    # a per-window constant score vector blends to a convex combination: still within [min, max] of the windows
    values = np.random.default_rng(0).random((len(sy), 1, 1, 2)).astype(np.float32)
    out = whole.stitch(np.broadcast_to(values, (len(sy), size, size, 2)), sy, sx, height, width)
    assert out.min() >= values.min() - 1e-6 and out.max() <= values.max() + 1e-6


# ---------------------------------------------------------------------------------------------- prediction


def test_overlap_zero_equals_per_window_outputs():
    size, image = 32, micrograph(96, 64)
    model = conv_model(3)  # 3x3: zero padding at each window's border, so windows differ from the whole image
    scores = whole.predict_scores([model], image, size=size, overlap=0.0, preprocess=SCALE, log=quiet)[0]
    starts = [(y, x) for y in range(0, 96, size) for x in range(0, 64, size)]
    windows = np.stack([image[y : y + size, x : x + size] for y, x in starts])
    outputs = np.asarray(model(SCALE(windows), training=False))
    expected = np.zeros((96, 64, K), np.float32)
    for (y, x), out in zip(starts, outputs):
        expected[y : y + size, x : x + size] = out
    assert scores.dtype == np.float32 and np.array_equal(scores, expected)
    assert np.array_equal(whole.labels(scores), expected.argmax(-1).astype(np.uint8))
    assert not np.array_equal(scores, np.asarray(model(SCALE(image[None]), training=False))[0])  # windows matter


def test_out_size_is_the_original_resolution():
    raw = micrograph(101, 90, channels=3)
    raw[..., 1:] = raw[..., :1]  # gray stored as RGB
    image, gray = patches.prepare_image(raw, 0, 0.5)
    assert gray and image.shape == (*patches.scaled_size(101, 90, 0.5), 1)
    scores = whole.predict_scores([conv_model(3)], image, size=32, preprocess=SCALE, out_size=raw.shape[:2], log=quiet)[
        0
    ]
    assert scores.shape == (101, 90, K) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-5)  # bilinear: still a distribution per pixel
    flat = np.full((5, 7, 2), 0.25, np.float32)
    assert whole.resize_scores(flat, 5, 7) is flat
    np.testing.assert_allclose(whole.resize_scores(flat, 11, 13), 0.25, atol=1e-6)


@pytest.mark.parametrize("shape,mode", [((20, 50), "reflect"), ((10, 10), "edge")])
def test_small_image_is_padded(shape, mode):
    image, lines = micrograph(*shape), []
    model = conv_model(3)
    scores = whole.predict_scores([model], image, size=32, preprocess=SCALE, log=lines.append)[0]
    assert scores.shape == (*shape, K)
    assert len(lines) == 1 and f"{shape[1]}x{shape[0]} px" in lines[0] and "32x32" in lines[0] and mode in lines[0]
    padded = np.pad(image, ((0, max(0, 32 - shape[0])), (0, max(0, 32 - shape[1])), (0, 0)), mode=mode)
    same = whole.predict_scores([model], padded, size=32, preprocess=SCALE, log=quiet)[0]
    assert np.array_equal(scores, same[: shape[0], : shape[1]])


def test_tta_with_a_flip_equivariant_model_equals_no_tta():
    image = micrograph(70, 90)
    kwargs = dict(size=32, overlap=0.5, preprocess=SCALE, log=quiet)
    symmetric = conv_model(3, symmetric=True)
    plain = whole.predict_scores([symmetric], image, **kwargs)[0]
    np.testing.assert_allclose(whole.predict_scores([symmetric], image, tta=True, **kwargs)[0], plain, atol=1e-6)
    skewed = conv_model(3, seed=1)  # not flip-equivariant: TTA changes the scores
    assert not np.allclose(
        whole.predict_scores([skewed], image, tta=True, **kwargs)[0], whole.predict_scores([skewed], image, **kwargs)[0]
    )


def test_ensemble_is_the_mean():
    image = micrograph(64, 80)
    models = [conv_model(3, seed=1), conv_model(1, seed=2)]
    kwargs = dict(size=32, preprocess=SCALE, batch_size=4, log=quiet)
    both = whole.predict_scores(models, image, **kwargs)
    for model, scores in zip(models, both):
        assert np.array_equal(scores, whole.predict_scores([model], image, **kwargs)[0])
    mean = whole.ensemble(both)
    assert mean.dtype == np.float32
    np.testing.assert_allclose(mean, (both[0] + both[1]) / 2, atol=1e-7)
    label_map = whole.labels(mean)
    assert label_map.dtype == np.uint8
    fractions = whole.area_fractions(label_map, K)
    assert fractions.dtype == np.float64 and fractions.sum() == pytest.approx(1.0)
    assert np.allclose(fractions, [(label_map == k).mean() for k in range(K)])


def test_channel_mismatch_is_an_error():
    with pytest.raises(dualgen.core.errors.DualgenError, match="channels=3"):
        whole.predict_scores([conv_model(1, channels=3)], micrograph(32, 32), size=32, preprocess=SCALE, log=quiet)


# ---------------------------------------------------------------------------------------------- shared preprocessing


def test_ingest_patches_equal_the_prepared_image(tmp_path):
    """A gray micrograph stored as RGB with a coloured info band (colour if judged before the cut), odd sizes,
    scale 0.5: every patch ingest cuts is the same region of prepare_image's result, bit for bit."""
    h, w, band, size = 81, 71, 13, 16
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (h + band, w), dtype=np.uint8)
    raw = np.repeat(gray[..., None], 3, -1)
    raw[h:, :, 0] = 255  # a red info band
    mask = np.where(rng.random((h, w)) < 0.5, 0, 255).astype(np.uint8)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    Image.fromarray(raw).save(tmp_path / "images" / "m0.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "m0.png")
    classes = [{"name": "a", "value": 0}, {"name": "b", "value": 255}]
    sources = patches.load_sources(
        tmp_path / "images", tmp_path / "masks", None, classes, "palette", crop_height="auto", scale=0.5, log=quiet
    )
    kept = patches.cut(sources, size, size, drop_background_only=False, num_classes=2, log=quiet)
    assert sources[0].info["rows_cut"] == band

    read = io.read_micrograph(tmp_path / "images" / "m0.png", collapse_gray=False)
    prepared, is_gray = patches.prepare_image(read, band, 0.5)
    assert is_gray and prepared.shape == (*patches.scaled_size(h, w, 0.5), 1)
    assert np.array_equal(prepared, sources[0].image)
    assert len(kept) == (prepared.shape[0] // size) * (prepared.shape[1] // size)
    for record, patch, _, _ in kept:
        y, x = record["y"], record["x"]
        assert np.array_equal(patch, prepared[y : y + size, x : x + size])
    # the predict step's path: the band rule exported from what ingest cut (sources.csv), then new_micrograph
    from dualgen.data import micrographs

    table = pd.DataFrame([dict(s.info, channels=1) for s in sources])
    preprocess = {"crop": micrographs.crop_rule("auto", table), "scale": 0.5, "channels": 1, "max_pixels": 10**8}
    new = micrographs.new_micrograph(tmp_path / "images" / "m0.png", preprocess, log=quiet)
    assert np.array_equal(new.image, prepared) and new.size == (h, w) and new.rows_cut == band
    rgb, _ = patches.prepare_image(read, band, 0.5, channels=3)
    assert rgb.shape[2] == 3 and np.array_equal(rgb, np.repeat(prepared, 3, -1))
    colour, is_gray = patches.prepare_image(read, 0, 0.5)  # the band left in: judged colour
    assert not is_gray and colour.shape[2] == 3
