"""Command line for the flows: ``python -m flows <stage|pipeline> [--params P] [--data D]``.

Params are validated (schema, then the stage's registry-aware preflight) before Prefect starts: a bad
params file exits with status 2 and one line naming the offending key. The Prefect API is found or
started next (:func:`flows.api.ensure_api`: one shared local server for a whole ``dvc repro``); one that
cannot be reached exits with status 3 and one line naming the setting to change. A stage that fails on
bad input exits with status 1 and the one line ``udcshield run <stage>`` prints for it (Prefect's
console tracebacks of that error are dropped, :mod:`tasks.console`; the Prefect UI keeps them).
Library warnings (the ``udcshield`` logger, e.g. a damaged shard that is recomputed) go to the run log.
"""

from __future__ import annotations

import argparse
import os
import sys

from udcshield.config import ConfigError
from udcshield.errors import (
    EXIT_PARAMS,
    EXIT_STAGE,
    USER_ERRORS,
    params_error_line,
    stage_error_line,
)
from udcshield.pipeline.runner import STAGE_NAMES, get_stage
from udcshield.preflight import load_checked

# No network here: keep the Prefect server from trying to send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The library's warnings (logger "udcshield") in the flow run log, on the console and in the UI.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "udcshield")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=[*STAGE_NAMES, "pipeline"])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--data", default="data", help="data root (default: data)")
    args = parser.parse_args(argv)
    try:
        load_checked(args.params, None if args.stage == "pipeline" else get_stage(args.stage).sections)
    except ConfigError as exc:
        print(params_error_line(exc), file=sys.stderr)
        return EXIT_PARAMS
    from flows.api import ApiUnavailable, ensure_api

    try:
        ensure_api()  # before Prefect is imported: it reads PREFECT_API_URL once
    except ApiUnavailable as exc:
        print(f"udcshield: error: Prefect API: {exc}", file=sys.stderr)
        return 3
    from tasks.console import QUIET_ENV, quiet_user_errors

    os.environ[QUIET_ENV] = "1"  # inherited by Dask workers this run starts
    if args.stage == "pipeline":
        from flows.pipeline import pipeline_flow as run_flow
    else:
        from flows.stages import STAGE_FLOWS

        run_flow = STAGE_FLOWS[args.stage]
    quiet_user_errors()  # after Prefect configured its console handler
    try:
        run_flow(params_path=args.params, data_root=args.data)
    except USER_ERRORS as exc:
        print(stage_error_line(args.stage, exc), file=sys.stderr)
        return EXIT_STAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
