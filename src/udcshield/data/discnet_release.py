"""The DISCNet SYNTH release as it ships: ground truth, nine PSFs, their kernel codes -> paired patches.

Dataset of Feng et al., "Removing Diffraction Image Artifacts in Under-Display Camera via Dynamic Skip
Connection Network" (DISCNet), CVPR 2021, as documented in the release's ``datasets/README.md`` and made
by its ``data_scripts/data_simulation.py`` and ``generate_info_list.py``. ``root`` is the release's
``datasets`` folder (the one holding ``synthetic_data`` and ``PSF``)::

    synthetic_data/GT/{train,test}/*.npy       ground truth, linear HDR float (800, 800, 3) (2,016 / 360 files)
    synthetic_data/input/ZTE_new_<k>/{train,test}/*.npy
                                               optional: UDC inputs already simulated with PSF k (k = 1..9)
    PSF/ZTE_new/ZTE_new_psf_<k>.npy            the nine PSFs (k = 1..9, one per field angle), (h, w, 3)
                                               float (800 x 800 in the release), channel c blurs colour c
    PSF/kernel_code/ZTE_new_code_<k>.npy       5-D PCA kernel code of PSF k, shape (5,)
    PSF/kernel_info_list/ZTE_new/ZTE_new_code_<k>_<split>.txt
                                               optional lists "<file name> <code path>": every image of the
                                               split with the code of PSF k; not read (the reader derives
                                               the same pairing, and the lists hold absolute paths of the
                                               machine that wrote them)

Inputs (:func:`discnet_convolve`, the release's simulation): the ground truth is zero-padded by 200 px on
every side; PSF k is zero-padded (centred, an odd remainder on the bottom/right) or centre-cropped to the
padded size; each colour channel is convolved circularly by FFT with the PSF's centre pixel
(index ``n // 2`` per axis of the padded PSF) as origin; the magnitude of the result is cropped back to
the image and clipped to [0, 500]. (An 800 x 800 PSF, padded by 200 px per side, keeps its centre pixel
(400, 400) on that origin; an odd-sized PSF in an even-sized padded frame sits one pixel before it, so its
output shifts by one pixel, exactly as the release script would shift it.) PSFs are used as stored (no
renormalisation, as in the release). The release computes in float32 FFTs; this module in float64, so
values agree to float32 round-off. When
``synthetic_data/input/ZTE_new_<k>/<split>`` exists, its files are read instead of simulating PSF k (one
input file per ground-truth file, paired by name).

Split (as the release's train and test configs): every image of the split is paired with each of the
nine PSFs -- train with all nine, test with all nine -- so a split of M images yields 9 M pairs, in
PSF-major order (PSF 1's pairs for every image in sorted name order, then PSF 2's, ...). No PSF is drawn
at random. Each pair carries ``psf_index = k - 1`` (0..8) and ``kernel_code`` = the release's code of
PSF k. Both sides are then clipped at ``saturation`` and tone-mapped v / (v + knee) (DISCNet: 500, 0.25),
as the pre-paired layout of :mod:`udcshield.data.datasets`. (The release's training loader tone-maps its
ground truth without clipping; ground truth above ``saturation`` therefore differs from it.)

Patches: ``patches_per_image`` aligned crops per (image, PSF) pair from
``np.random.default_rng(derive_seed(seed, f"dataset/{split}", f"{stem}/psf{k - 1}"))``: independent of the
file order and of the other files. Image ids: ``"<stem>/psf<k - 1>/<j:03d>"`` (``"0001/psf4/002"``: file
0001, release PSF 5, crop 2), unique across PSFs; ``j`` is 000 for whole images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from udcshield.data.npy import load_npy_array
from udcshield.data.readers import read_npy_image
from udcshield.data.simulate import SimulatedSplit
from udcshield.physics.tonemap import tonemap
from udcshield.seeding import derive_seed

PSF_TYPE = "ZTE_new"
"""PSF family of the release (``--psf_type`` of its scripts)."""
PSF_COUNT = 9
"""PSFs in the release, numbered 1..9 in file names (psf_index 0..8)."""
PAD = 200
"""Zero padding (px per side) of the release's simulation (``--pad_size``)."""
CLIP = 500.0
"""Clip level of the release's simulated inputs."""

_SPLIT_ALIASES = {"train": ("train", "training"), "test": ("test", "testing"), "val": ("val", "validation")}


def _child(parent: Path, *names: str) -> Path | None:
    """Sub-folder of ``parent`` named one of ``names`` (case-insensitive, first match in order), or None."""
    if not parent.is_dir():
        return None
    by_lower: dict[str, Path] = {}
    for d in sorted(parent.iterdir()):
        if d.is_dir():
            by_lower.setdefault(d.name.lower(), d)
    return next((by_lower[n.lower()] for n in names if n.lower() in by_lower), None)


def _require(parent: Path, *names: str) -> Path:
    found = _child(parent, *names)
    if found is None:
        raise FileNotFoundError(f"DISCNet release: no folder {' or '.join(repr(n) for n in names)} in {parent}")
    return found


def _split_names(split: str) -> tuple[str, ...]:
    s = split.lower()
    for names in _SPLIT_ALIASES.values():
        if s in names:
            return (s, *[n for n in names if n != s])
    return (split,)


def is_release_layout(root: str | Path) -> bool:
    """True when ``root`` holds the release layout (a ``synthetic_data/GT`` folder)."""
    data = _child(Path(root), "synthetic_data")
    return data is not None and _child(data, "GT") is not None


def _npy_files(folder: Path) -> dict[str, Path]:
    """stem -> ``.npy`` file of ``folder`` (suffix case-insensitive, hidden files skipped); stems unique."""
    out: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix.lower() == ".npy" and not f.name.startswith("."):
            if f.stem in out:
                raise ValueError(f"{folder}: two files share the name {f.stem!r}: {out[f.stem].name}, {f.name}")
            out[f.stem] = f
    return out


def _numbered(folder: Path, kind: str) -> list[Path]:
    """The nine files ``<PSF_TYPE>_<kind>_<k>.npy`` (k = 1..9) of ``folder``; exactly these nine ``.npy``."""
    files = _npy_files(folder)
    want = [f"{PSF_TYPE}_{kind}_{k}" for k in range(1, PSF_COUNT + 1)]
    by_lower = {s.lower(): f for s, f in files.items()}
    missing = [w for w in want if w.lower() not in by_lower]
    if missing:
        raise FileNotFoundError(f"DISCNet release: missing {folder / (missing[0] + '.npy')} "
                                f"({len(missing)} of the {PSF_COUNT} {kind} files missing)")
    extra = sorted(f.name for s, f in files.items() if s.lower() not in {w.lower() for w in want})
    if extra:
        raise ValueError(f"DISCNet release: {folder} must hold exactly the {PSF_COUNT} files "
                         f"{PSF_TYPE}_{kind}_1..{PSF_COUNT}.npy, found {len(files)}; "
                         f"unexpected: {', '.join(extra[:5])}")
    return [by_lower[w.lower()] for w in want]


def release_psfs(root: str | Path) -> np.ndarray:
    """The nine release PSFs as stored, ``PSF/ZTE_new/ZTE_new_psf_<k>.npy`` in k order.

    Returns:
        (9, 3, h, w) float64 (values cast through float32, as the release script loads them), >= 0,
        no normalisation; index 0 is ``ZTE_new_psf_1``.

    Raises:
        FileNotFoundError: folder or one of the nine files missing. ValueError: other ``.npy`` files in
        the folder, pickled/corrupt file, not (h, w, 3), NaN/Inf, negative values, a zero-sum channel,
        PSFs of differing sizes (message names the file).
    """
    folder = _require(_require(Path(root), "PSF"), PSF_TYPE)
    bank: list[np.ndarray] = []
    for f in _numbered(folder, "psf"):
        psf = read_npy_image(f).astype(np.float32).astype(np.float64)
        if psf.min() < 0:
            raise ValueError(f"{f}: PSF has negative values (min {psf.min():.3g})")
        if np.any(psf.sum(axis=(1, 2)) <= 0):
            raise ValueError(f"{f}: PSF has a colour channel with zero sum")
        if bank and psf.shape != bank[0].shape:
            raise ValueError(f"{f}: PSF size {psf.shape[1:]} differs from {bank[0].shape[1:]} of {PSF_TYPE}_psf_1")
        bank.append(psf)
    return np.stack(bank)


def _load_code(f: Path) -> np.ndarray:
    arr = load_npy_array(f)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{f}: expected a numeric kernel-code array")
    code = np.squeeze(arr)
    if code.ndim != 1 or code.size < 1:
        raise ValueError(f"{f}: a kernel code must be a vector (D,), got shape {arr.shape}")
    if not np.all(np.isfinite(code)):
        raise ValueError(f"{f}: kernel code contains NaN or Inf")
    return code.astype(np.float32)


def release_codes(root: str | Path) -> np.ndarray:
    """The release's kernel codes, ``PSF/kernel_code/ZTE_new_code_<k>.npy`` in k order.

    Returns:
        (9, D) float32 (D = 5 in the release); row k - 1 is the code of PSF k. Stored shapes (D,),
        (1, D) or (D, 1, 1) are accepted.

    Raises:
        FileNotFoundError: folder or one of the nine files missing. ValueError: other ``.npy`` files in
        the folder (code count not 9), pickled/corrupt file, not a vector, NaN/Inf, codes of differing
        lengths (message names the file).
    """
    folder = _require(_require(Path(root), "PSF"), "kernel_code")
    codes: list[np.ndarray] = []
    for f in _numbered(folder, "code"):
        code = _load_code(f)
        if codes and code.shape != codes[0].shape:
            raise ValueError(f"{f}: kernel code length {code.size} differs from {codes[0].size} of {PSF_TYPE}_code_1")
        codes.append(code)
    return np.stack(codes)


def _match_dim(k: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) kernel -> ``shape``: zero-pad centred (odd remainder bottom/right), then centre-crop."""
    ph, pw = max(shape[0] - k.shape[0], 0), max(shape[1] - k.shape[1], 0)
    k = np.pad(k, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    y0, x0 = (k.shape[0] - shape[0]) // 2, (k.shape[1] - shape[1]) // 2
    return k[y0 : y0 + shape[0], x0 : x0 + shape[1]]


def discnet_convolve(scene: np.ndarray, psf: np.ndarray, pad: int = PAD) -> np.ndarray:
    """The release's UDC simulation of one image (procedure in the module docstring).

    Args:
        scene: (3, H, W) linear HDR ground truth >= 0 (float).
        psf: (3, h, w) PSF as stored, channel c blurring colour c (any size; padded or cropped to the
            padded image).
        pad: zero padding per side >= 0 (release: 200).

    Returns:
        (3, H, W) float64 in [0, 500]: clip(|pad(scene) (*) psf|, 0, 500), cropped back to H x W.
    """
    if scene.ndim != 3 or psf.ndim != 3 or scene.shape[0] != 3 or psf.shape[0] != 3:
        raise ValueError(f"scene and psf must be (3, H, W) and (3, h, w), got {scene.shape} and {psf.shape}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")
    return _convolve(scene, _spectra(psf, scene.shape[1:], int(pad)), int(pad))


def _spectra(psf: np.ndarray, size: tuple[int, ...], pad: int) -> np.ndarray:
    """(3, H + 2 pad, W / 2 + pad + 1) complex: rfft2 of each PSF channel, matched and origin-shifted."""
    shape = (int(size[0]) + 2 * pad, int(size[1]) + 2 * pad)
    return np.stack([np.fft.rfft2(np.fft.ifftshift(_match_dim(np.asarray(psf[c], dtype=np.float64), shape)))
                     for c in range(3)])


def _convolve(scene: np.ndarray, spectra: np.ndarray, pad: int) -> np.ndarray:
    _, h, w = scene.shape
    shape = (h + 2 * pad, w + 2 * pad)
    out = np.empty((3, h, w), dtype=np.float64)
    for c in range(3):
        img = np.zeros(shape)
        img[pad : pad + h, pad : pad + w] = scene[c]
        conv = np.fft.irfft2(np.fft.rfft2(img) * spectra[c], s=shape)
        out[c] = np.abs(conv[pad : pad + h, pad : pad + w])
    return np.clip(out, 0.0, CLIP)


def _hdr(f: Path) -> np.ndarray:
    arr = read_npy_image(f)
    if arr.min() < 0:
        raise ValueError(f"{f}: negative values (min {arr.min():.3g}) in a linear HDR image")
    return arr


def release_folders(root: str | Path, split: str) -> list[Path]:
    """Folders a split is read from: ground truth, PSFs, kernel codes, and pre-simulated input folders."""
    r = Path(root)
    gt = _require(_require(_require(r, "synthetic_data"), "GT"), *_split_names(split))
    psf = _require(r, "PSF")
    out = [gt, _require(psf, PSF_TYPE), _require(psf, "kernel_code")]
    return out + [d for k in range(1, PSF_COUNT + 1) if (d := _simulated_dir(r, split, k)) is not None]


def _simulated_dir(root: Path, split: str, k: int) -> Path | None:
    """``synthetic_data/input/ZTE_new_<k>/<split>`` when it exists (case-insensitive), else None."""
    folder: Path | None = root
    for names in (("synthetic_data",), ("input",), (f"{PSF_TYPE}_{k}",), _split_names(split)):
        folder = _child(folder, *names) if folder is not None else None
    return folder


def _pairs(root: Path, split: str, max_images: int | None) -> Iterator[tuple[int, str, np.ndarray, np.ndarray, str]]:
    """(psf_index, stem, input, target, where) per pair, PSF-major; (3, H, W) float64 linear, input <= 500."""
    gt_dir = release_folders(root, split)[0]
    gts = _npy_files(gt_dir)
    if not gts:
        raise FileNotFoundError(f"DISCNet release: no .npy ground-truth files in {gt_dir}")
    stems = sorted(gts)[:max_images]
    psfs = release_psfs(root)
    for k in range(PSF_COUNT):
        sim_dir = _simulated_dir(root, split, k + 1)
        given = _npy_files(sim_dir) if sim_dir is not None else {}
        if sim_dir is not None:
            missing = [s for s in stems if s not in given]
            extra = sorted(set(given) - set(gts))
            if missing or extra:
                what = (f"no input {sim_dir / (missing[0] + '.npy')} for ground truth {gts[missing[0]]}" if missing
                        else f"input {given[extra[0]]} has no ground truth in {gt_dir}")
                raise ValueError(f"DISCNet release: unmatched pairs: {what}")
        cache: dict[tuple[int, ...], np.ndarray] = {}  # PSF spectra per image size
        for stem in stems:
            target = _hdr(gts[stem])
            if sim_dir is None:
                size = target.shape[1:]
                if size not in cache:
                    cache.clear()
                    cache[size] = _spectra(psfs[k], size, PAD)
                yield k, stem, _convolve(target, cache[size], PAD), target, f"{gts[stem]} under PSF {k + 1}"
                continue
            inp = _hdr(given[stem])
            if inp.shape != target.shape:
                raise ValueError(f"input/target shape mismatch: {given[stem]} is {inp.shape[1:]}, "
                                 f"{gts[stem]} is {target.shape[1:]} (H, W)")
            yield k, stem, inp, target, f"{given[stem]} / {gts[stem]}"


def load_release_split(
    root: str | Path,
    split: str,
    *,
    patch_size: int | None,
    patches_per_image: int,
    seed: int,
    knee: float = 0.25,
    saturation: float = CLIP,
    max_images: int | None = None,
) -> SimulatedSplit:
    """One split of the release as paired patches in the network domain (layout in the module docstring).

    Called by :func:`udcshield.data.datasets.load_dataset` (layout ``"discnet_synth"``), which checks the
    arguments first.

    Args:
        root: the release's ``datasets`` folder. split: "train" or "test" (aliases "training",
            "testing"; any other name is looked up as given).
        patch_size: crop side P >= 1, or None for whole images (all must then share one shape).
        patches_per_image: crops per (image, PSF) pair (>= 1); ignored when ``patch_size`` is None.
        seed: global seed >= 0 for the crop positions. knee: tone-map knee > 0. saturation: clip > 0.
        max_images: use only the first ``max_images`` ground-truth images in sorted name order (each still
            under all nine PSFs); None: all.

    Returns:
        :class:`SimulatedSplit`: N = 9 * M * patches_per_image (M images; 9 * M for whole images) pairs,
        inputs / targets (N, 3, P, P) float32 in [0, 1], ids ``"<stem>/psf<k>/<j:03d>"``, psf_index (N,)
        int64 in 0..8, kernel_code (N, D) float32 (the release's codes, D = 5).

    Raises:
        FileNotFoundError: missing folder or file (PSF, code, ground truth, pre-simulated input).
        ValueError: PSF or code count not 9, unmatched pre-simulated inputs, bad shapes, NaN/Inf, negative
        values, pickled/corrupt files, patch larger than an image. Messages name the file.
    """
    r = Path(root)
    codes = release_codes(r)
    ins: list[np.ndarray] = []
    tgs: list[np.ndarray] = []
    ids: list[str] = []
    index: list[int] = []
    first: tuple[tuple[int, ...], str] | None = None

    def to_net(x: np.ndarray) -> np.ndarray:
        return tonemap(np.clip(x, 0.0, float(saturation)), float(knee)).astype(np.float32)

    for k, stem, a, b, where in _pairs(r, split, max_images):
        _, h, w = b.shape
        if patch_size is None:
            if first is not None and b.shape != first[0]:
                raise ValueError(f"images differ in shape ({where}: {b.shape[1:]}, {first[1]}: {first[0][1:]}); "
                                 "pass a patch_size to crop them")
            first = first or (b.shape, where)
            ins.append(to_net(a)[None])
            tgs.append(to_net(b)[None])
            ids.append(f"{stem}/psf{k}/000")
            index.append(k)
            continue
        p = int(patch_size)
        if p > h or p > w:
            raise ValueError(f"patch_size {p} is larger than the image {h}x{w} of {where}")
        rng = np.random.default_rng(derive_seed(int(seed), f"dataset/{split}", f"{stem}/psf{k}"))
        for j in range(int(patches_per_image)):
            y0 = int(rng.integers(0, h - p + 1))
            x0 = int(rng.integers(0, w - p + 1))
            ins.append(to_net(a[:, y0 : y0 + p, x0 : x0 + p])[None])
            tgs.append(to_net(b[:, y0 : y0 + p, x0 : x0 + p])[None])
            ids.append(f"{stem}/psf{k}/{j:03d}")
            index.append(k)
    psf_index = np.asarray(index, dtype=np.int64)
    return SimulatedSplit(inputs=np.concatenate(ins), targets=np.concatenate(tgs), image_ids=ids,
                          psf_index=psf_index, kernel_code=codes[psf_index])


__all__ = ["CLIP", "PAD", "PSF_COUNT", "PSF_TYPE", "discnet_convolve", "is_release_layout", "load_release_split",
           "release_codes", "release_folders", "release_psfs"]
