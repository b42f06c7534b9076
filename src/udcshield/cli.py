"""``udcshield`` command line: run one stage's library entry point directly (no orchestration), or check params.

    udcshield validate [--params params.yaml]
    udcshield run <stage> [--params params.yaml] [--data data]

The Prefect flows (``python -m flows <stage>``, used by ``dvc repro``) call the same entry points.
Errors (bad params, missing or corrupt inputs) print one line naming the culprit and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from udcshield.config import ConfigError, Params, load_params, to_dict
from udcshield.pipeline.layout import Layout, configure_torch, resolve_device


def _stages() -> dict[str, Callable[[Params, Layout], Any]]:
    from udcshield.pipeline import adaptive, attack, evaluate, finetune, purify, report, simulate, train

    def dev(p: Params):
        return resolve_device(p.device)

    def log(row: dict) -> None:
        print(json.dumps(row, default=str), flush=True)

    return {
        "simulate": lambda p, lay: simulate.run(p, lay),
        "train": lambda p, lay: train.run_restorer(p, lay, dev(p), log),
        "train_purifier": lambda p, lay: train.run_purifier(p, lay, dev(p), log),
        "finetune": lambda p, lay: finetune.run(p, lay, dev(p), log),
        "attack": lambda p, lay: attack.run(p, lay, dev(p), log),
        "purify": lambda p, lay: purify.run(p, lay, dev(p), log),
        "adaptive": lambda p, lay: adaptive.run(p, lay, dev(p), log),
        "evaluate": lambda p, lay: evaluate.run(p, lay, dev(p), log),
        "report": lambda p, lay: report.run(p, lay),
    }


STAGES = ("simulate", "train", "train_purifier", "finetune", "attack", "purify", "adaptive", "evaluate", "report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="udcshield", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_val = sub.add_parser("validate", help="check a params file and print the resolved params")
    p_val.add_argument("--params", default="params.yaml")
    p_run = sub.add_parser("run", help="run one stage's library entry point")
    p_run.add_argument("stage", choices=STAGES)
    p_run.add_argument("--params", default="params.yaml")
    p_run.add_argument("--data", default="data")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ConfigError as exc:
        print(f"udcshield: error: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(json.dumps(to_dict(params), indent=2))
        return 0
    configure_torch()
    try:
        result = _stages()[args.stage](params, Layout(Path(args.data)))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"udcshield: error in stage {args.stage}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
