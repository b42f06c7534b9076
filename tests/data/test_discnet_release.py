"""The DISCNet SYNTH release layout (Feng et al., CVPR 2021): GT + nine PSFs + kernel codes -> pairs."""

import pickle
from pathlib import Path

import numpy as np
import pytest

from udcshield.data.datasets import load_dataset, load_psf_bank
from udcshield.data.discnet_release import discnet_convolve, is_release_layout, release_codes
from udcshield.physics.tonemap import tonemap
from udcshield.seeding import derive_seed

H = W = 24
S = 7  # PSF side
TRAIN = ("img_b", "img_a", "img_c")  # written out of sorted order on purpose
TEST = ("t0", "t1")


def gt_image(stem: str) -> np.ndarray:
    """(H, W, 3) float32 linear HDR, distinct per stem, with a saturated spot."""
    rng = np.random.default_rng(sum(map(ord, stem)))
    v = (rng.random((H, W, 3)) * 6.0).astype(np.float32)
    v[5, 7, :] = 2000.0
    return v


def psf_image(k: int) -> np.ndarray:
    """(S, S, 3) float32 PSF number k (1..9), a different off-centre shape per k; channel sums near 1."""
    rng = np.random.default_rng(100 + k)
    p = rng.random((S, S, 3)) ** 4
    p[S // 2, S // 2] += 2.0
    p[(k - 1) // 3 * 3, (k - 1) % 3 * 3] += float(k)
    return (p / p.sum(axis=(0, 1))).astype(np.float32)


def code(k: int) -> np.ndarray:
    return ((np.arange(5) + 10 * k) / 7).astype(np.float32)


def make_release(root: Path, train=TRAIN, test=TEST, info_lists: bool = True) -> Path:
    for split, stems in (("train", train), ("test", test)):
        d = root / "synthetic_data" / "GT" / split
        d.mkdir(parents=True, exist_ok=True)
        for s in stems:
            np.save(d / f"{s}.npy", gt_image(s))
    (root / "PSF" / "ZTE_new").mkdir(parents=True, exist_ok=True)
    (root / "PSF" / "kernel_code").mkdir(parents=True, exist_ok=True)
    for k in range(1, 10):
        np.save(root / "PSF" / "ZTE_new" / f"ZTE_new_psf_{k}.npy", psf_image(k))
        np.save(root / "PSF" / "kernel_code" / f"ZTE_new_code_{k}.npy", code(k))
    if info_lists:  # as generate_info_list.py writes them; the reader does not need them
        lists = root / "PSF" / "kernel_info_list" / "ZTE_new"
        lists.mkdir(parents=True, exist_ok=True)
        for split, stems in (("train", train), ("test", test)):
            for k in range(1, 10):
                lines = [f"{s}.npy /elsewhere/PSF/kernel_code/ZTE_new_code_{k}.npy \n" for s in sorted(stems)]
                (lists / f"ZTE_new_code_{k}_{split}.txt").write_text("".join(lines))
    return root


def reference_input(gt_hwc: np.ndarray, psf_hwc: np.ndarray, pad: int = 200) -> np.ndarray:
    """The release's simulation restated tap by tap: (3, H, W) float64 in [0, 500].

    Zero-pad the image by ``pad``; place the PSF in a frame of the padded size with (n - s) // 2 zeros
    before it; circular convolution whose origin is the frame's centre index n // 2; magnitude; crop;
    clip at 500.
    """
    h, w, _ = gt_hwc.shape
    n, m = h + 2 * pad, w + 2 * pad
    out = np.zeros((3, h, w))
    for c in range(3):
        img = np.zeros((n, m))
        img[pad:pad + h, pad:pad + w] = gt_hwc[..., c]
        acc = np.zeros((n, m))
        top, left = (n - psf_hwc.shape[0]) // 2, (m - psf_hwc.shape[1]) // 2
        for i in range(psf_hwc.shape[0]):
            for j in range(psf_hwc.shape[1]):
                acc += float(psf_hwc[i, j, c]) * np.roll(img, (top + i - n // 2, left + j - m // 2), axis=(0, 1))
        out[c] = np.abs(acc[pad:pad + h, pad:pad + w])
    return np.clip(out, 0, 500)


def net(v: np.ndarray) -> np.ndarray:
    return tonemap(np.clip(v, 0, 500), 0.25)


def load(root, split="train", **kw):
    args = dict(patch_size=None, patches_per_image=1, seed=0)
    return load_dataset("discnet_synth", root, split=split, **{**args, **kw})


# ---------------------------------------------------------------- simulation and tags


def test_inputs_match_an_independent_recomputation_of_the_release_simulation(tmp_path):
    root = make_release(tmp_path)
    assert is_release_layout(root)
    out = load(root)
    assert out.inputs.shape == out.targets.shape == (27, 3, H, W) and out.inputs.dtype == np.float32
    for i, image_id in enumerate(out.image_ids):
        stem, psf, _ = image_id.split("/")
        k = int(psf[3:]) + 1
        expect = net(reference_input(gt_image(stem), psf_image(k)))
        np.testing.assert_allclose(out.inputs[i], expect, rtol=0, atol=2e-6)
        np.testing.assert_allclose(out.targets[i], net(gt_image(stem).transpose(2, 0, 1)), rtol=1e-6)
    assert out.targets[0, 0, 5, 7] == pytest.approx(500 / 500.25)  # clipped at 500, tone-mapped


def test_convolution_known_answers():
    rng = np.random.default_rng(0)
    scene = rng.random((3, H, W))
    delta = np.zeros((3, 8, 8))
    delta[:, 4, 4] = 1.0  # the centre n // 2 of an even PSF in the even padded frame: identity
    np.testing.assert_allclose(discnet_convolve(scene, delta), scene, atol=1e-12)
    odd = np.zeros((3, S, S))
    odd[:, S // 2, S // 2] = 1.0  # odd PSF in an even frame: its centre lands one pixel before n // 2
    np.testing.assert_allclose(discnet_convolve(scene, odd)[:, :-1, :-1], scene[:, 1:, 1:], atol=1e-12)
    np.testing.assert_allclose(discnet_convolve((scene + 1) * 1e3, delta), np.full_like(scene, 500.0))
    np.testing.assert_allclose(discnet_convolve(scene, delta * 2, pad=3), np.clip(2 * scene, 0, 500), atol=1e-12)


def test_tags_ids_and_train_pairs_use_every_psf(tmp_path):
    out = load(make_release(tmp_path))
    stems = sorted(TRAIN)
    assert out.image_ids == [f"{s}/psf{k}/000" for k in range(9) for s in stems]
    np.testing.assert_array_equal(out.psf_index, np.repeat(np.arange(9), 3))
    assert out.psf_index.dtype == np.int64
    assert out.kernel_code.shape == (27, 5) and out.kernel_code.dtype == np.float32
    np.testing.assert_array_equal(out.kernel_code, np.stack([code(k + 1) for k in out.psf_index]))
    assert len(set(out.image_ids)) == len(out.image_ids)


def test_test_split_is_every_image_under_every_psf(tmp_path):
    out = load(make_release(tmp_path), split="test", patch_size=8, patches_per_image=2)
    assert out.inputs.shape == (2 * 9 * 2, 3, 8, 8)
    pairs = {(i.split("/")[0], int(k)) for i, k in zip(out.image_ids, out.psf_index)}
    assert pairs == {(s, k) for s in TEST for k in range(9)}
    assert load(tmp_path, split="testing").image_ids[:2] == ["t0/psf0/000", "t1/psf0/000"]  # alias


def test_max_images_counts_ground_truth_images(tmp_path):
    out = load(make_release(tmp_path), max_images=1)
    assert out.image_ids == [f"img_a/psf{k}/000" for k in range(9)]


def test_pre_simulated_inputs_are_read_when_present(tmp_path):
    root = make_release(tmp_path)
    sim = root / "synthetic_data" / "input" / "ZTE_new_3" / "test"
    sim.mkdir(parents=True)
    for s in TEST:
        np.save(sim / f"{s}.npy", gt_image(s) * np.float32(0.5) + np.float32(0.125))
    out = load(root, split="test")
    for i, image_id in enumerate(out.image_ids):
        stem = image_id.split("/")[0]
        k = int(out.psf_index[i])
        if k == 2:
            expect = net(gt_image(stem).transpose(2, 0, 1) * np.float32(0.5) + np.float32(0.125))
        else:
            expect = net(reference_input(gt_image(stem), psf_image(k + 1)))
        np.testing.assert_allclose(out.inputs[i], expect, atol=2e-6)


def test_crops_follow_the_documented_seed_and_not_the_file_order(tmp_path):
    whole = load(make_release(tmp_path / "a"))
    kw = dict(patch_size=8, patches_per_image=3, seed=7)
    a = load(tmp_path / "a", **kw)
    again = load(tmp_path / "a", **kw)
    np.testing.assert_array_equal(a.inputs, again.inputs)
    # other file order plus an extra image: the crops of the shared images do not move
    b = load(make_release(tmp_path / "b", train=("zz", *reversed(TRAIN))), **kw)
    shared = {i: n for n, i in enumerate(b.image_ids)}
    for n, image_id in enumerate(a.image_ids):
        np.testing.assert_array_equal(a.inputs[n], b.inputs[shared[image_id]])
    for n, image_id in enumerate(a.image_ids):
        stem, psf, j = image_id.split("/")
        rng = np.random.default_rng(derive_seed(7, "dataset/train", f"{stem}/{psf}"))
        for _ in range(int(j) + 1):
            y0, x0 = int(rng.integers(0, H - 8 + 1)), int(rng.integers(0, W - 8 + 1))
        src = whole.image_ids.index(f"{stem}/{psf}/000")
        np.testing.assert_array_equal(a.targets[n], whole.targets[src][:, y0:y0 + 8, x0:x0 + 8])
        np.testing.assert_allclose(a.inputs[n], whole.inputs[src][:, y0:y0 + 8, x0:x0 + 8], atol=1e-7)
    assert not np.array_equal(a.inputs, load(tmp_path / "a", **{**kw, "seed": 8}).inputs)


def test_psf_bank_and_codes_of_the_release(tmp_path):
    root = make_release(tmp_path)
    bank = load_psf_bank(root)
    assert bank.shape == (9, 3, S, S)
    np.testing.assert_allclose(bank.sum(axis=(2, 3)), 1.0)
    p5 = psf_image(5).astype(np.float64).transpose(2, 0, 1)
    np.testing.assert_allclose(bank[4], p5 / p5.sum(axis=(1, 2), keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(release_codes(root), np.stack([code(k) for k in range(1, 10)]))


# ---------------------------------------------------------------- bad input names the culprit


def _pickled(path: Path) -> None:
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("damage, error, culprit", [
    (lambda r: (r / "PSF/ZTE_new/ZTE_new_psf_4.npy").unlink(), FileNotFoundError, "ZTE_new_psf_4.npy"),
    (lambda r: np.save(r / "PSF/ZTE_new/ZTE_new_psf_10.npy", psf_image(1)), ValueError, "ZTE_new_psf_10.npy"),
    (lambda r: (r / "PSF/kernel_code/ZTE_new_code_9.npy").unlink(), FileNotFoundError, "ZTE_new_code_9.npy"),
    (lambda r: np.save(r / "PSF/kernel_code/ZTE_new_code_0.npy", code(1)), ValueError, "ZTE_new_code_0.npy"),
    (lambda r: np.save(r / "PSF/kernel_code/ZTE_new_code_2.npy", np.ones((5, 2))), ValueError, "ZTE_new_code_2.npy"),
    (lambda r: np.save(r / "PSF/kernel_code/ZTE_new_code_3.npy", np.ones(4)), ValueError, "ZTE_new_code_3.npy"),
    (lambda r: np.save(r / "PSF/kernel_code/ZTE_new_code_5.npy", np.full(5, np.nan)), ValueError, "ZTE_new_code_5"),
    (lambda r: _pickled(r / "PSF/kernel_code/ZTE_new_code_6.npy"), ValueError, "ZTE_new_code_6.npy"),
    (lambda r: np.save(r / "PSF/ZTE_new/ZTE_new_psf_2.npy", np.ones((5, 5, 3))), ValueError, "ZTE_new_psf_2.npy"),
    (lambda r: np.save(r / "PSF/ZTE_new/ZTE_new_psf_3.npy", np.ones((7, 7))), ValueError, "ZTE_new_psf_3.npy"),
    (lambda r: np.save(r / "PSF/ZTE_new/ZTE_new_psf_7.npy", -psf_image(7)), ValueError, "ZTE_new_psf_7.npy"),
    (lambda r: _pickled(r / "PSF/ZTE_new/ZTE_new_psf_8.npy"), ValueError, "ZTE_new_psf_8.npy"),
    (lambda r: np.save(r / "synthetic_data/GT/train/img_a.npy", np.full((H, W, 3), np.nan)), ValueError, "img_a.npy"),
    (lambda r: np.save(r / "synthetic_data/GT/train/img_b.npy", np.ones((H, W))), ValueError, "img_b.npy"),
    (lambda r: _pickled(r / "synthetic_data/GT/train/img_c.npy"), ValueError, "img_c.npy"),
    (lambda r: (r / "synthetic_data/GT/train/x.npy").write_bytes(b"junk"), ValueError, "x.npy"),
    (lambda r: [f.unlink() for f in (r / "synthetic_data/GT/train").iterdir()], FileNotFoundError, "GT/train"),
    (lambda r: __import__("shutil").rmtree(r / "PSF/kernel_code"), FileNotFoundError, "kernel_code"),
])
def test_bad_release_files_name_the_culprit(tmp_path, damage, error, culprit):
    root = make_release(tmp_path)
    damage(root)
    with pytest.raises(error, match=culprit.replace(".", r"\.")):
        load(root)


def test_bad_pre_simulated_inputs_name_the_culprit(tmp_path):
    root = make_release(tmp_path)
    sim = root / "synthetic_data" / "input" / "ZTE_new_1" / "train"
    sim.mkdir(parents=True)
    for s in TRAIN[:2]:
        np.save(sim / f"{s}.npy", gt_image(s))
    with pytest.raises(ValueError, match=r"ZTE_new_1.*img_c\.npy"):  # img_c has no input
        load(root)
    np.save(sim / "img_c.npy", np.ones((H, W - 1, 3), np.float32))
    with pytest.raises(ValueError, match=r"ZTE_new_1/train/img_c\.npy.*shape|shape.*ZTE_new_1/train/img_c\.npy"):
        load(root)
    np.save(sim / "img_c.npy", gt_image("img_c"))
    np.save(sim / "stray.npy", gt_image("img_c"))
    with pytest.raises(ValueError, match=r"stray\.npy"):
        load(root)
    (sim / "stray.npy").unlink()
    with open(sim / "img_a.npy", "wb") as fh:
        pickle.dump({"not": "an array"}, fh)
    with pytest.raises(ValueError, match=r"img_a\.npy"):
        load(root)


def test_missing_split_and_patch_too_large(tmp_path):
    root = make_release(tmp_path)
    with pytest.raises(FileNotFoundError, match="val"):
        load(root, split="val")
    with pytest.raises(ValueError, match=r"patch_size 25.*img_a\.npy"):
        load(root, patch_size=25)
