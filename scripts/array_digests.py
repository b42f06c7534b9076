"""Print the SHA-256 of every zarr array and checkpoint tensor under a data root, as JSON ``{"<store>/<array>": digest}``.

    python scripts/array_digests.py data > digests.json

Used to check that a refactoring leaves every array of a run byte-identical: run the same params before
and after, and compare the two files (``diff``). Digests cover dtype, shape and the raw bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import zarr


def array_digests(root: Path) -> dict[str, str]:
    """Digest per zarr array and per safetensors tensor below ``root`` (hidden folders such as the shard cache excluded)."""
    out: dict[str, str] = {}
    for meta in sorted(root.rglob("zarr.json")):
        store = meta.parent
        if any(part.startswith(".") for part in store.relative_to(root).parts):
            continue
        node = zarr.open(store, mode="r")
        if isinstance(node, zarr.Array):
            arr = np.asarray(node[...])
            h = hashlib.sha256(f"{arr.dtype}|{arr.shape}|".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
            out[store.relative_to(root).as_posix()] = h.hexdigest()
    for path in sorted(root.rglob("*.safetensors")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        from safetensors.numpy import load_file

        for name, arr in sorted(load_file(str(path)).items()):
            h = hashlib.sha256(f"{arr.dtype}|{arr.shape}|".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
            out[f"{path.relative_to(root).as_posix()}:{name}"] = h.hexdigest()
    return out


if __name__ == "__main__":
    print(json.dumps(array_digests(Path(sys.argv[1] if len(sys.argv) > 1 else "data")), indent=1, sort_keys=True))
