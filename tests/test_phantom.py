"""Demo micrographs: determinism, class shares near the paper's test set, LQ faults, class contrast, scale."""

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from dualgen.data import phantom

PAPER_SHARES = (0.788, 0.080, 0.056, 0.076)  # Table 2: matrix, oxide, Nd-rich, Eta


@pytest.fixture(scope="module")
def big():
    """512 x 512 demo images for seeds 0, 1, 2 (generated once) and the slowest generation time."""
    out, slowest = {}, 0.0
    for seed in (0, 1, 2):
        t = time.perf_counter()
        out[seed] = phantom.generate(seed, 512, 512)
        slowest = max(slowest, time.perf_counter() - t)
    return out, slowest


def test_class_names_fixed_by_the_project():
    assert phantom.CLASS_NAMES == ("matrix", "oxide", "nd_rich", "eta")


def test_same_seed_same_bytes_other_seed_differs():
    a = phantom.generate(3, 128, 160)
    b = phantom.generate(3, 128, 160)
    c = phantom.generate(4, 128, 160)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert all(not np.array_equal(x, y) for x, y in zip(a, c))
    image, hq, lq = a
    assert image.shape == (128, 160, 3) and image.dtype == np.uint8
    assert hq.shape == lq.shape == (128, 160) and hq.dtype == lq.dtype == np.uint8
    assert hq.max() <= 3 and lq.max() <= 3


def test_no_global_random_state_used_or_changed():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = phantom.generate(7, 64, 64)
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.seed(999)
    b = phantom.generate(7, 64, 64)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_shares_near_the_papers_test_set(big, seed):
    image, hq, lq = big[0][seed]
    shares = np.bincount(hq.ravel(), minlength=4) / hq.size
    for share, target in zip(shares, PAPER_SHARES):
        assert abs(share - target) < 0.03, shares
    assert set(np.unique(hq)) == set(np.unique(lq)) == {0, 1, 2, 3}


@pytest.mark.parametrize("size", [(64, 64), (100, 300)])
def test_class_shares_hold_for_small_and_odd_sizes(size):
    _, hq, _ = phantom.generate(11, *size)
    shares = np.bincount(hq.ravel(), minlength=4) / hq.size
    assert np.allclose(shares, PAPER_SHARES, atol=0.01), shares


def test_512_image_is_fast(big):
    assert big[1] < 3.0, f"generate(seed, 512, 512) took {big[1]:.2f} s"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lq_mask_is_mostly_right_with_boundary_faults(big, seed):
    _, hq, lq = big[0][seed]
    wrong = lq != hq
    assert 0.03 < wrong.mean() < 0.08, wrong.mean()
    # most faults are jittered boundaries, i.e. close to an HQ class boundary ...
    edge = ndi.maximum_filter(hq, 3) != ndi.minimum_filter(hq, 3)
    near = ndi.binary_dilation(edge, iterations=3)
    assert (wrong & near).sum() > 0.8 * wrong.sum()
    # ... but some are spurious blobs far from any HQ object
    assert (wrong & ~near).sum() > 50
    # some small HQ objects are missed entirely (labelled matrix)
    comp, k = ndi.label(hq > 0)
    sizes = np.bincount(comp.ravel())
    missed = np.bincount(comp.ravel(), weights=(lq > 0).ravel(), minlength=k + 1) == 0
    assert (missed[1:] & (sizes[1:] < 30)).sum() >= 5
    # and spurious objects: LQ phase pixels where HQ says matrix, away from HQ phases
    assert ((lq > 0) & (hq == 0) & ~near).sum() > 50


def test_large_wrong_region_in_about_half_the_images(monkeypatch):
    """One region in which a class is given another class's id, in ~half the images (the labelnoise swap)."""
    from dualgen.data import labelnoise

    with_swap = [phantom.generate(seed, 256, 256) for seed in range(8)]
    settings = labelnoise.phantom_settings
    monkeypatch.setattr(labelnoise, "phantom_settings", lambda scale: dict(settings(scale), swap_rate=0.0))
    without = [phantom.generate(seed, 256, 256) for seed in range(8)]
    swapped = []
    for (_, hq, lq), (_, hq0, lq0) in zip(with_swap, without):
        assert np.array_equal(hq, hq0)
        diff = lq != lq0
        if diff.any():  # one class relabelled as one other class
            assert len(np.unique(lq0[diff])) == 1 and len(np.unique(lq[diff])) == 1
        swapped.append(int(diff.sum()))
    with_region = sum(s > 150 for s in swapped)
    assert 2 <= with_region <= 6, swapped


def test_phantom_lq_uses_labelnoise_and_keeps_the_demo_disagreement():
    """The demo's LQ masks come from dualgen.data.labelnoise with the phantom's settings: 4.5-6.5 % of pixels."""
    from dualgen.data import labelnoise

    for seed in range(4):
        rng = np.random.default_rng(seed)
        hq, label, boundary, n = phantom._masks(rng, 512, 512, 1.0)
        phantom._render(rng, hq, label, boundary, n, 1.0)
        lq = labelnoise.simulate(hq, rng, num_classes=4, **labelnoise.phantom_settings(1.0))
        _, hq2, lq2 = phantom.generate(seed, 512, 512)
        assert np.array_equal(hq, hq2) and np.array_equal(lq, lq2)
        assert 0.045 < (lq != hq).mean() < 0.065, (lq != hq).mean()


def test_classes_differ_in_appearance_but_not_by_one_threshold(big):
    image, hq, _ = big[0][0]
    img = image.astype(np.float64)
    gray = img.mean(axis=2)
    brightness = [gray[hq == k].mean() for k in range(4)]
    # designed order: matrix darkest < Eta mid gray < oxide light < Nd-rich near white
    assert brightness[0] + 15 < brightness[3] < brightness[1] - 15 < brightness[2] - 15, brightness
    rgb = [img[hq == k].mean(axis=0) for k in range(4)]
    assert rgb[0][0] > rgb[0][1] > rgb[0][2] + 15  # matrix brownish/olive
    assert rgb[1][2] > rgb[1][0] + 8  # oxide bluish
    assert abs(rgb[3][0] - rgb[3][2]) < abs(rgb[0][0] - rgb[0][2]) / 2  # Eta nearly neutral gray
    # noise, blur, gradient and per-grain shades: neighbouring classes overlap in brightness
    for a, b in ((0, 3), (3, 1)):
        assert np.percentile(gray[hq == a], 95) > np.percentile(gray[hq == b], 5), (a, b)
    # thin dark grain boundaries: matrix pixels with a darker neighbourhood exist inside the matrix
    assert np.percentile(gray[hq == 0], 1) < brightness[0] - 30


def test_image_has_illumination_gradient_and_noise(big):
    image, hq, _ = big[0][0]
    gray = image.astype(np.float64).mean(axis=2)
    h, w = gray.shape
    quarter = [gray[: h // 2, : w // 2], gray[: h // 2, w // 2 :], gray[h // 2 :, : w // 2], gray[h // 2 :, w // 2 :]]
    matrix = [
        q[m == 0].mean()
        for q, m in zip(
            quarter, [hq[: h // 2, : w // 2], hq[: h // 2, w // 2 :], hq[h // 2 :, : w // 2], hq[h // 2 :, w // 2 :]]
        )
    ]
    assert max(matrix) - min(matrix) > 4  # illumination varies across the image
    flat = ndi.binary_erosion(hq == 0, iterations=4)
    residual = gray - ndi.uniform_filter(gray, 3)
    assert residual[flat].std() > 1.5  # not a clean cartoon


def test_scale_changes_feature_size():
    _, small, _ = phantom.generate(0, 256, 256, scale=0.5)
    _, large, _ = phantom.generate(0, 256, 256, scale=2.0)
    n_small, n_large = ndi.label(small == 1)[1], ndi.label(large == 1)[1]
    assert n_small > 4 * n_large, (n_small, n_large)
    # grains: the number of Voronoi grains in the picture drops with the square of the scale
    grains = []
    for scale in (0.5, 1.0, 2.0):
        _, label, _, _ = phantom._masks(np.random.default_rng(0), 256, 256, scale)
        grains.append(len(np.unique(label)))
    assert grains[0] > 3 * grains[1] > 9 * grains[2], grains
    # at scale 1 a 64 px patch shows several grains (about 15-30 px across)
    _, label, _, _ = phantom._masks(np.random.default_rng(0), 256, 256, 1.0)
    diameter = 2 * np.sqrt(256 * 256 / len(np.unique(label)) / np.pi)
    assert 15 <= diameter <= 30, diameter


def test_scale_1_patches_mostly_show_a_non_matrix_phase():
    _, hq, _ = phantom.generate(5, 256, 256)
    patches = hq.reshape(4, 64, 4, 64).swapaxes(1, 2).reshape(16, 64, 64)
    assert sum((p > 0).any() for p in patches) >= 12


@pytest.mark.parametrize("args", [(0, 0, 10), (0, 10, -1), (0, 10, 10, 0.0), (0, 10, 10, float("nan"))])
def test_bad_arguments_raise_value_error(args):
    with pytest.raises(ValueError, match="phantom"):
        phantom.generate(*args)
