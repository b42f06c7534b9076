"""Benchmark: image stores of quantised adversarial inputs as float32 + zstd against uint8 levels + zstd.

    python -m benchmarks.store_encoding                  # 64 images of 3 x 256 x 256: well under a minute
    python -m benchmarks.store_encoding --quick          # 8 images of 3 x 64 x 64: a few seconds

The image set: random crops of the photos embedded in scikit-image plus a random L-inf perturbation of
``--eps`` levels (uniform in [-eps, eps] / 255, or ``--perturbation sign``: exactly +-eps / 255, as a
saturated PGD leaves it), clipped to [0, 1] and quantised to 8-bit levels k / 255 (float32). The same set
is written with :func:`udcshield.store.zarr_io.write_store` as ``encoding="float32"`` and
``encoding="uint8"`` (one chunk per image, zstd, the store's defaults) to a local temporary folder and read
back whole with :func:`udcshield.store.zarr_io.read_images` (digest verified, as the stages read) and
without verification. Per encoding: bytes on disk (chunk files, and the whole store with its metadata),
bytes per image, write and read throughput (median of ``--repeats``; images/s, and MB/s of float32 image
data, 1 MB = 1e6 bytes), plus the ratio float32 / uint8, and the size of the study's adversarial sets
(3,600 test images x 7 restorers x 2 variants x 7 sets, 3 x 256 x 256 each) extrapolated from the bytes
per image. The round trip is checked to be bit-identical.

Writes ``benchmarks/results/store_encoding_cpu[_quick].json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import environment, write_result  # noqa: E402
from udcshield.data.sources import EMBEDDED_PHOTOS, load_photo  # noqa: E402
from udcshield.store.hashing import array_sha256  # noqa: E402
from udcshield.store.zarr_io import read_images, remove_store, write_store  # noqa: E402

ENCODINGS = ("float32", "uint8")
STUDY = {"test_images": 3600, "restorers": 7, "variants": 2, "sets": 7, "shape": [3, 256, 256]}
MB = 1e6
GB = 1e9


def adversarial_set(n: int, size: int, eps: int, perturbation: str, seed: int) -> np.ndarray:
    """(n, 3, size, size) float32 8-bit levels k / 255: random crops of the embedded photos (those at least
    ``size`` on a side, in turn) plus a random perturbation of ``eps`` levels, clipped and quantised."""
    photos = [p for p in (load_photo(name) for name in EMBEDDED_PHOTOS) if min(p.shape[1:]) >= size]
    if not photos:
        raise SystemExit(f"--size {size}: no embedded photo is that large")
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        photo = photos[i % len(photos)]
        top, left = (int(rng.integers(0, photo.shape[d] - size + 1)) for d in (1, 2))
        crop = photo[:, top:top + size, left:left + size]
        if perturbation == "sign":
            delta = rng.choice(np.array([-eps, eps], np.float64), crop.shape) / 255
        else:
            delta = rng.uniform(-eps, eps, crop.shape) / 255
        levels = np.rint(np.clip(crop + delta, 0.0, 1.0) * 255)
        out[i] = levels.astype(np.float32) / np.float32(255)
    return out


def _bytes(path: Path) -> tuple[int, int]:
    """(bytes of the chunk files of array ``x``, bytes of every file of the store) at ``path``."""
    files = [p for p in path.rglob("*") if p.is_file()]
    chunks = [p for p in (path / "x" / "c").rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in chunks), sum(p.stat().st_size for p in files)


def bench_encoding(images: np.ndarray, encoding: str, folder: Path, repeats: int) -> dict[str, Any]:
    """Write ``images`` with ``encoding`` ``repeats`` times and read them back; sizes and throughputs."""
    n, data_mb = images.shape[0], images.nbytes / MB
    path = folder / f"{encoding}.zarr"
    writes, reads, raw_reads = [], [], []
    for _ in range(repeats):
        remove_store(path)
        start = time.perf_counter()
        with write_store(path, {"stage": "benchmark"}) as w:
            w.add_images("x", images, encoding=encoding)
        writes.append(time.perf_counter() - start)
        start = time.perf_counter()
        back = read_images(path, "x")
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        read_images(path, "x", verify=False)
        raw_reads.append(time.perf_counter() - start)
        if back.tobytes() != images.tobytes():
            raise SystemExit(f"{encoding}: the round trip changed the images")
    chunk_bytes, store_bytes = _bytes(path)

    def rate(seconds: list[float]) -> dict[str, float]:
        s = statistics.median(seconds)
        return {"seconds": s, "images_per_s": n / s, "mb_per_s": data_mb / s}

    return {"chunk_bytes": chunk_bytes, "store_bytes": store_bytes, "bytes_per_image": chunk_bytes / n,
            "fraction_of_float32_values": chunk_bytes / images.nbytes, "write": rate(writes),
            "read_verified": rate(reads), "read_unverified": rate(raw_reads)}


def study_size(bytes_per_image: float, shape: tuple[int, ...]) -> dict[str, float]:
    """The study's adversarial sets at ``bytes_per_image`` for images of ``shape`` (C, H, W), scaled to
    3 x 256 x 256 by the number of values."""
    images = STUDY["test_images"] * STUDY["restorers"] * STUDY["variants"] * STUDY["sets"]
    scale = int(np.prod(STUDY["shape"])) / int(np.prod(shape))
    total = images * bytes_per_image * scale
    return {"images": images, "bytes": total, "gb": total / GB}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 images of 3 x 64 x 64, one repeat")
    parser.add_argument("--images", type=int, default=None, help="images in the set (default 64; quick 8)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 256; quick 64)")
    parser.add_argument("--eps", type=int, default=8, help="perturbation bound in 8-bit levels (8: 8/255)")
    parser.add_argument("--perturbation", choices=("uniform", "sign"), default="uniform")
    parser.add_argument("--repeats", type=int, default=None, help="timed writes and reads (default 3; quick 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.images or (8 if args.quick else 64)
    size = args.size or (64 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 3)
    if min(n, size, repeats) < 1:
        raise SystemExit("--images, --size and --repeats must be >= 1")
    start = time.perf_counter()
    images = adversarial_set(n, size, args.eps, args.perturbation, args.seed)
    with tempfile.TemporaryDirectory(prefix="udcshield-store-bench-") as tmp:
        rows = {enc: bench_encoding(images, enc, Path(tmp), repeats) for enc in ENCODINGS}
    shape = images.shape[1:]
    for row in rows.values():
        row["study"] = study_size(row["bytes_per_image"], shape)
    result: dict[str, Any] = {
        "environment": environment("cpu"),
        "setup": {"quick": args.quick, "images": n, "shape": list(shape), "eps_levels": args.eps,
                  "perturbation": args.perturbation, "repeats": repeats, "seed": args.seed,
                  "photos": list(EMBEDDED_PHOTOS), "float32_bytes": images.nbytes,
                  "distinct_levels": int(np.unique(images).size), "sha256": array_sha256(images)},
        "encodings": rows,
        "ratio": rows["float32"]["chunk_bytes"] / rows["uint8"]["chunk_bytes"],
        "ratio_to_float32_values": images.nbytes / rows["uint8"]["chunk_bytes"],
        "study": {**STUDY, "images": rows["float32"]["study"]["images"],
                  "float32_values_gb": rows["float32"]["study"]["images"] * 4 * int(np.prod(STUDY["shape"])) / GB},
    }
    result["total_seconds"] = time.perf_counter() - start
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        path = args.out
    else:
        path = write_result("store_encoding_cpu" + ("_quick" if args.quick else ""), result)
    for enc, row in rows.items():
        print(f"{enc:>8}: {row['bytes_per_image'] / 1e3:,.1f} kB/image, write {row['write']['images_per_s']:,.0f} "
              f"img/s, read {row['read_verified']['images_per_s']:,.0f} img/s; study {row['study']['gb']:,.1f} GB")
    print(f"float32 / uint8: {result['ratio']:.2f}x ({result['ratio_to_float32_values']:.2f}x the float32 values) "
          f"-> {path} ({result['total_seconds']:.1f} s)")
    return result


if __name__ == "__main__":
    main()
