"""The speed harness runs end to end in --quick form and writes a complete JSON record."""

from __future__ import annotations

import json

import pytest

from benchmarks.speed import main, parse_variant
from udcshield.accel import Acceleration


def test_parse_variant():
    assert parse_variant("fp32") == Acceleration()
    assert parse_variant("bf16+cl+compile-reduce-overhead") == Acceleration(
        amp="bf16", channels_last=True, compile="reduce-overhead")
    with pytest.raises(ValueError, match="fp16"):
        parse_variant("fp16")


def test_quick_run_writes_every_section(tmp_path):
    out = tmp_path / "speed.json"
    result = main(["--quick", "--device", "cpu", "--images", "4", "--batch", "2", "--baseline-images", "1",
                   "--size", "16", "--train-steps", "2", "--purifier-steps", "2", "--t-star", "10",
                   "--ddim-steps", "2", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["setup"]["quick"] is True and saved["environment"]["device"] == "cpu"
    row = saved["models"]["resunet"]
    assert row["attack"]["baseline_per_image_fp32"]["images_per_s"] > 0
    assert row["attack"]["fp32"]["linf"] <= 8 / 256
    assert row["purify"]["ddim_2/fp32"]["network_evals_per_image"] == 2
    assert row["purify"]["ddpm_full_10/fp32"]["network_evals_per_image"] == 10
    assert row["finetune"]["fp32"]["speedup"] > 0
    assert 0 < row["evaluate"]["batched_fp32"]["ssim"] <= 1
    assert result["models"].keys() == saved["models"].keys()


def test_rejects_a_first_variant_other_than_fp32(tmp_path):
    with pytest.raises(SystemExit, match="fp32"):
        main(["--quick", "--device", "cpu", "--variants", "bf16", "--out", str(tmp_path / "x.json")])
