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


# ------------------------------------------------------------------ a hand-made repository (no dvc repro)
def _tiny_repo(root):
    """Two locked stages, ``prep`` (writes a zarr store with provenance and a source record) and ``score``
    (a metrics file), with dvc.lock hashes computed as DVC 3 does."""
    from udcshield.store.hashing import file_sha256, tree_sha256
    from udcshield.store.zarr_io import write_store

    (root / "raw").mkdir(parents=True)
    (root / "raw" / "photo.txt").write_text("pixels\n")
    (root / "prep.py").write_text("print('prep')\n")
    (root / "score.py").write_text("print('score')\n")
    (root / "params.yaml").write_text(yaml.safe_dump({"prep": {"n": 3, "lr": 1e-6}, "score": {"metric": "psnr"}}))
    raw = "raw/photo.txt"
    attrs = {"stage": "prep", "inputs": {"raw": {"path": raw, "sha256": tree_sha256(root / raw)}},
             "sources": [{"id": "photo", "origin": raw, "sha256": file_sha256(root / raw)}], "split": "train",
             "code": {"package": "0", "git_commit": None}, "libraries": {"torch": "x"}}
    with write_store(root / "data" / "prep" / "images.zarr", attrs) as w:
        w.add_images("set/a", np.linspace(0, 1, 2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4))
    (root / "data" / "score").mkdir(parents=True)
    (root / "data" / "score" / "metrics.json").write_text(json.dumps({"model": {"clean": {"psnr": 31.5}}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "prep": {"cmd": "python prep.py", "deps": [raw, "prep.py"], "params": ["prep.n", "prep.lr"],
                 "outs": ["data/prep"]},
        "score": {"cmd": ["python score.py", "echo done"], "deps": ["data/prep", "score.py"],
                  "params": ["score.metric"], "metrics": [{"data/score/metrics.json": {"cache": False}}]}}}))

    def entry(path):
        return {"path": path, "md5": dvc_md5(root / path, root)}

    lock = {"schema": "2.0", "stages": {
        "prep": {"cmd": "python prep.py", "deps": [entry(raw), entry("prep.py")],
                 "params": {"params.yaml": {"prep.n": 3, "prep.lr": 1e-6}}, "outs": [entry("data/prep")]},
        "score": {"cmd": "python score.py && echo done", "deps": [entry("data/prep"), entry("score.py")],
                  "params": {"params.yaml": {"score.metric": "psnr"}}, "outs": [entry("data/score/metrics.json")]}}}
    # DVC writes small floats in YAML 1.2 form (no dot), which PyYAML alone would read back as a string
    (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False).replace("1.0e-06", "1e-06"))
    return root


def test_hand_made_repo_passes_and_renders(tmp_path):
    repo = _tiny_repo(tmp_path / "repo")
    report = audit("model.clean.psnr", repo)
    assert report.ok and report.kind == "metric" and report.value == 31.5 and report.stage == "score"
    assert [s.name for s in report.stages] == ["score", "prep"] and report.stages[0].upstream == ["prep"]
    kinds = {c.kind for c in report.checks}
    assert kinds == {"command", "deps-list", "params", "dep", "out", "array", "provenance", "source"}
    text = report.to_text()
    assert text.startswith("Lineage of data/score/metrics.json:model.clean.psnr = 31.5")
    assert "stage score  [ok]  <- prep" in text and "param prep.lr = 1e-06" in text
    assert "train photo  raw/photo.txt" in text and text.rstrip().splitlines()[-1].startswith("PASS: all")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["failures"] == []
    array = audit("data/prep/images.zarr/set/a", repo)
    assert array.ok and array.kind == "array" and array.detail["shape"] == [2, 3, 4, 4]
    assert audit("data/score/metrics.json:model/clean/psnr", repo).value == 31.5
    assert audit(str(repo / "data" / "prep"), repo).kind == "path"


def test_hand_made_repo_names_what_changed(tmp_path):
    repo = _tiny_repo(tmp_path / "repo")
    arr = zarr.open_array(repo / "data/prep/images.zarr/set/a", mode="r+")
    arr[0] = np.zeros((3, 4, 4), dtype=np.float32)
    (repo / "raw" / "photo.txt").write_text("other pixels\n")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prep"]["n"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    report = audit("model.clean.psnr", repo)
    failed = {(c.kind, c.stage, c.subject) for c in report.failures}
    assert ("array", "prep", "data/prep/images.zarr/set/a") in failed
    assert ("params", "prep", "params.yaml:prep.n") in failed and ("dep", "prep", "raw/photo.txt") in failed
    assert ("source", "prep", "train/photo") in failed and ("out", "prep", "data/prep") in failed
    assert ("dep", "score", "data/prep") in failed
    assert any(c.kind == "provenance" and "raw/photo.txt" in c.subject for c in report.failures)
    text = report.to_text()
    assert "prep.n: dvc.lock 3 != params 4" in text and "FAIL:" in text and "stage prep  [" in text


def test_hand_made_repo_refuses_unknown_targets(tmp_path):
    repo = _tiny_repo(tmp_path / "repo")
    with pytest.raises(AuditError, match="neither a path"):
        audit("model.clean.ssim", repo)
    with pytest.raises(AuditError, match="no array or group named 'nope'"):
        audit("data/prep/images.zarr/nope", repo)
    with pytest.raises(AuditError, match="outside the repository"):
        audit(str(tmp_path), repo)
    with pytest.raises(AuditError, match="no dvc.yaml"):
        audit("x", tmp_path)
    (repo / "dvc.lock").unlink()
    with pytest.raises(AuditError, match="dvc.lock not found"):
        audit("model.clean.psnr", repo)
