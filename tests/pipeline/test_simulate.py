"""The simulate stage reads each data source selected by params into the same zarr layout."""

import imageio.v3 as iio
import numpy as np
import pytest

from tests.pipeline_fixtures import deep_update, tiny_params
from udcshield.config import ConfigError, params_from_dict
from udcshield.pipeline import simulate
from udcshield.pipeline.common import load_pairs
from udcshield.pipeline.layout import Layout
from udcshield.physics.psf_codes import psf_pca_codes
from udcshield.store.zarr_io import read_array


def _params(**simulate_overrides):
    return params_from_dict(deep_update(tiny_params(), {"simulate": simulate_overrides}))


def _discnet_fixture(root, rng):
    for split, n in (("train", 2), ("test", 1)):
        for sub in ("GT", "input"):
            (root / split / sub).mkdir(parents=True)
        for i in range(n):
            gt = rng.random((40, 48, 3)) * 4.0
            np.save(root / split / "GT" / f"{i:03d}.npy", gt)
            np.save(root / split / "input" / f"{i:03d}.npy", gt * 0.5 + 0.1)
    (root / "PSF").mkdir()
    psf = np.zeros((9, 9, 3))
    psf[4, 4] = 1.0
    np.save(root / "PSF" / "psf.npy", psf)


def test_discnet_synth_source(tmp_path):
    rng = np.random.default_rng(0)
    _discnet_fixture(tmp_path / "synth", rng)
    params = _params(source="discnet_synth", dataset_root=str(tmp_path / "synth"), patch_size=16,
                     train_patches_per_image=3, test_patches_per_image=2)
    layout = Layout(tmp_path / "data")
    summary = simulate.run(params, layout)
    assert summary["train"]["n"] == 6 and summary["test"]["n"] == 2
    x, y, ids = load_pairs(layout.test_store)
    assert x.shape == (2, 3, 16, 16) and ids[0].startswith("000/")
    assert float(y.max()) <= 500 / 500.25 and float(x.min()) >= 0
    assert read_array(layout.psf_store, "psf").shape == (1, 3, 9, 9)  # the dataset's own PSF
    assert read_array(layout.psf_store, "codes").shape == (1, 5)
    assert np.all(read_array(layout.test_store, "psf_index") == -1)  # unknown PSF: zero codes
    code = read_array(layout.test_store, "kernel_code")
    assert code.shape == (2, 5) and code.dtype == np.float32 and not code.any()


def test_folder_source_simulates_with_the_physics_psf(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        (tmp_path / "photos" / split).mkdir(parents=True)
        iio.imwrite(tmp_path / "photos" / split / "a.png", (rng.random((80, 90, 3)) * 255).astype(np.uint8))
    params = _params(source="folder", dataset_root=str(tmp_path / "photos"), scale=1.0)
    layout = Layout(tmp_path / "data")
    simulate.run(params, layout)
    x, y, ids = load_pairs(layout.train_store)
    assert x.shape[1:] == (3, 32, 32) and ids[0].startswith("a/")
    assert not np.allclose(x.numpy(), y.numpy())


def test_missing_dataset_root_is_a_clear_error(tmp_path):
    params = _params(source="mipi", dataset_root=str(tmp_path / "nowhere"))
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        simulate.run(params, Layout(tmp_path / "data"))
    assert not (tmp_path / "data" / "simulated" / "train.zarr").exists()
    with pytest.raises(ConfigError, match="dataset_root"):
        _params(source="zhou_toled")


def test_user_mask(tmp_path):
    cell = np.zeros((21, 21), np.uint8)
    cell[:, 8:13] = 255
    iio.imwrite(tmp_path / "cell.png", cell)
    optics = {"mask": "user", "user_mask_path": str(tmp_path / "cell.png")}
    params = _params(optics=deep_update(tiny_params()["simulate"]["optics"], optics))
    psfs = simulate.make_psf_bank(params.simulate.optics, params.seed)
    assert psfs.shape[1:] == (3, 15, 15)
    np.testing.assert_allclose(psfs.sum(axis=(2, 3)), 1.0, atol=1e-9)
    with pytest.raises(ConfigError, match="user_mask_path"):
        _params(optics={"mask": "user"})


def test_noise_and_tile_flips_from_params_are_seeded():
    base = tiny_params()["simulate"]
    quiet = _params()
    noisy = _params(formation=deep_update(base["formation"], {"noise": "poisson_gaussian", "full_well_e": 500.0}))
    psfs = simulate.make_psf_bank(quiet.simulate.optics, quiet.seed)
    a = simulate.simulate(quiet.simulate, psfs, "test", 0)
    b = simulate.simulate(noisy.simulate, psfs, "test", 0)
    c = simulate.simulate(noisy.simulate, psfs, "test", 0)
    assert not np.array_equal(a.inputs, b.inputs) and np.array_equal(b.inputs, c.inputs)
    np.testing.assert_array_equal(a.targets, b.targets)
    flipped = _params(optics=deep_update(base["optics"], {"mask": "poled", "open_ratio": 0.4, "random_tile_flip": True}))
    plain = _params(optics=deep_update(base["optics"], {"mask": "poled", "open_ratio": 0.4}))
    f1 = simulate.make_psf_bank(flipped.simulate.optics, 0)
    assert not np.allclose(f1, simulate.make_psf_bank(plain.simulate.optics, 0))
    np.testing.assert_array_equal(f1, simulate.make_psf_bank(flipped.simulate.optics, 0))


def test_embedded_default_writes_kernel_codes_of_each_patch(tmp_path):
    params = _params()
    layout = Layout(tmp_path / "data")
    simulate.run(params, layout)
    bank = read_array(layout.psf_store, "psf")
    codes = read_array(layout.psf_store, "codes")
    assert codes.shape == (bank.shape[0], 5) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes, psf_pca_codes(bank))
    for store in (layout.train_store, layout.test_store):
        index = read_array(store, "psf_index")
        code = read_array(store, "kernel_code")
        assert code.shape == (index.shape[0], 5) and code.dtype == np.float32
        np.testing.assert_array_equal(code, codes[index])
    # the arrays that were there before are made exactly as simulate_split makes them
    x, y, _ = load_pairs(layout.test_store)
    again = simulate.simulate(params.simulate, bank, "test", params.seed)
    np.testing.assert_array_equal(x.numpy(), again.inputs)
    np.testing.assert_array_equal(read_array(layout.test_store, "psf_index"), again.psf_index)


def _release_fixture(root, rng):
    """The DISCNet release layout (Feng et al., CVPR 2021): GT only, nine PSFs, nine kernel codes."""
    for split, n in (("train", 2), ("test", 1)):
        (root / "synthetic_data" / "GT" / split).mkdir(parents=True)
        for i in range(n):
            gt = (rng.random((24, 24, 3)) * 4).astype(np.float32)
            np.save(root / "synthetic_data" / "GT" / split / f"{i:04d}.npy", gt)
    (root / "PSF" / "ZTE_new").mkdir(parents=True)
    (root / "PSF" / "kernel_code").mkdir(parents=True)
    for k in range(1, 10):
        psf = rng.random((7, 7, 3)).astype(np.float32)
        np.save(root / "PSF" / "ZTE_new" / f"ZTE_new_psf_{k}.npy", psf / psf.sum(axis=(0, 1)))
        np.save(root / "PSF" / "kernel_code" / f"ZTE_new_code_{k}.npy", np.full(5, k, np.float32))


def test_discnet_release_layout_runs_through_the_stage(tmp_path):
    _release_fixture(tmp_path / "release", np.random.default_rng(2))
    params = _params(source="discnet_synth", dataset_root=str(tmp_path / "release"), patch_size=8,
                     train_patches_per_image=2, test_patches_per_image=1)
    layout = Layout(tmp_path / "data")
    summary = simulate.run(params, layout)
    assert summary["train"]["n"] == 2 * 9 * 2 and summary["test"]["n"] == 9
    x, _, ids = load_pairs(layout.test_store)
    assert x.shape == (9, 3, 8, 8) and ids == [f"0000/psf{k}/000" for k in range(9)]
    np.testing.assert_array_equal(read_array(layout.test_store, "psf_index"), np.arange(9))
    np.testing.assert_array_equal(read_array(layout.test_store, "kernel_code"),
                                  np.repeat(np.arange(1, 10, dtype=np.float32)[:, None], 5, axis=1))
    assert read_array(layout.psf_store, "psf").shape == (9, 3, 7, 7)
    np.testing.assert_array_equal(read_array(layout.psf_store, "codes")[:, 0], np.arange(1, 10))
    sources = simulate.source_digests(params.simulate, "train")
    assert [s["id"] for s in sources] == ["synthetic_data/GT/train", "PSF/ZTE_new", "PSF/kernel_code"]
