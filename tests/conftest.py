import pytest
import torch

from tests.pipeline_fixtures import make_workspace, run


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is as fast and avoids thrashing on a shared, busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repro_workspace(tmp_path_factory):
    """One real ``dvc repro`` on tiny params per test session, shared by the end-to-end tests.

    Read-only: a test that changes files copies it first (``tests.pipeline_fixtures.copy_workspace``).
    """
    ws = make_workspace(tmp_path_factory.mktemp("repro"))
    run(["dvc", "repro"], ws)
    return ws
