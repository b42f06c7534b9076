"""Means of evaluation records, shared by the stages that summarise per-image records (evaluate, adaptive).

Every mean comes with its 95 % percentile bootstrap interval over the cell's images (Efron & Tibshirani 1993,
"An Introduction to the Bootstrap"; :mod:`udcshield.evaluation.statistics`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from udcshield.evaluation.statistics import bootstrap_ci, cell_seed, per_image
from udcshield.pipeline.names import condition_label

#: Suffixes of the interval bounds stored beside each mean ``<metric>``.
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
#: Decimals of metrics.json.
DECIMALS = 4


def cell_label(model: str, defense: str, cond: str, metric: str) -> str:
    """Label of one cell, the key of its bootstrap seed: ``<model>|<defense>|<condition>|<metric>``."""
    return f"{model}|{defense}|{cond}|{metric}"


def interval(cell: dict[str, Any] | None, metric: str) -> list[float] | None:
    """[low, high] stored beside mean ``metric`` in a cell of :func:`means`; None without a cell or without
    interval keys (files written before intervals existed)."""
    low, high = (cell or {}).get(metric + CI_LOW), (cell or {}).get(metric + CI_HIGH)
    return None if low is None or high is None else [low, high]


def means(records: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Nested means: model -> defense -> condition (``clean`` or ``<attack>_<budget>``) -> key -> value.

    ``records``: rows with keys image_id, model, defense, attack, budget, metric, value (one per image x
    metric, or per image x metric x draw). ``seed``: the run seed (int >= 0).

    Per metric a cell holds ``<metric>`` (the mean over all its rows) and ``<metric>_ci_low`` /
    ``<metric>_ci_high``: the 95 % percentile bootstrap interval of that mean over the cell's images
    (values of one image averaged first, images sorted by id; seed :func:`~udcshield.evaluation.statistics.cell_seed`
    of ``seed`` and :func:`cell_label`), so the output does not depend on the order of the records. Both
    bounds equal the mean when a value is infinite (an infinite mean has no interval). All numbers are
    rounded to 4 decimals (metrics.json precision). In each cell the interval keys come first and the
    means last, in metric order.
    """
    acc: dict[tuple[str, str, str, str], list[tuple[str, float]]] = defaultdict(list)
    for r in records:
        key = (r["model"], r["defense"], condition_label(r["attack"], r["budget"]), r["metric"])
        acc[key].append((str(r["image_id"]), float(r["value"])))
    bounds: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    centres: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for (model, defense, cond, metric), rows in sorted(acc.items()):
        values = sorted(v for _, v in rows)
        mean = math.fsum(values) / len(values)
        if all(math.isfinite(v) for v in values):
            _, per = per_image(rows)
            low, high = bootstrap_ci(per, cell_seed(seed, cell_label(model, defense, cond, metric)))
        else:
            low = high = mean
        bounds[(model, defense, cond)].update({metric + CI_LOW: round(low, DECIMALS),
                                               metric + CI_HIGH: round(high, DECIMALS)})
        centres[(model, defense, cond)][metric] = round(mean, DECIMALS)
    out: dict[str, Any] = {}
    for (model, defense, cond), cell in centres.items():
        out.setdefault(model, {}).setdefault(defense, {})[cond] = {**bounds[(model, defense, cond)], **cell}
    return out
