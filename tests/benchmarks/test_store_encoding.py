"""The store-encoding benchmark runs end to end on a tiny set and writes a complete JSON record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.store_encoding import adversarial_set, main
from tests.docs_module import load_docs_gen


def _gen():
    return load_docs_gen("udcshield_docs_gen_store_encoding")


def test_adversarial_set_is_made_of_8_bit_levels():
    images = adversarial_set(3, 32, 8, "sign", seed=1)
    assert images.shape == (3, 3, 32, 32) and images.dtype == np.float32
    k = np.rint(images * np.float32(255))
    assert ((k.astype(np.float32) / np.float32(255)) == images).all() and 0 <= k.min() and k.max() <= 255


def test_quick_run_writes_both_encodings_and_renders(tmp_path):
    out = tmp_path / "store_encoding.json"
    result = main(["--quick", "--images", "3", "--size", "32", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["setup"]["quick"] is True and saved["environment"]["device"] == "cpu"
    assert saved["setup"]["shape"] == [3, 32, 32] and saved["setup"]["float32_bytes"] == 3 * 3 * 32 * 32 * 4
    for enc in ("float32", "uint8"):
        row = saved["encodings"][enc]
        assert row["chunk_bytes"] > 0 and row["store_bytes"] > row["chunk_bytes"]
        assert row["bytes_per_image"] == pytest.approx(row["chunk_bytes"] / 3)
        assert all(row[step]["images_per_s"] > 0 and row[step]["mb_per_s"] > 0
                   for step in ("write", "read_verified", "read_unverified"))
        assert row["study"]["images"] == 3600 * 7 * 2 * 7
    assert saved["ratio"] > 1 and saved["ratio_to_float32_values"] > 3
    assert saved["study"]["float32_values_gb"] == pytest.approx(3600 * 7 * 2 * 7 * 3 * 256 ** 2 * 4 / 1e9)
    assert result["encodings"].keys() == saved["encodings"].keys()
    gen = _gen()
    assert gen.benchmark_kind("store_encoding_cpu_quick") == "store_encoding"
    text = gen.benchmark_sections({"store_encoding_cpu_quick": saved}, "store_encoding")
    assert "smoke run" in text and "| `uint8` |" in text and "float32 + zstd / uint8 + zstd" in text


def test_rejects_a_size_larger_than_every_photo(tmp_path):
    with pytest.raises(SystemExit, match="no embedded photo"):
        main(["--size", "5000", "--images", "1", "--out", str(tmp_path / "x.json")])
