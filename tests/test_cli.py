"""Command lines: params are validated before any work, errors name the culprit, exit codes are non-zero."""

import subprocess
import sys
from pathlib import Path

import yaml

from tests.pipeline_fixtures import ROOT, env, tiny_params
from udcshield.cli import main


def _write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_validate_prints_resolved_params(tmp_path, capsys):
    assert main(["validate", "--params", str(_write(tmp_path, tiny_params()))]) == 0
    assert '"t_star": 10' in capsys.readouterr().out


def test_unknown_key_is_rejected_before_work(tmp_path, capsys):
    params = tiny_params()
    params["attack"]["epsilon"] = 8
    code = main(["run", "simulate", "--params", str(_write(tmp_path, params)), "--data", str(tmp_path / "data")])
    assert code == 2
    assert "attack.epsilon" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_missing_input_store_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "train", "--params", str(_write(tmp_path, tiny_params())), "--data", str(tmp_path / "data")])
    assert code == 1
    err = capsys.readouterr().err
    assert "train.zarr" in err and "not found" in err


def test_flow_entry_rejects_negative_budget_before_prefect_starts(tmp_path):
    params = tiny_params()
    params["attack"]["attacks"][0]["budgets"] = [-1]
    path = _write(tmp_path, params)
    proc = subprocess.run([sys.executable, "-m", "flows", "attack", "--params", str(path), "--data",
                           str(tmp_path / "data")], cwd=ROOT, env=env(ROOT), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "attack.attacks[0].budgets[0]" in proc.stderr
    assert "Beginning flow run" not in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()


def test_flow_entry_rejects_wrong_type(tmp_path):
    params = tiny_params()
    params["purify"]["t_star"] = "ten"
    proc = subprocess.run([sys.executable, "-m", "flows", "purify", "--params", str(_write(tmp_path, params))],
                          cwd=ROOT, env=env(ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "purify.t_star must be an integer" in proc.stderr
