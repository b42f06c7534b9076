"""Shared pieces of the benchmark harness: environment record and JSON output."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

import torch

from udcshield.store.provenance import library_versions

RESULTS = Path(__file__).resolve().parent / "results"


def environment(device: str) -> dict[str, Any]:
    """Device, versions and date of a benchmark run."""
    info: dict[str, Any] = {"date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                            "device": device, "cpu": platform.processor() or platform.machine(),
                            "torch_threads": torch.get_num_threads(), "versions": library_versions()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
