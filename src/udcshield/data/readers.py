"""File readers for the real UDC datasets: ``.npy`` HDR arrays, 8/16-bit photos, Radiance ``.hdr``, ``.mat``.

Every image reader returns a channel-first ``(3, H, W)`` float64 array and raises ``FileNotFoundError``
(missing file) or ``ValueError`` (corrupt file, wrong shape, NaN/Inf, ...) with the file path in the
message. Value ranges:

* :func:`read_npy_image` -- the stored values unchanged (linear HDR radiance in DISCNet SYNTH, Feng et
  al., CVPR 2021, and MIPI 2022 UDC).
* :func:`read_png` -- display-referred (sRGB-encoded) values in [0, 1]: integer samples divided by the
  dtype maximum (uint8 / 255 exactly, uint16 / 65535, 16-bit colour PNGs included); grey and grey+alpha
  are replicated to three channels, alpha is dropped (:func:`decode_image_file`: (H, W, 3) samples as stored).
* :func:`read_hdr` -- linear radiance >= 0 decoded from Radiance RGBE.
* :func:`read_mat_arrays` -- the raw arrays (e.g. uint8 ``(N, H, W, 3)`` in the ``.mat`` release of Zhou
  et al., "Image Restoration for Under-Display Camera", CVPR 2021).

* :func:`read_exr` -- linear radiance from an OpenEXR file (R, G, B channels).

OpenEXR images and MATLAB v7.3 (HDF5) ``.mat`` files are read with the optional packages of the
``datasets`` extra (``pip install 'udcshield[datasets]'``: OpenEXR, h5py). Without them such files are
detected and refused with a ValueError naming the extra and saying how to convert them instead.
"""

from __future__ import annotations

import importlib
import re
import struct
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np

from udcshield.data.npy import existing_file as _existing_file
from udcshield.data.npy import load_npy_array

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic TIFF and BigTIFF
_PLUGIN_HINT = re.compile(r"backend|pip install|plugin", re.IGNORECASE)


DATASETS_EXTRA = "pip install 'udcshield[datasets]'"


def _optional(module: str) -> ModuleType | None:
    """``module`` of the ``datasets`` extra if it is installed, else None."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _to_chw(arr: np.ndarray, p: Path) -> np.ndarray:
    """(H, W, 3) or (3, H, W) numeric array -> (3, H, W) float64, finite. Raises ValueError naming ``p``."""
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{p}: expected a numeric image array, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise ValueError(f"{p}: expected a 3-D image array (H, W, 3) or (3, H, W), got shape {arr.shape}")
    if arr.shape[-1] == 3:
        chw = arr.transpose(2, 0, 1)
    elif arr.shape[0] == 3:
        chw = arr
    else:
        raise ValueError(f"{p}: expected 3 colour channels (H, W, 3) or (3, H, W), got shape {arr.shape}")
    out = np.ascontiguousarray(chw, dtype=np.float64)
    if min(out.shape[1:]) < 1:
        raise ValueError(f"{p}: empty image of shape {arr.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{p}: image contains NaN or Inf")
    return out


def read_npy_image(path: str | Path) -> np.ndarray:
    """Read an ``.npy`` image array (DISCNet SYNTH / MIPI 2022 UDC layout: H x W x 3 float, linear HDR).

    Loaded with ``allow_pickle=False``, so an object/pickled ``.npy`` is rejected.

    Args:
        path: ``.npy`` file holding an (H, W, 3) array (an unambiguous (3, H, W) array is also accepted).

    Returns:
        (3, H, W) float64 with the stored values (no scaling, no clipping).

    Raises:
        FileNotFoundError: missing file. ValueError: pickled/corrupt file, wrong ndim or channel count,
        non-numeric dtype, NaN or Inf.
    """
    p = _existing_file(path)
    return _to_chw(load_npy_array(p), p)


def _png16(buf: bytes) -> np.ndarray | None:
    """16-bit RGB / RGBA / grey+alpha PNG bytes -> (H, W, C) uint16 with all 16 bits; None for other PNGs.

    Pillow keeps only the high byte of these samples, so the IDAT stream is unfiltered with Pillow's
    "zip" decoder twice, keeping the high and then the low byte of each sample (grey+alpha once, as 8-bit
    RGBA: the same 4 bytes per pixel, so the same PNG filtering). Other PNGs are read fully by Pillow.
    """
    pos, idat, hdr = 8, [], None
    while pos < len(buf):
        n, kind = struct.unpack(">I4s", buf[pos : pos + 8].ljust(8, b"\0"))
        if hdr is None and (kind != b"IHDR" or n != 13):
            raise ValueError("PNG without a valid IHDR header")
        data, crc = buf[pos + 8 : pos + 8 + n], buf[pos + 8 + n : pos + 12 + n]
        if len(crc) < 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + data):
            raise ValueError(f"truncated or corrupt PNG {kind.decode('latin-1')} chunk")
        if hdr is None:
            hdr = struct.unpack(">IIBBBBB", data)
            if hdr[2] != 16 or hdr[3] not in (2, 4, 6):
                return None
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND" or idat:  # the IDAT chunks are consecutive
            break
        pos += 12 + n
    if hdr is None or not idat:
        raise ValueError("PNG without image data (no IDAT chunk)")
    w, h, _, ctype, comp, filt, interlace = hdr
    if min(w, h) < 1 or comp or filt or interlace > 1:
        raise ValueError(f"bad PNG header (size {w}x{h}, methods {comp}/{filt}/{interlace})")
    from PIL import Image

    z = b"".join(idat)
    if ctype == 4:
        b = np.asarray(Image.frombytes("RGBA", (w, h), z, "zip", "RGBA", interlace)).astype(np.uint16)
        return b[..., 0::2] << 8 | b[..., 1::2]
    mode = "RGB" if ctype == 2 else "RGBA"
    hi, lo = (np.asarray(Image.frombytes(mode, (w, h), z, "zip", f"{mode};16{e}", interlace)) for e in "BL")
    return hi.astype(np.uint16) << 8 | lo


def _decode_error(p: Path, exc: Exception) -> ValueError:
    """ValueError "cannot decode image file <p>: <reason>", without imageio's plugin-installation hints."""
    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    if _PLUGIN_HINT.search(text):  # imageio: "Could not find a backend ... pip install imageio[pyav]"
        reason = "not a recognised image format, or corrupt data"
    return ValueError(f"cannot decode image file {p}: {reason}")


def decode_image_file(path: str | Path) -> np.ndarray:
    """Decode a PNG/JPEG/TIFF (or other format imageio reads) into its samples as stored, as (H, W, 3).

    Grey (H, W) and grey+alpha (H, W, 2) images are replicated to three channels and the alpha channel
    of grey+alpha and RGBA is dropped; palette images come as RGB; a channel-first (3 or 4, H, W) TIFF is
    moved to channel-last. The dtype is the file's: uint8, uint16 (16-bit PNGs, colour included, keep all
    16 bits), float for a float TIFF, bool for 1-bit images. TIFFs are read with tifffile, others with
    imageio (Pillow).

    Raises:
        FileNotFoundError: missing file. ValueError: "cannot decode image file <path>: <reason>" for an
        empty (0-byte) or undecodable file; an unsupported shape.
    """
    p = _existing_file(path)
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise ValueError(f"cannot decode image file {p}: the file is empty (0 bytes)")
    try:
        img = _png16(p.read_bytes()) if head == _PNG_SIGNATURE else None
        if img is None and head[:4] in _TIFF_MAGIC:  # as scikit-image reads TIFFs
            img = importlib.import_module("tifffile").imread(str(p))
        elif img is None:
            img = importlib.import_module("imageio.v3").imread(str(p))
        img = np.asarray(img)
    except Exception as exc:  # decoder errors vary by format and plugin
        raise _decode_error(p, exc) from exc
    if img.size == 0:
        raise ValueError(f"cannot decode image file {p}: no image data (shape {img.shape})")
    shape = img.shape
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim == 3 and img.shape[-1] > 4 and img.shape[0] in (3, 4):
        img = np.moveaxis(img, 0, -1)
    if img.ndim != 3 or img.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{p}: expected a grey, grey+alpha, RGB or RGBA image, got shape {shape}")
    return img[..., :3] if img.shape[-1] >= 3 else np.repeat(img[..., :1], 3, axis=-1)


def read_png(path: str | Path) -> np.ndarray:
    """Read an 8/16-bit PNG (also JPEG or TIFF) as display-referred values in [0, 1].

    Integer samples are divided by the dtype maximum (uint8: exactly v / 255; uint16, 16-bit colour PNGs
    included: exactly v / 65535), 1-bit images give 0 or 1. Grey and grey+alpha images are replicated to
    three channels, palette images expanded to RGB; an alpha channel is dropped. Floating-point files
    (e.g. a float TIFF) are returned as stored and must be finite and >= 0.

    Returns:
        (3, H, W) float64.

    Raises:
        FileNotFoundError: missing file. ValueError: "cannot decode image file <path>: ..." for an empty or
        undecodable file; unsupported shape, NaN/Inf.
    """
    return _read_raster(_existing_file(path))[0]


def _read_raster(p: Path) -> tuple[np.ndarray, bool]:
    """Decode a PNG/JPEG/TIFF -> ((3, H, W) float64, whether the samples were integers)."""
    img = decode_image_file(p)
    is_int = img.dtype == bool or bool(np.issubdtype(img.dtype, np.integer))
    if img.dtype == bool:
        out = img.astype(np.float64)
    elif is_int:
        out = img.astype(np.float64) / float(np.iinfo(img.dtype).max)
    elif np.issubdtype(img.dtype, np.floating):
        out = img.astype(np.float64)
    else:
        raise ValueError(f"{p}: unsupported sample type {img.dtype}")
    out = _to_chw(out, p)
    if out.min() < 0:
        raise ValueError(f"{p}: negative pixel values (min {out.min():.3g})")
    return out, is_int


def _rgbe_to_float(rgbe: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 RGBE -> (..., 3) float64: m * 2**(e - 136), 0 where e == 0 (Walter / stb convention)."""
    e = rgbe[..., 3].astype(np.int32)
    scale = np.where(e > 0, np.ldexp(1.0, e - 136), 0.0)
    return rgbe[..., :3].astype(np.float64) * scale[..., None]


def _decode_scanline(buf: bytes, pos: int, width: int, p: Path) -> tuple[np.ndarray, int]:
    """Decode one RGBE scanline at ``buf[pos:]`` -> ((width, 4) uint8, new pos). Flat, old or new RLE."""
    n = len(buf)
    if 8 <= width <= 0x7FFF and pos + 4 <= n and buf[pos] == 2 and buf[pos + 1] == 2 and not buf[pos + 2] & 0x80:
        if (buf[pos + 2] << 8 | buf[pos + 3]) != width:
            raise ValueError(f"{p}: corrupt .hdr: RLE scanline width {buf[pos + 2] << 8 | buf[pos + 3]} != {width}")
        pos += 4
        line = np.empty((4, width), dtype=np.uint8)
        for c in range(4):
            x = 0
            while x < width:
                if pos >= n:
                    raise ValueError(f"{p}: corrupt .hdr: truncated RLE data")
                count = buf[pos]
                pos += 1
                if count > 128:  # run of one value
                    count -= 128
                    if x + count > width:
                        raise ValueError(f"{p}: corrupt .hdr: RLE run overruns the scanline")
                    if pos >= n:
                        raise ValueError(f"{p}: corrupt .hdr: truncated RLE data")
                    line[c, x : x + count] = buf[pos]
                    pos += 1
                else:  # literal bytes
                    if count == 0 or x + count > width:
                        raise ValueError(f"{p}: corrupt .hdr: bad RLE literal count")
                    if pos + count > n:
                        raise ValueError(f"{p}: corrupt .hdr: truncated RLE data")
                    line[c, x : x + count] = np.frombuffer(buf, dtype=np.uint8, count=count, offset=pos)
                    pos += count
                x += count
        return np.ascontiguousarray(line.T), pos
    # flat pixels, possibly with old-style run markers (1, 1, 1, n): repeat the previous pixel n << shift times
    line = np.empty((width, 4), dtype=np.uint8)
    x, shift = 0, 0
    while x < width:
        if pos + 4 > n:
            raise ValueError(f"{p}: corrupt .hdr: truncated pixel data")
        px = buf[pos : pos + 4]
        pos += 4
        if px[0] == 1 and px[1] == 1 and px[2] == 1:
            count = px[3] << shift
            if x == 0 or x + count > width:
                raise ValueError(f"{p}: corrupt .hdr: bad old-style run")
            line[x : x + count] = line[x - 1]
            x += count
            shift += 8
        else:
            line[x] = np.frombuffer(px, dtype=np.uint8)
            x += 1
            shift = 0
    return line, pos


_RES_RE = re.compile(rb"^([+-])([XY]) (\d+) ([+-])([XY]) (\d+)$")


def read_hdr(path: str | Path) -> np.ndarray:
    """Read a Radiance RGBE ``.hdr`` file as linear radiance.

    Supports the ``32-bit_rle_rgbe`` format with flat, old-style RLE and new-style (per-component) RLE
    scanlines, and all eight resolution-line orientations (standard: ``-Y H +X W``, top row first).
    Decoding follows the common convention value = mantissa * 2**(exponent - 136) (exactly invertible for
    values representable in RGBE); an ``EXPOSURE=`` header is ignored, as most readers do.

    Returns:
        (3, H, W) float64, >= 0.

    Raises:
        FileNotFoundError: missing file. ValueError: bad magic, unsupported FORMAT (e.g. XYZE), missing
        or malformed resolution line, truncated or corrupt pixel data.
    """
    p = _existing_file(path)
    buf = p.read_bytes()
    if not buf.startswith(b"#?"):  # "#?RADIANCE", "#?RGBE", ...
        raise ValueError(f"{p}: not a Radiance .hdr file (missing '#?' magic)")
    end = buf.find(b"\n\n")
    if end < 0:
        raise ValueError(f"{p}: corrupt .hdr: header has no terminating blank line")
    for line in buf[:end].split(b"\n")[1:]:
        if line.startswith(b"FORMAT="):
            fmt = line[7:].strip()
            if fmt != b"32-bit_rle_rgbe":
                raise ValueError(f"{p}: unsupported .hdr FORMAT {fmt.decode(errors='replace')!r}; only 32-bit_rle_rgbe")
    nl = buf.find(b"\n", end + 2)
    if nl < 0:
        raise ValueError(f"{p}: corrupt .hdr: missing resolution line")
    m = _RES_RE.match(buf[end + 2 : nl].strip())
    if m is None or m.group(2) == m.group(5):
        raise ValueError(f"{p}: corrupt .hdr: bad resolution line {buf[end + 2 : nl][:40]!r}")
    n_lines, length = int(m.group(3)), int(m.group(6))
    if n_lines < 1 or length < 1:
        raise ValueError(f"{p}: corrupt .hdr: empty image {n_lines}x{length}")
    pos = nl + 1
    first_is_rle = len(buf) >= pos + 2 and buf[pos] == 2 and buf[pos + 1] == 2 and 8 <= length <= 0x7FFF
    if len(buf) - pos == n_lines * length * 4 and not first_is_rle:
        raw = np.frombuffer(buf, dtype=np.uint8, offset=pos).reshape(n_lines, length, 4)
        if np.any((raw[..., 0] == 1) & (raw[..., 1] == 1) & (raw[..., 2] == 1)):
            raw = None  # may hold old-style run markers: take the general path
    else:
        raw = None
    if raw is None:
        out = np.empty((n_lines, length, 4), dtype=np.uint8)
        for i in range(n_lines):
            out[i], pos = _decode_scanline(buf, pos, length, p)
        raw = out
    img = _rgbe_to_float(raw)  # (scanline, position along scanline, 3)
    if m.group(2) == b"Y":  # scanlines are rows
        if m.group(1) == b"+":
            img = img[::-1]  # +Y: bottom row first
        if m.group(4) == b"-":
            img = img[:, ::-1]
    else:  # scanlines are columns: (x, y) -> (y, x)
        if m.group(1) == b"-":
            img = img[::-1]
        if m.group(4) == b"+":
            img = img[:, ::-1]
        img = img.transpose(1, 0, 2)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def read_linear_image(path: str | Path) -> np.ndarray:
    """Read a ground-truth photo as linear radiance for the simulator.

    ``.hdr`` files are returned as decoded (linear). Integer-typed PNG/JPEG/TIFF files (8 or 16 bit) are
    taken as sRGB-encoded and linearised with :func:`udcshield.physics.tonemap.srgb_to_linear`.
    Floating-point TIFFs and OpenEXR files (:func:`read_exr`) are taken as linear already.

    Returns:
        (3, H, W) float64, >= 0 (in [0, 1] for 8/16-bit files; unbounded for .hdr / float TIFF / .exr).
    """
    from udcshield.physics.tonemap import srgb_to_linear

    p = _existing_file(path)
    suffix = p.suffix.lower()
    if suffix == ".exr":
        return read_exr(p)
    if suffix == ".hdr":
        return read_hdr(p)
    img, is_int = _read_raster(p)
    return srgb_to_linear(np.clip(img, 0.0, 1.0)) if is_int else img


def reject_exr(path: str | Path) -> None:
    """Raise ValueError for an OpenEXR file that cannot be read: the OpenEXR package is not installed."""
    raise ValueError(
        f"{path}: reading OpenEXR files needs the OpenEXR package, which is not installed ({DATASETS_EXTRA}); "
        "or convert them to Radiance .hdr, float TIFF or linear float .npy first"
    )


def read_exr(path: str | Path) -> np.ndarray:
    """Read the R, G, B channels of an OpenEXR file (OpenEXR >= 3.3 bindings) as linear radiance.

    Returns:
        (3, H, W) float64, finite, >= 0.

    Raises:
        FileNotFoundError: missing file. ValueError: OpenEXR not installed (names the ``datasets`` extra),
        undecodable file, no R/G/B channels, NaN/Inf or negative values.
    """
    p = _existing_file(path)
    exr = _optional("OpenEXR")
    if exr is None or not hasattr(exr, "File"):
        reject_exr(p)
    try:
        with exr.File(str(p), separate_channels=True) as f:
            channels = f.channels()
            missing = [c for c in "RGB" if c not in channels]
            if missing:
                raise ValueError(f"{p}: OpenEXR file has no channel(s) {missing}; it holds {sorted(channels)}")
            rgb = np.stack([np.asarray(channels[c].pixels) for c in "RGB"], axis=-1)
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"{p}: cannot decode OpenEXR file: {exc}") from exc
    out = _to_chw(rgb, p)
    if out.min() < 0:
        raise ValueError(f"{p}: negative pixel values (min {out.min():.3g})")
    return out


def mat_is_hdf5(path: str | Path) -> bool:
    """True if ``path`` is a MATLAB v7.3 (HDF5-based) ``.mat`` file."""
    with open(path, "rb") as fh:
        head = fh.read(520)
    return head.startswith(_HDF5_SIGNATURE) or head[:19] == b"MATLAB 7.3 MAT-file" or head[512:520] == _HDF5_SIGNATURE


def mat_keys(path: str | Path) -> list[str]:
    """Variable names stored in a ``.mat`` file (read from headers, data not loaded); v7.3 needs h5py."""
    import scipy.io

    p = _existing_file(path)
    if mat_is_hdf5(p):
        with _open_hdf5_mat(p) as f:
            return [k for k in f.keys() if not k.startswith("#")]
    try:
        return [name for name, _, _ in scipy.io.whosmat(str(p))]
    except Exception as exc:
        raise ValueError(f"{p}: not a readable .mat file: {exc}") from exc


def _open_hdf5_mat(p: Path):  # noqa: ANN202 - an h5py.File, and h5py is optional
    """The v7.3 file opened read-only with h5py; ValueError naming the ``datasets`` extra without h5py."""
    h5py = _optional("h5py")
    if h5py is None:
        raise ValueError(
            f"{p}: MATLAB v7.3 (HDF5) .mat file; reading it needs h5py, which is not installed "
            f"({DATASETS_EXTRA}). Or re-save it in MATLAB with save(..., '-v7') or export the images as PNG"
        )
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        raise ValueError(f"{p}: not a readable MATLAB v7.3 (HDF5) file (h5py: {exc})") from exc


def _read_hdf5_mat(p: Path, keys: list[str]) -> dict[str, np.ndarray]:
    """Numeric variables of a v7.3 file: HDF5 holds MATLAB's column-major arrays with the dimensions
    reversed, so each is transposed back to MATLAB's order (as :func:`scipy.io.loadmat` returns it)."""
    with _open_hdf5_mat(p) as f:
        out = {}
        for k in keys:
            node = f[k]
            if not hasattr(node, "dtype") or node.dtype.kind not in "biuf":
                raise ValueError(f"{p}: variable {k!r} is not a numeric array")
            out[k] = np.ascontiguousarray(np.asarray(node).T)
        return out


def read_mat_arrays(path: str | Path, keys: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Load the named variables from a ``.mat`` file (v4/v5/v7: scipy.io.loadmat; v7.3: h5py).

    Used for the ``.mat`` release of Zhou et al. (CVPR 2021): uint8 arrays (N, H, W, 3) under keys such
    as ``"val_display"`` / ``"val_gt"``. Arrays are returned as stored (no scaling). MATLAB v7.3 (HDF5)
    files are read with h5py when it is installed (the ``datasets`` extra).

    Raises:
        FileNotFoundError: missing file. ValueError: v7.3/HDF5 file without h5py installed (names the
        ``datasets`` extra), corrupt file, or a key that is not in the file (the message lists the keys).
    """
    import scipy.io

    p = _existing_file(path)
    keys = [str(k) for k in keys]
    found = mat_keys(p)
    missing = [k for k in keys if k not in found]
    if missing:
        raise ValueError(f"{p}: keys {missing} not found; the file holds {found}")
    if mat_is_hdf5(p):
        return _read_hdf5_mat(p, keys)
    try:
        data = scipy.io.loadmat(str(p), variable_names=keys)
    except Exception as exc:
        raise ValueError(f"{p}: not a readable .mat file: {exc}") from exc
    return {k: np.asarray(data[k]) for k in keys}
