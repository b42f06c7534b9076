"""A stage starts and finishes with two CPU-bound processes beside it on the 2 cores.

Before the shared Prefect API, each stage started Prefect's temporary server and waited at most 20 s
for it; on a busy machine that wait ran out ("Timed out while attempting to connect to ephemeral
Prefect API server"). The shared server is waited for much longer and started once.
"""

import multiprocessing

import pytest

from tests.pipeline_fixtures import make_workspace, run

pytestmark = pytest.mark.slow


def _busy() -> None:
    while True:
        pass


@pytest.mark.timeout(900)
def test_stage_runs_under_cpu_load(tmp_path):
    ws = make_workspace(tmp_path)
    busy = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(2)]
    for p in busy:
        p.start()
    try:
        proc = run(["python", "-m", "flows", "simulate"], ws, timeout=800)
    finally:
        for p in busy:
            p.terminate()
    assert (ws / "data" / "simulated" / "test.zarr" / "zarr.json").is_file(), proc.stdout[-2000:]
    assert "Timed out" not in proc.stderr
