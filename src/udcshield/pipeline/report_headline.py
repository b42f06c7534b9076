"""The report's headline: per restorer variant x defense x budget, the per-image worst case over the attack
suite (AutoAttack-style, Croce & Hein, ICML 2020; :mod:`udcshield.pipeline.worst_case`) with its 95 %
bootstrap interval and convergence flag, the per-attack means beside it, and, for the purified rows, the
adaptive attacks' worst of N draws (DiffHammer's worst case, NeurIPS 2024) at the same budget.

:func:`headline` builds the data (part of ``report.json``); :func:`headline_lines` and
:func:`headline_section` render it as markdown and HTML from that data alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from udcshield.attacks.budget import budget_label
from udcshield.config import Params
from udcshield.evaluation import html as H
from udcshield.evaluation.tables import ci_text
from udcshield.pipeline.names import DEFENSES, model_label, restorers
from udcshield.pipeline.summary import interval
from udcshield.pipeline.worst_case import WORST_CASE, suite

NOT_CONVERGED = " (not converged)"


def _adaptive_worst(params: Params, adaptive_summary: dict[str, Any] | None, model: str,
                    budget: int) -> dict[str, Any] | None:
    """The adaptive attacks' lowest worst-of-N-draws mean at ``budget`` for a purified restorer, or None."""
    cells = (adaptive_summary or {}).get(model, {}).get("purified", {})
    found = [(cells[key]["psnr_worst_draw"], spec.name, cells[key]) for spec in params.adaptive.attacks
             if (key := f"{spec.name}_{budget}") in cells and "psnr_worst_draw" in cells[key]]
    if not found:
        return None
    value, name, cell = min(found, key=lambda t: (t[0], t[1]))
    return {"psnr": value, "attack": name, "ci": interval(cell, "psnr_worst_draw")}


def headline(params: Params, summary: dict[str, Any], adaptive_summary: dict[str, Any] | None) -> dict[str, Any]:
    """Rows (restorer variant x defense) of cells per budget: ``psnr`` (worst case mean), ``ci``, ``converged``
    (True / False / None when no member was probed), ``per_attack`` (each member's mean) and, for purified
    rows, ``adaptive`` (:func:`_adaptive_worst`). ``summary``: evaluation means with convergence flags."""
    members = suite(params)
    budgets = sorted({b for spec in params.attack.attacks if spec.name in members for b in spec.budgets})
    rows = []
    for source in restorers(params):
        model = model_label(source)
        for defense in DEFENSES:
            cells = summary.get(model, {}).get(defense, {})
            out = []
            for budget in budgets:
                cell = cells.get(f"{WORST_CASE}_{budget}")
                if cell is None:
                    out.append(None)
                    continue
                per_attack = {a: cells[f"{a}_{budget}"]["psnr"] for a in members if f"{a}_{budget}" in cells}
                converged = cell.get("converged") if defense == "none" else None
                out.append({"budget": budget, "psnr": cell["psnr"], "ci": interval(cell, "psnr"),
                            "converged": converged, "per_attack": per_attack,
                            "adaptive": _adaptive_worst(params, adaptive_summary, model, budget)
                            if defense == "purified" else None})
            rows.append({"source": source, "model": model, "defense": defense, "cells": out})
    return {"suite": members, "budgets": budgets, "tolerance_db": params.attack.convergence.tolerance_db,
            "adaptive_images": params.adaptive.max_images, "draws": params.adaptive.draws, "rows": rows}


def _cell_text(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "-"
    text = ci_text("psnr", cell["psnr"], cell["ci"])
    return text + (NOT_CONVERGED if cell["converged"] is False else "")


def _members_text(cell: Mapping[str, Any] | None) -> str:
    if cell is None:
        return "-"
    return ", ".join(f"{a} {v:.2f}" for a, v in cell["per_attack"].items())


def _adaptive_text(cell: Mapping[str, Any] | None) -> str:
    a = None if cell is None else cell["adaptive"]
    return "-" if a is None else f"{ci_text('psnr', a['psnr'], a['ci'])} ({a['attack']})"


def headline_intro(data: Mapping[str, Any]) -> str:
    """The method sentences of the headline."""
    h = data["headline"]
    return (f"Per image, the lowest PSNR (dB) over the attack suite ({', '.join(h['suite'])}) at each budget, "
            "averaged over the test images, with its 95 % bootstrap interval; each member's mean beside it. "
            f"*(not converged)*: a white-box member lost more than {h['tolerance_db']:g} dB when rerun with twice "
            "the steps and one more restart on the probe images. Purified rows feed the same inputs through the "
            "purifier (non-adaptive); their adaptive column is the adaptive attacks' worst of "
            f"{h['draws']} purifier draws on the first {h['adaptive_images']} test images.")


def headline_lines(data: Mapping[str, Any]) -> list[str]:
    """``## Headline: per-image worst case``, one markdown table row per restorer variant x defense x budget."""
    h = data.get("headline")
    if not h:
        return []
    lines = ["## Headline: per-image worst case over the attack suite", "", headline_intro(data), "",
             "| restorer | defense | budget | worst case | members | adaptive, worst of N |",
             "|---|---|---|---:|---|---:|"]
    for r in h["rows"]:
        for budget, cell in zip(h["budgets"], r["cells"]):
            lines.append(f"| {r['model']} | {r['defense']} | {budget_label(budget)} | {_cell_text(cell)} | "
                         f"{_members_text(cell)} | {_adaptive_text(cell)} |")
    return lines + [""]


def headline_section(data: Mapping[str, Any]) -> H.Section | None:
    """The same table as :func:`headline_lines`, for the HTML view (cells not converged are marked bad)."""
    h = data.get("headline")
    if not h:
        return None
    rows: list[list[H.Cell]] = []
    for r in h["rows"]:
        for budget, cell in zip(h["budgets"], r["cells"]):
            worst: H.Cell = (_cell_text(cell), "bad") if cell is not None and cell["converged"] is False \
                else _cell_text(cell)
            rows.append([r["source"], r["defense"], budget_label(budget), worst, _members_text(cell),
                         _adaptive_text(cell)])
    header = ["restorer", "defense", "budget", "worst case", "members", "adaptive, worst of N"]
    body = H.paragraph(headline_intro(data)) + H.table(header, rows, table_id="headline")
    return H.Section("headline", "Headline: per-image worst case over the attack suite", body)
