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
                   "--ddim-steps", "2", "--ddpm-steps", "3", "--equal-psnr-db", "100", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["setup"]["quick"] is True and saved["environment"]["device"] == "cpu"
    row = saved["models"]["resunet"]
    assert row["attack"]["baseline_per_image_fp32"]["images_per_s"] > 0
    assert row["attack"]["fp32"]["linf"] <= 8 / 256
    assert row["purify"]["ddim_2/fp32"]["network_evals_per_image"] == 2
    assert row["purify"]["ddpm_full_10/fp32"]["network_evals_per_image"] == 10
    assert row["purify"]["ddpm_3/fp32"]["network_evals_per_image"] == 3
    best = row["purify"]["at_equal_psnr"]  # a tolerance of 100 dB admits every row: the fastest wins
    assert best["speedup"] == max(r["speedup"] for r in row["purify"].values() if "speedup" in r)
    assert row["finetune"]["fp32"]["speedup"] > 0
    assert 0 < row["evaluate"]["batched_fp32"]["ssim"] <= 1
    assert result["models"].keys() == saved["models"].keys()


def test_fastest_at_equal_psnr_keeps_only_rows_within_the_tolerance():
    from benchmarks.speed import fastest_at_equal_psnr

    rows = {"baseline_per_image_ddpm_fp32": {"defended_psnr_baseline_images": 20.0},
            "ddim_2/fp32": {"speedup": 50.0, "images_per_s": 5.0, "defended_psnr_baseline_images": 18.0},
            "ddpm_10/fp32": {"speedup": 9.0, "images_per_s": 1.0, "defended_psnr_baseline_images": 19.95}}
    best = fastest_at_equal_psnr(rows, 0.1)
    assert best["row"] == "ddpm_10/fp32" and best["psnr_gap_db"] == pytest.approx(-0.05)
    assert fastest_at_equal_psnr(rows, 0.01) == {}


def test_rejects_step_counts_outside_the_chain(tmp_path):
    with pytest.raises(SystemExit, match="ddpm-steps"):
        main(["--quick", "--device", "cpu", "--t-star", "10", "--ddpm-steps", "20", "--out", str(tmp_path / "x.json")])


def test_rejects_a_first_variant_other_than_fp32(tmp_path):
    with pytest.raises(SystemExit, match="fp32"):
        main(["--quick", "--device", "cpu", "--variants", "bf16", "--out", str(tmp_path / "x.json")])


def test_dynamic_filter_benchmark_writes_both_forms(tmp_path):
    from benchmarks.dynamic_filter import main as dynamic_filter_main

    out = tmp_path / "df.json"
    result = dynamic_filter_main(["--shapes", "1x2x8x8", "--size", "16", "--batch", "1", "--repeats", "1",
                                  "--backend", "eager", "--out", str(out)])
    saved = json.loads(out.read_text())
    (op,) = saved["op"]
    assert op["shape"] == [1, 2, 8, 8]
    assert all(op[f"{mode}_{form}_ms"] > 0 for mode in ("eager", "compiled") for form in ("unfold", "shifted"))
    step = saved["pgd_step"]
    assert step["compiled_unfold_grad_rel_diff"] < 1e-5 and step["compiled_shifted_grad_rel_diff"] < 1e-5
    assert result["pgd_step"]["shifted_over_unfold"] > 0


def test_dynamic_filter_benchmark_rejects_a_bad_shape(tmp_path):
    from benchmarks.dynamic_filter import main as dynamic_filter_main

    with pytest.raises(SystemExit, match="BxCxHxW"):
        dynamic_filter_main(["--shapes", "2x8x8", "--out", str(tmp_path / "x.json")])
