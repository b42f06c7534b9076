"""The console filter of ``python -m flows``: Prefect's records about a bad-input error are dropped, bugs are not."""

import logging
import sys

import pytest

from tasks.console import QUIET_ENV, UserErrorConsoleFilter, quiet_if_requested, quiet_user_errors
from udcshield.store.zarr_io import StoreError


def _record(name: str, level: int, message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, message, None, exc_info)


def test_records_about_a_user_error_are_dropped_and_others_kept():
    console = UserErrorConsoleFilter()
    error = StoreError("data/simulated/test.zarr/inputs: contains NaN or Inf")
    assert console.filter(_record("prefect.task_runs", logging.INFO, "Created task run 'x'"))
    assert not console.filter(_record("prefect.task_runs", logging.ERROR, f"Task run failed with exception: {error!r}",
                                      error))
    assert not console.filter(_record("prefect.task_runs", logging.ERROR,
                                      f"Finished in state Failed('Task run encountered an exception StoreError: {error}')"))
    assert not console.filter(_record("prefect.flow_runs", logging.ERROR, "Encountered exception during execution", error))
    assert not console.filter(_record("prefect.flow_runs", logging.INFO,
                                      f"Finished in state Failed('Flow run encountered an exception: {error}')"))
    assert console.filter(_record("prefect.flow_runs", logging.INFO, "Finished in state Completed()"))
    bug = KeyError("images")
    assert console.filter(_record("prefect.task_runs", logging.ERROR, "Task run failed with exception", bug))
    assert console.filter(_record("prefect.flow_runs", logging.ERROR, "Finished in state Failed('KeyError: images')"))
    assert console.filter(_record("udcshield.pipeline.shards", logging.WARNING, "shard cache entry x failed verification"))
    assert console.filter(_record("distributed.worker", logging.ERROR, "a worker error", error))  # not Prefect's


def test_installed_once_on_every_root_handler(monkeypatch):
    root = logging.getLogger()
    handlers = [logging.StreamHandler(sys.stderr), logging.StreamHandler(sys.stderr)]
    monkeypatch.setattr(root, "handlers", handlers)
    quiet_user_errors()
    quiet_user_errors()
    filters = [f for h in handlers for f in h.filters if isinstance(f, UserErrorConsoleFilter)]
    assert len(filters) == 2 and filters[0] is filters[1]


@pytest.mark.parametrize("value, installed", [("1", True), (None, False)])
def test_dask_workers_install_it_when_the_flow_command_asks(monkeypatch, value, installed):
    handler = logging.StreamHandler(sys.stderr)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    if value is None:
        monkeypatch.delenv(QUIET_ENV, raising=False)
    else:
        monkeypatch.setenv(QUIET_ENV, value)
    quiet_if_requested()
    assert any(isinstance(f, UserErrorConsoleFilter) for f in handler.filters) is installed
