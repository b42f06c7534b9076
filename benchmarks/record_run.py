"""Record a finished ``dvc repro`` / ``dvc exp run`` (e.g. the ``zoo`` profile) as a dated JSON, so that its
results table stays in the docs after ``data/`` is gone.

    python -m benchmarks.record_run --root /path/to/workspace --name zoo [--log repro.log] [--wall-seconds S]

Reads ``<root>/params.yaml`` (its ``profile``, restorers and attacks) and ``<root>/data/evaluate/metrics.json``
(the evaluate stage's means with their 95 % intervals), and with ``--log`` the console log of the run, from
which each stage's wall time is taken: from Prefect's "Beginning flow run '<run>' for flow '<stage>'" line to
that flow run's "Finished in state" line. Writes ``benchmarks/results/run_<name>_<device>.json`` (or ``--out``):
``{"kind": "run", "profile", "environment", "wall_seconds", "stage_seconds" ([stage, seconds] in run order),
"models", "parameters", "architectures", "attacks", "evaluate"}``; ``docs/gen.py`` renders it (:func:`run_section`) on the Benchmarks page.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import environment
from udcshield.config import params_from_dict
from udcshield.models.checkpoint import load_checkpoint

_BEGIN = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) \| INFO +\| Flow run '([^']+)' - Beginning flow run '[^']+' for flow '([^']+)'")
_END = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) \| INFO +\| Flow run '([^']+)' - Finished in state")


def _seconds(start: str, stop: str) -> float:
    fmt = "%H:%M:%S.%f"
    delta = (datetime.strptime(stop, fmt) - datetime.strptime(start, fmt)).total_seconds()
    return round(delta + 86400 if delta < 0 else delta, 1)  # a run across midnight


def stage_seconds(log_text: str) -> dict[str, float]:
    """{stage: seconds} from a Prefect console log (flow name = stage name); a stage run twice keeps the last."""
    begun: dict[str, tuple[str, str]] = {}
    out: dict[str, float] = {}
    for line in log_text.splitlines():
        if m := _BEGIN.match(line):
            begun[m.group(2)] = (m.group(1), m.group(3))
        elif (m := _END.match(line)) and m.group(2) in begun:
            start, stage = begun.pop(m.group(2))
            out[stage] = _seconds(start, m.group(1))
    return out


def record(root: Path, log: Path | None, wall_seconds: float | None) -> dict[str, Any]:
    """The record of the run in ``root`` (see the module docstring); FileNotFoundError naming a missing file."""
    params_path, metrics_path = root / "params.yaml", root / "data" / "evaluate" / "metrics.json"
    for path in (params_path, metrics_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: point --root at a workspace whose run finished")
    params = params_from_dict(yaml.safe_load(params_path.read_text()), source=str(params_path))
    runs = [m.label for m in params.train.runs()]
    parameters = {}
    for label in runs:
        model = load_checkpoint(root / "data" / "restorers" / label)
        parameters[label] = int(sum(p.numel() for p in model.parameters()))
    stages = stage_seconds(log.read_text(errors="replace")) if log is not None else {}
    total = wall_seconds if wall_seconds is not None else (round(sum(stages.values()), 1) if stages else None)
    return {"kind": "run", "profile": params.profile, "environment": environment("cpu"),
            "wall_seconds": total, "stage_seconds": [[stage, sec] for stage, sec in stages.items()], "models": runs, "parameters": parameters,
            "architectures": {m.label: m.name for m in params.train.runs()},
            "attacks": [{"name": a.name, "budgets": list(a.budgets)} for a in params.attack.attacks],
            "evaluate": json.loads(metrics_path.read_text())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="workspace with params.yaml and data/")
    parser.add_argument("--name", required=True, help="record name, e.g. zoo")
    parser.add_argument("--log", type=Path, default=None, help="console log of the run (stage wall times)")
    parser.add_argument("--wall-seconds", type=float, default=None, help="measured wall time of the whole run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        rec = record(args.root, args.log, args.wall_seconds)
    except (FileNotFoundError, ValueError) as err:
        print(f"record_run: {err}", file=sys.stderr)
        return 1
    out = args.out or Path("benchmarks/results") / f"run_{args.name}_cpu.json"
    out.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
