"""Mask cleaning on hand-made masks: the mask codec (k-means mapping, largest score), small objects filled from
neighbours, rims, smoothing."""

import sys

import numpy as np
import pytest

from dualgen.core.errors import DualgenError
from dualgen.generate import mask_codec, postprocess
from dualgen.generate.mask_codec import MaskCodec, kmeans_classes, mask_levels

LEVEL, ONEHOT = MaskCodec("level", 4), MaskCodec("onehot", 4)
NO_SMOOTHING = {"smooth_px": 1, "smooth_keep": ()}


def test_mask_levels_spread_over_0_1():
    assert np.allclose(mask_levels(4), [0, 1 / 3, 2 / 3, 1])
    assert np.allclose(mask_levels(2), [0, 1])
    assert np.array_equal(LEVEL.levels(), mask_levels(4))


def test_kmeans_maps_noisy_levels_and_edges_to_classes():
    truth = np.zeros((40, 40), np.uint8)
    truth[5:20, 5:20], truth[25:35, 5:35], truth[5:15, 25:35] = 1, 2, 3
    levels = mask_levels(4)
    rng = np.random.default_rng(0)
    raw = levels[truth] + rng.normal(0, 0.04, truth.shape)
    raw[19, 5:20] = (levels[1] + levels[0]) / 2 + 0.01  # an edge of intermediate values
    out = kmeans_classes(raw, 4, seed=0)
    assert out.dtype == np.uint8 and out.shape == truth.shape
    inner = np.ones_like(truth, bool)
    inner[19] = False
    assert np.array_equal(out[inner], truth[inner])
    assert set(np.unique(out[19, 5:20])) <= {0, 1}  # the edge goes to one of its two sides
    assert np.array_equal(out, kmeans_classes(raw, 4, seed=0))  # seeded


def test_fewer_distinct_values_than_clusters():
    raw = np.zeros((10, 10))
    raw[:, 5:] = 0.95
    out = kmeans_classes(raw, 4, seed=1)
    assert np.array_equal(np.unique(out[:, :5]), [0]) and np.array_equal(np.unique(out[:, 5:]), [3])
    with pytest.raises(DualgenError, match="NaN"):
        kmeans_classes(np.full((4, 4), np.nan), 4, seed=0)


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
    k, c = postprocess.clean_mask(flat, LEVEL, 20, seed=0, **NO_SMOOTHING)
    assert k.shape == c.shape == (16, 16) and len(np.unique(c)) == 1
    assert postprocess.scaled_min_object_px(200, 256) == 200
    assert postprocess.scaled_min_object_px(200, 128) == 50
    assert postprocess.scaled_min_object_px(200, 64) == 12
    assert postprocess.scaled_min_object_px(200, 32) == 3
    assert postprocess.scaled_min_object_px(200, 8) == 1
    assert postprocess.scaled_min_object_px(0, 64) == 0


def _lines_run(fn):
    """(fn(), how many lines of postprocess.py and mask_codec.py Python executed meanwhile)."""
    files, count = {postprocess.__file__, mask_codec.__file__}, [0]

    def local(frame, event, arg):
        count[0] += event == "line"
        return local

    old = sys.gettrace()
    sys.settrace(lambda frame, event, arg: local if frame.f_code.co_filename in files else None)
    try:
        return fn(), count[0]
    finally:
        sys.settrace(old)


def test_a_256px_decoded_like_mask_cleans_without_a_python_loop_per_object():
    """Cleaning a 256-px mask with 256 more small objects runs (about) as many lines of dualgen's code as cleaning it
    without them: the work per object is numpy's and scipy's, never a Python loop per object (which would run at
    least one line per object)."""
    rng = np.random.default_rng(0)
    truth = np.kron(rng.integers(0, 4, (16, 16)), np.ones((16, 16), np.int64))
    truth[100:104, 100:104] = (truth[100, 100] + 1) % 4  # a 16-px object: below 200 px, filled
    specks = truth.copy()
    for y in range(6, 256, 16):
        for x in range(6, 256, 16):
            specks[y : y + 3, x : x + 3] = (truth[y, x] + 1) % 4  # 256 9-px objects, one inside each block
    runs = {}
    for name, mask in (("few", truth), ("many", specks)):
        raw = np.clip(mask_levels(4)[mask] + rng.normal(0, 0.05, mask.shape), 0, 1).astype(np.float32)
        (k, c), lines = _lines_run(lambda: postprocess.clean_mask(raw, LEVEL, 200, seed=0, **NO_SMOOTHING))
        assert (k == mask).mean() > 0.99
        assert c[100:104, 100:104].tolist() == [[truth[99, 99]] * 4] * 4
        assert (c == truth)[:96].mean() > 0.999  # the specks are gone too
        runs[name] = lines
    assert runs["many"] - runs["few"] < 100, runs  # 256 more objects, far fewer than 256 more lines


def _edge(width, left=0, right=2, rim=1, size=12):
    """matrix | `width` columns of class `rim` | class `right`, as class ids and as a blurred raw mask."""
    levels = mask_levels(4)
    mask = np.full((size, size), left, np.uint8)
    mask[:, 5 : 5 + width], mask[:, 5 + width :] = rim, right
    raw = levels[mask].astype(np.float64)
    return mask, raw


def test_a_one_pixel_in_between_rim_goes_to_the_nearer_side():
    mask, raw = _edge(1)  # matrix (0) | oxide (1/3) | nd_rich (2/3): the blur of a matrix / nd_rich edge
    raw[:6, 5], raw[6:, 5] = 0.30, 0.36  # nearer matrix (|0.30 - 0| < |0.30 - 2/3|), nearer nd_rich
    out = postprocess.remove_rims(mask, raw, 4, rim_px=2)
    assert out.dtype == np.uint8
    assert np.array_equal(out[:6, 5], np.zeros(6)) and np.array_equal(out[6:, 5], np.full(6, 2))
    assert np.array_equal(out[:, :5], mask[:, :5]) and np.array_equal(out[:, 6:], mask[:, 6:])
    assert 1 not in out
    # the same edge along the columns
    assert np.array_equal(postprocess.remove_rims(mask.T, raw.T, 4, rim_px=2), out.T)


def test_rims_wider_than_rim_px_and_not_in_between_are_kept():
    mask, raw = _edge(3)  # a 3-px oxide band is a phase
    assert np.array_equal(postprocess.remove_rims(mask, raw, 4, rim_px=2), mask)
    assert not np.array_equal(postprocess.remove_rims(mask, raw, 4, rim_px=3), mask)
    mask, raw = _edge(1, left=0, right=0)  # a thin oxide line inside matrix: levels do not bracket it
    assert np.array_equal(postprocess.remove_rims(mask, raw, 4, rim_px=2), mask)
    mask, raw = _edge(1, left=3, right=0, rim=2)  # eta | nd_rich | matrix: bracketed from the other side
    out = postprocess.remove_rims(mask, raw, 4, rim_px=2)
    assert set(np.unique(out[:, 5])) <= {0, 3}
    mask, raw = _edge(1)
    assert np.array_equal(postprocess.remove_rims(mask, raw, 4, rim_px=0), mask)  # 0: off


def test_rims_at_the_border_are_kept_and_two_step_edges_collapse():
    mask = np.array([[1, 2, 2, 2, 2]], np.uint8)  # a run touching the patch border: its outer side is unknown
    raw = mask_levels(4)[mask]
    assert np.array_equal(postprocess.remove_rims(mask, raw, 4, rim_px=2), mask)
    # matrix (0) | oxide | nd_rich | eta (1): a blurred matrix / eta edge passes both in-between levels
    mask = np.array([[0, 0, 0, 1, 2, 3, 3, 3]], np.uint8)
    raw = np.array([[0.0, 0.0, 0.0, 0.3, 0.7, 1.0, 1.0, 1.0]])
    out = postprocess.remove_rims(mask, raw, 4, rim_px=2)
    assert np.array_equal(out, [[0, 0, 0, 0, 3, 3, 3, 3]])
    with pytest.raises(DualgenError, match="shape"):
        postprocess.remove_rims(mask, raw[:, :4], 4, rim_px=2)


def test_clean_mask_removes_the_rim_a_nearest_level_rule_makes():
    mask, raw = _edge(1)
    raw[:, 5] = 0.32
    k, clean = postprocess.clean_mask(raw, LEVEL, 0, seed=0, **NO_SMOOTHING)
    assert 1 in k[:, 5] and 1 not in clean
    assert np.array_equal(postprocess.clean_mask(raw, LEVEL, 0, seed=0, rim_px=0, **NO_SMOOTHING)[1], k)


def test_min_object_px_per_class():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:4, 2:4] = 1  # a 4-px class-1 speck
    mask[10:12, 10:12] = 2  # a 4-px class-2 speck
    mask[14:19, 2:7] = 1  # a 25-px class-1 object
    out = postprocess.remove_small_objects(mask, [0, 10, 0, 0])  # only class 1 objects under 10 px go
    assert out[2:4, 2:4].sum() == 0 and (out[10:12, 10:12] == 2).all() and (out[14:19, 2:7] == 1).all()
    assert np.array_equal(
        postprocess.remove_small_objects(mask, [5, 5, 5, 5]), postprocess.remove_small_objects(mask, 5)
    )
    assert postprocess.scaled_min_object_px([64, 200, 0], 64) == [4, 12, 0]
    with pytest.raises(DualgenError, match="one value per class"):
        postprocess.remove_small_objects(mask, [0, 10])
    k, c = postprocess.clean_mask(mask_levels(4)[mask], LEVEL, [0, 10, 0, 0], seed=0, **NO_SMOOTHING)
    assert np.array_equal(c, out)


def _edges(mask):
    """Pixel edges between different classes (the boundary length)."""
    return int((mask[1:] != mask[:-1]).sum() + (mask[:, 1:] != mask[:, :-1]).sum())


def test_smoothing_evens_a_staircase_edge_and_keeps_every_class_area():
    """A square whose edges carry 1-px bumps and notches (a ragged decoded edge) smooths to fewer boundary edges;
    each class keeps its pixel count exactly, so phase fractions do not move. A plain 3x3 majority vote (no offsets)
    would shave the corners and shrink the square: the offsets are what keeps the area."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    mask = np.zeros((48, 48), np.uint8)
    mask[10:38, 10:38] = 1
    mask[30:44, 2:8] = 2  # a second object, at the border too
    clean = _edges(mask)
    for _ in range(24):  # bumps just outside and notches just inside the square's four edges
        t, side = int(rng.integers(12, 36)), int(rng.integers(0, 4))
        bump = int(rng.integers(0, 2))
        y, x = [(10 - bump, t), (37 + bump, t), (t, 10 - bump), (t, 37 + bump)][side]  # bump: outside, notch: in
        mask[y, x] = bump
    out = postprocess.smooth_classes(mask, 3)
    assert out.dtype == np.uint8
    assert [int((out == k).sum()) for k in range(3)] == [int((mask == k).sum()) for k in range(3)]
    assert _edges(out) - clean < 0.5 * (_edges(mask) - clean)  # most of the ragged edges' extra length is gone
    plain = np.stack([ndi.uniform_filter((mask == k).astype(float), 3, mode="nearest") for k in range(3)]).argmax(0)
    assert (plain == 1).sum() != (mask == 1).sum()  # what the offsets correct
    assert np.array_equal(postprocess.smooth_classes(mask, 1), mask)


def test_smoothing_leaves_kept_classes_alone_and_rejects_even_windows():
    """A 1-px line of a kept class survives pixel for pixel (a window vote would erase it) and no other pixel turns
    into that class; without keep the line's pixels move but keep their count."""
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 1
    mask[4, 2:30] = 2  # a thin Nd-rich-like line
    mask[12:20, 16] = 2  # through the square
    out = postprocess.smooth_classes(mask, 3, keep=[2])
    assert np.array_equal(out == 2, mask == 2)
    assert (out == 1).sum() == (mask == 1).sum()
    free = postprocess.smooth_classes(mask, 3)
    assert [int((free == k).sum()) for k in range(3)] == [int((mask == k).sum()) for k in range(3)]
    assert not np.array_equal(free == 2, mask == 2)
    with pytest.raises(DualgenError, match="smooth_px 4: use an odd window"):
        postprocess.smooth_classes(mask, 4)
    one = np.full((8, 8), 3, np.uint8)
    assert np.array_equal(postprocess.smooth_classes(one, 3), one)


def test_clean_mask_smooths_after_the_small_objects_and_config_options():
    """clean_mask with smooth_px: the same class areas as without (up to the small objects the vote leaves), fewer
    boundary edges; cleaning_options turns config's names into ids and scales min_object_px."""
    levels = mask_levels(4)
    rng = np.random.default_rng(3)
    blocks = np.kron(rng.integers(0, 4, (8, 8)), np.ones((8, 8), np.int64))
    for y, x in rng.integers(0, 63, (120, 2)):  # 1-px bumps: a pixel takes its right neighbour's class
        blocks[y, x] = blocks[y, x + 1]
    raw = levels[blocks] + rng.normal(0, 0.02, blocks.shape)
    _, plain = postprocess.clean_mask(raw, LEVEL, 4, seed=0, **NO_SMOOTHING)
    _, smooth = postprocess.clean_mask(raw, LEVEL, 4, seed=0, smooth_px=3, smooth_keep=[2])
    assert np.array_equal(smooth == 2, plain == 2)
    assert all(abs(int((smooth == k).sum()) - int((plain == k).sum())) <= 16 for k in range(4))
    assert _edges(smooth) < _edges(plain)
    names = ["matrix", "oxide", "nd_rich", "eta"]
    assert postprocess.cleaning_options(
        {"min_object_px": 64, "smooth_px": 3, "smooth_keep": ["nd_rich"]}, names, 64
    ) == {"min_object_px": 4, "smooth_px": 3, "smooth_keep": [2]}
    assert postprocess.cleaning_options({"min_object_px": 200, "smooth_px": 1}, names, 256)["smooth_keep"] == []


def test_a_onehot_raw_mask_is_classified_by_its_largest_score_without_in_between_classes():
    """A blurred matrix (0) / eta (3) edge: in level units it passes the oxide and nd_rich levels (k-means makes
    rims of them, which the rim rule then has to guess away); as one-hot scores it never favours a third class."""
    ramp = np.clip((np.arange(16) - 6) / 4.0, 0, 1)  # 0 ... 0, 0.25, 0.5, 0.75, 1 ... 1
    level = np.tile(ramp, (16, 1))
    onehot = np.zeros((16, 16, 4))
    onehot[..., 0], onehot[..., 3] = 1 - level, level
    onehot += np.random.default_rng(0).normal(0, 0.05, onehot.shape)
    assert {1, 2} & set(np.unique(kmeans_classes(level + 0.01 * np.arange(16) / 16, 4, 0)).tolist())
    first, cleaned = postprocess.clean_mask(onehot, ONEHOT, 4, seed=0, **NO_SMOOTHING)
    assert set(np.unique(first).tolist()) == {0, 3} and np.array_equal(first, onehot.argmax(-1))
    assert np.array_equal(cleaned[:, :6], np.zeros((16, 6))) and np.array_equal(cleaned[:, 10:], np.full((16, 6), 3))
    _, smooth = postprocess.clean_mask(onehot, ONEHOT, 4, seed=0, smooth_px=3, smooth_keep=())
    assert all(int((smooth == k).sum()) == int((cleaned == k).sum()) for k in range(4))
    with pytest.raises(DualgenError, match="3 class scores but the config has 4 classes"):
        postprocess.clean_mask(onehot[..., :3], ONEHOT, 4, seed=0, **NO_SMOOTHING)
    bad = onehot.copy()
    bad[0, 0, 1] = np.nan
    with pytest.raises(DualgenError, match="NaN/Inf"):
        postprocess.clean_mask(bad, ONEHOT, 4, seed=0, **NO_SMOOTHING)


def test_the_codec_of_each_encoding_encodes_decodes_and_takes_a_quick_look():
    masks = np.random.default_rng(1).integers(0, 4, (2, 5, 6))
    levels = mask_levels(4)
    onehot = np.eye(4)[masks]
    assert (LEVEL.channels, ONEHOT.channels) == (1, 4)
    assert np.array_equal(LEVEL.decode(LEVEL.encode(masks)), levels[masks].astype(np.float32))
    assert np.array_equal(ONEHOT.decode(ONEHOT.encode(masks)), onehot)
    assert np.array_equal(LEVEL.nearest(levels[masks] + 0.1), masks)
    assert np.array_equal(ONEHOT.nearest(onehot * 0.8 + 0.05), masks)
    assert np.allclose(ONEHOT.display(onehot), levels[masks])  # reads like a level mask
    assert np.allclose(LEVEL.display(levels[masks]), levels[masks])
    half = np.zeros((1, 1, 1, 4))
    half[..., 0] = half[..., 3] = 0.5
    assert np.allclose(ONEHOT.display(half), 0.5)
    assert np.allclose(ONEHOT.display(-np.ones((1, 1, 1, 4))), levels.mean())  # no score: the middle
    assert ONEHOT.first_step == "largest class score" and LEVEL.first_step == "k-means"
    assert np.array_equal(ONEHOT.classify(onehot[0], seed=0), masks[0])
    assert np.array_equal(LEVEL.classify(levels[masks[0]], seed=0), masks[0])
    with pytest.raises(DualgenError, match="vqvae.mask_encoding is 'rgb': use one of level, onehot"):
        MaskCodec("rgb", 4)
    with pytest.raises(DualgenError, match=r"expected one \(H, W, 4\) one-hot mask"):
        ONEHOT.classify(levels[masks[0]], seed=0)
