"""Tiny parameters and a throw-away copy of the repository for end-to-end pipeline tests."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from udcshield.profiles import compose_profile

ROOT = Path(__file__).resolve().parents[1]


def deep_update(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "kwargs":
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@functools.lru_cache(maxsize=1)
def _tiny() -> dict:
    return compose_profile("tiny", conf_dir=ROOT / "conf")


def tiny_params() -> dict:
    """The ``tiny`` profile (``conf/profile/tiny.yaml`` over ``cpu``), as ``dvc exp run -S profile=tiny`` writes it."""
    return copy.deepcopy(_tiny())


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
