"""The docs site's generators (docs/gen.py), the README's results block, and a strict build of the site."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _load("udcshield_docs_gen_under_test", ROOT / "docs" / "gen.py")
HAVE_MKDOCS = all(importlib.util.find_spec(m) is not None for m in ("mkdocs", "material"))

# --------------------------------------------------------------------------------------------- shapes

# data/evaluate/metrics.json: model:variant -> defense -> condition -> metric -> mean
EVALUATE = {
    "resunet:base": {
        "none": {"clean": {"psnr": 21.75, "ssim": 0.81}, "pgd_8": {"psnr": 12.4, "ssim": 0.41},
                 "pgd_2": {"psnr": 17.84, "ssim": 0.66}, "fgsm_8": {"psnr": 14.43, "ssim": 0.5},
                 "pgd@resunet/finetuned_8": {"psnr": 13.1, "ssim": 0.45}},
        "purified": {"clean": {"psnr": 20.53, "ssim": 0.74}, "pgd_8": {"psnr": 18.24, "ssim": 0.63},
                     "pgd_2": {"psnr": 20.01, "ssim": 0.7}, "fgsm_8": {"psnr": 18.9, "ssim": 0.64}},
    },
    "resunet:finetuned": {
        "none": {"clean": {"psnr": 21.89, "ssim": 0.82}, "pgd_8": {"psnr": 13.49, "ssim": 0.44},
                 "pgd_2": {"psnr": 18.97, "ssim": 0.69}, "fgsm_8": {"psnr": 15.0, "ssim": 0.52},
                 "pgd@resunet/base_8": {"psnr": 12.9, "ssim": 0.43}},
        "purified": {"clean": {"psnr": 20.97, "ssim": 0.75}, "pgd_8": {"psnr": 18.73, "ssim": 0.64},
                     "pgd_2": {"psnr": 20.45, "ssim": 0.71}, "fgsm_8": {"psnr": 19.2, "ssim": 0.65}},
    },
}
# data/adaptive/metrics.json: the same nesting; purified cells carry the draw aggregates
_DRAWS = {"psnr": 17.09, "psnr_mean_draws": 17.09, "psnr_worst_draw": 16.8, "psnr_avg_output": 17.3}
ADAPTIVE = {
    "resunet:base": {
        "none": {"clean": {"psnr": 21.7}, "pgd_8": {"psnr": 11.38}, "bpda_eot_8": {"psnr": 11.5},
                 "full_8": {"psnr": 11.6}},
        "purified": {"clean": {**_DRAWS, "psnr_worst_draw": 20.1}, "pgd_8": _DRAWS,
                     "bpda_eot_8": {**_DRAWS, "psnr_mean_draws": 16.54}, "full_8": {**_DRAWS, "psnr_mean_draws": 15.43}},
    },
}
# data/sweep/metrics.json: model -> t<t*> -> summary of the cheapest setting within tolerance
SWEEP = {
    "resunet": {
        "t20": {"reference_nfe": 20.0, "reference_psnr_adv": 15.81, "reference_psnr_clean": 20.9,
                "best_setting": "ddpm-10", "best_nfe": 10.0, "nfe_fraction": 0.5, "delta_adv_db": -0.05,
                "meets_target": False},
        "t100": {"reference_nfe": 100.0, "reference_psnr_adv": 18.45, "reference_psnr_clean": 19.4,
                 "best_setting": "ddim-2", "best_nfe": 2.0, "nfe_fraction": 0.02, "delta_adv_db": 0.0,
                 "meets_target": True},
        "t50": {"reference_nfe": 50.0, "reference_psnr_adv": 17.86, "reference_psnr_clean": 20.2,
                "best_setting": None, "meets_target": False},
    }
}

ENV_CPU = {"cpu": "x86_64", "date_utc": "2026-11-26T06:44:43+00:00", "device": "cpu", "torch_threads": 2,
           "versions": {"torch": "2.13.0+cpu"}}
ENV_GPU = {"cpu": "x86_64", "date_utc": "2026-11-26T09:52:49+00:00", "device": "cuda", "gpu": "NVIDIA H200",
           "torch_threads": 16, "versions": {"torch": "2.11.0"}}
ATTACKS = {"environment": ENV_CPU, "model": "resunet/base", "budget": 8, "images": 16, "clean_psnr": 21.62,
           "quick": False, "attacks": {
               "fgsm": {"cost": {"forward_backward": 1, "iterations": 1, "queries": 0}, "kwargs": {},
                        "norm": "linf", "psnr": 14.43, "psnr_drop": 7.19, "seconds": 0.08},
               "pgd": {"cost": {"forward_backward": 20, "iterations": 20, "queries": 0},
                       "kwargs": {"steps": 20, "random_start": True}, "norm": "linf", "psnr": 11.49,
                       "psnr_drop": 10.13, "seconds": 1.18},
               "square": {"cost": {"forward_backward": 0, "iterations": 999, "queries": 16000},
                          "kwargs": {"max_queries": 1000}, "norm": "linf", "psnr": 16.23, "psnr_drop": 5.39,
                          "seconds": 33.0}}}
SIMULATE = {"environment": ENV_CPU, "frame_size": 800, "psf_support_formation": 65,
            "psf_seconds": {"toled_support41": 0.022, "toled_support65": 0.0213, "open_support65": 0.0059},
            "formation_seconds_per_frame": 0.1176, "images_per_s": 8.5}
MODELS = {"environment": {**ENV_CPU, "torch_threads": 1}, "quick": False, "flops_note": "conv/matmul only",
          "results": [{"model": "dagf", "size": "paper", "params": 1129561, "published_params": 1120000,
                       "params_rel_diff": 0.0085, "input": [1, 3, 256, 256], "gflops_forward": 39.473,
                       "cpu_fwd_bwd_ms_median": 3880.4},
                      {"model": "resunet", "size": "default", "params": 174963, "published_params": None,
                       "params_rel_diff": None, "input": [1, 3, 256, 256], "gflops_forward": 3.938,
                       "cpu_fwd_bwd_ms_median": 235.6}]}
PURIFY = {"setup": {"quick": True, "t_star": 50, "images": 16, "size": 32, "eps": 0.03125, "threads": 1,
                    "torch": "2.13.0+cpu", "machine": "x86_64", "train_steps": 400},
          "baselines": {"psnr_perturbed_vs_clean": 30.11, "psnr_diffused_to_t_star_vs_clean": 21.35},
          "methods": {"ddpm_full_t50": {"network_evals_per_image": 50, "images_per_s": 9.76,
                                        "psnr_clean_input": 27.42, "psnr_perturbed_input": 27.31},
                      "ddim_5": {"network_evals_per_image": 5, "images_per_s": 96.8, "psnr_clean_input": 29.76,
                                 "psnr_perturbed_input": 29.16}},
          "input_gradient_ddim_10": {"batch": 8, "bpda": {"seconds_per_grad": 0.164, "grad_abs_mean": 0.99}}}


def _speed_model(clean_psnr: float, *, at_equal: bool) -> dict:
    purify = {"baseline_per_image_ddpm_fp32": {"defended_psnr_baseline_images": 26.58, "images": 8,
                                               "images_per_s": 3.58, "network_evals_per_image": 50},
              "ddim_5/fp32": {"defended_psnr_baseline_images": 24.61, "images_per_s": 89.2,
                              "network_evals_per_image": 5, "speedup": 24.9},
              "ddpm_full_50/fp32": {"defended_psnr_baseline_images": 26.58, "images_per_s": 7.34,
                                    "network_evals_per_image": 50, "speedup": 2.05}}
    if at_equal:
        purify["at_equal_psnr"] = {"row": "ddpm_full_50/fp32", "speedup": 2.05, "images_per_s": 7.34,
                                   "psnr_gap_db": 0.0, "tolerance_db": 0.1}
    return {"parameters": 174963, "size": "default", "clean_psnr": clean_psnr, "input_psnr": 24.67,
            "flops_per_pgd_step_per_image": 11815354368,
            "attack": {"baseline_per_image_fp32": {"images_per_s": 18.2, "images": 8},
                       "fp32": {"images_per_s": 110.2, "speedup": 6.04, "tflops": 26.0,
                                "fraction_of_bf16_peak": 0.026, "psnr_gap_vs_fp32_db": 0.0},
                       "bf16+cl": {"images_per_s": 183.7, "speedup": 10.07, "tflops": 43.4,
                                   "fraction_of_bf16_peak": 0.044, "psnr_gap_vs_fp32_db": 0.0002}},
            "purify": purify,
            "finetune": {"baseline_batch1_fp32": {"batch": 1, "images_per_s": 297.0, "speedup": 1.0},
                         "fp32": {"batch": 32, "images_per_s": 1739.0, "speedup": 5.86}},
            "evaluate": {"baseline_per_image_fp32": {"batch": 1, "images_per_s": 598.0, "psnr": 34.29, "ssim": 0.915},
                         "batched_fp32": {"batch": 32, "images_per_s": 2135.0, "psnr": 34.28, "ssim": 0.915,
                                          "speedup": 3.57}}}


SPEED = {"environment": ENV_GPU, "purifier": {"parameters": 9863107},
         "setup": {"quick": False, "size": 256, "images": 64, "baseline_images": 8, "batch": 32, "preset": "paper",
                   "eps": 0.03125, "pgd_steps": 20, "t_star": 50, "train_steps": 300, "purifier_steps": 1000,
                   "purifier_channels": [64, 128, 256], "repeats": 3, "peak_bf16_flops": 989.4e12},
         "models": {"resunet": _speed_model(34.29, at_equal=False), "discnet": _speed_model(3.89, at_equal=False),
                    "udcunet": {"skipped": "time budget"}}}
DYNAMIC = {"environment": ENV_CPU, "op": [{"shape": [4, 32, 128, 128], "eager_unfold_ms": 136.2,
                                           "eager_shifted_ms": 269.8, "compiled_unfold_ms": 104.7,
                                           "compiled_shifted_ms": 38.2}],
           "pgd_step": {"preset": "tiny", "parameters": 24524, "batch": 4, "size": 64, "eager_images_per_s": 169.3,
                        "compiled_unfold_images_per_s": 90.6, "compiled_shifted_images_per_s": 302.5,
                        "shifted_over_unfold": 3.34, "compiled_shifted_grad_rel_diff": 1.7e-7}}
BENCHMARKS = {"attacks_cpu": ATTACKS, "simulate_cpu": SIMULATE, "models_cpu": MODELS, "purify_cpu": PURIFY,
              "speed_cuda": SPEED, "dynamic_filter_cpu": DYNAMIC,
              "models_cpu_quick": {**MODELS, "quick": True}}

DVC = {"stages": {
    "simulate": {"cmd": "python -m flows simulate", "deps": ["src/udcshield/data"], "params": ["seed", "simulate"],
                 "outs": ["data/simulated"]},
    "train": {"cmd": "python -m flows train", "deps": ["data/simulated/train.zarr"], "params": ["seed", "train"],
              "outs": ["data/restorers"], "plots": [{"data/logs/train": {"x": "step", "y": "loss"}}]},
    "attack": {"cmd": "python -m flows attack", "deps": ["data/simulated", "data/restorers"],
               "params": ["attack", "train.models"], "outs": ["data/attack"]},
    "purify": {"cmd": "python -m flows purify", "deps": ["data/simulated/test.zarr", "data/attack"],
               "params": ["purify", "attack"], "outs": ["data/purify"]},
    "adaptive": {"cmd": "python -m flows adaptive", "deps": ["data/attack", "data/restorers"],
                 "params": ["adaptive", "attack"], "outs": ["data/adaptive/adversarial.zarr"],
                 "metrics": [{"data/adaptive/metrics.json": {"cache": False}}]},
    "report": {"cmd": "python -m flows report", "deps": ["data/adaptive/metrics.json", "data/purify"],
               "params": ["report"], "outs": [{"data/report": {"cache": False}}]},
}}


def _rows(markdown: str) -> list[list[str]]:
    """Cells of every table row in ``markdown`` (separator rows left out)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|") and not re.fullmatch(r"\|[-:|]+\|", line.strip())]


# --------------------------------------------------------------------------------------------- formatting


def test_fmt_and_table():
    assert gen.fmt(None) == "-" and gen.fmt(float("nan")) == "-"
    assert gen.fmt(1234567) == "1,234,567" and gen.fmt(3.14159) == "3.14" and gen.fmt(0.5, 4) == "0.5000"
    assert gen.fmt(True) == "yes" and gen.fmt("a|b") == "a\\|b"
    text = gen.table(["a", "b"], [["1", "2"]])
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| 1 | 2 |"]
    with pytest.raises(ValueError):
        gen.table(["a", "b"], [["1"]])


def test_conditions_parse_sort_and_label():
    assert gen.split_condition("pgd_8") == ("pgd", 8)
    assert gen.split_condition("clean") == ("clean", 0)
    assert gen.split_condition("pgd@resunet/finetuned_8") == ("pgd@resunet/finetuned", 8)
    assert gen.split_condition("bpda_eot_8") == ("bpda_eot", 8)
    conds = ["fgsm_8", "pgd_8", "clean", "pgd_2", "full_8"]
    assert sorted(conds, key=gen.condition_sort_key) == ["clean", "pgd_2", "pgd_8", "fgsm_8", "full_8"]
    assert gen.condition_label("pgd@resunet/base_8") == "pgd 8/256 from resunet/base"


# --------------------------------------------------------------------------------------------- dvc.yaml


def test_edges_follow_outputs_into_and_around_folders():
    edges = gen.stage_edges(DVC)
    # dep inside an out (data/simulated/train.zarr in data/simulated), equal paths, metrics files as outs
    assert ("simulate", "train") in edges and ("train", "attack") in edges
    assert ("adaptive", "report") in edges and ("purify", "report") in edges
    assert ("purify", "adaptive") not in edges and all(up != down for up, down in edges)
    assert edges == sorted(edges, key=lambda e: (list(DVC["stages"]).index(e[0]), list(DVC["stages"]).index(e[1])))
    assert gen.downstream(DVC, ["attack"]) == ["attack", "purify", "adaptive", "report"]


def test_mermaid_and_stage_io_table():
    chart = gen.mermaid_dag(DVC)
    assert chart.startswith("```mermaid\nflowchart LR\n") and chart.rstrip().endswith("```")
    for up, down in gen.stage_edges(DVC):
        assert f"    {up} --> {down}" in chart
    rows = {r[0]: r for r in _rows(gen.stage_io_table(DVC))}
    assert rows["`train`"][1] == "`simulate`"
    assert "`data/logs/train`" in rows["`train`"][4]            # plots are outputs too
    assert "`data/adaptive/metrics.json`" in rows["`adaptive`"][4]
    assert rows["`simulate`"][2] == "-"                            # code deps are not data


def test_params_rerun_table_includes_downstream_stages():
    rows = {r[0]: r[1] for r in _rows(gen.params_rerun_table(DVC))[1:]}
    assert rows["`attack`"] == "`attack`, `purify`, `adaptive`, `report`"
    assert rows["`train.models`"] == "`train`, `attack`, `purify`, `adaptive`, `report`"  # via `train` too
    assert rows["`report`"] == "`report`"


def test_real_dvc_yaml_dag_adaptive_does_not_follow_purify():
    dvc = gen.load_dvc_yaml(ROOT / "dvc.yaml")
    edges = set(gen.stage_edges(dvc))
    assert ("purify", "adaptive") not in edges
    assert {("attack", "adaptive"), ("train_purifier", "adaptive"), ("finetune", "adaptive"),
            ("adaptive", "report"), ("attack", "sweep")} <= edges


def test_real_dvc_yaml_dag_equals_dvc_dag(tmp_path):
    dvc_bin = Path(sys.executable).parent / "dvc"
    if not dvc_bin.exists():
        pytest.skip("dvc is not installed in this environment")
    shutil.copy2(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([str(dvc_bin), "init", "--no-scm", "-q"], cwd=tmp_path, check=True, env=env)
    out = subprocess.run([str(dvc_bin), "dag", "--mermaid"], cwd=tmp_path, check=True, env=env,
                         capture_output=True, text=True).stdout
    names = dict(re.findall(r'(node\d+)\["([^"]+)"\]', out))
    theirs = {(names[a], names[b]) for a, b in re.findall(r"(node\d+)-->(node\d+)", out)}
    assert theirs and set(gen.stage_edges(gen.load_dvc_yaml(ROOT / "dvc.yaml"))) == theirs


# --------------------------------------------------------------------------------------------- results


def test_results_page_without_data_points_to_the_command():
    page = gen.results_page({"evaluate": None, "adaptive": None, "sweep": None})
    assert page.startswith('!!! note "No results in `data/` yet"')
    assert "make repro" in page and "dvc repro" in page and "data/evaluate/metrics.json" in page
    assert "|" not in page


def test_evaluate_tables():
    text = gen.evaluate_table(EVALUATE, "psnr")
    rows = _rows(text)
    assert rows[0] == ["restorer", "defense", "clean", "pgd 2/256", "pgd 8/256", "fgsm 8/256"]
    assert rows[1] == ["`resunet:base`", "none", "21.75", "17.84", "12.40", "14.43"]
    assert rows[2][:3] == ["`resunet:base`", "purified (non-adaptive)", "20.53"]
    assert "@" not in text                                          # transfer cells have their own table
    assert _rows(gen.evaluate_table(EVALUATE, "ssim"))[1][2] == "0.8100"
    transfer = _rows(gen.transfer_table(EVALUATE))
    assert transfer[0] == ["attacked restorer", "pgd 8/256 from resunet/base", "pgd 8/256 from resunet/finetuned"]
    assert transfer[1] == ["`resunet:base`", "-", "13.10"] and transfer[2] == ["`resunet:finetuned`", "12.90", "-"]
    assert gen.transfer_table({"m:base": {"none": {"clean": {"psnr": 1.0}}}}) == ""


def test_adaptive_table_rows_per_system():
    rows = _rows(gen.adaptive_table(ADAPTIVE))
    assert rows[0] == ["restorer", "system", "clean", "pgd 8/256", "bpda_eot 8/256", "full 8/256"]
    by_system = {r[1]: r for r in rows[1:]}
    assert by_system["undefended"][2:] == ["21.70", "11.38", "11.50", "11.60"]
    assert by_system["purified, mean over draws"][2:] == ["17.09", "17.09", "16.54", "15.43"]
    assert by_system["purified, worst draw"][2] == "20.10"
    assert by_system["purified, averaged output"][3] == "17.30"


def test_sweep_table_and_disabled_sweep():
    rows = _rows(gen.sweep_table(SWEEP))
    assert [r[1] for r in rows[1:]] == ["20", "50", "100"]           # numeric t* order
    t20, t50, t100 = rows[1:]
    assert t20[5:] == ["`ddpm-10`", "10", "50 %", "-0.05", "no"]
    assert t50[5:] == ["none within tolerance", "-", "-", "-", "no"]
    assert t100[5:] == ["`ddim-2`", "2", "2 %", "+0.00", "yes"]
    assert "disabled" in gen.sweep_table({"enabled": False})


def test_results_page_with_some_files():
    page = gen.results_page({"evaluate": EVALUATE, "adaptive": None, "sweep": {"enabled": False}})
    assert "## Robustness (evaluate stage)" in page and "### SSIM" in page and "### Transfer" in page
    assert "Not found in this build: `data/adaptive/metrics.json`" in page
    assert "## Against adaptive attacks" not in page and "sweep was disabled" in page
    full = gen.results_page({"evaluate": EVALUATE, "adaptive": ADAPTIVE, "sweep": SWEEP})
    assert "Not found" not in full and "## Against adaptive attacks (adaptive stage)" in full


def test_load_results(tmp_path):
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps(EVALUATE))
    assert gen.load_results(tmp_path) == {"evaluate": EVALUATE, "adaptive": None, "sweep": None}


# --------------------------------------------------------------------------------------------- benchmarks


def test_benchmark_kind_and_quick():
    assert gen.benchmark_kind("dynamic_filter_cpu_paper") == "dynamic_filter"
    assert gen.benchmark_kind("speed_cuda") == "speed" and gen.benchmark_kind("models_cpu_quick") == "models"
    assert gen.benchmark_kind("other") is None
    assert gen.is_quick({"quick": True}) and gen.is_quick({"setup": {"quick": True}}) and not gen.is_quick(SPEED)


def test_sections_of_each_benchmark():
    sim = gen.benchmark_sections(BENCHMARKS, "simulate")
    assert "### `simulate_cpu.json`" in sim and "cpu (x86_64, 2 threads), torch 2.13.0+cpu, 2026-11-26" in sim
    assert ["`toled`", "22.0", "21.3"] in _rows(sim) and "**118 ms**" in sim
    models = gen.benchmark_sections(BENCHMARKS, "models")
    assert models.index("`models_cpu.json`") < models.index("`models_cpu_quick.json` — smoke run")
    assert ["`dagf`", "paper", "1,129,561", "1,120,000", "+0.9 %", "39.5", "3.88"] in _rows(models)
    attacks = _rows(gen.benchmark_sections(BENCHMARKS, "attacks"))
    assert [r[0] for r in attacks[1:]] == ["PGD", "FGSM", "Square"]      # the study's PGD first
    assert attacks[3][7] == "16,000"
    purify = gen.benchmark_sections(BENCHMARKS, "purify")
    assert "cpu (x86_64, 1 thread), torch 2.13.0+cpu" in purify          # environment from the setup
    assert ["`ddim_5`", "5", "96.8", "29.76", "29.16"] in _rows(purify) and "30.11 dB" in purify
    dyn = _rows(gen.benchmark_sections(BENCHMARKS, "dynamic_filter"))
    assert ["4 x 32 x 128 x 128", "136.2", "269.8", "104.7", "38.2"] in dyn
    assert dyn[-1][5:] == ["3.3x", "1.7e-07"]


def test_speed_section_flags_divergence_and_equal_psnr():
    text = gen.benchmark_sections(BENCHMARKS, "speed")
    resunet = text[text.index("#### `resunet`"):text.index("#### `discnet`")]
    discnet = text[text.index("#### `discnet`"):text.index("#### `udcunet`")]
    assert "Diverged" not in resunet and '!!! warning "Diverged warm-up training"' in discnet
    assert "- Fastest: `bf16+cl`, **10.1x** the per-image loop." in resunet
    assert ["batched `ddim_5/fp32`", "5", "89.2", "24.9x", "24.61", "-1.97"] in _rows(resunet)
    assert "(computed here with the harness's rule" in resunet and "`ddpm_full_50/fp32`, **2.0x**" in resunet
    assert "not meaningful for a diverged restorer" in discnet
    assert "Skipped (time budget)" in text and "Dense bf16 peak taken as 989 TFLOP/s" in text
    recorded = gen.speed_model_section("resunet", _speed_model(34.0, at_equal=True), SPEED["setup"])
    assert "computed here" not in recorded and "at equal defended PSNR" in recorded


def test_missing_and_unknown_benchmarks():
    assert "python -m benchmarks.speed" in gen.benchmark_sections({}, "speed")
    with pytest.raises(ValueError, match="unknown benchmark"):
        gen.benchmark_sections({}, "nope")


def test_committed_records_render_on_every_section():
    records = gen.load_benchmarks(ROOT / "benchmarks" / "results")
    for kind in gen.SECTIONS:
        assert gen.benchmark_sections(records, kind).strip()


# --------------------------------------------------------------------------------------------- README


def test_readme_results_from_records():
    text = gen.readme_results(BENCHMARKS)
    rows = _rows(text)
    assert ["PGD", "11.49", "10.13", "20 gradients", "1.2"] in rows and ["FGSM", "14.43", "7.19", "1 gradient", "0.1"] in rows
    assert ["Square", "16.23", "5.39", "16,000 queries", "33.0"] in rows
    by_model = {r[0]: r for r in rows if r[0].startswith("`")}
    assert by_model["`resunet`"][1] == "10.1x (`bf16+cl`)"
    assert by_model["`resunet`"][2] == "24.9x (`ddim_5/fp32`, -1.97 dB)"
    assert by_model["`resunet`"][3] == "2.0x (`ddpm_full_50/fp32`)"
    assert by_model["`discnet` \\*"][3] == "-" and "diverged" in text
    assert "udcunet" not in text                                      # skipped models are left out
    assert gen.readme_results({}) == "No benchmark record in `benchmarks/results/`.\n"


def test_replace_readme_block():
    block = gen.readme_block(BENCHMARKS)
    readme = f"# x\n\n{gen.README_START}\nold\n{gen.README_END}\n\ntail\n"
    new = gen.replace_readme_block(readme, block)
    assert new == f"# x\n\n{block}\n\ntail\n" and gen.replace_readme_block(new, block) == new
    with pytest.raises(ValueError, match="exactly one"):
        gen.replace_readme_block("# no block\n", block)


def test_readme_block_is_in_sync_with_committed_records():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = gen.readme_block(gen.load_benchmarks(ROOT / "benchmarks" / "results"))
    found = re.search(re.escape(gen.README_START) + r".*?" + re.escape(gen.README_END), readme, re.S)
    assert found, "README.md has no results block"
    assert found.group(0) == expected, "README results block is stale: run python docs/gen.py readme-results --write"
    assert len(readme.splitlines()) <= 250


# --------------------------------------------------------------------------------------------- the site


@pytest.mark.skipif(not HAVE_MKDOCS, reason="mkdocs / mkdocs-material not installed (pip install -e '.[docs]')")
def test_hook_rejects_unknown_markers():
    from mkdocs.exceptions import PluginError

    hooks = _load("udcshield_docs_hooks_under_test", ROOT / "docs" / "hooks.py")
    page = SimpleNamespace(file=SimpleNamespace(src_path="x.md"))
    assert hooks.on_page_markdown("no marker\n", page, None, None) == "no marker\n"
    dag = hooks.on_page_markdown("a\n<!-- gen:dag -->\nb\n", page, None, None)
    assert dag.startswith("a\n```mermaid\n") and dag.endswith("```\n\nb\n")
    with pytest.raises(PluginError, match="unknown generated block 'nope'"):
        hooks.on_page_markdown("<!-- gen:nope -->\n", page, None, None)


def _text(html_file: Path) -> str:
    """The text of a built page, tags removed."""
    return re.sub(r"<[^>]+>", "", html_file.read_text(encoding="utf-8"))


def _build(tmp_path: Path, data_root: Path) -> Path:
    site = tmp_path / "site"
    env = {**os.environ, "UDCSHIELD_DOCS_DATA": str(data_root), "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return site


@pytest.mark.skipif(not HAVE_MKDOCS, reason="mkdocs / mkdocs-material not installed (pip install -e '.[docs]')")
def test_site_builds_strict_without_and_with_results(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    site = _build(tmp_path / "a", empty)
    for page in ("index", "pipeline/index", "configuration/index", "results/index", "benchmarks/index",
                 "operations/index", "audit/index", "extending/index"):
        assert (site / f"{page}.html").is_file(), page
    results = _text(site / "results" / "index.html")
    assert "No results in data/ yet" in results and "make repro" in results
    assert "gen:" not in (site / "pipeline" / "index.html").read_text(encoding="utf-8")
    assert not (site / "gen.py").exists() and not (site / "hooks.py").exists()

    data = tmp_path / "data"
    for name, payload in (("evaluate", EVALUATE), ("adaptive", ADAPTIVE), ("sweep", SWEEP)):
        (data / name).mkdir(parents=True)
        (data / name / "metrics.json").write_text(json.dumps(payload))
    results = _text(_build(tmp_path / "b", data) / "results" / "index.html")
    assert "No results" not in results and "21.75" in results and "ddim-2" in results and "15.43" in results


def test_startup_section_shows_failed_starts_and_the_api_cost():
    record = {"load_processes": 2, "repeats": 2,
              "seconds": {"imports": [3.0, 3.2], "temporary_server": ["failed", 30.0], "shared_cold": [20.0, 21.0],
                          "shared_warm": [4.0, 4.4]},
              "median_s": {"imports": 3.1, "temporary_server": 30.0, "shared_cold": 20.5, "shared_warm": 4.2},
              "api_overhead_s": {"before (temporary server per stage)": 26.9, "after (shared server, warm)": 1.1}}
    text = gen.startup_section(record)
    assert "2 CPU-bound busy processes" in text and "failed, 30.0" in text
    assert "| after (shared server, warm) | 1.10 |" in text
    assert gen.benchmark_kind("startup_cpu_load2") == "startup"
