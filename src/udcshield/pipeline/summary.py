"""Means of evaluation records, shared by the stages that summarise per-image records (evaluate, adaptive)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from udcshield.pipeline.names import condition_label


def means(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Nested means: model -> defense -> condition (``clean`` or ``<attack>_<budget>``) -> metric -> value.

    ``records``: rows with keys model, defense, attack, budget, metric, value (one per image x metric).
    Means are rounded to 4 decimals (metrics.json precision).
    """
    acc: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        acc[(r["model"], r["defense"], condition_label(r["attack"], r["budget"]), r["metric"])].append(float(r["value"]))
    out: dict[str, Any] = {}
    for (model, defense, cond, metric), vals in sorted(acc.items()):
        out.setdefault(model, {}).setdefault(defense, {}).setdefault(cond, {})[metric] = round(sum(vals) / len(vals), 4)
    return out
