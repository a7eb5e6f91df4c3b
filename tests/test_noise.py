"""The decoder's noise: phase-randomised residuals with the residuals' spectrum, seeded, and what it does to the
image-domain fidelity statistics of a blurred set."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dualgen.core.errors import DualgenError
from dualgen.generate import image_stats, noise
from tests.test_image_stats import blur, grains


def test_white_residuals_give_noise_of_their_variance_and_no_offset():
    rng = np.random.default_rng(0)
    recon = np.full((20, 32, 32, 1), 128.0)
    real = recon + rng.normal(0, 6.0, recon.shape) + 5.0  # a brightness offset of 5 is not noise
    amp = noise.residual_amplitudes(noise.residuals(real, recon))
    flat = np.full((50, 32, 32, 1), 128, np.uint8)
    out = noise.add_residual_noise(flat, amp, seed=3).astype(np.float64)
    assert abs(out.mean() - 128) < 0.2  # the offset is removed with each residual's mean
    assert out.std() == pytest.approx(6.0, rel=0.05)  # Parseval: the residuals' power, rounding aside


def test_noise_keeps_the_residual_spectrum_and_the_channels_correlation():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, (30, 32, 32))
    smooth = gaussian_filter(base, (0, 1.5, 1.5)) * 20  # correlated, low-pass residuals, the same in R, G, B
    real = 128 + np.repeat(smooth[..., None], 3, axis=-1)
    recon = np.full(real.shape, 128.0)
    amp = noise.residual_amplitudes(noise.residuals(real, recon))
    out = noise.add_residual_noise(np.full((30, 32, 32, 3), 128, np.uint8), amp, seed=0)
    f, spec_real = image_stats.radial_power_spectrum(np.clip(np.rint(real), 0, 255).astype(np.uint8))
    _, spec_noise = image_stats.radial_power_spectrum(out)
    assert np.abs(spec_real - spec_noise)[f <= 0.25].mean() < 0.15  # decades, where the residuals have power
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_noise_is_seeded_per_image():
    rng = np.random.default_rng(2)
    amp = noise.residual_amplitudes(rng.normal(0, 4, (5, 16, 16, 1)))
    images = rng.integers(0, 255, (6, 16, 16, 1)).astype(np.uint8)
    a = noise.add_residual_noise(images, amp, seed=7)
    assert np.array_equal(a, noise.add_residual_noise(images, amp, seed=7))
    assert np.array_equal(a[:3], noise.add_residual_noise(images[:3], amp, seed=7))  # independent of N
    assert not np.array_equal(a, noise.add_residual_noise(images, amp, seed=8))


def test_noise_brings_a_blurred_set_back_towards_real_power():
    """Reconstructions = the real grains blurred; a second blurred sample with the residuals' noise has a
    high-frequency spectrum far closer to real than without it, and edges inside the matrix again. It restores power,
    not structure: here the residuals are the grain boundaries themselves, and as noise their gradients overshoot."""
    real, masks = grains(40, seed=1)
    amp = noise.residual_amplitudes(noise.residuals(real, blur(real)))
    other, other_masks = grains(40, seed=2)
    plain = blur(other)
    noisy = noise.add_residual_noise(plain, amp, seed=0)
    before = image_stats.image_family(real, masks, plain, other_masks, n_splits=3).set_index("statistic")
    after = image_stats.image_family(real, masks, noisy, other_masks, n_splits=3).set_index("statistic")
    assert after.loc["spectrum_high", "ratio"] < before.loc["spectrum_high", "ratio"] / 10
    assert before.loc["edge_density", "synthetic_value"] == 0 < after.loc["edge_density", "synthetic_value"]
    assert after.loc["gradient", "synthetic_value"] > after.loc["gradient", "real_value"]  # the overshoot


def test_mismatched_shapes_raise():
    with pytest.raises(DualgenError, match="differ"):
        noise.residuals(np.zeros((2, 8, 8, 1)), np.zeros((2, 8, 8, 3)))
    with pytest.raises(DualgenError, match="do not fit"):
        noise.add_residual_noise(np.zeros((2, 8, 8, 1), np.uint8), np.zeros((2, 16, 16, 1)), seed=0)
