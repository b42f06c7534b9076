"""Benchmark: UDC simulation throughput (images/s) at 800 x 800, the DISCNet SYNTH size.

    python -m benchmarks.simulate [--quick] [--size 800] [--repeats 3]

Measures PSF computation (per mask kind) and image formation (pseudo-HDR -> FFT convolution ->
clip -> tone map) for whole frames, on the CPU (numpy). Writes benchmarks/results/simulate_cpu.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import environment, write_result
from udcshield.physics.formation import degrade
from udcshield.physics.hdr import pseudo_hdr
from udcshield.physics.psf import compute_psf
from udcshield.physics.tonemap import srgb_to_linear, tonemap

OPTICS = dict(pitch_um=168.0, focal_length_mm=4.67, f_number=2.0, wavelengths_nm=(610.0, 530.0, 470.0),
              sensor_pitch_um=2.0, oversample=4)


def time_psf(kind: str, open_ratio: float, support: int, repeats: int) -> float:
    """Median seconds for one 3-wavelength PSF."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        compute_psf(mask_kind=kind, open_ratio=open_ratio, support_px=support, **OPTICS)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_formation(size: int, psf: np.ndarray, repeats: int) -> float:
    """Median seconds to simulate one size x size frame (pseudo-HDR, blur, clip, tone map both sides)."""
    rng = np.random.default_rng(0)
    photo = rng.random((3, size, size))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        scene = pseudo_hdr(srgb_to_linear(photo), rng)
        tonemap(np.clip(scene, 0, 500.0))
        tonemap(degrade(scene, psf, saturation=500.0))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 x 256 frames, 1 repeat")
    parser.add_argument("--size", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size, repeats = (256, 1) if args.quick else (args.size, args.repeats)
    psf_times = {f"{kind}_support{s}": time_psf(kind, ratio, s, repeats)
                 for kind, ratio in (("toled", 0.238), ("poled", 0.4), ("circle", 0.4), ("open", 1.0))
                 for s in (41, 65)}
    psf = compute_psf(mask_kind="toled", open_ratio=0.238, support_px=65, **OPTICS)
    frame = time_formation(size, psf, repeats)
    result = {"environment": environment("cpu"), "frame_size": size, "psf_support_formation": 65,
              "psf_seconds": psf_times, "formation_seconds_per_frame": frame, "images_per_s": 1.0 / frame}
    path = write_result("simulate_cpu" + ("_quick" if args.quick else ""), result)
    print(f"{size}x{size}: {1.0 / frame:.2f} images/s ({frame * 1000:.0f} ms/frame); PSF toled/65: "
          f"{psf_times['toled_support65'] * 1000:.0f} ms -> {path}")


if __name__ == "__main__":
    main()
