import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from skimage import io as skio

from udcshield.data.datasets import LAYOUTS, load_dataset, load_ground_truth_folder, load_psf_bank
from udcshield.physics.tonemap import srgb_to_linear, tonemap
from udcshield.seeding import derive_seed

H, W = 24, 32
STEMS = ("img_a", "img_b", "img_c")


def hdr_scene(i: int) -> np.ndarray:
    """(H, W, 3) float32 linear HDR; pixel value encodes (image, row, col, channel); one saturated spot."""
    y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    v = (i * 1000 + y * 40 + x + c * 0.25) / 64.0
    v[2, 3, :] = 2000.0  # above the 500 saturation
    return v.astype(np.float32)


def make_hdr_root(root: Path, split: str = "train", stems=STEMS, split_dir: str | None = None) -> Path:
    base = root / (split_dir or split)
    (base / "GT").mkdir(parents=True, exist_ok=True)
    (base / "input").mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(stems):
        gt = hdr_scene(i)
        np.save(base / "GT" / f"{s}.npy", gt)
        np.save(base / "input" / f"{s}.npy", gt * 0.5 + 0.125)
    return root


def make_png_root(root: Path, split: str = "test") -> tuple[Path, dict]:
    rng = np.random.default_rng(5)
    (root / split / "LQ").mkdir(parents=True)
    (root / split / "HQ").mkdir(parents=True)
    data = {}
    for s in STEMS:
        lq = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
        hq = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
        skio.imsave(str(root / split / "LQ" / f"{s}.png"), lq, check_contrast=False)
        skio.imsave(str(root / split / "HQ" / f"{s}.png"), hq, check_contrast=False)
        data[s] = (lq, hq)
    return root, data


def hdr_net(v: np.ndarray) -> np.ndarray:
    return tonemap(np.clip(np.asarray(v, dtype=np.float64), 0, 500), 0.25)


# ---------------------------------------------------------------- HDR layouts


@pytest.mark.parametrize("layout", ["discnet_synth", "mipi"])
def test_hdr_whole_images_values(tmp_path, layout):
    root = make_hdr_root(tmp_path)
    out = load_dataset(layout, root, split="train", patch_size=None, patches_per_image=4, seed=0)
    assert out.inputs.shape == out.targets.shape == (3, 3, H, W)
    assert out.inputs.dtype == out.targets.dtype == np.float32
    assert out.image_ids == [f"{s}/000" for s in STEMS]
    assert out.psf_index.dtype == np.int64 and np.all(out.psf_index == -1)
    for i in range(3):
        gt = hdr_scene(i).transpose(2, 0, 1)
        np.testing.assert_allclose(out.targets[i], hdr_net(gt), rtol=1e-6)
        np.testing.assert_allclose(out.inputs[i], hdr_net(gt * np.float32(0.5) + np.float32(0.125)), rtol=1e-6)
    # known numbers: 0.25 -> 0.5 (knee); the 2000 spot is clipped at 500 -> 500 / 500.25
    assert out.targets[1, 0, 0, 0] == pytest.approx((1000 / 64) / (1000 / 64 + 0.25), rel=1e-6)
    assert out.targets[0, :, 2, 3] == pytest.approx(np.full(3, 500 / 500.25), rel=1e-6)
    assert out.inputs[0, :, 2, 3] == pytest.approx(np.full(3, 500 / 500.25), rel=1e-6)
    assert out.targets.max() < 1 and out.inputs.min() > 0


def test_hdr_knee_saturation_max_images(tmp_path):
    root = make_hdr_root(tmp_path)
    out = load_dataset(
        "discnet_synth", root, split="train", patch_size=None, patches_per_image=1, seed=0, knee=1.0,
        saturation=10.0, max_images=2,
    )
    assert out.image_ids == ["img_a/000", "img_b/000"]
    gt = hdr_scene(1).transpose(2, 0, 1).astype(np.float64)
    np.testing.assert_allclose(out.targets[1], np.minimum(gt, 10) / (np.minimum(gt, 10) + 1), rtol=1e-6)


def test_hdr_patches_aligned_and_seeded(tmp_path):
    root = make_hdr_root(tmp_path)
    out = load_dataset("discnet_synth", root, split="train", patch_size=8, patches_per_image=4, seed=7)
    assert out.inputs.shape == (12, 3, 8, 8) and len(out) == 12
    assert out.image_ids[:5] == ["img_a/000", "img_a/001", "img_a/002", "img_a/003", "img_b/000"]
    for i, s in enumerate(STEMS):
        gt = hdr_scene(i).transpose(2, 0, 1)
        rng = np.random.default_rng(derive_seed(7, "dataset/train", s))
        for k in range(4):
            y0, x0 = int(rng.integers(0, H - 8 + 1)), int(rng.integers(0, W - 8 + 1))
            crop = gt[:, y0 : y0 + 8, x0 : x0 + 8]
            np.testing.assert_allclose(out.targets[i * 4 + k], hdr_net(crop), rtol=1e-6)
            expected_in = hdr_net(crop * np.float32(0.5) + np.float32(0.125))
            np.testing.assert_allclose(out.inputs[i * 4 + k], expected_in, rtol=1e-6)
    positions = {tuple(out.targets[j, 0, 0, :2]) for j in range(12)}
    assert len(positions) > 6  # crops differ
    again = load_dataset("discnet_synth", root, split="train", patch_size=8, patches_per_image=4, seed=7)
    assert np.array_equal(again.inputs, out.inputs) and again.image_ids == out.image_ids
    other = load_dataset("discnet_synth", root, split="train", patch_size=8, patches_per_image=4, seed=8)
    assert not np.array_equal(other.targets, out.targets)


def test_crops_independent_of_file_order_and_other_files(tmp_path):
    a = make_hdr_root(tmp_path / "a")
    b = tmp_path / "b"
    for sub in ("GT", "input"):  # same files written in reverse order, plus one that sorts first
        (b / "train" / sub).mkdir(parents=True)
        np.save(b / "train" / sub / "aaa_extra.npy", hdr_scene(5))
        for s in STEMS[::-1]:
            shutil.copy(a / "train" / sub / f"{s}.npy", b / "train" / sub / f"{s}.npy")
    ra = load_dataset("mipi", a, split="train", patch_size=6, patches_per_image=2, seed=1)
    rb = load_dataset("mipi", b, split="train", patch_size=6, patches_per_image=2, seed=1)
    assert rb.image_ids == ["aaa_extra/000", "aaa_extra/001", *ra.image_ids]
    assert np.array_equal(ra.targets, rb.targets[2:]) and np.array_equal(ra.inputs, rb.inputs[2:])


def test_split_aliases(tmp_path):
    root = make_hdr_root(tmp_path, split="val", split_dir="validation")
    make_hdr_root(tmp_path, split="train", split_dir="Training", stems=("t1",))
    v = load_dataset("discnet_synth", root, split="val", patch_size=None, patches_per_image=1, seed=0)
    v2 = load_dataset("discnet_synth", root, split="validation", patch_size=None, patches_per_image=1, seed=0)
    assert len(v) == len(v2) == 3
    t = load_dataset("discnet_synth", root, split="train", patch_size=None, patches_per_image=1, seed=0)
    assert t.image_ids == ["t1/000"]


def test_psf_bank(tmp_path):
    (tmp_path / "PSF").mkdir()
    psf = np.random.default_rng(0).uniform(0, 1, size=(7, 7, 3))
    np.save(tmp_path / "PSF" / "p0.npy", psf)
    np.save(tmp_path / "PSF" / "p1.npy", np.stack([psf.transpose(2, 0, 1)] * 2))
    bank = load_psf_bank(tmp_path)
    assert bank.shape == (3, 3, 7, 7)
    np.testing.assert_allclose(bank.sum(axis=(2, 3)), 1.0)
    np.testing.assert_allclose(bank[0], bank[2])
    np.save(tmp_path / "PSF" / "p2.npy", np.ones((5, 5, 3)))
    with pytest.raises(ValueError, match=r"p2\.npy"):
        load_psf_bank(tmp_path)
    with pytest.raises(FileNotFoundError, match="PSF"):
        load_psf_bank(tmp_path / "PSF")


# ---------------------------------------------------------------- Zhou et al. (PNG and .mat)


@pytest.mark.parametrize("layout", ["zhou_toled", "zhou_poled"])
def test_zhou_png_exact(tmp_path, layout):
    root, data = make_png_root(tmp_path)
    out = load_dataset(layout, root, split="test", patch_size=None, patches_per_image=1, seed=0)
    assert out.inputs.shape == (3, 3, H, W) and out.image_ids == [f"{s}/000" for s in STEMS]
    for i, s in enumerate(STEMS):
        lq, hq = data[s]
        assert np.array_equal(out.inputs[i], (lq.transpose(2, 0, 1) / 255.0).astype(np.float32))
        assert np.array_equal(out.targets[i], (hq.transpose(2, 0, 1) / 255.0).astype(np.float32))
    p = load_dataset(layout, root, split="test", patch_size=5, patches_per_image=3, seed=2)
    rng = np.random.default_rng(derive_seed(2, "dataset/test", "img_b"))
    lq, hq = data["img_b"]
    for k in range(3):
        y0, x0 = int(rng.integers(0, H - 4)), int(rng.integers(0, W - 4))
        window = (slice(y0, y0 + 5), slice(x0, x0 + 5))
        assert np.array_equal(p.inputs[3 + k], (lq[window].transpose(2, 0, 1) / 255.0).astype(np.float32))
        assert np.array_equal(p.targets[3 + k], (hq[window].transpose(2, 0, 1) / 255.0).astype(np.float32))


def test_zhou_mat(tmp_path):
    rng = np.random.default_rng(6)
    disp = rng.integers(0, 256, size=(3, H, W, 3), dtype=np.uint8)
    gt = rng.integers(0, 256, size=(3, H, W, 3), dtype=np.uint8)
    (tmp_path / "val").mkdir()
    scipy.io.savemat(tmp_path / "val" / "poled_val_display.mat", {"val_display": disp})
    scipy.io.savemat(tmp_path / "val" / "poled_val_gt.mat", {"val_gt": gt})
    out = load_dataset("zhou_poled", tmp_path, split="val", patch_size=None, patches_per_image=1, seed=0)
    assert out.image_ids == [f"poled_val_display_{i:04d}/000" for i in range(3)]
    assert np.array_equal(out.inputs, (disp.transpose(0, 3, 1, 2) / 255.0).astype(np.float32))
    assert np.array_equal(out.targets, (gt.transpose(0, 3, 1, 2) / 255.0).astype(np.float32))
    two = load_dataset("zhou_poled", tmp_path, split="val", patch_size=4, patches_per_image=2, seed=0, max_images=2)
    assert two.inputs.shape == (4, 3, 4, 4)
    # one file holding both, custom keys
    (tmp_path / "test").mkdir()
    scipy.io.savemat(tmp_path / "test" / "both.mat", {"lq": disp[:2], "hq": gt[:2], "other": np.zeros(3)})
    c = load_dataset(
        "zhou_toled", tmp_path, split="test", patch_size=None, patches_per_image=1, seed=0, mat_keys=("lq", "hq")
    )
    assert np.array_equal(c.targets, out.targets[:2])
    with pytest.raises(ValueError, match=r"keys found: hq \(both\.mat\), lq \(both\.mat\), other"):
        load_dataset("zhou_toled", tmp_path, split="test", patch_size=None, patches_per_image=1, seed=0)
    scipy.io.savemat(tmp_path / "test" / "both.mat", {"test_display": disp[:2, ..., :2], "test_gt": gt[:2, ..., :2]})
    with pytest.raises(ValueError, match=r"both\.mat.*\(N, H, W, 3\)"):
        load_dataset("zhou_toled", tmp_path, split="test", patch_size=None, patches_per_image=1, seed=0)
    scipy.io.savemat(tmp_path / "test" / "both.mat", {"test_display": disp[:2], "test_gt": gt[:1]})
    with pytest.raises(ValueError, match=r"shape mismatch.*both\.mat"):
        load_dataset("zhou_toled", tmp_path, split="test", patch_size=None, patches_per_image=1, seed=0)


def test_zhou_mat_v73_rejected(tmp_path):
    (tmp_path / "val").mkdir()
    blob = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64)
    (tmp_path / "val" / "toled_val_display.mat").write_bytes(blob)
    with pytest.raises(ValueError, match=r"toled_val_display\.mat.*HDF5.*h5py"):
        load_dataset("zhou_toled", tmp_path, split="val", patch_size=None, patches_per_image=1, seed=0)


# ---------------------------------------------------------------- ground-truth folder


def write_flat_hdr(path: Path, img: np.ndarray) -> None:
    """(h, w, 3) values that are exact in RGBE (one power of two per pixel times mantissas < 256)."""
    h, w, _ = img.shape
    rgbe = np.zeros((h, w, 4), dtype=np.uint8)
    for idx in np.ndindex(h, w):
        v = float(img[idx].max())
        if v > 0:
            mant, e = math.frexp(v)
            rgbe[idx][:3] = np.floor(img[idx] * (mant * 256.0 / v))
            rgbe[idx][3] = e + 128
    path.write_bytes(f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n".encode() + rgbe.tobytes())


def test_load_ground_truth_folder(tmp_path):
    rgb = (np.arange(H * W * 3).reshape(H, W, 3) % 256).astype(np.uint8)
    skio.imsave(str(tmp_path / "b_photo.png"), rgb, check_contrast=False)
    t16 = (np.arange(6 * 5 * 3).reshape(6, 5, 3) * 997 % 65536).astype(np.uint16)
    skio.imsave(str(tmp_path / "c_scan.tif"), t16, check_contrast=False)
    hdr = np.zeros((4, 6, 3))
    hdr[1, 2] = (64.0, 32.0, 1.0)
    hdr[3, 5] = (0.5, 0.25, 0.125)
    write_flat_hdr(tmp_path / "a_sky.hdr", hdr)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    out = load_ground_truth_folder(tmp_path)
    assert [s for s, _ in out] == ["a_sky", "b_photo", "c_scan"]
    np.testing.assert_array_equal(out[0][1], hdr.transpose(2, 0, 1))
    np.testing.assert_allclose(out[1][1], srgb_to_linear(rgb.transpose(2, 0, 1) / 255.0))
    np.testing.assert_allclose(out[2][1], srgb_to_linear(t16.transpose(2, 0, 1) / 65535.0))
    assert all(a.dtype == np.float64 and a.shape[0] == 3 for _, a in out)
    assert [s for s, _ in load_ground_truth_folder(tmp_path, max_images=1)] == ["a_sky"]
    with pytest.raises(ValueError, match=r"load_ground_truth_folder"):
        load_dataset("folder", tmp_path, split="train", patch_size=None, patches_per_image=1, seed=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio probes legacy plugins on the broken file
def test_ground_truth_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_ground_truth_folder(tmp_path / "nowhere")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no image files"):
        load_ground_truth_folder(tmp_path / "e")
    (tmp_path / "e" / "scene.exr").write_bytes(b"\x76\x2f\x31\x01")
    with pytest.raises(ValueError, match=r"scene\.exr.*EXR"):
        load_ground_truth_folder(tmp_path / "e")
    (tmp_path / "d").mkdir()
    skio.imsave(str(tmp_path / "d" / "x.png"), np.zeros((4, 4, 3), np.uint8), check_contrast=False)
    skio.imsave(str(tmp_path / "d" / "x.jpg"), np.zeros((4, 4, 3), np.uint8), check_contrast=False)
    with pytest.raises(ValueError, match="share the name 'x'"):
        load_ground_truth_folder(tmp_path / "d")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        load_ground_truth_folder(tmp_path / "c")


# ---------------------------------------------------------------- errors


def load(root, layout="discnet_synth", split="train", **kw):
    args = dict(patch_size=None, patches_per_image=1, seed=0)
    args.update(kw)
    return load_dataset(layout, root, split=split, **args)


def test_error_unknown_layout_and_arguments(tmp_path):
    root = make_hdr_root(tmp_path)
    with pytest.raises(ValueError, match="unknown layout 'synth'.*" + ".*".join(LAYOUTS)):
        load(root, layout="synth")
    with pytest.raises(ValueError, match="patch_size"):
        load(root, patch_size=0)
    with pytest.raises(ValueError, match="patches_per_image"):
        load(root, patch_size=4, patches_per_image=0)
    with pytest.raises(ValueError, match="seed"):
        load(root, seed=-1)
    with pytest.raises(ValueError, match="knee"):
        load(root, knee=0.0)
    with pytest.raises(ValueError, match="saturation"):
        load(root, saturation=float("inf"))
    with pytest.raises(ValueError, match="max_images"):
        load(root, max_images=0)


def test_error_missing_folders_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="root not found"):
        load(tmp_path / "missing")
    root = make_hdr_root(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"split 'test'.*found \['train'\]"):
        load(root, split="test")
    shutil.rmtree(root / "train" / "input")
    with pytest.raises(FileNotFoundError, match="'input'"):
        load(root)
    (root / "train" / "input").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.npy input files"):
        load(root)
    for f in (root / "train" / "GT").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match=r"no \.npy files"):
        load(root)
    (tmp_path / "z" / "test").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no LQ/HQ folders and no \.mat files"):
        load(tmp_path / "z", layout="zhou_toled", split="test")


def test_error_unmatched_pairs(tmp_path):
    root = make_hdr_root(tmp_path, stems=[f"s{i:02d}" for i in range(9)])
    for i in range(7):
        (root / "train" / "GT" / f"s{i:02d}.npy").unlink()
    np.save(root / "train" / "GT" / "lonely.npy", hdr_scene(0))
    with pytest.raises(ValueError, match=r"unmatched pairs: 7 input.*s00, s01, s02, s03, s04 \(\+2 more\).*lonely"):
        load(root)
    png_root, _ = make_png_root(tmp_path / "p")
    (png_root / "test" / "HQ" / "img_c.png").unlink()
    with pytest.raises(ValueError, match=r"unmatched pairs.*img_c"):
        load(png_root, layout="zhou_toled", split="test")


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((H, W + 1, 3), np.float32), r"shape mismatch.*img_b\.npy"),
        (np.zeros((H, W), np.float32), r"img_b\.npy.*3-D"),
        (np.zeros((H, W, 4), np.float32), r"img_b\.npy.*3 colour channels"),
        (np.where(np.arange(3) == 1, np.nan, 1.0) * np.ones((H, W, 3)), r"img_b\.npy.*NaN or Inf"),
        (np.where(np.arange(3) == 1, -np.inf, 1.0) * np.ones((H, W, 3)), r"img_b\.npy.*NaN or Inf"),
        (np.full((H, W, 3), -0.01), r"img_b\.npy.*negative values"),
    ],
)
def test_error_bad_arrays(tmp_path, bad, match):
    root = make_hdr_root(tmp_path)
    np.save(root / "train" / "input" / "img_b.npy", bad)
    with pytest.raises(ValueError, match=match):
        load(root)


def test_error_corrupt_and_pickled(tmp_path):
    root = make_hdr_root(tmp_path)
    (root / "train" / "GT" / "img_c.npy").write_bytes(b"garbage, not numpy")
    with pytest.raises(ValueError, match=r"GT.img_c\.npy.*not a readable"):
        load(root)
    obj = np.empty((H, W, 3), dtype=object)
    obj[...] = 0.5
    np.save(root / "train" / "GT" / "img_c.npy", obj, allow_pickle=True)
    with pytest.raises(ValueError, match=r"img_c\.npy.*pickle"):
        load(root)
    png_root, _ = make_png_root(tmp_path / "p")
    (png_root / "test" / "LQ" / "img_a.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match=r"LQ.img_a\.png"):
        load(png_root, layout="zhou_toled", split="test")


def test_error_patch_too_large_and_mixed_shapes(tmp_path):
    root = make_hdr_root(tmp_path)
    with pytest.raises(ValueError, match=r"patch_size 25 is larger than the image 24x32.*img_a\.npy"):
        load(root, patch_size=25)
    big = np.ones((H + 8, W, 3), np.float32)
    np.save(root / "train" / "GT" / "img_c.npy", big)
    np.save(root / "train" / "input" / "img_c.npy", big)
    with pytest.raises(ValueError, match=r"images differ in shape.*img_c\.npy"):
        load(root)
    assert len(load(root, patch_size=12, patches_per_image=2)) == 6  # cropping makes them stackable
