"""Views of result records: summary means, a markdown table, PSNR/SSIM-vs-budget rows for dvc plots.

Budgets are L-infinity radii in units of 1/256 (Song et al., arXiv 2402.13629); budget 0 means the
clean input, whatever the record's attack name (conventionally "clean"). PSNR/SSIM follow the BasicSR
convention (see :mod:`udcshield.evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from udcshield.evaluation.records import Record, validate_record


def _validated(records: Iterable[Mapping[str, Any]]) -> list[Record]:
    return [validate_record(r, f"record {i}") for i, r in enumerate(records)]


def _order(values: Iterable[str]) -> dict[str, int]:
    """First-appearance order of the distinct values."""
    order: dict[str, int] = {}
    for v in values:
        order.setdefault(v, len(order))
    return order


def _means(rows: list[Record], keys: tuple[str, ...]) -> dict[tuple[Any, ...], tuple[float, int]]:
    sums: dict[tuple[Any, ...], list[float]] = {}
    for r in rows:
        acc = sums.setdefault(tuple(r[k] for k in keys), [0.0, 0])
        acc[0] += r["value"]
        acc[1] += 1
    return {k: (s / n, int(n)) for k, (s, n) in sums.items()}


def summary_table(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean value per (model, defense, attack, budget, metric), averaged over images and draws.

    Returns rows {model, defense, attack, budget, metric, mean, count}; models, defenses, attacks and
    metrics keep their first-appearance order, budgets ascend.
    """
    rows = _validated(records)
    keys = ("model", "defense", "attack", "budget", "metric")
    orders = {k: _order(r[k] for r in rows) for k in ("model", "defense", "attack", "metric")}
    means = _means(rows, keys)

    def sort_key(k: tuple[Any, ...]) -> tuple[int, ...]:
        model, defense, attack, budget, metric = k
        return (orders["model"][model], orders["defense"][defense], orders["attack"][attack], budget,
                orders["metric"][metric])

    return [
        {**dict(zip(keys, k)), "mean": means[k][0], "count": means[k][1]}
        for k in sorted(means, key=sort_key)
    ]


def budget_label(budget: int) -> str:
    """Column label of a budget in 1/256 units: 0 -> "clean", 8 -> "8/256"."""
    return "clean" if budget == 0 else f"{budget}/256"


def markdown_table(records: Iterable[Mapping[str, Any]], metric: str = "psnr", decimals: int = 2) -> str:
    """Markdown table of mean ``metric``: rows (model, defense), columns clean then "attack b/256".

    Attack columns are ordered by first appearance of the attack, then by ascending budget; cells
    without records show "-". Values are means over images (and draws) with ``decimals`` decimals
    (PSNR in dB). Raises ValueError if no record has ``metric``.
    """
    rows = [r for r in _validated(records) if r["metric"] == metric]
    if not rows:
        raise ValueError(f"no records for metric {metric!r}")
    means = _means(rows, ("model", "defense", "attack", "budget"))
    clean = _means([r for r in rows if r["budget"] == 0], ("model", "defense"))
    attack_order = _order(r["attack"] for r in rows if r["budget"] > 0)
    columns = sorted({(r["attack"], r["budget"]) for r in rows if r["budget"] > 0},
                     key=lambda c: (attack_order[c[0]], c[1]))
    systems = list(_order((r["model"], r["defense"]) for r in rows))

    def cell(value: tuple[float, int] | None) -> str:
        return "-" if value is None else f"{value[0]:.{decimals}f}"

    header = ["model", "defense", "clean"] + [f"{a} {budget_label(b)}" for a, b in columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    for model, defense in systems:
        cells = [model, defense, cell(clean.get((model, defense)))]
        cells += [cell(means.get((model, defense, a, b))) for a, b in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def psnr_vs_budget_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows {model, defense, attack, budget, psnr, ssim} of mean metrics, for ``dvc plots``.

    Every attack curve of a (model, defense) starts at budget 0 with that system's clean means (when
    clean records exist). A metric without records is None. Order: system and attack by first
    appearance, then ascending budget.
    """
    rows = _validated(records)
    means = _means(rows, ("model", "defense", "attack", "budget", "metric"))
    clean = _means([r for r in rows if r["budget"] == 0], ("model", "defense", "metric"))
    attacked = [r for r in rows if r["budget"] > 0]
    attack_order = _order(r["attack"] for r in attacked)
    out: list[dict[str, Any]] = []
    for model, defense in _order((r["model"], r["defense"]) for r in rows):
        for attack in attack_order:
            budgets = sorted({r["budget"] for r in attacked
                              if (r["model"], r["defense"], r["attack"]) == (model, defense, attack)})
            if not budgets:
                continue
            has_clean = any(k[:2] == (model, defense) for k in clean)
            for budget in ([0] if has_clean else []) + budgets:
                row: dict[str, Any] = {"model": model, "defense": defense, "attack": attack, "budget": budget}
                for metric in ("psnr", "ssim"):
                    hit = clean.get((model, defense, metric)) if budget == 0 else \
                        means.get((model, defense, attack, budget, metric))
                    row[metric] = None if hit is None else hit[0]
                out.append(row)
    return out
