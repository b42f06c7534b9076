"""Command line for the flows: ``python -m flows <stage|pipeline> [--params P] [--data D]``.

Params are validated before Prefect starts; a bad params file exits with status 2 and a message naming
the offending key.
"""

from __future__ import annotations

import argparse
import os
import sys

from udcshield.config import ConfigError, load_params

# No network here: keep the ephemeral Prefect server from trying to send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def main(argv: list[str] | None = None) -> int:
    from flows.stages import STAGE_FLOWS

    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__)
    parser.add_argument("stage", choices=[*STAGE_FLOWS, "pipeline"])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--data", default="data", help="data root (default: data)")
    args = parser.parse_args(argv)
    try:
        load_params(args.params)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.stage == "pipeline":
        from flows.pipeline import pipeline_flow

        pipeline_flow(params_path=args.params, data_root=args.data)
    else:
        STAGE_FLOWS[args.stage](params_path=args.params, data_root=args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
