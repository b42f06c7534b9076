"""What the report reads, and where it came from: the required inputs (with the stage that makes each), their
content digests, the stage / time / device recorded with each, the ``dvc.lock`` outputs, the params hash and
the code and library versions. Plain data for :mod:`udcshield.pipeline.report_data`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from udcshield.config import Params, to_dict
from udcshield.models.checkpoint import read_checkpoint_config
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import restorers, split_source
from udcshield.store.provenance import code_version, input_digests, library_versions
from udcshield.store.zarr_io import store_attrs


def adaptive_checks_path(layout: Layout) -> Path:
    """``<data root>/adaptive/checks.json``, the adaptive stage's gradient-masking checks."""
    return layout.root / "adaptive" / "checks.json"


def adaptive_metrics_path(layout: Layout) -> Path:
    """``<data root>/adaptive/metrics.json``, written by the adaptive stage."""
    return layout.root / "adaptive" / "metrics.json"


def sweep_csv_path(layout: Layout) -> Path:
    """``<data root>/sweep/sweep.csv``, written by the sweep stage (optional for the report)."""
    return layout.root / "sweep" / "sweep.csv"


def sweep_summary_path(layout: Layout) -> Path:
    """``<data root>/sweep/summary.md``: the sweep stage's comparison statements, one ``- `` line each."""
    return layout.root / "sweep" / "summary.md"


def required_inputs(params: Params, layout: Layout) -> dict[Path, str]:
    """Every input the report needs -> the stage that makes it."""
    need = {layout.records: "evaluate", layout.grid_store: "evaluate", layout.test_store: "simulate",
            layout.psf_store: "simulate", layout.adversarial: "attack", layout.purified: "purify",
            layout.purifier: "train_purifier"}
    for source in restorers(params):
        model, variant = split_source(source)
        need[layout.checkpoint(model, variant)] = "train" if variant == "base" else "finetune"
    if params.adaptive.enabled:
        need[adaptive_metrics_path(layout)] = "adaptive"
    return need


def check_inputs(params: Params, layout: Layout) -> None:
    """FileNotFoundError listing every missing input and the stage that makes it."""
    missing = [f"{path} (stage {stage})" for path, stage in required_inputs(params, layout).items()
               if not path.exists()]
    if missing:
        raise FileNotFoundError("report: missing inputs, run their stages first: " + "; ".join(missing))


def artifacts(params: Params, layout: Layout) -> dict[str, Path]:
    """The artifacts the report reads or names: display name -> path."""
    out = {"records": layout.records, "test set": layout.test_store, "psf": layout.psf_store,
           "adversarial": layout.adversarial, "purified": layout.purified, "purifier": layout.purifier}
    out.update({f"restorer {src}": layout.checkpoint(*split_source(src)) for src in restorers(params)})
    if params.adaptive.enabled:
        out["adaptive"] = adaptive_metrics_path(layout)
    out["image grid"] = layout.grid_store
    return out


def params_sha256(params: Params) -> str:
    """sha256 of the resolved params (sorted JSON), hex."""
    return hashlib.sha256(json.dumps(to_dict(params), sort_keys=True).encode()).hexdigest()


def dvc_lock_outputs(lock_path: Path) -> list[dict[str, str]]:
    """{stage, path, md5} of every output recorded in ``dvc.lock``; empty when there is none."""
    if not lock_path.is_file():
        return []
    lock = yaml.safe_load(lock_path.read_text()) or {}
    out = []
    for stage, body in sorted((lock.get("stages") or {}).items()):
        for o in (body or {}).get("outs") or []:
            out.append({"stage": stage, "path": str(o.get("path", "")), "md5": str(o.get("md5", ""))})
    return out


def artifact_origin(path: Path) -> dict[str, str]:
    """Stage, creation time and device recorded with an artifact (zarr attributes or checkpoint config)."""
    try:
        if (path / "zarr.json").is_file():
            attrs = store_attrs(path)
        elif (path / "config.json").is_file():
            attrs = read_checkpoint_config(path).get("extra", {}).get("provenance", {})
        else:
            return {}
    except (OSError, ValueError):
        return {}
    return {k: str(attrs[k]) for k in ("stage", "created_utc", "device") if k in attrs}


def provenance(params: Params, layout: Layout) -> dict[str, Any]:
    """Params hash, code and library versions, one row per artifact read (path, content sha256, the stage
    that made it, when and on which device), the devices the stages ran on and the ``dvc.lock`` outputs."""
    stages = {p.as_posix(): stage for p, stage in required_inputs(params, layout).items()}
    rows, devices = [], set()
    for name, d in input_digests(artifacts(params, layout)).items():
        origin = {"stage": stages.get(d["path"], "-"), **artifact_origin(Path(d["path"]))}
        if "device" in origin:
            devices.add(origin["device"])
        rows.append({"name": name, "path": d["path"], "sha256": d["sha256"], "stage": origin.get("stage", "-"),
                     "created_utc": origin.get("created_utc", "-"), "device": origin.get("device", "-")})
    return {"params_sha256": params_sha256(params), "code": code_version(), "libraries": library_versions(),
            "artifacts": rows, "devices": sorted(devices), "dvc_lock": dvc_lock_outputs(layout.root.parent / "dvc.lock")}
