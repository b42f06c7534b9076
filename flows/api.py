"""One Prefect API for a whole ``dvc repro``: a shared local server, started once and reused by each stage.

Without a configured API, Prefect starts a temporary server in every process that runs a flow. Each
``dvc repro`` stage is such a process, so each paid 10-20 s of start-up, and on a busy machine Prefect's
own 20 s wait ran out ("Timed out while attempting to connect to ephemeral Prefect API server").

:func:`ensure_api` is called before Prefect is imported:

* an API set by the user (``PREFECT_API_URL`` in the environment or in the active profile of
  ``$PREFECT_HOME/profiles.toml``) is used as is, after a health check; unreachable, it is a one-line
  :class:`ApiUnavailable` naming the setting;
* otherwise a local server (the same ASGI app Prefect's temporary server runs, bound to 127.0.0.1, UI and
  background services off) is shared by every process with the same ``PREFECT_HOME``: the first starts it
  under a small supervisor (``python -m flows.api serve``) and waits up to
  ``UDCSHIELD_PREFECT_START_TIMEOUT`` seconds (default 180) for it; the next ones find it through
  ``$PREFECT_HOME/udcshield-api.json``. Each user holds a lease (a file named by its pid); the supervisor
  stops the server once no live process has held a lease for ``UDCSHIELD_PREFECT_IDLE`` seconds
  (default 60), i.e. shortly after the last stage of a ``dvc repro``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

START_TIMEOUT_ENV = "UDCSHIELD_PREFECT_START_TIMEOUT"
IDLE_ENV = "UDCSHIELD_PREFECT_IDLE"
STATE_FILE = "udcshield-api.json"


class ApiUnavailable(RuntimeError):
    """The Prefect API cannot be reached or started; the message names the setting to change."""


def prefect_home() -> Path:
    """``$PREFECT_HOME`` (default ``~/.prefect``)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def configured_api_url(home: Path | None = None) -> tuple[str | None, str]:
    """(API URL the user configured, where it was set) from the environment or the active profile."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"], "PREFECT_API_URL"
    path = (home or prefect_home()) / "profiles.toml"
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None, ""
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    url = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return (str(url), f"PREFECT_API_URL of profile {active!r} in {path}") if url else (None, "")


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True when ``<api_url>/health`` answers 200."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seconds(env: str, default: float) -> float:
    raw = os.environ.get(env, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ApiUnavailable(f"{env}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ApiUnavailable(f"{env} must be > 0 seconds, got {raw!r}")
    return value


def _lease(home: Path) -> None:
    leases = home / "udcshield-leases"
    leases.mkdir(parents=True, exist_ok=True)
    lease = leases / str(os.getpid())
    lease.touch()
    atexit.register(lambda: lease.unlink(missing_ok=True))


def _start_server(home: Path, timeout: float) -> str:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = home / "udcshield-api.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flows.api", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ApiUnavailable(f"the local Prefect server exited with status {proc.returncode}; see {log}")
        if healthy(url, timeout=1.0):
            (home / STATE_FILE).write_text(json.dumps({"url": url, "pid": proc.pid}))
            return url
        time.sleep(0.2)
    proc.terminate()
    raise ApiUnavailable(f"the local Prefect server did not answer within {timeout:g} s (raise {START_TIMEOUT_ENV}, "
                         f"or set PREFECT_API_URL to a running server); see {log}")


def ensure_api() -> str:
    """Make sure a Prefect API answers and point this process at it (sets ``PREFECT_API_URL``).

    Call before importing Prefect. Returns the API URL; raises :class:`ApiUnavailable` (one line naming
    the setting) when a configured API does not answer or a local one cannot be started.
    """
    home = prefect_home()
    url, where = configured_api_url(home)
    if url:
        if not healthy(url, timeout=5.0):
            raise ApiUnavailable(f"the Prefect API at {url} (set by {where}) does not answer; start that server "
                                 f"(python -m flows.deploy server) or unset PREFECT_API_URL to use a local one")
        return url
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "udcshield-api.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _lease(home)  # before the server looks for leases
        state = {}
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((home / STATE_FILE).read_text())
        url = state.get("url")
        if not (url and _alive(int(state.get("pid", -1))) and healthy(url)):
            url = _start_server(home, _seconds(START_TIMEOUT_ENV, 180.0))
    os.environ["PREFECT_API_URL"] = url
    return url


def serve(port: int, idle: float) -> int:
    """Supervisor: run the Prefect API on 127.0.0.1:``port`` until no lease was live for ``idle`` seconds."""
    import signal

    import prefect

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the clean-up below on terminate
    home = prefect_home()
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent),
                               "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "error", "--lifespan", "on"], env=env)
    leases = home / "udcshield-leases"
    last_seen = time.monotonic()
    try:
        while server.poll() is None:
            live = [p for p in leases.glob("*") if p.name.isdigit() and _alive(int(p.name))]
            for stale in set(leases.glob("*")) - set(live):
                stale.unlink(missing_ok=True)
            if live:
                last_seen = time.monotonic()
            elif time.monotonic() - last_seen > idle:
                break
            time.sleep(1.0)
    finally:
        if server.poll() is None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=20)
        with contextlib.suppress(OSError, ValueError):
            if json.loads((home / STATE_FILE).read_text()).get("pid") == os.getpid():
                (home / STATE_FILE).unlink()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m flows.api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the shared local Prefect API (started by ensure_api)")
    p_serve.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    sys.exit(serve(args.port, _seconds(IDLE_ENV, 60.0)))
