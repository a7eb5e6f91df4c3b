"""Demo micrographs: determinism, class shares near the paper's test set, LQ faults, class contrast, scale."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from dualgen.data import phantom

PAPER_SHARES = (0.788, 0.080, 0.056, 0.076)  # Table 2: matrix, oxide, Nd-rich, Eta


@pytest.fixture(scope="module")
def big():
    """512 x 512 demo images for seeds 0, 1, 2 (generated once). How fast: make_demo's log (a test never fails on
    time)."""
    return {seed: phantom.generate(seed, 512, 512) for seed in (0, 1, 2)}


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
    image, hq, lq = big[seed]
    shares = np.bincount(hq.ravel(), minlength=4) / hq.size
    for share, target in zip(shares, PAPER_SHARES):
        assert abs(share - target) < 0.03, shares
    assert set(np.unique(hq)) == set(np.unique(lq)) == {0, 1, 2, 3}


@pytest.mark.parametrize("size", [(64, 64), (100, 300)])
def test_class_shares_hold_for_small_and_odd_sizes(size):
    _, hq, _ = phantom.generate(11, *size)
    shares = np.bincount(hq.ravel(), minlength=4) / hq.size
    assert np.allclose(shares, PAPER_SHARES, atol=0.01), shares


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lq_mask_is_mostly_right_with_boundary_faults(big, seed):
    _, hq, lq = big[seed]
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
    image, hq, _ = big[0]
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
    image, hq, _ = big[0]
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


# ---- the SEM flavour (data.demo.kind: sem) ----

SEM_SHARES = (0.341, 0.560, 0.090, 0.002, 0.007)  # matrix, lath, island, precipitate, inclusion


@pytest.fixture(scope="module")
def sem():
    """256 x 256 SEM demo images for seeds 0, 1, 2 (generated once)."""
    return {seed: phantom.generate_sem(seed, 256, 256) for seed in (0, 1, 2)}


def test_sem_same_seed_same_bytes_other_seed_differs():
    a = phantom.generate_sem(3, 96, 128)
    b = phantom.generate_sem(3, 96, 128)
    c = phantom.generate_sem(4, 96, 128)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert all(not np.array_equal(x, y) for x, y in zip(a, c))
    image, hq, lq = a
    assert image.shape == (96 + phantom.band_rows(96), 128, 3) and image.dtype == np.uint8
    assert hq.shape == lq.shape == (96, 128) and hq.dtype == lq.dtype == np.uint8
    assert hq.max() <= 4 and lq.max() <= 4
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    phantom.generate_sem(3, 64, 64)
    assert np.array_equal(np.random.get_state()[1], before)  # no global random state


def test_sem_micrograph_is_gray_stored_as_rgb(sem):
    from dualgen.data import io

    for image, hq, _ in sem.values():
        micrograph = image[: hq.shape[0]]
        assert io.is_gray(micrograph)
        spread = micrograph.max(axis=2).astype(int) - micrograph.min(axis=2)
        assert 0 < spread.max() <= 4  # three nearly equal channels, as a JPEG stores a gray image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sem_five_classes_two_of_them_rare(sem, seed):
    _, hq, lq = sem[seed]
    shares = np.bincount(hq.ravel(), minlength=5) / hq.size
    assert np.allclose(shares, SEM_SHARES, atol=0.001), shares
    assert 0 < shares[3] < 0.01 and 0 < shares[4] < 0.01
    assert set(np.unique(lq)) == {0, 1, 2, 3, 4}
    assert 0.02 < (lq != hq).mean() < 0.2  # model-made faults (labelnoise)


def test_sem_shares_hold_for_small_and_odd_sizes():
    for size in ((64, 64), (100, 300)):
        _, hq, _ = phantom.generate_sem(11, *size)
        shares = np.bincount(hq.ravel(), minlength=5) / hq.size
        assert np.allclose(shares, SEM_SHARES, atol=0.002), (size, shares)


def test_sem_morphologies(sem):
    """Tiny precipitate dots, small inclusion blobs, islands elongated along the laths of their packet."""
    for _, hq, _ in sem.values():
        dots = np.bincount(ndi.label(hq == 3)[0].ravel())[1:]
        blobs = np.bincount(ndi.label(hq == 4)[0].ravel())[1:]
        assert len(dots) >= 15 and np.median(dots) <= 9 and dots.max() <= 30, dots
        assert len(blobs) >= 2 and 20 <= np.median(blobs) <= 250, blobs
    # islands inside lath packets are elongated: the longer axis of their second moments >= 2x the shorter
    rng = np.random.default_rng(0)
    hq, label, _, _, _, _ = phantom._sem_masks(rng, 256, 256, 1.0)
    comp, k = ndi.label(hq == 2)
    ratios = []
    for i, sl in enumerate(ndi.find_objects(comp), 1):
        ys, xs = np.nonzero(comp[sl] == i)
        if len(ys) >= 12:
            ev = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
            ratios.append(np.sqrt(ev[1] / max(ev[0], 1e-6)))
    assert np.median(ratios) > 2.0, np.median(ratios)


def test_sem_matrix_and_laths_overlap_in_level_but_differ_in_texture(sem):
    for image, hq, _ in sem.values():
        gray = image[: hq.shape[0]].astype(np.float64).mean(axis=2)
        matrix, lath = gray[hq == 0], gray[hq == 1]
        assert abs(matrix.mean() - lath.mean()) < 15  # no threshold on the level separates them
        assert np.percentile(matrix, 95) > np.percentile(lath, 50) > np.percentile(matrix, 5)
        detail = gray - ndi.uniform_filter(gray, 5)  # the laths' stripes
        inner = [ndi.binary_erosion(hq == k, iterations=4) for k in (0, 1)]
        assert detail[inner[1]].std() > 1.3 * detail[inner[0]].std()
        islands, inclusions = gray[hq == 2].mean(), gray[hq == 4].mean()
        assert islands > lath.mean() + 25 and inclusions < matrix.mean() - 15


def test_sem_info_band_at_the_bottom_is_cut_by_the_ingest_rule(tmp_path):
    """The demo writes each micrograph with its info band (text, a coloured scale bar) and masks of the image
    area; the patches step's crop_height auto cuts exactly the band, and the rest is read as gray."""
    from dualgen.core.errors import DualgenError
    from dualgen.data import io, patches

    classes = [{"name": n, "value": v} for n, v in zip(phantom.SEM_CLASS_NAMES, (0, 64, 128, 192, 255))]
    lut = np.array([c["value"] for c in classes], np.uint8)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    hqs = {}
    for i in range(2):
        image, hq, _ = phantom.generate_sem(i, 160, 192)
        rows = phantom.band_rows(160)
        assert 0.06 * 160 <= rows <= 0.08 * 160
        band = image[160:]
        assert np.median(band) < 20 and (band.min(axis=2) > 200).mean() > 0.01  # black with white text
        assert (np.abs(band.astype(int) - band[..., :1]).max(axis=2) > 60).any()  # the coloured scale bar
        io.write_png(tmp_path / "images" / f"d{i}.png", image)
        io.write_png(tmp_path / "masks" / f"d{i}.png", lut[hq])
        hqs[f"d{i}"] = hq
    sources = patches.load_sources(
        tmp_path / "images", tmp_path / "masks", None, classes, "palette", crop_height="auto", log=lambda _: None
    )
    for src in sources:
        assert src.info["rows_cut"] == phantom.band_rows(160) and src.info["gray"]
        assert src.image.shape == (160, 192, 1) and np.array_equal(src.lq, hqs[src.name])
    with pytest.raises(DualgenError, match="crop_height"):
        patches.load_sources(tmp_path / "images", tmp_path / "masks", None, classes, "palette", log=lambda _: None)


def test_make_demo_writes_the_sem_kind_and_checks_the_classes(tmp_path):
    import json

    from tests.conftest import assert_one_line_error, run_script

    classes = [{"name": n, "value": v} for n, v in zip(phantom.SEM_CLASS_NAMES, (0, 64, 128, 192, 255))]
    demo = {"kind": "sem", "n_images": 2, "height": 64, "width": 96, "scale": 1.0, "seed": 2}
    settings = json.dumps({"demo": demo, "classes": classes})
    proc = run_script("make_demo.py", "--out", tmp_path / "demo", "--settings", settings)
    assert proc.returncode == 0, proc.stderr
    image, hq, lq = phantom.generate_sem(2000, 64, 96)
    from dualgen.data import io

    assert np.array_equal(io.read_png(tmp_path / "demo" / "images" / "demo_00.png"), image)
    assert np.array_equal(
        io.read_png(tmp_path / "demo" / "masks_hq" / "demo_00.png"), np.array([0, 64, 128, 192, 255])[hq]
    )
    meta = json.loads((tmp_path / "demo" / "meta.json").read_text())
    assert set(meta["class_shares"]) == set(phantom.SEM_CLASS_NAMES)
    bad = json.dumps({"demo": demo, "classes": classes[:4]})
    proc = run_script("make_demo.py", "--out", tmp_path / "bad", "--settings", bad)
    assert_one_line_error(proc, "classes has 4 entries", "5 classes", "presets/sem.yaml")
    assert not (tmp_path / "bad").exists()


def test_sem_preset_checks_and_its_demo_is_cut_by_the_workflow(tmp_path):
    """presets/sem.yaml passes the config check; in a dry run the SEM demo goes to data/demo_sem and the patches
    step cuts its band (crop_height auto), while the default study's make_demo settings carry no kind."""
    from tests.conftest import REPO, run_script, snakemake

    proc = run_script("check_config.py", REPO / "presets" / "sem.yaml")
    assert proc.returncode == 0 and proc.stdout.startswith("ok:"), proc.stdout + proc.stderr
    proc = snakemake("-n", "-p", "datasets", "--configfile", REPO / "presets" / "sem.yaml", workdir=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--out data/demo_sem " in proc.stdout and '"crop_height": "auto"' in proc.stdout
    assert '"images": "data/demo_sem/images"' in proc.stdout and '"kind": "sem"' in proc.stdout
    proc = snakemake("-n", "-p", "make_demo", workdir=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--out data/demo " in proc.stdout and '"kind"' not in proc.stdout
