"""Resume: SIGKILL ``python -m flows attack`` after some shards are done; the rerun computes only the missing
shards and the final arrays are bit-identical to an uninterrupted run."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from tests.pipeline_fixtures import ROOT, env
from tests.shard_workspace import build_data, sharded_params
from udcshield.config import params_from_dict
from udcshield.pipeline import attack
from udcshield.pipeline.layout import Layout
from udcshield.store.zarr_io import read_images, store_attrs

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")
# 4 budgets x 4 images of PGD-40 plus FGSM, one image per shard: 20 shards, a few seconds of work
RESUME = {"attack": {"shard_size": 1, "batch_size": 1,
                     "attacks": [{"name": "pgd", "budgets": [1, 2, 4, 8], "kwargs": {"steps": 40, "random_start": True}},
                                 {"name": "fgsm", "budgets": [8]}]}}
TOTAL = 20
KILL_AFTER = 3


def _env(ws):
    return {**env(ROOT), "OMP_NUM_THREADS": "1", "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_HOME": str(ws / ".prefect")}


def _cmd(ws):
    return [sys.executable, "-m", "flows", "attack", "--params", str(ws / "params.yaml"), "--data", str(ws / "data")]


def _finished_shards(ws):
    folder = ws / "data" / ".shards" / "attack"
    return sorted(p.name for p in folder.glob("*.zarr")) if folder.is_dir() else []


def test_sigkill_then_rerun_completes_only_missing_shards(tmp_path):
    torch.set_num_threads(1)
    ws = tmp_path / "ws"
    raw = sharded_params(**RESUME)
    params, _ = build_data(ws, raw)
    baseline = Layout(tmp_path / "baseline" / "data")
    shutil.copytree(ws / "data", baseline.root)

    proc = subprocess.Popen(_cmd(ws), cwd=ROOT, env=_env(ws), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(_finished_shards(ws)) < KILL_AFTER:
            assert proc.poll() is None, "the attack flow ended before it could be killed"
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the flow and the temporary Prefect server it started
        proc.wait(timeout=60)
    done_at_kill = _finished_shards(ws)
    assert KILL_AFTER <= len(done_at_kill) < TOTAL, done_at_kill
    assert not (ws / "data" / "attack").exists(), "a killed stage must not leave an output store"

    rerun = subprocess.run(_cmd(ws), cwd=ROOT, env=_env(ws), capture_output=True, text=True, timeout=600)
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, log[-4000:]
    counts = re.search(r"attack shards: computed=(\d+) reused=(\d+)", log)
    assert counts, log[-4000:]
    computed, reused = int(counts.group(1)), int(counts.group(2))
    print(f"killed after {len(done_at_kill)} of {TOTAL} shards; rerun computed={computed} reused={reused}")
    assert (computed, reused) == (TOTAL - len(done_at_kill), len(done_at_kill))
    assert len(re.findall(r"attack shard \S+ computed on", log)) == computed
    assert len(re.findall(r"attack shard \S+ reused on", log)) == reused

    attack.run(params_from_dict(raw), baseline, CPU)  # uninterrupted, same thread count
    layout = Layout(ws / "data")
    names = store_attrs(baseline.adversarial)["sets"]
    assert names == store_attrs(layout.adversarial)["sets"] and len(names) == 5
    for name in names:
        np.testing.assert_array_equal(read_images(layout.adversarial, name, verify=True),
                                      read_images(baseline.adversarial, name), err_msg=name)
    assert not (ws / "data" / ".shards").exists(), "the shard cache is cleared after the store is written"
    assert not [p for p in (ws / "data" / "attack").iterdir() if p.name.startswith(".")]
