"""``udcshield`` command line: run one stage's library entry point directly (no orchestration), or check params.

    udcshield validate [--params params.yaml]
    udcshield run <stage> [--params params.yaml] [--data data]
    udcshield audit <artifact | store array | metric key> [--repo .] [--json]

The Prefect flows (``python -m flows <stage>``, used by ``dvc repro``) call the same entry points.
Errors (bad params, missing or corrupt inputs) print one line naming the culprit and exit non-zero.
``audit`` traces an artifact back through ``dvc.lock`` and verifies its hashes: exit 0 when every check
passes, 1 when something was altered (each altered file, array or params key is named), 2 when the
target cannot be resolved.
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
    from udcshield.pipeline import adaptive, attack, evaluate, finetune, purify, report, simulate, sweep, train

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
        "sweep": lambda p, lay: sweep.run(p, lay, dev(p), log),
        "evaluate": lambda p, lay: evaluate.run(p, lay, dev(p), log),
        "report": lambda p, lay: report.run(p, lay),
    }


STAGES = ("simulate", "train", "train_purifier", "finetune", "attack", "purify", "sweep", "adaptive", "evaluate",
          "report")


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
    p_audit = sub.add_parser("audit", help="trace an artifact or metric to its inputs and verify every hash")
    p_audit.add_argument("target", help="path (data/report/report.md), store array "
                                        "(data/attack/adversarial.zarr/<array>) or metric key")
    p_audit.add_argument("--repo", default=None, help="repository with dvc.yaml/dvc.lock (default: found upward)")
    p_audit.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.command == "audit":
        return _audit(args.target, args.repo, args.json)
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
    except (OSError, ValueError, RuntimeError) as exc:  # OSError: missing/unreadable files and folders
        print(f"udcshield: error in stage {args.stage}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


def _audit(target: str, repo: str | None, as_json: bool) -> int:
    """``udcshield audit``: 0 when every check passes, 1 when any fails, 2 when the target is unknown."""
    from udcshield.audit import AuditError, audit

    try:
        report = audit(target, repo)
    except AuditError as exc:
        print(f"udcshield: audit error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.to_text(), end="")
    if not report.ok:
        subjects = sorted({c.subject for c in report.failures})
        names = ", ".join(subjects[:8]) + (f" (+{len(subjects) - 8} more)" if len(subjects) > 8 else "")
        print(f"udcshield: audit failed: {len(report.failures)} check(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
