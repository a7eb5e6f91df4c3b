"""Image-domain fidelity statistics (power spectrum, gradients, edges): known answers, blur, the seeded floor."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from dualgen.core.errors import DualgenError
from dualgen.generate import image_stats as st


def grains(n, seed, size=64, n_grains=24):
    """Random Voronoi grains: class 0 (matrix) grains of random gray level with 1-px dark boundaries that the mask
    does not hold, and about 1 grain in 5 bright class 1 (oxide), plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 1), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i in range(n):
        pts = rng.uniform(0, size, (n_grains, 2))
        lab = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).argmin(-1)
        oxide = (rng.random(n_grains) < 0.2)[lab]
        edge = np.zeros((size, size), bool)
        edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        edge[:-1] |= lab[:-1] != lab[1:]
        img = rng.uniform(110, 170, n_grains)[lab]
        img[oxide] = 210
        img[edge & ~oxide] = 50
        images[i, ..., 0] = np.clip(np.rint(img + rng.normal(0, 4, img.shape)), 0, 255)
        masks[i] = oxide
    return images, masks


def blur(images, sigma=1.5):
    return np.clip(np.rint(gaussian_filter(images.astype(np.float64), (0, sigma, sigma, 0))), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sets():
    """Real grains, a second independent sample of the same generator, and the real grains blurred (same masks)."""
    real, masks = grains(40, seed=1)
    other, other_masks = grains(40, seed=2)
    return {"real": (real, masks), "other": (other, other_masks), "blurred": (blur(real), masks)}


@pytest.fixture(scope="module")
def tables(sets):
    real = sets["real"]
    return {
        k: st.image_family(*real, *sets[k], n_splits=5, seed=0).set_index("statistic") for k in ("other", "blurred")
    }


# ---------------------------------------------------------------- known answers


def test_gray_is_luminance():
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[..., 0] = 255
    assert np.allclose(st.gray(rgb), 0.299)
    assert np.allclose(st.gray(np.full((1, 2, 2), 51, np.uint8)), 0.2)  # (N, H, W): one channel


def test_white_noise_spectrum_is_flat_at_its_variance():
    rng = np.random.default_rng(0)
    noise = np.clip(np.rint(rng.normal(128, 20, (20, 64, 64, 1))), 0, 255).astype(np.uint8)
    freqs, logp = st.radial_power_spectrum(noise)
    assert np.allclose(freqs, np.arange(1, 33) / 64)  # rings 1..32 of 64 px: 1/64 .. 0.5 cycles/pixel
    assert np.abs(logp - np.log10((20 / 255) ** 2)).max() < 0.1


def test_sinusoid_peaks_at_its_frequency():
    x = np.arange(64)
    wave = np.broadcast_to(128 + 60 * np.cos(2 * np.pi * 8 / 64 * x), (2, 64, 64))
    freqs, logp = st.radial_power_spectrum(np.rint(wave).astype(np.uint8))
    assert freqs[np.argmax(logp)] == 8 / 64


def test_gradient_of_a_ramp_and_a_line():
    ramp = np.broadcast_to(np.arange(64) * 3, (1, 64, 64)).astype(np.uint8)  # 3 gray levels per pixel along x
    assert np.allclose(st.gradient_magnitudes(ramp), 3 / 255)  # np.gradient is exact on a ramp, border included
    line = np.full((1, 16, 16), 200, np.uint8)
    line[:, :, 8] = 100
    mag = st.gradient_magnitudes(line)[0]
    assert np.allclose(mag[:, [7, 9]], 50 / 255) and np.allclose(np.delete(mag, [7, 9], axis=1), 0)


def test_edge_density_counts_lines_inside_the_class_not_its_boundary():
    images = np.full((1, 20, 20), 100, np.uint8)
    masks = np.zeros((1, 20, 20), np.uint8)
    masks[:, :, 10:] = 1
    images[:, :, 10:] = 250  # the class boundary: a large step, eroded away
    images[:, :, 4] = 20  # a 1-px line inside class 0: |grad I| = 40 / 255 in columns 3 and 5
    # class 0 eroded by 1 px: columns 0..8 (the patch border does not erode), 2 of 9 columns are edges
    assert st.edge_density(images, masks, 0, threshold=0.1) == pytest.approx(2 / 9)
    assert st.edge_density(images, masks, 1, threshold=0.1) == 0.0


def test_a_set_against_itself_is_at_distance_zero(sets):
    images, masks = sets["real"]
    assert st.spectrum_distance(images, images) == (0.0, 0.0)
    assert st.gradient_distance(images, images) == 0.0
    threshold = st.edge_threshold(images)
    assert st.edge_density(images, masks, 0) == st.edge_density(images, masks, 0, threshold)


# ---------------------------------------------------------------- blur is caught, a second sample is not


def test_blur_removes_high_frequency_power(sets):
    freqs, real = st.radial_power_spectrum(sets["real"][0])
    _, blurred = st.radial_power_spectrum(sets["blurred"][0])
    high = freqs > st.HIGH
    assert (blurred[high] < real[high]).all()
    blurred_all, blurred_high = st.spectrum_distance(sets["real"][0], sets["blurred"][0])
    other_all, other_high = st.spectrum_distance(sets["real"][0], sets["other"][0])
    assert blurred_high > 10 * other_high and blurred_all > 10 * other_all
    assert blurred_high > blurred_all  # blur acts on the high frequencies most


def test_blur_moves_the_gradient_distribution(sets):
    real = sets["real"][0]
    assert st.gradient_distance(real, sets["blurred"][0]) > 10 * st.gradient_distance(real, sets["other"][0])


def test_blur_erases_the_grain_boundaries_no_mask_holds(sets):
    threshold = st.edge_threshold(sets["real"][0])  # the real set's, for every set
    real = st.edge_density(*sets["real"], 0, threshold)
    blurred = st.edge_density(*sets["blurred"], 0, threshold)
    other = st.edge_density(*sets["other"], 0, threshold)
    assert real > 0.05 and blurred < real / 2
    assert abs(other - real) < 0.2 * real


def test_ratios_flag_blur_and_pass_a_second_sample(tables):
    assert list(tables["blurred"].index) == list(st.IMAGE_STATISTICS)
    assert (tables["blurred"]["ratio"] > 2).all(), tables["blurred"]
    assert (tables["other"]["ratio"] < 2).all(), tables["other"]
    assert tables["blurred"].loc["spectrum_high", "ratio"] > 10
    assert (
        tables["blurred"].loc["edge_density", "synthetic_value"] < tables["blurred"].loc["edge_density", "real_value"]
    )


# ---------------------------------------------------------------- the floor


def test_floor_is_the_mean_over_seeded_random_halves(sets, tables):
    real, masks = sets["real"]
    n_synth = len(sets["other"][1])
    threshold = st.edge_threshold(real)
    halves = st.splits(len(real), n_synth, 5, seed=0)
    assert all(len(a) == 20 and len(b) == 20 and not set(a) & set(b) for a, b, _ in halves)
    spectrum = np.mean([st.spectrum_distance(real[a], real[b])[1] for a, b, _ in halves])
    edges = np.mean(
        [
            abs(st.edge_density(real[a], masks[a], 0, threshold) - st.edge_density(real[b], masks[b], 0, threshold))
            for a, b, _ in halves
        ]
    )
    assert tables["other"].loc["spectrum_high", "floor"] == pytest.approx(spectrum)
    assert tables["other"].loc["edge_density", "floor"] == pytest.approx(edges)
    again = st.image_family(real, masks, *sets["other"], n_splits=5, seed=0).set_index("statistic")
    assert (again["floor"] == tables["other"]["floor"]).all()  # same seed, same floor
    other_seed = st.image_family(real, masks, *sets["other"], n_splits=5, seed=1).set_index("statistic")
    assert (other_seed["floor"] != tables["other"]["floor"]).all()  # other halves


def test_bad_inputs_raise():
    images, masks = grains(4, seed=0, size=16)
    with pytest.raises(DualgenError, match="masks"):
        st.edge_density(images, masks[:, :8], 0, threshold=0.1)
    with pytest.raises(DualgenError, match="n_splits"):
        st.image_family(images, masks, images, masks, n_splits=0)
    with pytest.raises(DualgenError, match="need at least 2"):
        st.image_family(images[:1], masks[:1], images, masks)
    with pytest.raises(DualgenError, match="images of shape"):
        st.radial_power_spectrum(np.zeros((2, 8, 8, 2), np.uint8))


# ---------------------------------------------------------------- learned features


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 6))
    assert st.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert st.frechet_distance(a, a + shift) == pytest.approx((shift**2).sum())  # same covariance: |mu|^2
    # N(0, I) vs N(0, s^2 I) in d dims: d (1 - s)^2, up to sampling noise
    b = rng.normal(size=(4000, 6)) * 0.5
    assert st.frechet_distance(a, b) == pytest.approx(6 * 0.25, rel=0.1)
    with pytest.raises(DualgenError, match="same d"):
        st.frechet_distance(a, a[:, :3])


def test_feature_sample_is_seeded_and_keeps_every_location_when_few():
    maps = np.random.default_rng(1).normal(size=(3, 4, 4, 5))
    assert st.feature_sample(maps, per_patch=64).shape == (3, 16, 5)
    assert np.array_equal(st.feature_sample(maps, per_patch=64)[1], maps[1].reshape(16, 5))
    x = st.feature_sample(maps, per_patch=6, seed=2)
    assert x.shape == (3, 6, 5) and np.array_equal(x, st.feature_sample(maps, per_patch=6, seed=2))
    assert not np.array_equal(x, st.feature_sample(maps, per_patch=6, seed=3))


def test_feature_family_flags_a_shifted_set_and_passes_a_second_sample():
    rng = np.random.default_rng(3)
    real = {"s4": rng.normal(size=(40, 32, 4))}
    other = {"s4": rng.normal(size=(40, 32, 4))}
    shifted = {"s4": rng.normal(size=(40, 32, 4)) + 0.5}
    same = st.feature_family(real, other, n_splits=5, seed=0)
    far = st.feature_family(real, shifted, n_splits=5, seed=0)
    assert list(same["statistic"]) == ["feature_s4"] and list(same["class"]) == ["all"]
    assert 0.3 < same["ratio"].iloc[0] < 3
    assert far["ratio"].iloc[0] > 10
    assert (same["floor"] == far["floor"]).all()  # the floor depends on the real set and the splits only
    halves = st.splits(40, 40, 5, 0)
    floor = np.mean(
        [st.frechet_distance(real["s4"][a].reshape(-1, 4), real["s4"][b].reshape(-1, 4)) for a, b, _ in halves]
    )
    assert same["floor"].iloc[0] == pytest.approx(floor)


def test_encoder_vectors_batches_the_feature_function():
    images, _ = grains(5, seed=0, size=16)

    def features(x):  # two "stages": the pixels at stride 1 and 2x2 means at stride 2
        pooled = x.reshape(len(x), 8, 2, 8, 2, x.shape[-1]).mean((2, 4))
        return [x, pooled]

    out = st.encoder_vectors(features, images, strides=(1, 2), per_patch=300, batch_size=2, seed=0)
    assert set(out) == {"s1", "s2"} and out["s1"].shape == (5, 256, 1) and out["s2"].shape == (5, 64, 1)
    assert np.array_equal(out["s1"][4, :, 0], images[4].reshape(-1))
