"""Paired UDC training/test data: photos -> pseudo-HDR scenes -> display camera -> tone-mapped pairs.

Convention (Feng et al., DISCNet, CVPR 2021): the degraded input is clip(scene * psf * transmission
(+ noise), 0, saturation) and the target is the scene clipped at the same saturation; both are
tone-mapped by v / (v + knee) into [0, 1]. Each patch is simulated on a window padded by the PSF radius
and cropped, so no patch sees an artificial border. Each patch draws its randomness (position, PSF of
the bank, HDR highlights and lights, noise) from numpy_rng(seed, "simulate/<split>", image_id), so a
patch does not depend on the order of photos or on the other patches.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from udcshield.data.sources import EMBEDDED_PHOTOS, load_photo, load_photo_file, rescale_image
from udcshield.physics.formation import NOISE_KINDS, degrade
from udcshield.physics.hdr import pseudo_hdr
from udcshield.physics.psf_codes import DEFAULT_CODE_DIM, psf_pca_codes
from udcshield.physics.tonemap import srgb_to_linear, tonemap
from udcshield.seeding import numpy_rng

_HDR_KEYS = tuple(p for p in inspect.signature(pseudo_hdr).parameters if p not in ("linear", "rng"))
_NOISE_KEYS = ("full_well_e", "read_noise_e", "white_level")


@dataclass
class SimulatedSplit:
    """Simulated pairs.

    inputs: (N, 3, P, P) float32 in [0, 1], tone-mapped degraded images (what a restorer sees).
    targets: (N, 3, P, P) float32 in [0, 1], tone-mapped scene clipped at the saturation level.
    image_ids: N ids "<photo>/<patch index, 3 digits>", e.g. "chelsea/003".
    psf_index: (N,) int64, which PSF of the bank blurred each patch (-1: unknown, real datasets).
    kernel_code: (N, D) float32, the DISCNet kernel code (PCA code, D = 5) of each patch's PSF
        (:func:`udcshield.physics.psf_codes.psf_pca_codes`, or the codes a dataset ships); all zeros
        where the PSF is unknown. Default: an empty (0, 5) array, for callers that do not set it.
    """

    inputs: np.ndarray
    targets: np.ndarray
    image_ids: list[str] = field(default_factory=list)
    psf_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kernel_code: np.ndarray = field(default_factory=lambda: np.zeros((0, DEFAULT_CODE_DIM), dtype=np.float32))

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def _photo_key(name: str) -> str:
    return name if name in EMBEDDED_PHOTOS else Path(name).stem


def _load_linear(name: str, scale: float) -> np.ndarray:
    """Embedded photo name or image path -> (3, H, W) linear float64, rescaled."""
    if name in EMBEDDED_PHOTOS:
        img = load_photo(name)
    elif Path(name).suffix:
        img = load_photo_file(name)
    else:
        raise ValueError(f"photo_names entry {name!r} is neither one of {', '.join(EMBEDDED_PHOTOS)} nor an image path")
    return rescale_image(srgb_to_linear(img), scale)


def _check_bank(psf: np.ndarray) -> np.ndarray:
    p = np.asarray(psf, dtype=np.float64)
    if p.ndim == 3:
        p = p[None]
    if p.ndim != 4 or p.shape[1] != 3 or p.shape[2] != p.shape[3] or p.shape[2] % 2 == 0 or p.shape[0] < 1:
        raise ValueError(f"psf must have shape (K, 3, s, s) or (3, s, s) with s odd, got {np.shape(psf)}")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ValueError("psf must be finite and >= 0")
    if np.any(p.sum(axis=(2, 3)) <= 0):
        raise ValueError("psf has a channel with zero sum")
    return p


def simulate_split(
    photo_names: list[str],
    psf: np.ndarray,
    *,
    patch_size: int,
    patches_per_image: int,
    scale: float,
    seed: int,
    split: str,
    hdr: dict | None,
    saturation: float,
    transmission: float | np.ndarray,
    noise: str,
    knee: float = 0.25,
    noise_params: dict | None = None,
    kernel_codes: np.ndarray | None = None,
) -> SimulatedSplit:
    """Simulate ``patches_per_image`` patch pairs from each photo.

    Args:
        photo_names: names from :data:`EMBEDDED_PHOTOS` or paths of image files (id = file stem); unique.
        psf: (K, 3, s, s) PSF bank or a single (3, s, s) PSF, s odd; each patch uses a random entry.
        patch_size: P >= 1. patches_per_image: >= 1.
        scale: photo resize factor in (0, 1] (applied in linear light) before cutting patches.
        seed: global seed >= 0. split: split name, e.g. "train" / "test" (enters the seed stage).
        hdr: keyword arguments of :func:`udcshield.physics.hdr.pseudo_hdr`, or None for plain LDR scenes.
        saturation: clip level > 0 (DISCNet: 500). transmission: float or (3,) vector in (0, 1].
        noise: "none" or "poisson_gaussian". knee: tone-map knee > 0.
        noise_params: optional full_well_e / read_noise_e / white_level for the noise model.
        kernel_codes: (K, D) codes of the bank's PSFs, one row per bank entry; default (None):
            :func:`udcshield.physics.psf_codes.psf_pca_codes` of the bank (D = 5). Computing them draws
            no random numbers, so inputs, targets and psf_index do not depend on this argument.

    Returns:
        :class:`SimulatedSplit` with N = len(photo_names) * patches_per_image pairs in photo order;
        ``kernel_code[i] = kernel_codes[psf_index[i]]`` (float32).
    """
    if isinstance(photo_names, str) or not photo_names:
        raise ValueError(f"photo_names must be a non-empty list of names, got {photo_names!r}")
    keys = [_photo_key(str(n)) for n in photo_names]
    if len(set(keys)) != len(keys):
        raise ValueError(f"photo_names has duplicate photos: {photo_names!r}")
    bank = _check_bank(psf)
    if not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise ValueError(f"patch_size must be an int >= 1, got {patch_size!r}")
    if not isinstance(patches_per_image, (int, np.integer)) or patches_per_image < 1:
        raise ValueError(f"patches_per_image must be an int >= 1, got {patches_per_image!r}")
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string, got {split!r}")
    sat = float(saturation)
    if not math.isfinite(sat) or sat <= 0:
        raise ValueError(f"saturation must be a positive finite number, got {saturation!r}")
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    hdr_kwargs: dict | None = None
    if hdr is not None:
        unknown = sorted(set(hdr) - set(_HDR_KEYS))
        if unknown:
            raise ValueError(f"hdr has unknown keys {unknown}; allowed: {list(_HDR_KEYS)}")
        hdr_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in hdr.items()}
    codes = psf_pca_codes(bank) if kernel_codes is None else np.asarray(kernel_codes, dtype=np.float32)
    if codes.ndim != 2 or codes.shape[0] != bank.shape[0] or not np.all(np.isfinite(codes)):
        raise ValueError(f"kernel_codes must be a finite ({bank.shape[0]}, D) array (one row per PSF of the bank), "
                         f"got shape {codes.shape}")
    noise_kwargs = dict(noise_params or {})
    unknown = sorted(set(noise_kwargs) - set(_NOISE_KEYS))
    if unknown:
        raise ValueError(f"noise_params has unknown keys {unknown}; allowed: {list(_NOISE_KEYS)}")

    p = int(patch_size)
    radius = bank.shape[2] // 2
    win = p + 2 * radius
    n_total = len(photo_names) * int(patches_per_image)
    inputs = np.empty((n_total, 3, p, p), dtype=np.float32)
    targets = np.empty((n_total, 3, p, p), dtype=np.float32)
    psf_index = np.empty(n_total, dtype=np.int64)
    ids: list[str] = []
    row = 0
    for name, key in zip(photo_names, keys):
        lin = _load_linear(str(name), scale)
        _, h, w = lin.shape
        if h < win or w < win:
            raise ValueError(
                f"photo {name!r} at scale {scale} is {h}x{w}, smaller than patch_size + PSF support - 1 = {win}"
            )
        for j in range(int(patches_per_image)):
            image_id = f"{key}/{j:03d}"
            rng = numpy_rng(seed, f"simulate/{split}", image_id)
            y0 = int(rng.integers(0, h - win + 1))
            x0 = int(rng.integers(0, w - win + 1))
            k = int(rng.integers(0, bank.shape[0]))
            scene = lin[:, y0 : y0 + win, x0 : x0 + win]
            if hdr_kwargs is not None:
                scene = pseudo_hdr(scene, rng, **hdr_kwargs)
            degraded = degrade(
                scene, bank[k], transmission=transmission, saturation=sat, noise=noise, rng=rng, **noise_kwargs
            )
            crop = (slice(None), slice(radius, radius + p), slice(radius, radius + p))
            inputs[row] = tonemap(degraded[crop], knee)
            targets[row] = tonemap(np.clip(scene[crop], 0.0, sat), knee)
            psf_index[row] = k
            ids.append(image_id)
            row += 1
    return SimulatedSplit(inputs=inputs, targets=targets, image_ids=ids, psf_index=psf_index,
                          kernel_code=codes[psf_index].astype(np.float32))
