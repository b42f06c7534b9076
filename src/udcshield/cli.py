"""``udcshield`` command line: run one stage's library entry point directly (no orchestration), or check params.

    udcshield validate [--params params.yaml]
    udcshield run <stage> [--params params.yaml] [--data data]
    udcshield config-reference [--format markdown|json-schema]
    udcshield audit <artifact | store array | metric key> [--repo .] [--json]

``run`` executes the stage protocol with the local runner; the Prefect flows (``python -m flows <stage>``,
used by ``dvc repro``) execute the same protocol as tasks.
Errors (bad params, missing or corrupt inputs) print one line naming the culprit and exit non-zero.
``audit`` traces an artifact back through ``dvc.lock`` and verifies its hashes: exit 0 when every check
passes, 1 when something was altered (each altered file, array or params key is named), 2 when the
target cannot be resolved.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from udcshield.config import ConfigError, to_dict
from udcshield.errors import (
    EXIT_PARAMS,
    EXIT_STAGE,
    USER_ERRORS,
    params_error_line,
    stage_error_line,
)
from udcshield.pipeline.layout import Layout, configure_torch, resolve_device
from udcshield.pipeline.runner import STAGE_NAMES, get_stage, run_stage
from udcshield.preflight import load_checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="udcshield", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_val = sub.add_parser("validate", help="check a params file and print the resolved params")
    p_val.add_argument("--params", default="params.yaml")
    p_run = sub.add_parser("run", help="run one stage's library entry point")
    p_run.add_argument("stage", choices=STAGE_NAMES)
    p_run.add_argument("--params", default="params.yaml")
    p_run.add_argument("--data", default="data")
    p_audit = sub.add_parser("audit", help="trace an artifact or metric to its inputs and verify every hash")
    p_audit.add_argument("target", help="path (data/report/report.md), store array "
                                        "(data/attack/adversarial.zarr/<array>) or metric key")
    p_audit.add_argument("--repo", default=None, help="repository with dvc.yaml/dvc.lock (default: found upward)")
    p_audit.add_argument("--json", action="store_true", help="print the report as JSON")
    p_ref = sub.add_parser("config-reference", help="print the reference of every params.yaml key")
    p_ref.add_argument("--format", choices=("markdown", "json-schema"), default="markdown")
    args = parser.parse_args(argv)
    if args.command == "audit":
        return _audit(args.target, args.repo, args.json)
    if args.command == "config-reference":
        from udcshield.config.reference import json_schema, markdown_reference

        text = markdown_reference() if args.format == "markdown" else json.dumps(json_schema(), indent=2) + "\n"
        sys.stdout.write(text)
        return 0
    try:
        sections = get_stage(args.stage).sections if args.command == "run" else None  # validate: every section
        params = load_checked(args.params, sections)  # schema, then the registry checks of those sections
    except ConfigError as exc:
        print(params_error_line(exc), file=sys.stderr)
        return EXIT_PARAMS
    if args.command == "validate":
        print(json.dumps(to_dict(params), indent=2))
        return 0
    configure_torch()
    _log_warnings()
    try:
        result = run_stage(args.stage, params, Layout(Path(args.data)), resolve_device(params.device), _log_row)
    except USER_ERRORS as exc:
        print(stage_error_line(args.stage, exc), file=sys.stderr)
        return EXIT_STAGE
    print(json.dumps(result, indent=2, default=str))
    return 0


def _log_warnings() -> None:
    """Warnings of the library (e.g. a damaged shard that is recomputed) as ``udcshield: ...`` lines on stderr."""
    logger = logging.getLogger("udcshield")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("udcshield: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


def _log_row(row: dict) -> None:
    """Progress rows of ``udcshield run``: one JSON object per line on stdout."""
    print(json.dumps(row, default=str), flush=True)


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
