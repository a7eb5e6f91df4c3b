"""Fidelity statistics of synthetic pairs against real ones: known answers, the real-vs-real floor, memorisation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from dualgen.core.errors import DualgenError
from dualgen.generate import fidelity, image_stats

NAMES = ["matrix", "oxide", "nd_rich"]
MEANS = np.array([60, 130, 200])  # image intensity of each class


def blobs(n, sigma, seed, size=64, channels=1):
    """A random generator of blob masks: smoothed noise cut at fixed levels into 3 classes, and images of
    class-dependent intensity plus noise."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((n, size, size)), (0, sigma, sigma), mode="wrap")
    field *= 2.0 * math.sqrt(math.pi) * sigma  # unit variance: smoothed white noise has 1 / (4 pi sigma^2)
    masks = np.digitize(field, [-0.4, 0.8]).astype(np.uint8)
    noise = rng.normal(0, 15, (n, size, size, channels))
    images = np.clip(MEANS[masks][..., None] + noise, 0, 255).astype(np.uint8)
    return images, masks


def stripes(h, w, width, period, offset=0):
    """Vertical stripes of class 1 (columns x with (x - offset) mod period < width) on class 0."""
    cols = ((np.arange(w) - offset) % period) < width
    return np.broadcast_to(cols, (h, w)).astype(np.uint8)


# ---------------------------------------------------------------- statistics with known answers


def test_phase_fractions_and_s2_at_zero():
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 4, (5, 20, 30)).astype(np.uint8)
    f = fidelity.phase_fractions(masks, 4)
    assert f.shape == (5, 4) and np.allclose(f.sum(1), 1)
    assert f[2, 3] == pytest.approx(np.mean(masks[2] == 3))
    for k in range(4):
        s2 = fidelity.two_point_correlation(masks, k)
        assert len(s2) == 20 // 2 + 1
        assert s2[0] == pytest.approx(f[:, k].mean(), abs=1e-12)
    with pytest.raises(DualgenError, match="outside 0..2"):
        fidelity.phase_fractions(masks, 3)


def test_s2_matches_direct_pair_counts():
    """The FFT estimator equals a loop over the displacement vectors of each radius bin."""
    rng = np.random.default_rng(2)
    mask = (rng.random((12, 15)) < 0.4).astype(np.uint8)
    ind = mask == 1
    h, w = ind.shape
    r_max = 5
    got = fidelity.two_point_correlation(mask, 1, r_max=r_max)
    sums, counts = np.zeros(r_max + 1), np.zeros(r_max + 1)
    for dy in range(-r_max, r_max + 1):
        for dx in range(-r_max, r_max + 1):
            r = int(round(math.hypot(dy, dx)))
            if r > r_max:
                continue
            a = ind[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            b = ind[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
            sums[r] += (a & b).mean()
            counts[r] += 1
    assert np.allclose(got, sums / counts, atol=1e-12)


def test_s2_of_an_uncorrelated_medium_tends_to_fraction_squared():
    rng = np.random.default_rng(3)
    masks = (rng.random((20, 64, 64)) < 0.3).astype(np.uint8)
    s2 = fidelity.two_point_correlation(masks, 1)
    assert s2[0] == pytest.approx(0.3, abs=0.01)
    assert np.allclose(s2[1:], 0.09, atol=0.005)


def test_s2_of_stripes_matches_the_analytic_curve():
    width, period = 3, 8
    mask = stripes(64, 64, width, period)
    s2 = fidelity.two_point_correlation(mask, 1)
    # periodic stripes: P(x and x + dx in a stripe) = max(0, width - distance of dx to a multiple of period) / period
    d = np.arange(-32, 33)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    r = np.rint(np.hypot(dy, dx)).astype(int)
    m = np.abs(dx) % period
    analytic = np.maximum(0, width - np.minimum(m, period - m)) / period
    expected = np.array([analytic[r == i].mean() for i in range(33)])
    assert s2[0] == pytest.approx(width / period)
    assert np.allclose(s2, expected, atol=0.02)
    assert np.allclose(fidelity.two_point_correlation(mask, 1, r_max=10), s2[:11])


def test_chords_of_drawn_stripes():
    mask = stripes(40, 64, width=5, period=12, offset=-3)  # the first stripe is cut by the left border
    rows = fidelity.chord_lengths(mask, 1, axis=1)
    assert rows.dtype.kind == "i" and len(rows) == 40 * 5 and set(rows) == {5}  # the cut stripes are dropped
    assert np.array_equal(rows, fidelity.chord_lengths([mask], 1, "rows"))
    gaps = fidelity.chord_lengths(mask, 0, "rows")
    assert set(gaps) == {7}
    # along the columns every chord spans the patch (touches both borders): the fallback keeps them
    cols = fidelity.chord_lengths(mask, 1, axis=0)
    assert set(cols) == {40} and len(cols) == np.sum(mask[0] == 1)
    assert np.array_equal(cols, fidelity.chord_lengths(mask, 1, "cols"))
    assert len(fidelity.chord_lengths(mask, 2, "cols")) == 0  # an absent class has no chords
    with pytest.raises(DualgenError, match="chord axis"):
        fidelity.chord_lengths(mask, 1, axis=2)


def test_square_object_size_and_boundary():
    masks = np.zeros((3, 32, 48), np.uint8)
    masks[0, 5:15, 10:20] = 1  # 10 x 10
    masks[1, 0:4, 0:4] = 1  # 4 x 4 in the corner: its border edges are patch border, not class boundary
    masks[2, 20:23, 30:33] = 1  # 3 x 3 ...
    masks[2, 23, 33] = 1  # ... and a diagonal neighbour: one object with 8-connectivity
    assert sorted(fidelity.object_sizes(masks, 1)) == [10, 16, 100]
    assert sorted(fidelity.object_sizes(masks, 0)) == [32 * 48 - 100, 32 * 48 - 16, 32 * 48 - 10]
    one = masks[:1]
    assert fidelity.boundary_density(one, 1) == pytest.approx(4 * 10 / (32 * 48))
    assert fidelity.boundary_density(one, 0) == fidelity.boundary_density(one, 1)
    assert fidelity.boundary_density(masks[1], 1) == pytest.approx(2 * 4 / (32 * 48))
    assert fidelity.boundary_density(masks, 1) == pytest.approx((40 + 8 + 12 + 4) / (3 * 32 * 48))
    # a patch-spanning object in each patch stays apart from the next patch
    full = np.ones((4, 8, 8), np.uint8)
    assert list(fidelity.object_sizes(full, 1)) == [64] * 4


def test_intensities_inside_a_class_are_the_drawn_values():
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1
    images = np.zeros((2, 16, 16, 3), np.uint8)
    images[..., 0] = 10
    images[..., 1] = 20
    images[masks == 1] = [200, 150, 100]
    assert np.array_equal(np.unique(fidelity.class_intensities(images, masks, 1, 0)), [200])
    assert len(fidelity.class_intensities(images, masks, 1, 2)) == 2 * 16
    assert set(fidelity.class_intensities(images, masks, 0, 1)) == {20}
    assert set(fidelity.class_intensities(images[0], masks[0], 1, 1)) == {150}  # one (H, W, C) pair
    assert set(fidelity.class_intensities(images[..., 0], masks, 0, 0)) == {10}  # (N, H, W) grey stack
    with pytest.raises(DualgenError, match="do not match"):
        fidelity.class_intensities(images[:, :8], masks, 0, 0)


# ---------------------------------------------------------------- floor and ratio


@pytest.fixture(scope="module")
def real():
    return blobs(100, sigma=3, seed=10)


def test_same_generator_gives_ratios_near_one(real):
    synth = blobs(100, sigma=3, seed=11)
    table = fidelity.compare(*real, *synth, NAMES, seed=0)
    assert list(table.columns) == [
        "variant",
        "class",
        "statistic",
        "real_value",
        "synthetic_value",
        "distance",
        "floor",
        "ratio",
    ]
    image = table["statistic"].map(fidelity.family) == "image"
    assert (~image).sum() == len(NAMES) * (len(fidelity.STATISTICS) + 1)
    assert set(table.loc[~image, "statistic"]) == set(fidelity.STATISTICS) | {"intensity_c0"}
    assert list(table.loc[image, "statistic"]) == list(image_stats.IMAGE_STATISTICS)  # joined on the same splits
    assert list(table.loc[image, "class"]) == ["all", "all", "all", NAMES[0]]  # the edges inside class 0
    assert len(fidelity.compare(*real, *synth, NAMES, seed=0, image=False)) == (~image).sum()
    assert (table["floor"] > 0).all() and table["ratio"].notna().all()
    # a ratio of one scalar is |noise| / mean |noise|: over 40 seed pairs ~98 % of the ratios lay in 0.3..3,
    # the rest up to ~4.5 (a small floor or a large offset between the two pools); the bulk sits at 1
    assert table["ratio"].between(0.3, 3).mean() >= 0.85, table
    assert table["ratio"].max() < 8
    assert 0.7 < table["ratio"].median() < 1.4
    distributions = table[table["statistic"].isin(["chord_rows", "chord_cols", "object_size", "intensity_c0"])]
    assert distributions["ratio"].between(0.3, 3).all()


def test_different_generator_gives_large_ratios(real):
    coarse = blobs(100, sigma=6, seed=12)  # larger objects, the same class levels
    table = fidelity.compare(*real, *coarse, NAMES, seed=0, variant="coarse").set_index(["class", "statistic"])
    assert (table["variant"] == "coarse").all()
    for statistic in ("chord_rows", "chord_cols", "object_size", "boundary_density"):
        assert (table.xs(statistic, level="statistic")["ratio"] > 5).all(), statistic
    assert table.xs("s2", level="statistic")["ratio"].min() > 3
    assert table.xs("intensity_c0", level="statistic")["ratio"].max() < 3  # the image given the mask is unchanged
    s = fidelity.summary(table.reset_index())
    assert s["worst_ratio"] == table["ratio"].max() and s["worst_variant"] == "coarse"
    assert s["per_statistic"]["object_size"]["ratio"] == table.xs("object_size", level="statistic")["ratio"].max()
    assert s["line"] == f"fidelity ratios: {s['worst_class']}/{s['worst_statistic']} {s['worst_ratio']:.1f}"


def test_compare_is_seeded_and_handles_small_or_colour_sets(real):
    synth = blobs(30, sigma=3, seed=13, channels=3)
    real3 = blobs(60, sigma=3, seed=14, channels=3)
    a = fidelity.compare(*real3, *synth, NAMES, seed=5, n_splits=3)
    b = fidelity.compare(*real3, *synth, NAMES, seed=5, n_splits=3)
    assert a.equals(b)
    assert not a["floor"].equals(fidelity.compare(*real3, *synth, NAMES, seed=6, n_splits=3)["floor"])
    assert {"intensity_c0", "intensity_c1", "intensity_c2"} <= set(a["statistic"])
    row = a[(a["class"] == "nd_rich") & (a["statistic"] == "intensity_c1")].iloc[0]
    assert row["real_value"] == pytest.approx(200, abs=3) and row["synthetic_value"] == pytest.approx(200, abs=3)
    with pytest.raises(DualgenError, match="differ in size or channels"):
        fidelity.compare(*real, *synth, NAMES)


def test_floor_zero_and_absent_class():
    masks = np.zeros((6, 16, 16), np.uint8)
    masks[:, 4:8, 4:8] = 1  # every real patch the same
    images = (masks[..., None] * 100).astype(np.uint8)
    synth = masks.copy()
    synth[:, 4:10, 4:10] = 1
    table = fidelity.compare(
        images, masks, (synth[..., None] * 100).astype(np.uint8), synth, ["a", "b", "c"], n_splits=2
    ).set_index(["class", "statistic"])
    assert table.loc[("b", "object_size"), "floor"] == 0 and table.loc[("b", "object_size"), "ratio"] == math.inf
    assert math.isnan(table.loc[("c", "object_size"), "distance"])  # class c is absent: nothing to measure
    assert math.isnan(table.loc[("c", "phase_fraction"), "ratio"])  # 0 / 0
    s = fidelity.summary(table.reset_index())
    assert s["worst_ratio"] == math.inf


# ---------------------------------------------------------------- memorisation


def test_memorisation_of_copies_and_of_independent_samples():
    train = blobs(120, sigma=3, seed=20, channels=3)
    val = blobs(200, sigma=3, seed=31, channels=3)  # (seed 21 is a 1-in-400 draw: its 1st percentile sits at ~4 %)
    copies = (train[0][:40], train[1][:40])
    m = fidelity.memorisation(copies, train, val, 3)
    assert m["share_closer"] == 1.0 and m["synth_median"] == pytest.approx(0, abs=1e-6)
    assert m["threshold"] > 0 and m["val_median"] > m["threshold"]
    fresh = blobs(200, sigma=3, seed=22, channels=3)
    m = fidelity.memorisation(fresh, train, val, 3)
    assert m["share_closer"] < 0.1  # ~0.01-0.02 expected; the 1st percentile of 200 distances is itself noisy
    assert m["novel_lo"] == pytest.approx(2 / 201) and m["novel_hi"] == pytest.approx(3 / 201)
    assert 3 / 201 < m["novel_limit"] < 0.1
    assert not fidelity.copies_more_than_real(m)
    assert fidelity.copies_more_than_real(fidelity.memorisation(copies, train, val, 3))
    assert m["synth_median"] == pytest.approx(m["val_median"], rel=0.1)


@pytest.mark.parametrize("symmetry", ["flips", "turns"])
def test_mirrored_and_turned_copies_count_as_copies(symmetry):
    """A prior may train on the training pairs' mirror images and 90-degree turns (pixelcnn.augment flips,
    dihedral): a flipped or turned copy of a training pair is at distance 0 from the reference, and real validation
    pairs are not helped by them."""
    from dualgen.generate import common

    train = blobs(60, sigma=3, seed=20)
    val = blobs(100, sigma=3, seed=31)
    copy = getattr(common, symmetry)
    mirrored = tuple(np.concatenate(list(copy(x[:15]))) for x in train)  # 45 or 60 pairs, each a training pair copied
    k = len(mirrored[1])
    assert not any((mirrored[1][j] == train[1][j % 15]).all() for j in range(k))  # blobs are not symmetric
    m = fidelity.memorisation(mirrored, train, val, 3)
    assert m["share_closer"] == 1.0 and m["synth_median"] == pytest.approx(0, abs=1e-6)
    assert fidelity.copies_more_than_real(m)
    assert m["threshold"] > 0 and m["val_median"] > m["threshold"]


def test_novel_share_bounds_known_answers_and_simulation():
    """What a sample as novel as real data scores: between j/(n+1) and (j+1)/(n+1) for the percentile between the
    j-th and (j+1)-th smallest of n real distances; checked on exchangeable draws (the same distribution), where
    the long-run share must fall between the bounds, for the study's 12 validation patches and for 200."""
    assert fidelity.novel_share_bounds(12) == pytest.approx((1 / 13, 2 / 13))
    assert fidelity.novel_share_bounds(200) == pytest.approx((2 / 201, 3 / 201))  # 1 + floor(199 * 0.01) = 2
    assert fidelity.novel_share_bounds(1) == pytest.approx((0.5, 1.0))
    assert all(math.isnan(v) for v in fidelity.novel_share_bounds(0))
    rng = np.random.default_rng(40)
    for n in (12, 200):
        lo, hi = fidelity.novel_share_bounds(n)
        shares = []
        for _ in range(4000):
            real, synth = rng.exponential(size=n), rng.exponential(size=50)
            shares.append(np.mean(synth < np.percentile(real, fidelity.MEMO_PERCENTILE)))
        assert lo - 0.005 < np.mean(shares) < hi + 0.005, (n, np.mean(shares), lo, hi)
    for n_val, n_synth in ((12, 144), (200, 200)):  # at least ~97.5 % of novel samples' shares stay under it
        limit = fidelity.novel_share_limit(n_val, n_synth)
        over = [
            np.mean(rng.exponential(size=n_synth) < np.percentile(rng.exponential(size=n_val), 1)) > limit
            for _ in range(4000)
        ]
        assert np.mean(over) <= 0.03 and limit > fidelity.novel_share_bounds(n_val)[1], (n_val, np.mean(over))
    assert fidelity.novel_share_limit(12, 144) == pytest.approx(0.40, abs=0.01)  # 12 validation pairs resolve little
    assert fidelity.novel_share_limit(200, 200) == pytest.approx(0.045, abs=0.005)
    memo = {"share_closer": 0.25, "novel_limit": 0.2}
    assert fidelity.copies_more_than_real(memo) and not fidelity.copies_more_than_real({**memo, "share_closer": 0.2})
    assert not fidelity.copies_more_than_real({"share_closer": float("nan"), "novel_limit": float("nan")})


def test_nearest_distances_definition():
    """d^2 = (image MSE on [0, 1] + share of pixels of another class) / 2, vectorised over the pairs."""
    rng = np.random.default_rng(30)
    images = rng.integers(0, 256, (7, 8, 8, 3)).astype(np.uint8)
    masks = rng.integers(0, 4, (7, 8, 8)).astype(np.uint8)
    q_images, q_masks = images[:3].copy(), masks[:3].copy()
    q_images[0] = 255 - q_images[0]
    q_masks[1] = (q_masks[1] + 1) % 4
    got = fidelity.nearest_distances(q_images, q_masks, images, masks, 4)
    expected = []
    for qi, qm in zip(q_images, q_masks):
        d2 = [(np.mean((qi / 255.0 - ri / 255.0) ** 2) + np.mean(qm != rm)) / 2 for ri, rm in zip(images, masks)]
        expected.append(math.sqrt(min(d2)))
    assert np.allclose(got, expected, atol=1e-9)
    assert got[2] == pytest.approx(0, abs=1e-6)


# ---------------------------------------------------------------- what the figures and the report card read


def test_profile_holds_the_statistics_of_one_set():
    images, masks = blobs(6, sigma=3, seed=40, channels=3)
    p = fidelity.profile(images, masks, 3)
    assert p["fractions"].shape == (6, 3) and np.allclose(p["fractions"], fidelity.phase_fractions(masks, 3))
    assert p["s2"].shape == (3, 33) and np.allclose(p["s2"][1], fidelity.two_point_correlation(masks, 1))
    chords = np.concatenate([fidelity.chord_lengths(masks, 2, "rows"), fidelity.chord_lengths(masks, 2, "cols")])
    assert p["chords"].shape == (3, 65) and np.array_equal(p["chords"][2], np.bincount(chords, minlength=65))
    assert p["intensity"].shape == (3, 3, 256)
    assert np.array_equal(
        p["intensity"][0, 1], np.bincount(fidelity.class_intensities(images, masks, 0, 1), minlength=256)
    )
    assert p["intensity"].sum() == images.size


def test_worst_by_family_takes_the_largest_ratio_of_each_family(real):
    coarse = blobs(60, sigma=6, seed=41)
    table = pd.concat(
        [
            fidelity.compare(*real, *blobs(60, sigma=3, seed=42), NAMES, variant="same"),
            fidelity.compare(*real, *coarse, NAMES, variant="coarse"),
        ],
        ignore_index=True,
    )
    worst = fidelity.worst_by_family(table)
    assert set(worst) == {"same", "coarse"} and set(worst["coarse"]) == set(fidelity.FAMILIES)
    chords = table[(table["variant"] == "coarse") & table["statistic"].str.startswith("chord_")]
    assert worst["coarse"]["chord"]["ratio"] == chords["ratio"].max()
    assert worst["coarse"]["chord"]["statistic"] in ("chord_rows", "chord_cols")
    assert worst["coarse"]["s2"]["ratio"] > worst["same"]["s2"]["ratio"]
    assert fidelity.family("intensity_c2") == "intensity" and fidelity.family("s2") == "s2"


# ---------------------------------------------------------------- the fidelity step


def test_score_variant_closest_variant_and_the_reference_sample():
    real, val = blobs(24, sigma=3, seed=40), blobs(12, sigma=3, seed=41)
    like, unlike = blobs(16, sigma=3, seed=42), blobs(16, sigma=1, seed=43)
    rows, tables = [], {}
    for name, (images, masks) in (("like", like), ("unlike", unlike)):
        variant = {"name": name, "kind": "plain", "temperature": 1, "pool": name == "like"}
        table, row, curves = fidelity.score_variant(variant, images, masks, real, val, NAMES, seed=0, n_splits=2)
        assert list(table.columns[:5]) == ["variant", "kind", "temperature", "pool", "n_synthetic"]
        assert table["temperature"].iloc[0] == 1.0 and table["n_synthetic"].iloc[0] == 16
        plain = fidelity.compare(*real, images, masks, NAMES, seed=0, n_splits=2, variant=name)
        pd.testing.assert_series_equal(table["ratio"], plain["ratio"])
        assert list(row)[:4] == ["variant", "n_synthetic", "n_train", "n_val"] and row["n_val"] == 12
        assert set(curves) == {f"{name}__{k}" for k in ("fractions", "s2", "chords", "intensity")}
        rows.append(row)
        tables[name] = table
    worst = fidelity.worst_by_family(pd.concat(tables.values(), ignore_index=True))
    assert fidelity.closest_variant(worst, rows) == "like"
    _, row, _ = fidelity.score_variant(
        {"name": "x", "kind": "plain", "temperature": 1, "pool": False},
        *like,
        real,
        (val[0][:0], val[1][:0]),
        NAMES,
        seed=0,
        n_splits=2,
    )
    assert all(math.isnan(row[k]) for k in fidelity.MEMO_KEYS)  # no validation pairs: no memorisation
    rng = np.random.default_rng(0)
    near = (np.clip(real[0][:12] + rng.normal(0, 8, real[0][:12].shape), 0, 255).astype(np.uint8), real[1][:12])
    noisy = np.clip(real[0] + rng.normal(0, 40, real[0].shape), 0, 255).astype(np.uint8)  # copies, noise added
    shares = {}
    for name, decoded in (("noisy", None), ("decoded", real[0])):  # validation pairs near training pairs
        variant = {"name": name, "kind": "plain", "temperature": 1, "pool": False}
        _, row, _ = fidelity.score_variant(variant, noisy, real[1], real, near, NAMES, 0, 2, decoded=decoded)
        shares[name] = (row["share_closer"], row["judged_on"])
    assert shares == {"noisy": (0.0, "images"), "decoded": (1.0, "decoded")}  # the noise hid the copies
    table, meta = fidelity.reference_sample(*real, *like, NAMES, seed=0, n_splits=2)
    assert set(table["variant"]) == {fidelity.REFERENCE} and meta["n"] == 16 and meta["line"].startswith("fidelity")
    table, meta = fidelity.reference_sample(*real, like[0][:1], like[1][:1], NAMES, seed=0, n_splits=2)
    assert table.empty and meta is None
