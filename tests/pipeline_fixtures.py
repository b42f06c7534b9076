"""Tiny parameters and a throw-away copy of the repository for end-to-end pipeline tests."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY_OVERRIDES: dict[str, Any] = {
    "device": "cpu",
    "simulate": {"train_photos": ["astronaut", "coffee"], "test_photos": ["chelsea"], "patch_size": 32,
                 "train_patches_per_image": 8, "test_patches_per_image": 4, "scale": 0.25,
                 "optics": {"support_px": 15}},
    "train": {"models": [{"name": "resunet_tiny"}], "iterations": 40, "batch_size": 4, "crop_size": 32},
    "purifier": {"sample_size": 32, "block_out_channels": [8, 16], "iterations": 20, "batch_size": 4,
                 "crop_size": 32},
    "finetune": {"t_stars": [5, 10], "num_steps": None, "iterations": 10, "batch_size": 4, "crop_size": 32},
    "attack": {"attacks": [{"name": "pgd", "budgets": [2, 8], "kwargs": {"steps": 5, "random_start": True}},
                           {"name": "fgsm", "budgets": [8]}]},
    "purify": {"t_star": 10, "num_steps": None},
    "sweep": {"t_stars": [4, 8], "samplers": [{"sampler": "ddpm", "num_steps": None},
                                              {"sampler": "ddpm", "num_steps": 2},
                                              {"sampler": "ddim", "num_steps": 1},
                                              {"sampler": "ddim", "num_steps": 2}],
              "max_images": 2, "draws": 2},
}


def deep_update(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "kwargs":
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_params() -> dict:
    return deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY_OVERRIDES)


def make_workspace(dest: Path, params: dict | None = None) -> Path:
    """Copy what ``dvc repro`` needs into ``dest`` (a DVC repo without git) and write tiny params."""
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("flows", "tasks", "src"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / "params.yaml").write_text(yaml.safe_dump(params or tiny_params(), sort_keys=False))
    run(["dvc", "init", "--no-scm", "-q"], dest)
    run(["dvc", "config", "core.analytics", "false"], dest)
    return dest


def env(cwd: Path) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e["PYTHONPATH"] = str(cwd)
    e.setdefault("PREFECT_HOME", str(cwd / ".prefect"))
    e.setdefault("UDCSHIELD_PREFECT_IDLE", "20")  # the workspace's shared Prefect API stops soon after its last stage
    e["PREFECT_LOGGING_LEVEL"] = "WARNING"
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(cwd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def copy_workspace(src: Path, dest: Path) -> Path:
    """Copy a finished workspace (data, ``dvc.lock``, DVC cache) to ``dest`` so a test may change it."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".prefect"), dirs_exist_ok=True)
    return dest
