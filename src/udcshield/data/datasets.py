"""Real UDC datasets -> paired (input, target) patches in the network domain [0, 1].

Supported layouts (``root`` is the dataset folder; ``<split>`` is e.g. ``train`` / ``test``):

* ``"discnet_synth"`` -- SYNTH of Feng et al., "Removing Diffraction Image Artifacts in Under-Display
  Camera via Dynamic Skip Connection Network" (DISCNet), CVPR 2021, in one of two layouts:

  - the release as it ships (``root`` holds ``synthetic_data/GT``; read by
    :mod:`udcshield.data.discnet_release`): ground truth only, ``synthetic_data/GT/{train,test}/*.npy``
    (linear HDR 800 x 800 x 3), nine PSFs ``PSF/ZTE_new/ZTE_new_psf_<k>.npy`` (k = 1..9) and their 5-D
    PCA codes ``PSF/kernel_code/ZTE_new_code_<k>.npy``. Inputs are simulated from the PSFs as the
    release's ``data_simulation.py`` does (zero-pad 200 px, per-channel FFT convolution, crop back, clip at
    500), or read from ``synthetic_data/input/ZTE_new_<k>/<split>/*.npy`` where those folders exist. Every
    image of a split is paired with each of the nine PSFs (train and test alike, as the release's
    configs), giving 9 pairs per image tagged with ``psf_index`` k - 1 and the release's ``kernel_code``;
    ids ``"<stem>/psf<k - 1>/<j:03d>"``, crop seeds ``derive_seed(seed, f"dataset/{split}",
    f"{stem}/psf<k - 1>")``; ``max_images`` counts ground-truth images.
  - a pre-paired folder: ``root/<split>/input/*.npy`` and ``root/<split>/GT/*.npy``, linear HDR float
    arrays H x W x 3, paired by file name; PSFs optionally in ``root/PSF/*.npy`` (see
    :func:`load_psf_bank`).

  Both sides are clipped at ``saturation`` (500) and tone-mapped by v / (v + knee) (knee 0.25), the
  DISCNet convention.
* ``"mipi"`` -- MIPI 2022 UDC challenge (image restoration for UDC, built on the SYNTH pipeline):
  ``root/<split>/input/*.npy`` and ``root/<split>/GT/*.npy``. Assumed to be the same linear-HDR
  H x W x 3 format as SYNTH and treated identically (clip at ``saturation``, tone map). Splits whose
  ground truth was withheld (inputs only) fail with an unmatched-pairs error.
* ``"zhou_toled"`` / ``"zhou_poled"`` -- T-OLED / P-OLED sets of Zhou et al., "Image Restoration for
  Under-Display Camera", CVPR 2021: 8-bit sRGB pairs ``root/<split>/LQ/*.png`` (degraded) and
  ``root/<split>/HQ/*.png`` (ground truth), 1024 x 2048 in the release. Values are v / 255 (already
  display-referred; no tone map, ``knee`` and ``saturation`` unused). The ``.mat`` release is also
  read: ``root/<split>/*.mat`` holding uint8 (N, H, W, 3) arrays under a key pair such as
  ``val_display`` / ``val_gt`` (in one file or two); see ``mat_keys`` of :func:`load_dataset`. The two
  layout names differ only in documentation value.

Split folders: the ``split`` name is matched case-insensitively, with aliases ``train`` <-> ``training``,
``test`` <-> ``testing``, ``val`` <-> ``validation`` (so a ``validation`` folder is found for ``split="val"``
and vice versa). Sub-folders (``input``/``GT``, ``LQ``/``HQ``) are matched case-insensitively too.

Patches: with ``patch_size=None`` each image pair is returned whole (all images must share a shape);
otherwise ``patches_per_image`` aligned random crops are cut from both sides with
``np.random.default_rng(derive_seed(seed, f"dataset/{split}", stem))``, so a crop depends only on the seed,
split and file stem -- not on the file order or on which other files are present. Image ids are
``"<stem>/<k>"`` with ``k`` as three digits (``"0001/000"``), like the simulator's ids.

``psf_index`` is -1 and ``kernel_code`` all zeros ((N, 5)) for every pair of the other layouts: such a
dataset does not say which PSF made each image (the DISCNet release layout above does).

Ground-truth photos for simulation (layout ``"folder"``) are read by :func:`load_ground_truth_folder`,
not by :func:`load_dataset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from udcshield.data.discnet_release import is_release_layout, load_release_split, release_psfs
from udcshield.data.readers import mat_keys as _mat_keys
from udcshield.data.readers import read_linear_image, read_mat_arrays, read_npy_image, read_png, reject_exr
from udcshield.data.simulate import SimulatedSplit
from udcshield.physics.psf_codes import DEFAULT_CODE_DIM
from udcshield.physics.tonemap import tonemap
from udcshield.seeding import derive_seed

LAYOUTS: tuple[str, ...] = ("discnet_synth", "mipi", "zhou_toled", "zhou_poled")
"""Layouts accepted by :func:`load_dataset` ("folder" is served by :func:`load_ground_truth_folder`)."""

GROUND_TRUTH_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".hdr")
"""File types read by :func:`load_ground_truth_folder` (``.exr`` is recognised and rejected)."""

_SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "training": ("training", "train"),
    "test": ("test", "testing"),
    "testing": ("testing", "test"),
    "val": ("val", "validation"),
    "validation": ("validation", "val"),
}
_HDR_LAYOUTS = ("discnet_synth", "mipi")
_MAX_LISTED = 5

# (input, target) of one image pair, each (3, H, W) float64 in the file's own value domain.
_Pair = tuple[np.ndarray, np.ndarray]


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" (+{len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir())


def _find_dir(parent: Path, names: tuple[str, ...], what: str) -> Path:
    """First sub-folder of ``parent`` whose name equals one of ``names`` (case-insensitive, in order)."""
    if not parent.is_dir():
        raise FileNotFoundError(f"{what}: folder not found: {parent}")
    by_lower: dict[str, Path] = {}
    for d in _subdirs(parent):
        by_lower.setdefault(d.name.lower(), d)
    for n in names:
        if n.lower() in by_lower:
            return by_lower[n.lower()]
    found = [d.name for d in _subdirs(parent)]
    raise FileNotFoundError(f"{what}: no folder {' or '.join(repr(n) for n in names)} in {parent}; found {found}")


def _split_dir(root: Path, split: str) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    return _find_dir(root, _SPLIT_ALIASES.get(split.lower(), (split,)), f"split {split!r}")


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """stem -> file for the files of ``folder`` with one of ``suffixes`` (case-insensitive); stems unique."""
    out: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix.lower() in suffixes and not f.name.startswith("."):
            if f.stem in out:
                raise ValueError(f"{folder}: two files share the name {f.stem!r}: {out[f.stem].name}, {f.name}")
            out[f.stem] = f
    return out


def _match(inp_dir: Path, tgt_dir: Path, suffixes: tuple[str, ...]) -> list[tuple[str, Path, Path]]:
    inp, tgt = _files(inp_dir, suffixes), _files(tgt_dir, suffixes)
    kinds = "/".join(suffixes)
    if not inp and not tgt:
        raise FileNotFoundError(f"no {kinds} files in {inp_dir} or {tgt_dir}")
    if not inp:
        raise FileNotFoundError(f"no {kinds} input files in {inp_dir}")
    if not tgt:
        raise FileNotFoundError(f"no {kinds} ground-truth files in {tgt_dir}")
    only_inp = sorted(set(inp) - set(tgt))
    only_tgt = sorted(set(tgt) - set(inp))
    if only_inp or only_tgt:
        parts = []
        if only_inp:
            parts.append(f"{len(only_inp)} input file(s) without ground truth in {tgt_dir}: {_listing(only_inp)}")
        if only_tgt:
            parts.append(f"{len(only_tgt)} ground-truth file(s) without input in {inp_dir}: {_listing(only_tgt)}")
        raise ValueError("unmatched pairs: " + "; ".join(parts))
    return [(s, inp[s], tgt[s]) for s in sorted(inp)]


def _check_hdr(arr: np.ndarray, p: Path) -> np.ndarray:
    if arr.size and arr.min() < 0:
        raise ValueError(f"{p}: negative values (min {arr.min():.3g}) in a linear HDR image")
    return arr


def _hdr_pairs(split_dir: Path, max_images: int | None) -> Iterator[tuple[str, _Pair, str]]:
    inp_dir = _find_dir(split_dir, ("input",), "input folder")
    tgt_dir = _find_dir(split_dir, ("GT",), "ground-truth folder")
    items = _match(inp_dir, tgt_dir, (".npy",))
    for stem, fi, ft in items[:max_images]:
        a = _check_hdr(read_npy_image(fi), fi)
        b = _check_hdr(read_npy_image(ft), ft)
        yield stem, (a, b), f"{fi} / {ft}"


def _unit_range(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 / uint16 / float-in-[0,1] image array -> float64 in [0, 1]."""
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{where}: unsupported dtype {arr.dtype}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{where}: contains NaN or Inf")
    if out.size and (out.min() < 0 or out.max() > 1):
        raise ValueError(f"{where}: float values must lie in [0, 1], got [{out.min():.3g}, {out.max():.3g}]")
    return out


def _default_mat_keys(split: str) -> list[tuple[str, str]]:
    names = list(_SPLIT_ALIASES.get(split.lower(), (split,)))
    if "validation" in names or "val" in names:
        names = ["val", *[n for n in names if n != "val"]]
    pairs = [(f"{n}_display", f"{n}_gt") for n in names]
    pairs += [(f"{n}_display", f"{n}_gt") for n in ("val", "test", "train") if n not in names]
    return pairs + [("display", "gt")]


def _srgb_pairs(
    split_dir: Path, split: str, max_images: int | None, mat_keys: tuple[str, str] | None
) -> Iterator[tuple[str, _Pair, str]]:
    dirs = {d.name.lower(): d for d in _subdirs(split_dir)}
    if "lq" in dirs or "hq" in dirs:
        inp_dir = _find_dir(split_dir, ("LQ",), "degraded (LQ) folder")
        tgt_dir = _find_dir(split_dir, ("HQ",), "ground-truth (HQ) folder")
        for stem, fi, ft in _match(inp_dir, tgt_dir, (".png",))[:max_images]:
            yield stem, (read_png(fi), read_png(ft)), f"{fi} / {ft}"
        return
    mats = sorted(f for f in split_dir.iterdir() if f.is_file() and f.suffix.lower() == ".mat")
    if not mats:
        raise FileNotFoundError(f"no LQ/HQ folders and no .mat files in {split_dir}")
    where: dict[str, list[Path]] = {}
    for m in mats:
        for k in _mat_keys(m):
            where.setdefault(k, []).append(m)
    if mat_keys is not None:
        if len(mat_keys) != 2:
            raise ValueError(f"mat_keys must be a pair (input key, ground-truth key), got {mat_keys!r}")
        candidates = [(str(mat_keys[0]), str(mat_keys[1]))]
    else:
        candidates = _default_mat_keys(split)
    chosen = next(((ki, kt) for ki, kt in candidates if ki in where and kt in where), None)
    if chosen is None:
        tried = ", ".join(f"{ki}/{kt}" for ki, kt in candidates)
        found = ", ".join(f"{k} ({', '.join(m.name for m in ms)})" for k, ms in sorted(where.items()))
        raise ValueError(f"no key pair {tried} in the .mat files of {split_dir}; keys found: {found or 'none'}")
    for k in chosen:
        if len(where[k]) > 1:
            raise ValueError(f"key {k!r} is in several .mat files: {', '.join(m.name for m in where[k])}")
    ki, kt = chosen
    fi, ft = where[ki][0], where[kt][0]
    a = read_mat_arrays(fi, [ki])[ki]
    b = read_mat_arrays(ft, [kt])[kt] if ft != fi or kt != ki else a
    arrays = []
    for arr, f, k in ((a, fi, ki), (b, ft, kt)):
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"{f}: {k!r} must have shape (N, H, W, 3), got {arr.shape}")
        arrays.append(arr)
    a, b = arrays
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {fi.name}:{ki} is {a.shape}, {ft.name}:{kt} is {b.shape}")
    n = a.shape[0] if max_images is None else min(a.shape[0], max_images)
    for i in range(n):
        w = f"{fi}:{ki}[{i}] / {ft}:{kt}[{i}]"
        ai = _unit_range(a[i], f"{fi}:{ki}[{i}]").transpose(2, 0, 1)
        bi = _unit_range(b[i], f"{ft}:{kt}[{i}]").transpose(2, 0, 1)
        yield f"{fi.stem}_{i:04d}", (ai, bi), w


def _check_int(x: object, name: str, *, minimum: int = 1, none_ok: bool = False) -> None:
    if x is None and none_ok:
        return
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise ValueError(f"{name} must be {'None or ' if none_ok else ''}an int >= {minimum}, got {x!r}")


def _positive(x: float, name: str) -> float:
    v = float(x)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {x!r}")
    return v


def load_dataset(
    layout: str,
    root: str | Path,
    *,
    split: str,
    patch_size: int | None,
    patches_per_image: int,
    seed: int,
    knee: float = 0.25,
    saturation: float = 500.0,
    max_images: int | None = None,
    mat_keys: tuple[str, str] | None = None,
) -> SimulatedSplit:
    """Load a real UDC dataset split as paired patches in the network domain.

    Args:
        layout: one of :data:`LAYOUTS` (see the module docstring for each folder layout and its paper).
        root: dataset folder holding the split folders.
        split: split name, e.g. "train", "test", "val"/"validation" (aliases in the module docstring);
            it also enters the crop seed stage ``f"dataset/{split}"``.
        patch_size: crop side P >= 1, or None for whole images (all must then share one shape).
        patches_per_image: crops per image pair (>= 1); ignored when ``patch_size`` is None.
        seed: global seed >= 0 for the crop positions.
        knee: tone-map knee > 0 (HDR layouts only). saturation: clip level > 0 (HDR layouts only).
        max_images: read only the first ``max_images`` pairs in sorted file-name order (None: all).
        mat_keys: (input key, ground-truth key) for the Zhou ``.mat`` release; default: try
            ``<split>_display``/``<split>_gt`` (``val_*`` for validation), then ``val_*``, ``test_*``,
            ``train_*`` and ``display``/``gt``.

    Returns:
        :class:`SimulatedSplit`: inputs / targets (N, 3, P, P) (or (N, 3, H, W)) float32 in [0, 1], image
        ids ``"<stem>/<k:03d>"`` in sorted stem order, psf_index all -1 (unknown), kernel_code (N, 5)
        zeros. The DISCNet release layout returns 9 pairs per image instead, ids
        ``"<stem>/psf<k>/<j:03d>"``, psf_index 0..8 and the release's kernel codes
        (:func:`udcshield.data.discnet_release.load_release_split`).

    Raises:
        FileNotFoundError: missing root, split or sub-folder, or no data files.
        ValueError: unknown layout, unmatched pairs, input/target shape mismatch, wrong ndim or channel
        count, NaN/Inf, corrupt/pickled/HDF5 file, negative values in linear HDR, patch larger than an
        image, differing image shapes with ``patch_size=None``, bad arguments. Messages name the file.
    """
    if layout == "folder":
        raise ValueError(
            "layout 'folder' holds ground-truth photos only (no pairs); read it with "
            "udcshield.data.datasets.load_ground_truth_folder(root) and degrade the images with the simulator"
        )
    if layout not in LAYOUTS:
        raise ValueError(
            f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)} "
            "(and 'folder' via load_ground_truth_folder)"
        )
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    _check_int(patch_size, "patch_size", none_ok=True)
    _check_int(patches_per_image, "patches_per_image")
    _check_int(seed, "seed", minimum=0)
    _check_int(max_images, "max_images", none_ok=True)
    k = _positive(knee, "knee")
    sat = _positive(saturation, "saturation")

    if layout == "discnet_synth" and is_release_layout(root):
        return load_release_split(root, split, patch_size=patch_size, patches_per_image=patches_per_image,
                                  seed=seed, knee=k, saturation=sat, max_images=max_images)
    split_dir = _split_dir(Path(root), split)
    to_net: Callable[[np.ndarray], np.ndarray]
    if layout in _HDR_LAYOUTS:
        pairs = _hdr_pairs(split_dir, max_images)

        def to_net(x: np.ndarray) -> np.ndarray:
            return tonemap(np.clip(x, 0.0, sat), k)

    else:
        pairs = _srgb_pairs(split_dir, split, max_images, mat_keys)

        def to_net(x: np.ndarray) -> np.ndarray:
            return x

    ins: list[np.ndarray] = []
    tgs: list[np.ndarray] = []
    ids: list[str] = []
    first_shape: tuple[int, ...] | None = None
    first_where = ""
    for stem, (a, b), where in pairs:
        if a.shape != b.shape:
            raise ValueError(f"input/target shape mismatch for {where}: {a.shape[1:]} vs {b.shape[1:]} (H, W)")
        _, h, w = a.shape
        if patch_size is None:
            if first_shape is None:
                first_shape, first_where = a.shape, where
            elif a.shape != first_shape:
                raise ValueError(
                    f"images differ in shape ({where}: {a.shape[1:]}, {first_where}: {first_shape[1:]}); "
                    "pass a patch_size to crop them"
                )
            ins.append(to_net(a).astype(np.float32)[None])
            tgs.append(to_net(b).astype(np.float32)[None])
            ids.append(f"{stem}/000")
            continue
        p = int(patch_size)
        if p > h or p > w:
            raise ValueError(f"patch_size {p} is larger than the image {h}x{w} of {where}")
        rng = np.random.default_rng(derive_seed(int(seed), f"dataset/{split}", stem))
        n = int(patches_per_image)
        ci = np.empty((n, 3, p, p), dtype=np.float32)
        ct = np.empty((n, 3, p, p), dtype=np.float32)
        for j in range(n):
            y0 = int(rng.integers(0, h - p + 1))
            x0 = int(rng.integers(0, w - p + 1))
            ci[j] = to_net(a[:, y0 : y0 + p, x0 : x0 + p])
            ct[j] = to_net(b[:, y0 : y0 + p, x0 : x0 + p])
            ids.append(f"{stem}/{j:03d}")
        ins.append(ci)
        tgs.append(ct)
    inputs = np.concatenate(ins, axis=0)
    targets = np.concatenate(tgs, axis=0)
    psf_index = np.full(len(ids), -1, dtype=np.int64)
    return SimulatedSplit(inputs=inputs, targets=targets, image_ids=ids, psf_index=psf_index,
                          kernel_code=np.zeros((len(ids), DEFAULT_CODE_DIM), dtype=np.float32))


def load_ground_truth_folder(
    root: str | Path, *, max_images: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """Read a folder of ground-truth photos (layout "folder") as linear images for the simulator.

    Reads the files of ``root`` (not sub-folders) with a suffix in :data:`GROUND_TRUTH_SUFFIXES`, in
    sorted name order; other files are ignored. 8/16-bit PNG/JPEG/TIFF are sRGB-encoded and linearised
    (:func:`udcshield.physics.tonemap.srgb_to_linear`); Radiance ``.hdr`` and float TIFF are linear as
    stored. ``.exr`` files raise (no EXR decoder is available).

    Returns:
        list of (stem, (3, H, W) float64 linear radiance >= 0); shapes may differ between images.

    Raises:
        FileNotFoundError: missing folder or no readable image files. ValueError: EXR present, two
        files with the same stem, corrupt files (message names the file).
    """
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {folder}")
    _check_int(max_images, "max_images", none_ok=True)
    exr = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() == ".exr")
    if exr:
        reject_exr(folder / exr[0])
    files = _files(folder, GROUND_TRUTH_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(GROUND_TRUTH_SUFFIXES)}) in {folder}")
    return [(stem, read_linear_image(f)) for stem, f in list(files.items())[:max_images]]


def load_psf_bank(root: str | Path) -> np.ndarray:
    """Read the PSFs of a DISCNet SYNTH dataset (Feng et al., CVPR 2021).

    ``root/PSF/*.npy``: each file holds one PSF (h, w, 3) / (3, h, w) or a stack (K, h, w, 3) /
    (K, 3, h, w); files are read in sorted name order and must share h x w. When ``root/PSF`` holds no
    ``.npy`` file but the release's ``root/PSF/ZTE_new`` folder, its nine PSFs
    ``ZTE_new_psf_<k>.npy`` are read in k order (k = 1..9, so entry k - 1 is PSF k, matching the
    release reader's ``psf_index``; see :func:`udcshield.data.discnet_release.release_psfs`). Each
    channel is normalised to unit sum.

    Returns:
        (K, 3, h, w) float64, >= 0, each (k, c) slice summing to 1. The simulator additionally needs
        square, odd-sized PSFs.

    Raises:
        FileNotFoundError: no PSF folder or no ``.npy`` files. ValueError: bad shape, negative values,
        NaN/Inf, zero-sum channel, differing sizes (message names the file).
    """
    folder = _find_dir(Path(root), ("PSF",), "PSF folder")
    files = _files(folder, (".npy",))
    if not files and any(d.name.lower() == "zte_new" for d in _subdirs(folder)):
        bank = release_psfs(root)
        return bank / bank.sum(axis=(2, 3), keepdims=True)
    if not files:
        raise FileNotFoundError(f"no .npy PSF files in {folder}")
    bank: list[np.ndarray] = []
    for f in files.values():
        try:
            arr = np.load(f, allow_pickle=False)
        except Exception as exc:
            raise ValueError(f"{f}: not a readable .npy array: {exc}") from exc
        arr = np.asarray(arr, dtype=np.float64) if np.asarray(arr).dtype.kind in "biuf" else None
        if arr is None or arr.ndim not in (3, 4):
            raise ValueError(f"{f}: expected a PSF (h, w, 3) / (3, h, w) or a stack of them")
        stack = arr[None] if arr.ndim == 3 else arr
        if stack.shape[-1] == 3:
            stack = stack.transpose(0, 3, 1, 2)
        elif stack.shape[1] != 3:
            raise ValueError(f"{f}: expected 3 colour channels, got shape {arr.shape}")
        if not np.all(np.isfinite(stack)) or stack.min() < 0:
            raise ValueError(f"{f}: PSF must be finite and >= 0")
        sums = stack.sum(axis=(2, 3), keepdims=True)
        if np.any(sums <= 0):
            raise ValueError(f"{f}: PSF has a channel with zero sum")
        if bank and stack.shape[2:] != bank[0].shape[2:]:
            raise ValueError(f"{f}: PSF size {stack.shape[2:]} differs from {bank[0].shape[2:]}")
        bank.append(stack / sums)
    return np.concatenate(bank, axis=0)
