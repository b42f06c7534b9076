"""Deployments against a real ``prefect server`` on loopback (SQLite in a temporary PREFECT_HOME).

The deployed runs execute the real ``dvc repro`` on a small DVC project whose stage writes records and a
report in the pipeline's formats (the full tiny pipeline is covered by tests/test_e2e.py and takes
minutes); one stage fails on purpose. Server, serve process, worker and their children are killed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import psutil
import pytest

from flows.repro import ARTIFACT_KEY
from tasks.common import visible_gpu_count

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a real Prefect server: never hang CI

ROOT = Path(__file__).resolve().parents[2]
# Stand-ins for credentials present in the environment of every deployed run: none may reach a file,
# a lock file, an artifact, a log line or the run's parameters.
SECRETS = {"UDCSHIELD_TEST_API_TOKEN": "tok-5d41402abc4b2a76",
           "UDCSHIELD_TEST_DB_PASSWORD": "pw-7b8b965ad4bca0e4",
           "UDCSHIELD_TEST_REMOTE": "https://alice:pw-a87ff679a2f3e71d@storage.invalid/udc"}
SECRET_VALUES = ("tok-5d41402abc4b2a76", "pw-7b8b965ad4bca0e4", "pw-a87ff679a2f3e71d")

DVC_YAML = """stages:
  results:
    cmd: python make_results.py
    deps:
      - make_results.py
    outs:
      - data/evaluate/records.csv
      - data/report/report.md
      - data/report/report.json
  broken:
    cmd: python -c "import sys; print('stage broken is failing on purpose'); sys.exit(3)"
"""

MAKE_RESULTS = '''"""Records and a report in the pipeline's formats."""
import json
from pathlib import Path

from udcshield.evaluation.records import write_records_csv

rows = []
for image in range(4):
    for defense, attacked in (("none", 12.5), ("purified", 18.25)):
        rows.append(dict(image_id=f"im{image}", model="resunet:base", defense=defense, attack="clean",
                         budget=0, metric="psnr", value=21.75))
        rows.append(dict(image_id=f"im{image}", model="resunet:base", defense=defense, attack="pgd",
                         budget=8, metric="psnr", value=attacked))
write_records_csv(rows, "data/evaluate/records.csv")
Path("data/report").mkdir(parents=True, exist_ok=True)
Path("data/report/report.md").write_text("# udcshield robustness report\\n")
worst = [{"defense": "none", "label": "undefended", "psnr": 12.5, "condition": "pgd_8"},
         {"defense": "purified", "label": "purified", "psnr": 18.25, "condition": "pgd_8"}]
data = {"captions": {}, "adaptive": {"enabled": False},
        "worst_cases": {"rows": [{"source": "resunet/base", "model": "resunet:base", "clean": [21.75, 21.75],
                                  "worst": worst, "adaptive": None}]},
        "sanity_checks": [{"check": "c", "status": "pass", "detail": "d"}]}
Path("data/report/report.json").write_text(json.dumps(data))
print(f"results: wrote {len(rows)} records")
'''


@dataclass
class Server:
    url: str
    port: int
    env: dict[str, str]
    home: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: subprocess.Popen) -> None:
    """Terminate ``proc`` and every descendant (SIGTERM, then SIGKILL after 15 s)."""
    try:
        procs = [psutil.Process(proc.pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    proc.wait(timeout=5)


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PREFECT_HOME=str(home),
               PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_LOGGING_LEVEL="INFO",
               PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_WORKER_QUERY_SECONDS="1",
               PREFECT_WORKER_HEARTBEAT_SECONDS="5", OMP_NUM_THREADS="1")
    return env


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}:\n{_tail(log)}")
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: not ready after {timeout:.0f} s\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""


@contextmanager
def started(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        kill_tree(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect_home")
    port = free_port()
    env = base_env(home)
    log = home / "server.log"
    # No --host: the loopback default of flows.deploy is what is under test.
    with started([sys.executable, "-m", "flows.deploy", "server", "--port", str(port), "--no-ui"], ROOT,
                 env, log) as proc:
        url = f"http://127.0.0.1:{port}/api"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("prefect server", healthy, 120, proc, log)
        yield Server(url, port, {**env, "PREFECT_API_URL": url}, home)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("deploy_ws")
    for name in ("flows", "tasks"):
        shutil.copytree(ROOT / name, ws / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "prefect.yaml", ws / "prefect.yaml")
    (ws / "dvc.yaml").write_text(DVC_YAML)
    (ws / "make_results.py").write_text(MAKE_RESULTS)
    for cmd in (["init", "--no-scm", "-q"], ["config", "core.analytics", "false"]):
        subprocess.run([sys.executable, "-m", "dvc", *cmd], cwd=ws, check=True, capture_output=True)
    return ws


@contextmanager
def client_for(server: Server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        with get_client(sync_client=True) as client:
            yield client


def read_deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


def run_and_wait(client, deployment_id: UUID, parameters: dict | None = None, timeout: float = 240):
    """Trigger a run of the deployment and wait for a final state; returns the flow run."""
    run = client.create_flow_run_from_deployment(deployment_id, parameters=parameters or {})

    def final():
        fr = client.read_flow_run(run.id)
        return fr if fr.state is not None and fr.state.is_final() else None

    return wait_for(f"flow run {run.id}", final, timeout)


def run_logs(client, flow_run_id: UUID) -> list[str]:
    """Every log message of a flow run stored on the server so far, oldest first (paged)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    messages: list[str] = []
    while True:
        page = client.read_logs(log_filter=log_filter, limit=200, offset=len(messages), sort=LogSort.TIMESTAMP_ASC)
        messages.extend(entry.message for entry in page)
        if len(page) < 200:
            return messages


def run_logs_containing(client, flow_run_id: UUID, needles: list[str], timeout: float = 90) -> list[str]:
    """The run's log messages once each needle is in one of them.

    A run's logs are shipped to the server in batches by the process that ran it, so they can arrive
    after the run has reached its final state; this waits for them instead of reading once. After
    `timeout` seconds the messages stored so far are returned and the caller's assertion names the gap.
    """
    deadline = time.monotonic() + timeout
    while True:
        messages = run_logs(client, flow_run_id)
        if all(any(needle in m for m in messages) for needle in needles) or time.monotonic() > deadline:
            return messages
        time.sleep(1)


def run_artifacts(client, flow_run_id: UUID) -> list:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    return client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=[ARTIFACT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def assert_completed(client, run) -> None:
    assert run.state.is_completed(), f"{run.state}\n" + "\n".join(run_logs(client, run.id)[-60:])


def test_server_listens_on_loopback_only(server):
    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == server.port]
    assert listening, f"nothing listens on port {server.port}"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_served_deployment_runs_dvc_repro_and_publishes_the_table(server, workspace):
    env = {**server.env, **SECRETS, "PYTHONPATH": str(workspace)}
    name = "udcshield-serve-test"
    cmd = [sys.executable, "-m", "flows.deploy", "serve", "--name", name, "--repo-dir", str(workspace),
           "--target", "results", "--cron", "0 0 1 1 *"]
    log = server.home / "serve.log"
    with started(cmd, workspace, env, log) as proc, client_for(server) as client:
        dep = wait_for("served deployment", lambda: read_deployment(client, f"repro/{name}"), 120, proc, log)
        assert [s.schedule.cron for s in dep.schedules] == ["0 0 1 1 *"]
        assert dep.parameters == {"repo_dir": str(workspace.resolve()), "targets": ["results"]}
        assert dep.global_concurrency_limit.limit == 1  # one repro at a time
        # The gpu tag limit is set when serving: one slot per visible GPU (at least one).
        assert client.read_concurrency_limit_by_tag("gpu").concurrency_limit == visible_gpu_count()

        run = run_and_wait(client, dep.id)
        assert_completed(client, run)
        messages = run_logs_containing(client, run.id, ["dvc: Running stage 'results'", "results: wrote 16 records"])
        assert any("dvc: Running stage 'results'" in m for m in messages), messages
        assert any("results: wrote 16 records" in m for m in messages), messages  # stage stdout, streamed
        (artifact,) = run_artifacts(client, run.id)
        table = artifact.data
        assert "| model | defense | clean | pgd 8/256 |" in table
        assert "| resunet:base | none | 21.75 | 12.50 |" in table
        assert "| resunet:base | purified | 21.75 | 18.25 |" in table
        assert "## Defense at a glance" in table and "| resunet:base | 21.75 | 21.75 | 12.50 | 18.25 |" in table
        assert "## Sanity checks" not in table
        lock = (workspace / "dvc.lock").read_text()
        assert "results:" in lock and "data/evaluate/records.csv" in lock  # lineage stays in DVC

        failed = run_and_wait(client, dep.id, parameters={"targets": ["broken"]})
        assert failed.state.is_failed(), failed.state
        messages = run_logs_containing(client, failed.id, ["stage broken is failing on purpose", "exited with status"])
        assert any("stage broken is failing on purpose" in m for m in messages), messages
        assert any("exited with status" in m for m in messages), messages
        assert run_artifacts(client, failed.id) == []

        # No credential from the runs' environment reached files, the lock file, artifacts, logs or params.
        exposed = [table, json.dumps(dep.parameters), *run_logs(client, run.id), *messages]
        for path in workspace.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                exposed.append(path.read_text(errors="replace"))
        for secret in SECRET_VALUES:
            assert not any(secret in text for text in exposed), secret


def test_prefect_yaml_deploys_to_a_process_pool_and_a_worker_runs_it(server, workspace):
    env = {**server.env, "PYTHONPATH": str(workspace), "UDCSHIELD_REPO_DIR": str(workspace)}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    for cmd in (["work-pool", "create", "udcshield-process", "--type", "process"], ["deploy", "--all"]):
        proc = subprocess.run(prefect + cmd, cwd=workspace, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"prefect {' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    limit = subprocess.run([sys.executable, "-m", "flows.deploy", "gpu-limit"], cwd=workspace, env=env,
                           capture_output=True, text=True, timeout=120)
    assert limit.returncode == 0 and f"limit: {visible_gpu_count()}" in limit.stdout, limit.stderr[-3000:]
    with client_for(server) as client:
        dep = client.read_deployment_by_name("repro/udcshield-repro")
        assert dep.work_pool_name == "udcshield-process"
        assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [("0 3 * * *", "UTC")]
        assert dep.parameters == {"repo_dir": str(workspace)}
        assert dep.global_concurrency_limit.limit == 1  # one repro at a time
        # Setting the limit again (serve, gpu-limit) updates the one limit instead of adding another.
        gpu_limits = [c for c in client.read_concurrency_limits(limit=100, offset=0) if c.tag == "gpu"]
        assert [c.concurrency_limit for c in gpu_limits] == [visible_gpu_count()]

        log = server.home / "worker.log"
        worker = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "udcshield-process", "--limit", "1"]
        with started(worker, workspace, env, log):
            run = run_and_wait(client, dep.id, parameters={"targets": ["results"]})
        assert_completed(client, run)
        (artifact,) = run_artifacts(client, run.id)
        assert "| resunet:base | purified | 21.75 | 18.25 |" in artifact.data
