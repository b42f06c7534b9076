"""Stage ``report``: the robustness report, computed once from the stage outputs, rendered twice.

The report reads records, stores and the adaptive and sweep stages' output files, never a checkpoint (the
image-grid restorations come from the evaluate stage's grid store). Files in ``data/report``:

- ``report.json``: everything the report shows (:func:`udcshield.pipeline.report_data.build_report_data`):
  robustness tables, worst case per restorer, the raw input beside each restorer on the clean test images with
  the restorer's paired PSNR gain over it (:mod:`udcshield.pipeline.report_input`), the adaptive defense grid
  (means with their 95 % bootstrap intervals), paired per-image PSNR comparisons between settings, transfer, sanity checks (PSNR
  non-increasing in the budget, stored budgets respected, gradient-masking flags), attack cost, the
  purifier sweep, captions, figure paths and provenance (artifact digests, params hash, code and library
  versions, dvc.lock outputs).
- ``report.md``: the markdown view of that data (:mod:`udcshield.pipeline.report_markdown`).
- ``report.html``: one self-contained page (images embedded as PNG data URIs, no external reference), the
  HTML view of the same data (:mod:`udcshield.pipeline.report_html`) with figures drawn from its numbers,
  the grid store and the PSF store (:mod:`udcshield.pipeline.report_figures`).
- ``worst_case.csv`` (for ``dvc plots``) and ``psf.png`` / ``mask.png`` (linked from the markdown).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from udcshield.config import Params
from udcshield.evaluation.tables import metric_text
from udcshield.pipeline.common import write_json, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.report_data import build_report_data
from udcshield.pipeline.report_figures import render_figures
from udcshield.pipeline.report_html import render_html
from udcshield.pipeline.report_markdown import render_markdown
from udcshield.pipeline.report_provenance import check_inputs, required_inputs
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import SingleUnitStage, StageContext
from udcshield.store.atomic import atomic_file, write_text_atomic

__all__ = ["STAGE", "check_inputs", "html_path", "json_path", "load_report_data", "required_inputs",
           "robustness_rows", "run", "worst_case_path", "worst_case_rows", "write_report"]


def json_path(layout: Layout) -> Path:
    """``data/report/report.json``, beside ``report.md``."""
    return layout.report.with_name("report.json")


def html_path(layout: Layout) -> Path:
    """``data/report/report.html``, beside ``report.md``."""
    return layout.report.with_name("report.html")


def worst_case_path(layout: Layout) -> Path:
    """``data/report/worst_case.csv`` (worst attacked PSNR per restorer and defense, for ``dvc plots``)."""
    return layout.report.with_name("worst_case.csv")


def load_report_data(layout: Layout) -> dict[str, Any]:
    """The report data of the last report run (``report.json``)."""
    return json.loads(json_path(layout).read_text())


def robustness_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (restorer, defense): mean PSNR (dB) and SSIM per condition, as ``"psnr / ssim"`` text;
    the cells of the robustness tables. Published as a Prefect table artifact."""
    rob = data["robustness"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for table in rob["tables"]:
        for r in table["rows"]:
            row = rows.setdefault((r["source"], r["defense"]), {
                "restorer": r["source"], "defense": r["defense_label"],
                **{c["label"]: [] for c in rob["conditions"]}})
            for c, v in zip(rob["conditions"], r["values"]):
                row[c["label"]].append(metric_text(table["metric"], v))
    return [{k: " / ".join(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows.values()]


def worst_case_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Worst attacked mean PSNR per (restorer, defense), plus the adaptive worst draw when run."""
    rows = []
    for r in data["worst_cases"]["rows"]:
        for w in r["worst"]:
            rows.append({"label": f"{r['source']} {w['label']}", "restorer": r["source"], "defense": w["label"],
                         "psnr": round(w["psnr"], 4), "condition": w["condition"]})
        if r["adaptive"] is not None:
            rows.append({"label": f"{r['source']} adaptive, worst draw", "restorer": r["source"],
                         "defense": "adaptive, worst draw", "psnr": round(r["adaptive"]["psnr"], 4),
                         "condition": r["adaptive"]["condition"]})
    return rows


def _write_bytes_atomic(path: Path, payload: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(payload)


def write_report(params: Params, layout: Layout) -> dict[str, Any]:
    """The stage's work: ``report.json``, ``report.md`` (+ ``psf.png``, ``mask.png``), ``report.html`` and
    ``worst_case.csv``.

    The data is computed once and passed through JSON before rendering, so both views see exactly what
    ``report.json`` holds. Everything is rendered in memory first, then each file is written atomically; a
    failure leaves the previous report in place. Returns paths, sizes and the robustness table rows (for a
    Prefect artifact).
    """
    check_inputs(params, layout)
    data = json.loads(json.dumps(build_report_data(params, layout), sort_keys=True))
    figures = render_figures(data, layout)
    text = render_markdown(data)
    page = render_html(data, figures)
    worst = worst_case_rows(data)
    _write_bytes_atomic(Path(data["figures"]["psf"]), figures["psf"])
    _write_bytes_atomic(Path(data["figures"]["mask"]), figures["mask"])
    write_rows_csv(worst, worst_case_path(layout))
    write_json(data, json_path(layout))
    write_text_atomic(layout.report, text)
    write_text_atomic(html_path(layout), page)
    return {"report": layout.report.as_posix(), "html": html_path(layout).as_posix(),
            "json": json_path(layout).as_posix(), "bytes": len(text), "html_bytes": len(page.encode()),
            "table": robustness_rows(data)}


class ReportStage(SingleUnitStage):
    """One unit on the CPU: :func:`write_report` (no network runs in the report)."""

    def work(self, ctx: StageContext) -> dict[str, Any]:
        return write_report(ctx.params, ctx.layout)


STAGE = ReportStage(
    name="report",
    desc="Robustness report: report.json computed once from the stage outputs, rendered as report.md and a "
         "self-contained report.html",
    params=("attack", "evaluate", "report", "adaptive", "train.models", "train.seeds", "simulate.optics", "simulate.patch_size"),
    deps=("data/evaluate/records.csv", "data/evaluate/grid.zarr", "data/adaptive/records.csv",
          "data/adaptive/metrics.json", "data/adaptive/checks.json", "data/sweep/sweep.csv", "data/sweep/summary.md", "data/attack",
          "data/purify", "data/simulated", "data/restorers", "data/finetuned", "data/purifier"),
    outs=({"data/report": {"cache": False}},),
    gpu=False,
)


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Whole stage on the local runner (:func:`write_report`); returns paths, sizes and the table rows."""
    return run_stage(STAGE, params, layout, torch.device("cpu"))
