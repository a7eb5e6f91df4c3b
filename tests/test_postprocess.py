"""Mask cleaning on hand-made masks: k-means mapping, small objects filled from neighbours."""
import time

import numpy as np
import pytest

from dualgen import postprocess
from dualgen.errors import DualgenError


def test_mask_levels_spread_over_0_1():
    assert np.allclose(postprocess.mask_levels(4), [0, 1 / 3, 2 / 3, 1])
    assert np.allclose(postprocess.mask_levels(2), [0, 1])


def test_kmeans_maps_noisy_levels_and_edges_to_classes():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:20, 5:20], truth[25:35, 5:35], truth[5:15, 25:35] = 1, 2, 3
    levels = postprocess.mask_levels(4)
    rng = np.random.default_rng(0)
    raw = levels[truth] + rng.normal(0, 0.04, truth.shape)
    raw[19, 5:20] = (levels[1] + levels[0]) / 2 + 0.01  # an edge of intermediate values
    out = postprocess.kmeans_classes(raw, 4, seed=0)
    assert out.dtype == np.uint8 and out.shape == truth.shape
    inner = np.ones_like(truth, bool)
    inner[19] = False
    assert np.array_equal(out[inner], truth[inner])
    assert set(np.unique(out[19, 5:20])) <= {0, 1}  # the edge goes to one of its two sides
    assert np.array_equal(out, postprocess.kmeans_classes(raw, 4, seed=0))  # seeded


def test_fewer_distinct_values_than_clusters():
    raw = np.zeros((10, 10))
    raw[:, 5:] = 0.95
    out = postprocess.kmeans_classes(raw, 4, seed=1)
    assert np.array_equal(np.unique(out[:, :5]), [0]) and np.array_equal(np.unique(out[:, 5:]), [3])
    with pytest.raises(DualgenError, match="NaN"):
        postprocess.kmeans_classes(np.full((4, 4), np.nan), 4, seed=0)


def test_small_objects_filled_from_the_neighbouring_class_large_kept():
    mask = np.zeros((30, 30), np.uint8)
    mask[:, 15:] = 2  # two large regions
    mask[5:7, 5:7] = 3  # a 4-px speck inside class 0
    mask[20:22, 20:23] = 1  # a 6-px speck inside class 2
    mask[10:14, 2:6] = 1  # a 16-px object: kept
    mask[25, 25], mask[26, 26] = 3, 3  # two diagonal pixels: one 8-connected 2-px object
    out = postprocess.remove_small_objects(mask, 10)
    assert out.dtype == np.uint8
    assert (out[5:7, 5:7] == 0).all() and (out[20:22, 20:23] == 2).all()
    assert (out[10:14, 2:6] == 1).all()
    assert out[25, 25] == out[26, 26] == 2
    expected = np.zeros((30, 30), np.uint8)
    expected[:, 15:] = 2
    expected[10:14, 2:6] = 1
    assert np.array_equal(out, expected)  # nothing else changed, nothing unlabelled


def test_connectivity_is_8_and_edges_fill_from_both_sides():
    mask = np.zeros((20, 20), np.uint8)
    mask[:, 10:] = 2
    mask[3, 9:11] = 1  # a 2-px sliver on the border between 0 and 2
    for i in range(6):  # a 6-px diagonal line: one object with 8-connectivity
        mask[12 + i, 2 + i] = 3
    out = postprocess.remove_small_objects(mask, 5)
    assert out[3, 9] == 0 and out[3, 10] == 2  # each pixel takes its nearest neighbour
    assert (out[12:18, 2:8].diagonal() == 3).all()


def test_all_small_keeps_the_mask_and_zero_disables():
    speckle = (np.indices((8, 8)).sum(0) % 2).astype(np.uint8)  # a checkerboard of 0 and 1 ...
    speckle[::2] = 2 * speckle[::2]  # ... and 2: every 8-connected object is under 40 px
    assert np.array_equal(postprocess.remove_small_objects(speckle, 40), speckle)
    assert np.array_equal(postprocess.remove_small_objects(speckle, 0), speckle)


def test_single_valued_mask_and_scaling():
    flat = np.full((16, 16), 0.5)
    k, c = postprocess.clean_mask(flat, 4, 20, seed=0)
    assert k.shape == c.shape == (16, 16) and len(np.unique(c)) == 1
    assert postprocess.scaled_min_object_px(200, 256) == 200
    assert postprocess.scaled_min_object_px(200, 128) == 50
    assert postprocess.scaled_min_object_px(200, 64) == 12
    assert postprocess.scaled_min_object_px(200, 32) == 3
    assert postprocess.scaled_min_object_px(200, 8) == 1
    assert postprocess.scaled_min_object_px(0, 64) == 0


def test_a_256px_decoded_like_mask_cleans_fast():
    rng = np.random.default_rng(0)
    truth = np.kron(rng.integers(0, 4, (16, 16)), np.ones((16, 16), np.int64))
    truth[100:104, 100:104] = (truth[100, 100] + 1) % 4  # a 16-px object: below 200 px, filled
    raw = np.clip(postprocess.mask_levels(4)[truth] + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
    postprocess.clean_mask(raw[:32, :32], 4, 200, seed=0)  # warm-up (scikit-learn's import and thread pool)
    t0 = time.perf_counter()
    k, c = postprocess.clean_mask(raw, 4, 200, seed=0)
    seconds = time.perf_counter() - t0
    assert (k == truth).mean() > 0.99
    assert c[100:104, 100:104].tolist() == [[truth[99, 99]] * 4] * 4
    assert (c == truth)[:96].mean() > 0.999
    assert seconds < 0.5, f"{seconds:.2f} s for one 256-px mask"
