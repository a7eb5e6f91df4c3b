"""The decoder's noise: the Wiener gain, Gaussian noise of the residuals' cross-spectrum scaled per class, seeded,
and what it does to the image-domain fidelity statistics of a blurred set; the power gain (the spectrum alone)."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dualgen.core.errors import DualgenError
from dualgen.generate import image_stats, noise
from tests.test_image_stats import blur, grains


def _textured(n, seed, channels=1):
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(0, 1, (n, 32, 32)), (0, 2, 2)) * 60
    return np.repeat((128 + smooth)[..., None], channels, axis=-1)


def test_an_exact_reconstruction_has_unit_gain_and_adds_nothing():
    real = np.clip(np.rint(_textured(12, 0)), 0, 255).astype(np.uint8)
    model = noise.fit(real, real, np.zeros(real.shape[:3], int), 1)
    assert np.allclose(model.gain, 1.0)
    assert np.array_equal(noise.add_noise(real, np.zeros(real.shape[:3], int), model, seed=0), real)


def test_white_residuals_give_noise_of_their_variance_and_no_offset():
    rng = np.random.default_rng(0)
    recon = np.full((20, 32, 32, 1), 128.0)
    real = recon + rng.normal(0, 6.0, recon.shape) + 5.0  # a brightness offset of 5 is not noise
    model = noise.fit(real, recon, np.zeros(real.shape[:3], int), 1)
    assert model.summary()["noise_sd"] == pytest.approx(6.0, rel=0.05)
    flat = np.full((50, 32, 32, 1), 128, np.uint8)
    out = noise.add_noise(flat, np.zeros(flat.shape[:3], int), model, seed=3).astype(np.float64)
    assert abs(out.mean() - 128) < 0.2  # the offset is removed with each residual's mean
    assert out.std() == pytest.approx(6.0, rel=0.05)  # the residuals' power, rounding aside


def test_the_noise_keeps_the_channels_correlation_shared_or_not():
    rng = np.random.default_rng(1)
    recon = np.full((30, 32, 32, 3), 128.0)
    zeros = np.zeros((30, 32, 32), int)
    shared = recon + rng.normal(0, 5, (30, 32, 32, 1))  # the same noise in R, G and B
    own = recon + rng.normal(0, 5, recon.shape)  # independent noise per channel
    flat = np.full((40, 32, 32, 3), 128, np.uint8)
    masks = np.zeros(flat.shape[:3], int)
    a = noise.add_noise(flat, masks, noise.fit(shared, recon, zeros, 1), seed=0).astype(float)
    b = noise.add_noise(flat, masks, noise.fit(own, recon, zeros, 1), seed=0).astype(float)
    assert np.corrcoef(a[..., 0].ravel(), a[..., 2].ravel())[0, 1] > 0.99
    assert abs(np.corrcoef(b[..., 0].ravel(), b[..., 2].ravel())[0, 1]) < 0.05
    assert a.std() == pytest.approx(5.0, rel=0.05) and b.std() == pytest.approx(5.0, rel=0.05)


def test_each_class_gets_its_own_noise_level():
    rng = np.random.default_rng(2)
    masks = np.zeros((20, 32, 32), int)
    masks[:, :, 16:] = 1
    recon = np.full((20, 32, 32, 1), 100.0)
    real = recon + rng.normal(0, 1, recon.shape) * np.where(masks == 1, 8.0, 4.0)[..., None]
    model = noise.fit(real, recon, masks, 3)
    assert model.class_scale[1] / model.class_scale[0] == pytest.approx(2.0, rel=0.05)
    assert model.class_scale[2] == 1.0  # a class the training masks lack
    out = noise.add_noise(np.full((40, 32, 32, 1), 100, np.uint8), np.tile(masks[:1], (40, 1, 1)), model, 0)
    left, right = out[:, :, :16].std(), out[:, :, 16:].std()
    assert right / left == pytest.approx(2.0, rel=0.1)


def test_the_noise_brings_a_blurred_set_to_the_real_spectrum():
    """Reconstructions = the real grains blurred by a Gaussian H: the Wiener gain undoes the blur (1 / H) where the
    blurred image is coherent with the real one (low frequencies), and the filtered,
    noisy second blurred sample has the real spectrum (a ratio near the floor); the noise restores power and
    edges inside the matrix, not the grain boundaries' structure."""
    real, masks = grains(40, seed=1)
    model = noise.fit(real, blur(real), masks, 2)
    freqs = np.arange(len(model.gain)) / 64
    low = (freqs > 0) & (freqs < 0.05)
    inverse_blur = np.exp((2 * np.pi * freqs[low] * 1.5) ** 2 / 2)
    assert np.allclose(model.gain[low], inverse_blur, rtol=0.03)
    other, other_masks = grains(40, seed=2)
    plain = blur(other)
    noisy = noise.add_noise(plain, other_masks, model, seed=0)
    before = image_stats.image_family(real, masks, plain, other_masks, n_splits=3).set_index("statistic")
    after = image_stats.image_family(real, masks, noisy, other_masks, n_splits=3).set_index("statistic")
    assert before.loc["spectrum_high", "ratio"] > 10
    assert after.loc["spectrum_high", "ratio"] < 3
    assert before.loc["edge_density", "synthetic_value"] == 0 < after.loc["edge_density", "synthetic_value"]


def test_the_power_gain_inverts_a_blur_and_damps_added_power():
    """sqrt(S_xx / S_yy): 1 / H(f) for a Gaussian blur H (as the Wiener gain, at low f), sqrt(S / (S + N)) where the
    reconstructions carry extra white noise of power N (the Wiener gain would be S / (S + N)); the equalised
    training reconstructions have the real spectrum (up to the uint8 rounding), a second blurred sample nearly so."""
    real, masks = grains(40, seed=1)
    gain = noise.power_gain(real, blur(real))
    freqs = np.arange(len(gain)) / 64
    low = (freqs > 0) & (freqs < 0.05)
    assert np.allclose(gain[low], np.exp((2 * np.pi * freqs[low] * 1.5) ** 2 / 2), rtol=0.03)
    flat = np.full((60, 32, 32, 1), 128.0)
    rng = np.random.default_rng(4)
    signal = flat + rng.normal(0, 6.0, flat.shape)
    noisy = signal + rng.normal(0, 8.0, flat.shape)
    gain = noise.power_gain(signal, noisy)[1:]
    assert np.allclose(gain, np.sqrt(36 / (36 + 64)), rtol=0.08)
    assert np.allclose(noise.wiener_gain(signal, noisy)[1:], 36 / (36 + 64), rtol=0.12)
    f, target = image_stats.radial_power_spectrum(real)
    trained = noise.equalise(blur(real, 0.5), noise.power_gain(real, blur(real, 0.5)))  # G under the cap
    gap = np.abs(image_stats.radial_power_spectrum(trained)[1] - target)  # decades; rounding and the window aside
    assert np.abs(image_stats.radial_power_spectrum(blur(real, 0.5))[1] - target).mean() > 0.2 > 0.03 > gap.mean()
    other, other_masks = grains(40, seed=2)
    table = {}
    for sigma in (0.5, 1.5):  # a mild blur (G up to about 3.4) and a heavy one (capped from 0.2 up)
        plain = blur(other, sigma)
        sharp = noise.equalise(plain, noise.power_gain(real, blur(real, sigma)))
        for name, images in (("before", plain), ("after", sharp)):
            t = image_stats.image_family(real, masks, images, other_masks, n_splits=3).set_index("statistic")
            table[sigma, name] = t["ratio"]
    assert sharp.dtype == np.uint8 and np.array_equal(noise.equalise(plain, np.ones(33)), plain)
    assert noise.power_gain(real, blur(real, 1.5)).max() == noise.MAX_GAIN
    mild_before, mild_after = table[0.5, "before"], table[0.5, "after"]
    assert mild_before["spectrum_high"] > 10 > 2 > mild_after["spectrum_high"]
    assert mild_before["gradient"] > 10 > 5 > mild_after["gradient"]
    heavy_before, heavy_after = table[1.5, "before"], table[1.5, "after"]
    assert heavy_after["spectrum_high"] < heavy_before["spectrum_high"]  # restored only up to the cap,
    assert heavy_after["gradient"] < heavy_before["gradient"]  # so the rounding noise is not made a texture


def test_noise_is_seeded_per_image():
    rng = np.random.default_rng(2)
    recon = np.full((5, 16, 16, 1), 100.0)
    model = noise.fit(recon + rng.normal(0, 4, recon.shape), recon, np.zeros((5, 16, 16), int), 1)
    images = rng.integers(0, 255, (6, 16, 16, 1)).astype(np.uint8)
    masks = np.zeros((6, 16, 16), int)
    a = noise.add_noise(images, masks, model, seed=7)
    assert np.array_equal(a, noise.add_noise(images, masks, model, seed=7))
    assert np.array_equal(a[:3], noise.add_noise(images[:3], masks[:3], model, seed=7))  # independent of N
    assert not np.array_equal(a, noise.add_noise(images, masks, model, seed=8))


def test_mismatched_shapes_raise():
    zeros = np.zeros((2, 8, 8), int)
    with pytest.raises(DualgenError, match="differ"):
        noise.fit(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 3)), zeros, 1)
    model = noise.fit(np.ones((2, 16, 16, 1)), np.zeros((2, 16, 16, 1)), np.zeros((2, 16, 16), int), 1)
    with pytest.raises(DualgenError, match="does not fit"):
        noise.add_noise(np.zeros((2, 8, 8, 1), np.uint8), zeros, model, seed=0)
    with pytest.raises(DualgenError, match="class 1"):
        noise.add_noise(np.zeros((2, 16, 16, 1), np.uint8), np.ones((2, 16, 16), int), model, seed=0)
