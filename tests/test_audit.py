"""Lineage audit on a real tiny ``dvc repro``: passes when fresh, names an altered array, a changed params
value, a changed file and a changed source image."""

import json

import numpy as np
import pytest
import yaml
import zarr

from tests.pipeline_fixtures import copy_workspace, run
from udcshield.audit import AuditError, audit, dvc_md5
from udcshield.cli import main

METRIC = "data/evaluate/metrics.json:resunet_tiny:base.none.pgd_8.psnr"
ARRAY = "data/attack/adversarial.zarr/resunet_tiny/base/pgd/8"


@pytest.fixture
def ws(repro_workspace, tmp_path):
    return copy_workspace(repro_workspace, tmp_path / "ws")


def _audit_cli(ws, *args):
    return main(["audit", *args, "--repo", str(ws)])


@pytest.mark.slow
def test_dvc_md5_matches_dvc_lock(repro_workspace):
    lock = yaml.safe_load((repro_workspace / "dvc.lock").read_text())["stages"]
    entries = [e for stage in lock.values() for e in (*stage.get("deps", []), *stage.get("outs", []))]
    assert any(e["md5"].endswith(".dir") for e in entries) and any(not e["md5"].endswith(".dir") for e in entries)
    for e in entries:
        assert dvc_md5(repro_workspace / e["path"], repro_workspace) == e["md5"], e["path"]


@pytest.mark.slow
def test_fresh_run_passes_and_prints_the_chain(repro_workspace, capsys):
    assert _audit_cli(repro_workspace, METRIC) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Lineage of {METRIC} = ")
    for stage in ("evaluate", "attack", "purify", "finetune", "train", "train_purifier", "simulate"):
        assert f"stage {stage}  [ok]" in out, stage
    assert "data/simulated/psf.zarr/psf  shape [9, 3, 15, 15]" in out
    assert "skimage.data.chelsea" in out and "skimage.data.astronaut" in out
    assert "param attack = " in out and "code dependencies (dvc.lock md5)" in out
    assert "PASS: all" in out


@pytest.mark.slow
def test_json_report_for_an_array(repro_workspace, capsys):
    assert _audit_cli(repro_workspace, ARRAY, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["kind"] == "array" and report["stage"] == "attack"
    assert report["detail"]["attributes"]["budget"] == 8 and report["detail"]["shape"][1:] == [3, 32, 32]
    assert [s["name"] for s in report["stages"]][0] == "attack"
    assert {s["id"] for s in report["sources"]} == {"astronaut", "coffee", "chelsea"}
    kinds = {c["kind"] for c in report["checks"]}
    assert {"params", "dep", "out", "array", "provenance", "source"} <= kinds


@pytest.mark.slow
def test_altered_array_chunk_fails_and_names_the_array(ws, capsys):
    arr = zarr.open_array(ws / ARRAY, mode="r+")
    first = np.asarray(arr[0])
    arr[0] = np.clip(first + np.float32(1 / 256), 0, 1)
    code = _audit_cli(ws, "data/report/report.md")
    captured = capsys.readouterr()
    assert code == 1
    assert f"array [attack] {ARRAY}: altered array" in captured.out
    assert ARRAY in captured.err
    # DVC's hash of data/attack changes too, and the cached manifest names the chunk file.
    assert f"changed: {ARRAY}/c/0/0/0/0" in captured.out
    report = audit(ARRAY, ws)
    failing = {c.subject for c in report.failures if c.kind == "array"}
    assert failing == {ARRAY}


@pytest.mark.slow
def test_params_change_without_repro_is_a_params_mismatch(ws, capsys):
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["attack"]["attacks"][0]["kwargs"]["steps"] = 4
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _audit_cli(ws, ARRAY) == 1
    out = capsys.readouterr().out
    assert "params mismatch" in out and "attack.attacks[0].kwargs.steps: dvc.lock 5 != params 4" in out
    report = audit(ARRAY, ws)
    assert {(c.kind, c.stage) for c in report.failures} == {("params", "attack")}


@pytest.mark.slow
def test_changed_source_image_record_is_named(ws):
    store = zarr.open_group(ws / "data/simulated/test.zarr", mode="r+")
    sources = store.attrs["sources"]
    sources[0]["sha256"] = "0" * 64
    store.attrs["sources"] = sources
    report = audit("data/simulated/test.zarr", ws)
    assert not report.ok
    assert any(c.kind == "source" and c.subject == "test/chelsea" for c in report.failures)
    assert any(c.kind == "out" and c.subject == "data/simulated" for c in report.failures)


@pytest.mark.slow
def test_unknown_target_and_missing_lock(ws, capsys):
    assert _audit_cli(ws, "no.such.metric") == 2
    assert "neither a path" in capsys.readouterr().err
    assert _audit_cli(ws, "data/attack/adversarial.zarr/nope") == 2
    assert "no array or group named 'nope'" in capsys.readouterr().err
    (ws / "dvc.lock").unlink()
    with pytest.raises(AuditError, match="dvc.lock not found"):
        audit(METRIC, ws)


def test_dvc_md5_honours_dvcignore_like_dvc(tmp_path):
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("a\n")
    (tmp_path / "out" / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (tmp_path / "out" / "sub" / "scratch.tmp").write_text("ignored")
    (tmp_path / ".dvcignore").write_text("# scratch files\n*.tmp\n")
    run(["dvc", "init", "--no-scm", "-q"], tmp_path)
    run(["dvc", "add", "-q", "out"], tmp_path)
    recorded = yaml.safe_load((tmp_path / "out.dvc").read_text())["outs"][0]
    assert recorded["nfiles"] == 2
    assert dvc_md5(tmp_path / "out", tmp_path) == recorded["md5"]
    assert dvc_md5(tmp_path / "out") != recorded["md5"]  # without the ignore rules the scratch file counts
    assert dvc_md5(tmp_path / "out" / "a.txt") == "60b725f10c9c85c70d97880dfe8191b3"  # md5 of b"a\n"
