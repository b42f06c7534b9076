"""Scheduled deployment of the pipeline: ``python -m flows.deploy <server|serve|gpu-limit>``.

- ``server``: starts ``prefect server start`` bound to loopback (127.0.0.1) unless ``--host`` or
  ``UDCSHIELD_SERVER_HOST`` says otherwise; a non-loopback host is refused unless the API is protected
  (``PREFECT_SERVER_API_AUTH_STRING`` set) or ``--behind-proxy`` states that an authenticating reverse
  proxy sits in front of it.
- ``serve``: creates the deployment ``repro/udcshield-repro`` of ``flows.repro:repro_flow`` (each run is
  ``dvc repro`` in the repository, then the robustness table as a markdown artifact) with a cron schedule,
  sets the ``gpu`` tag concurrency limit to the number of visible GPUs, and serves it: runs execute in
  subprocesses of this process, one at a time.
- ``gpu-limit``: only sets the ``gpu`` tag concurrency limit (for the work pool + worker set-up of
  ``prefect.yaml``).

All talk to the API of the current Prefect settings (``PREFECT_API_URL``).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_NAME = "udcshield-repro"
DEFAULT_CRON = "0 3 * * *"  # every day at 03:00
DEFAULT_TIMEZONE = "UTC"
LOOPBACK = "127.0.0.1"
HOST_ENV = "UDCSHIELD_SERVER_HOST"


class DeployError(ValueError):
    """A deployment or server setting that would be unsafe or cannot work."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_host(cli_host: str | None = None, environ: dict[str, str] | None = None) -> str:
    """Address the Prefect server binds to: ``cli_host``, else ``$UDCSHIELD_SERVER_HOST``, else 127.0.0.1."""
    env = os.environ if environ is None else environ
    host = cli_host or env.get(HOST_ENV) or LOOPBACK
    if not host.strip():
        raise DeployError(f"{HOST_ENV}: empty host")
    return host.strip()


def auth_configured() -> bool:
    """Whether the Prefect server will require basic auth (PREFECT_SERVER_API_AUTH_STRING is set)."""
    from prefect.settings import get_current_settings

    secret = get_current_settings().server.api.auth_string
    return secret is not None and bool(secret.get_secret_value())


def server_command(host: str, port: int, behind_proxy: bool = False, extra: list[str] | None = None) -> list[str]:
    """The ``prefect server start`` command line for ``host``:``port`` (port 1..65535).

    Raises DeployError for a non-loopback host unless basic auth is configured or ``behind_proxy``.
    """
    if not 0 < port < 65536:
        raise DeployError(f"port must be in 1..65535, got {port}")
    if not is_loopback(host) and not behind_proxy and not auth_configured():
        raise DeployError(
            f"refusing to expose the Prefect server on {host!r} without authentication: set "
            "PREFECT_SERVER_API_AUTH_STRING='user:password' (and PREFECT_API_AUTH_STRING on clients), or "
            "put an authenticating reverse proxy in front and pass --behind-proxy")
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port), *(extra or [])]


def deployment(name: str = DEPLOYMENT_NAME, cron: str | None = DEFAULT_CRON, timezone: str = DEFAULT_TIMEZONE,
               repo_dir: str | os.PathLike[str] = ROOT, targets: list[str] | None = None) -> Any:
    """The RunnerDeployment of ``repro_flow``: module entrypoint, cron schedule (``None``: no schedule,
    runs only when triggered), parameters {repo_dir, targets}, at most one run at a time.

    Raises ReproError (flows.repro) for a repo_dir that is not a DVC project or a bad target.
    """
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.repro import check_repo, check_targets, repro_flow

    repo = check_repo(repo_dir)
    stages = check_targets(targets)
    return repro_flow.to_deployment(
        name=name,
        schedules=[Cron(cron, timezone=timezone)] if cron else None,
        parameters={"repo_dir": str(repo), "targets": stages or None},
        description="dvc repro of the udcshield pipeline; publishes the robustness table artifact.",
        tags=["udcshield"],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def serve(name: str = DEPLOYMENT_NAME, cron: str | None = DEFAULT_CRON, timezone: str = DEFAULT_TIMEZONE,
          repo_dir: str | os.PathLike[str] = ROOT, targets: list[str] | None = None) -> None:
    """Set the gpu concurrency limit, then serve the deployment until interrupted (schedules pause on exit)."""
    from prefect import serve as prefect_serve

    from tasks.common import ensure_gpu_concurrency_limit

    dep = deployment(name, cron, timezone, repo_dir, targets)
    limit = ensure_gpu_concurrency_limit()
    print(f"gpu tag concurrency limit: {limit}", flush=True)
    prefect_serve(dep, limit=1)


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status (2 for a refused or invalid setting)."""
    parser = argparse.ArgumentParser(prog="python -m flows.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_server = sub.add_parser("server", help="start the Prefect server (loopback by default)")
    p_server.add_argument("--host", default=None, help=f"bind address (default: ${HOST_ENV} or {LOOPBACK})")
    p_server.add_argument("--port", type=int, default=4200)
    p_server.add_argument("--behind-proxy", action="store_true",
                          help="allow a non-loopback host without basic auth: an authenticating proxy is in front")
    p_server.add_argument("--no-ui", action="store_true", help="serve the API only")
    p_serve = sub.add_parser("serve", help="deploy repro_flow with a cron schedule and serve it")
    p_serve.add_argument("--name", default=DEPLOYMENT_NAME)
    p_serve.add_argument("--cron", default=DEFAULT_CRON, help=f"cron schedule (default {DEFAULT_CRON!r}); "
                                                              "'none' for triggered runs only")
    p_serve.add_argument("--timezone", default=DEFAULT_TIMEZONE)
    p_serve.add_argument("--repo-dir", default=str(ROOT), help="DVC project to reproduce (default: this repo)")
    p_serve.add_argument("--target", action="append", dest="targets", help="stage to reproduce (repeatable)")
    sub.add_parser("gpu-limit", help="set the gpu tag concurrency limit to the number of visible GPUs")
    args = parser.parse_args(argv)

    from flows.repro import ReproError

    try:
        if args.command == "server":
            cmd = server_command(server_host(args.host), args.port, args.behind_proxy,
                                 ["--no-ui"] if args.no_ui else None)
            sys.stdout.flush()
            os.execv(cmd[0], cmd)  # the server replaces this process: signals reach it directly
            return 0  # not reached
        if args.command == "gpu-limit":
            from tasks.common import ensure_gpu_concurrency_limit

            print(f"gpu tag concurrency limit: {ensure_gpu_concurrency_limit()}")
            return 0
        cron = None if args.cron.strip().lower() == "none" else args.cron
        serve(args.name, cron, args.timezone, args.repo_dir, args.targets)
        return 0
    except (DeployError, ReproError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
