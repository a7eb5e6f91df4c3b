"""Demo micrographs: determinism, class shares near the paper's test set, LQ faults, class contrast."""
import numpy as np
import pytest

from dualgen import phantom


def test_same_seed_same_bytes_other_seed_differs():
    a = phantom.generate(3, 128, 160)
    b = phantom.generate(3, 128, 160)
    c = phantom.generate(4, 128, 160)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])
    image, hq, lq = a
    assert image.shape == (128, 160, 3) and image.dtype == np.uint8
    assert hq.shape == lq.shape == (128, 160) and hq.dtype == lq.dtype == np.uint8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_shares_near_the_papers_test_set(seed):
    image, hq, lq = phantom.generate(seed, 512, 512)
    shares = np.bincount(hq.ravel(), minlength=4) / hq.size
    for share, target in zip(shares, (0.79, 0.08, 0.06, 0.08)):
        assert abs(share - target) < 0.03, shares
    disagreement = (lq != hq).mean()
    assert 0.01 < disagreement < 0.12, disagreement
    assert set(np.unique(lq)) == {0, 1, 2, 3}


def test_classes_differ_in_appearance():
    image, hq, _ = phantom.generate(0, 256, 256)
    brightness = [image[hq == k].mean() for k in range(4)]
    assert brightness[0] < brightness[3] < brightness[1]  # matrix darkest, Eta mid gray, oxide light
    assert brightness[0] < brightness[2]  # Nd-rich bright


def test_scale_changes_feature_size():
    _, small, _ = phantom.generate(0, 256, 256, scale=0.5)
    _, large, _ = phantom.generate(0, 256, 256, scale=2.0)
    from scipy import ndimage as ndi

    assert ndi.label(small == 1)[1] > 2 * ndi.label(large == 1)[1]
