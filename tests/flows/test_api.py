"""One Prefect API for a whole ``dvc repro``: configured APIs are checked, a local one is shared."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import api

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def test_profile_api_url_is_the_configured_one(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    (tmp_path / "profiles.toml").write_text('active = "prod"\n[profiles.prod]\nPREFECT_API_URL = "http://h:1/api"\n')
    url, where = api.configured_api_url(tmp_path)
    assert url == "http://h:1/api" and "profile 'prod'" in where
    monkeypatch.setenv("PREFECT_API_URL", "http://env:2/api")
    assert api.configured_api_url(tmp_path) == ("http://env:2/api", "PREFECT_API_URL")


def test_unreachable_configured_api_is_one_line_naming_the_setting(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = subprocess.run([sys.executable, "-m", "flows", "simulate", "--data", str(tmp_path / "data")], cwd=ROOT,
                          env=clean_env(tmp_path, PREFECT_API_URL=url), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "PREFECT_API_URL" in lines[0], proc.stderr
    assert not (tmp_path / "data").exists()


def test_bad_start_timeout_setting_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(api.START_TIMEOUT_ENV, "soon")
    with pytest.raises(api.ApiUnavailable, match="UDCSHIELD_PREFECT_START_TIMEOUT='soon'"):
        api._seconds(api.START_TIMEOUT_ENV, 1.0)


@pytest.mark.timeout(300)
def test_local_server_is_shared_then_stopped_when_idle(tmp_path):
    """Two processes with one PREFECT_HOME get the same server; it stops once no lease is live."""
    code = "from flows.api import ensure_api; print(ensure_api())"
    env = clean_env(tmp_path, **{api.IDLE_ENV: "3"})
    first = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=240, check=True).stdout.strip()
    second = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True).stdout.strip()
    assert first == second and first.startswith("http://127.0.0.1:")
    pid = json.loads((tmp_path / api.STATE_FILE).read_text())["pid"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and api._alive(pid):
        time.sleep(0.5)
    assert not api._alive(pid), "the supervisor outlived its idle timeout"
    assert not api.healthy(first) and not (tmp_path / api.STATE_FILE).exists()
