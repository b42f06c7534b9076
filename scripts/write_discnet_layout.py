"""Write a dataset in the DISCNet SYNTH release layout (Feng et al., CVPR 2021) from the embedded photos and
the physical PSF simulator, so that ``simulate.source: discnet_synth`` can be run end to end without the
release itself (which cannot be downloaded here).

    python -m scripts.write_discnet_layout --out /tmp/discnet_release [--params params.yaml] [--size 256]

The layout, as the release's datasets/README documents it:

- ``synthetic_data/GT/{train,test}/<photo>.npy``: linear HDR ground truth, (H, W, 3) float32 >= 0. Here:
  each photo of ``simulate.train_photos`` / ``simulate.test_photos`` rescaled by ``simulate.scale``,
  centre-cropped to ``--size`` pixels square, sRGB decoded to linear, then made HDR by
  :func:`udcshield.physics.hdr.pseudo_hdr` with ``simulate.hdr`` (seeded per photo);
- ``PSF/ZTE_new/ZTE_new_psf_<k>.npy``, k = 1..9: (s, s, 3) float32 PSFs, each channel summing to 1. Here:
  the simulator's bank for ``simulate.optics`` (:func:`udcshield.pipeline.simulate.make_psf_bank`);
- ``PSF/kernel_code/ZTE_new_code_<k>.npy``: (5,) float32 codes of those PSFs. Here: the bank's PCA codes
  (:func:`udcshield.physics.psf_codes.psf_pca_codes`), as the release computes its own.

The reader (:mod:`udcshield.data.discnet_release`) then simulates the inputs as the release's script does
(zero-pad 200 px, FFT convolution, clip at 500, tone map v / (v + 0.25) on both sides). Refuses to write
into a folder that is not empty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from udcshield.config import ConfigError, load_params
from udcshield.data.sources import load_photo, rescale_image
from udcshield.physics.hdr import pseudo_hdr
from udcshield.physics.psf_codes import psf_pca_codes
from udcshield.physics.tonemap import srgb_to_linear
from udcshield.pipeline.simulate import make_psf_bank
from udcshield.seeding import numpy_rng

RELEASE_PSFS = 9


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window of (3, H, W) ``img`` (ValueError if the image is smaller)."""
    _, h, w = img.shape
    if h < size or w < size:
        raise ValueError(f"image of {h}x{w} px is smaller than --size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return img[:, top:top + size, left:left + size]


def write_layout(out: Path, params_path: str, size: int) -> dict[str, int]:
    """Write the layout under ``out`` (must be absent or empty); returns counts {train, test, psfs}."""
    params = load_params(params_path)
    cfg = params.simulate
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty: choose a new folder")
    if cfg.optics.bank_size != RELEASE_PSFS:
        raise ValueError(f"simulate.optics.bank_size is {cfg.optics.bank_size}; the release layout has "
                         f"{RELEASE_PSFS} PSFs")
    hdr = cfg.hdr
    counts = {}
    for split, photos in (("train", cfg.train_photos), ("test", cfg.test_photos)):
        folder = out / "synthetic_data" / "GT" / split
        folder.mkdir(parents=True)
        for photo in photos:
            ldr = centre_crop(rescale_image(load_photo(photo), cfg.scale), size)
            scene = pseudo_hdr(srgb_to_linear(ldr), numpy_rng(params.seed, "discnet_layout", photo),
                               highlight_threshold=hdr.highlight_threshold, highlight_gain=hdr.highlight_gain,
                               n_light_sources=hdr.n_light_sources, light_gain_range=tuple(hdr.light_gain_range),
                               light_radius_px=tuple(hdr.light_radius_px))
            np.save(folder / f"{photo}.npy", np.ascontiguousarray(scene.transpose(1, 2, 0), dtype=np.float32))
        counts[split] = len(photos)
    bank = make_psf_bank(cfg.optics, params.seed)  # (9, 3, s, s)
    codes = psf_pca_codes(bank)
    (out / "PSF" / "ZTE_new").mkdir(parents=True)
    (out / "PSF" / "kernel_code").mkdir(parents=True)
    for k in range(RELEASE_PSFS):
        np.save(out / "PSF" / "ZTE_new" / f"ZTE_new_psf_{k + 1}.npy", bank[k].transpose(1, 2, 0).astype(np.float32))
        np.save(out / "PSF" / "kernel_code" / f"ZTE_new_code_{k + 1}.npy", codes[k].astype(np.float32))
    counts["psfs"] = RELEASE_PSFS
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="new folder for the release layout")
    parser.add_argument("--params", default="params.yaml", help="params file whose simulate section is used")
    parser.add_argument("--size", type=int, default=256, help="side of the centre crop of each photo, in px")
    args = parser.parse_args(argv)
    try:
        counts = write_layout(args.out, args.params, args.size)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"write_discnet_layout: {err}", file=sys.stderr)
        return 1
    print(f"wrote {counts['train']} train + {counts['test']} test GT scenes and {counts['psfs']} PSFs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
