"""Attack and purify through prefect-dask on a 2-worker LocalCluster: bit-identical to the local runner."""

import re

import numpy as np
import pytest
import torch
import yaml

from tests.pipeline_fixtures import ROOT, deep_update, env
from tests.shard_workspace import build_data, sharded_params
from udcshield.pipeline import attack, purify
from udcshield.store.zarr_io import read_images, store_attrs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CPU = torch.device("cpu")


def _flow(stage, ws, params_file, extra_env=None, code=0):
    import subprocess
    import sys

    e = {**env(ROOT), "OMP_NUM_THREADS": "1", "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_HOME": str(ws / ".prefect"),
         **(extra_env or {})}
    proc = subprocess.run([sys.executable, "-m", "flows", stage, "--params", str(params_file), "--data",
                           str(ws / "data")], cwd=ROOT, env=e, capture_output=True, text=True, timeout=600)
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _arrays(store):
    return {n: read_images(store, n) for n in store_attrs(store)["sets"]}


def test_dask_runner_matches_local_runner_bit_for_bit(tmp_path):
    torch.set_num_threads(1)
    raw = sharded_params()
    params, layout = build_data(tmp_path, raw)
    attack.run(params, layout, CPU)  # local runner, in this process, one thread
    purify.run(params, layout, CPU)
    local_adv, local_pur = _arrays(layout.adversarial), _arrays(layout.purified)

    dask_params = tmp_path / "params_dask.yaml"
    dask_params.write_text(yaml.safe_dump(deep_update(raw, {"runner": {"kind": "dask", "n_workers": 2}})))
    logs = _flow("attack", tmp_path, dask_params) + _flow("purify", tmp_path, dask_params)

    assert "LocalCluster" in logs
    workers = set(re.findall(r"attack shard \S+ computed on cpu \(worker (\d+)\)", logs))
    assert workers == {"0", "1"}, f"shards should spread over both workers, got {workers}"
    assert "attack shards: computed=6 reused=0" in logs and "purify shards: computed=8 reused=0" in logs
    assert store_attrs(layout.adversarial)["runner"] == "dask"
    for name, expected in local_adv.items():
        np.testing.assert_array_equal(read_images(layout.adversarial, name), expected, err_msg=name)
    for name, expected in local_pur.items():
        np.testing.assert_array_equal(read_images(layout.purified, name), expected, err_msg=name)
    assert not (layout.root / ".shards").exists()



def test_an_error_on_a_worker_process_is_one_line(tmp_path):
    """A unit failing inside a Dask worker process (here: a shard cache below a file, found when the first
    shard is written) ends ``python -m flows`` with exit 1 and the one error line, without tracebacks."""
    (tmp_path / "afile").write_text("not a folder")
    raw = deep_update(sharded_params(), {"runner": {"kind": "dask", "n_workers": 2, "processes": True,
                                                     "shard_cache": str(tmp_path / "afile" / "cache")}})
    build_data(tmp_path, raw)
    logs = _flow("attack", tmp_path, tmp_path / "params.yaml", code=1)
    line = f"udcshield: error in stage attack: [Errno 20] Not a directory: '{tmp_path / 'afile' / 'cache' / 'attack'}'"
    assert logs.rstrip().splitlines()[-1] == line, logs[-3000:]
    assert logs.count("Not a directory") == 1 and "Traceback" not in logs and "| ERROR" not in logs, logs[-3000:]


def test_muted_teardown_silences_the_cluster_loggers_after_a_failure_and_restores_them():
    """After ``mute()`` the closed-stream tracebacks that a LocalCluster logs while it closes with units in
    flight (``distributed.batched`` at INFO with exc_info; ``tornado.application``, whose level dask sets)
    are dropped; before it, and after the block, they are logged as usual."""
    import logging

    from tasks.runner import muted_teardown

    class Keep(logging.Handler):
        def emit(self, record):
            kept.append(record.getMessage())

    kept, keep = [], Keep(logging.DEBUG)
    batched, tornado_app = logging.getLogger("distributed.batched"), logging.getLogger("tornado.application")
    batched.setLevel(logging.INFO)
    tornado_app.setLevel(logging.ERROR)
    batched.addHandler(keep)
    tornado_app.addHandler(keep)
    with muted_teardown() as mute:
        batched.info("before the failure")
        mute()
        try:
            raise OSError("Stream is closed")
        except OSError:
            batched.info("Batched Comm Closed", exc_info=True)
            tornado_app.error("Exception in callback", exc_info=True)
    batched.info("after the block")
    batched.removeHandler(keep)
    tornado_app.removeHandler(keep)
    assert kept == ["before the failure", "after the block"]
    assert tornado_app.level == logging.ERROR and batched.level == logging.INFO
