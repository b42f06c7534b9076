import numpy as np
import pytest
from skimage import io as skio

from udcshield.data.simulate import SimulatedSplit, simulate_split
from udcshield.physics.psf import compute_psf, psf_bank


@pytest.fixture(scope="module")
def bank() -> np.ndarray:
    psf = compute_psf(
        mask_kind="toled",
        pitch_um=168.0,
        open_ratio=5 / 21,
        focal_length_mm=4.67,
        f_number=2.0,
        wavelengths_nm=(610.0, 530.0, 470.0),
        sensor_pitch_um=2.0,
        support_px=21,
    )
    return psf_bank(psf, 3, np.random.default_rng(0))


def _kw(**over):
    kw = dict(
        patch_size=32,
        patches_per_image=3,
        scale=0.5,
        seed=7,
        split="train",
        hdr={"n_light_sources": 1},
        saturation=500.0,
        transmission=1.0,
        noise="none",
    )
    kw.update(over)
    return kw


def test_shapes_ranges_ids(bank):
    out = simulate_split(["chelsea", "coffee"], bank, **_kw())
    assert isinstance(out, SimulatedSplit) and len(out) == 6
    for arr in (out.inputs, out.targets):
        assert arr.shape == (6, 3, 32, 32) and arr.dtype == np.float32
        assert arr.min() >= 0 and arr.max() <= 1 and np.all(np.isfinite(arr))
    assert out.image_ids == ["chelsea/000", "chelsea/001", "chelsea/002", "coffee/000", "coffee/001", "coffee/002"]
    assert out.psf_index.shape == (6,) and out.psf_index.min() >= 0 and out.psf_index.max() < 3
    assert not np.allclose(out.inputs, out.targets)


def test_deterministic_and_order_independent(bank):
    a = simulate_split(["chelsea", "coffee"], bank, **_kw(noise="poisson_gaussian"))
    b = simulate_split(["chelsea", "coffee"], bank, **_kw(noise="poisson_gaussian"))
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert a.image_ids == b.image_ids and np.array_equal(a.psf_index, b.psf_index)
    c = simulate_split(["coffee", "chelsea"], bank, **_kw(noise="poisson_gaussian"))
    order = [c.image_ids.index(i) for i in a.image_ids]
    assert np.array_equal(a.inputs, c.inputs[order]) and np.array_equal(a.targets, c.targets[order])
    single = simulate_split(["coffee"], bank, **_kw(noise="poisson_gaussian"))
    assert np.array_equal(single.inputs, a.inputs[3:])
    other_split = simulate_split(["chelsea", "coffee"], bank, **_kw(noise="poisson_gaussian", split="test"))
    assert not np.array_equal(other_split.inputs, a.inputs)


def test_delta_psf_gives_identical_pairs():
    delta = np.zeros((3, 9, 9))
    delta[:, 4, 4] = 1.0
    out = simulate_split(["astronaut"], delta, **_kw())
    np.testing.assert_allclose(out.inputs, out.targets, atol=1e-6)


def test_no_border_artefacts(tmp_path, bank):
    flat = np.full((96, 96, 3), 200, dtype=np.uint8)
    path = tmp_path / "flat.png"
    skio.imsave(str(path), flat, check_contrast=False)
    out = simulate_split([str(path)], bank, **_kw(scale=1.0, hdr=None))
    assert out.image_ids[0] == "flat/000"
    # a uniform scene blurred by a unit-sum PSF stays uniform up to the patch edges
    np.testing.assert_allclose(out.inputs, out.targets, atol=1e-6)


def test_transmission_darkens(bank):
    full = simulate_split(["rocket"], bank, **_kw(hdr=None))
    dim = simulate_split(["rocket"], bank, **_kw(hdr=None, transmission=0.3))
    assert dim.inputs.mean() < full.inputs.mean()
    assert np.array_equal(dim.targets, full.targets)


@pytest.mark.parametrize(
    "names,over,culprit",
    [
        (["nope"], {}, "nope"),
        (["chelsea", "chelsea"], {}, "duplicate"),
        (["chelsea"], {"hdr": {"gain": 3}}, "hdr"),
        (["chelsea"], {"noise": "gauss"}, "noise"),
        (["chelsea"], {"patch_size": 0}, "patch_size"),
        (["chelsea"], {"scale": 0.05}, "chelsea"),
        (["chelsea"], {"saturation": 0.0}, "saturation"),
        (["chelsea"], {"split": ""}, "split"),
        ("chelsea", {}, "photo_names"),
    ],
)
def test_bad_input(bank, names, over, culprit):
    with pytest.raises(ValueError, match=culprit):
        simulate_split(names, bank, **_kw(**over))


def test_bad_psf():
    with pytest.raises(ValueError, match="psf"):
        simulate_split(["chelsea"], np.ones((3, 8, 8)), **_kw())
    with pytest.raises(ValueError, match="psf"):
        simulate_split(["chelsea"], np.full((3, 9, 9), np.nan), **_kw())
