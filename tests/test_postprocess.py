"""Mask cleaning on hand-made masks: k-means mapping, small objects filled from neighbours."""
import numpy as np

from dualgen import postprocess


def test_kmeans_maps_noisy_levels_and_edges_to_classes():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:20, 5:20], truth[25:35, 5:35], truth[5:15, 25:35] = 1, 2, 3
    levels = postprocess.mask_levels(4)
    rng = np.random.default_rng(0)
    raw = levels[truth] + rng.normal(0, 0.04, truth.shape)
    raw[19, 5:20] = (levels[1] + levels[0]) / 2 + 0.01  # an edge of intermediate values
    out = postprocess.kmeans_classes(raw, 4, seed=0)
    inner = np.ones_like(truth, bool)
    inner[19] = False
    assert np.array_equal(out[inner], truth[inner])
    assert set(np.unique(out[19, 5:20])) <= {0, 1}


def test_small_objects_filled_from_the_neighbouring_class_large_kept():
    mask = np.zeros((30, 30), np.uint8)
    mask[:, 15:] = 2  # two large regions
    mask[5:7, 5:7] = 3  # a 4-px speck inside class 0
    mask[20:22, 20:23] = 1  # a 6-px speck inside class 2
    out = postprocess.remove_small_objects(mask, 10)
    assert (out[5:7, 5:7] == 0).all() and (out[20:22, 20:23] == 2).all()
    assert (out[:, :15] == 0).all() and (out[:, 15:] == 2).all()
    assert out.max() < 4  # nothing unlabelled


def test_single_valued_mask_and_scaling():
    flat = np.full((16, 16), 0.5)
    k, c = postprocess.clean_mask(flat, 4, 20, seed=0)
    assert k.shape == c.shape == (16, 16) and len(np.unique(c)) == 1
    assert postprocess.scaled_min_object_px(200, 256) == 200
    assert postprocess.scaled_min_object_px(200, 64) == 12
    assert postprocess.scaled_min_object_px(200, 32) == 3
    assert postprocess.scaled_min_object_px(0, 64) == 0
