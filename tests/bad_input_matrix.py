"""The bad-input matrix harness: a small finished data root, a private broken copy per row, and both paths.

Each row copies the data root (simulated stores from two photo files and an untrained restorer
checkpoint), breaks one thing and runs one stage through both command lines:

- ``udcshield run <stage>`` (in-process), and
- ``python -m flows <stage>`` (a subprocess, as ``dvc repro`` runs it, at Prefect's default INFO level).

:func:`run_both` asserts that the two paths agree: the same exit status and the same single error line
on stderr, no traceback, no Prefect ERROR record on the console, the message printed once (no Prefect
state line repeats it), nothing printed at all by the flow path for bad params (it never starts a flow
run). :func:`assert_clean_failure` then checks that every file under the data root, the shard cache
included, is as it was.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.pipeline_fixtures import ROOT, deep_update, env, tiny_params
from udcshield.cli import main
from udcshield.models.checkpoint import save_checkpoint
from udcshield.models.registry import create_restorer
from udcshield.store.hashing import file_sha256

MODEL = "resunet_tiny"


def matrix_params(photos: Path) -> dict:
    return deep_update(tiny_params(), {
        "simulate": {"source": "folder", "dataset_root": str(photos), "scale": 1.0},
        "attack": {"models": ["base"], "attacks": [{"name": "fgsm", "budgets": [8]}]},
        "sweep": {"attack": "fgsm"},  # the sweep purifies one of the crafted attacks
    })


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """photos/{train,test}/*.png, params.yaml, data/simulated (by the simulate stage), data/restorers."""
    from imageio.v3 import imwrite

    root = tmp_path_factory.mktemp("bad-inputs")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "photos" / split).mkdir(parents=True)
        imwrite(root / "photos" / split / f"{split}_a.png", (rng.random((72, 80, 3)) * 255).astype(np.uint8))
    params = write_params(root / "params.yaml", matrix_params(root / "photos"))
    assert main(["run", "simulate", "--params", str(params), "--data", str(root / "data")]) == 0
    model = create_restorer(MODEL, generator=torch.Generator().manual_seed(0))
    save_checkpoint(model, root / "data" / "restorers" / MODEL)
    return root


@pytest.fixture
def case(base, tmp_path):
    """A private copy of ``base`` whose params point at its own photos."""
    case = Path(shutil.copytree(base, tmp_path / "case"))
    write_params(case / "params.yaml", matrix_params(case / "photos"))
    return case


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (hidden ones: shard cache, temporary siblings)."""
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(case: Path, stage: str, capsys) -> tuple[int, str]:
    code = main(["run", stage, "--params", str(case / "params.yaml"), "--data", str(case / "data")])
    return code, capsys.readouterr().err


def run_flow(case: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows", stage, "--params", str(case / "params.yaml"),
                           "--data", str(case / "data")], cwd=ROOT, env={**env(ROOT), "PREFECT_LOGGING_LEVEL": "INFO"},
                          capture_output=True, text=True, timeout=300)


def run_both(case: Path, stage: str, capsys) -> tuple[int, str]:
    """Run ``stage`` through both command lines; assert they print the same one line and exit alike.

    Returns (exit status, the error line). The data root must be the same after the flow path as after
    the command line (each leaves it as it found it; callers compare with their snapshot).
    """
    code, err = run_cli(case, stage, capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("udcshield: error"), err
    after_cli = snapshot(case / "data")
    proc = run_flow(case, stage)
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "| ERROR" not in output, output[-3000:]
    flow_lines = proc.stderr.strip().splitlines()
    assert flow_lines and flow_lines[-1] == lines[0], (flow_lines[-3:], lines[0])
    message = lines[0].split(": ", 2)[-1] if code == 2 else lines[0].partition(f"in stage {stage}: ")[2]
    assert message and output.count(message) == 1, output[-3000:]  # Prefect's state lines do not repeat it
    if code == 2:  # bad params: refused before Prefect starts
        assert proc.stdout == "" and flow_lines == lines, output[-3000:]
    assert snapshot(case / "data") == after_cli
    return code, lines[0]


def assert_clean_failure(case: Path, before: dict[str, str], out: str | None = None) -> None:
    """Every file as before (the broken one included), no temporary leftovers, ``out`` absent or as before."""
    after = snapshot(case / "data")
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:6]
    leftovers = [p.name for p in (case / "data").rglob(".*") if ".tmp-" in p.name or ".old-" in p.name
                 or p.name.startswith((".tmp", ".old"))]
    assert not leftovers, leftovers
    assert not (case / "data" / ".shards").exists() or any(k.startswith(".shards/") for k in before)
    if out is not None:
        assert not (case / "data" / out).exists() or any(k.startswith(out + "/") or k == out for k in before)


def set_params(case: Path, **sections) -> None:
    params = yaml.safe_load((case / "params.yaml").read_text())
    write_params(case / "params.yaml", deep_update(params, sections))
