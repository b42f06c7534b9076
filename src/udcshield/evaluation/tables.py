"""Views of result records: summary means, a markdown table, PSNR/SSIM-vs-budget rows for dvc plots; the
cell formats shared by the report's markdown and HTML views; the purifier sweep table.

Budgets are L-infinity radii in units of 1/256 (Song et al., arXiv 2402.13629); budget 0 means the
clean input, whatever the record's attack name (conventionally "clean"). PSNR/SSIM follow the BasicSR
convention (see :mod:`udcshield.evaluation.metrics`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from udcshield.attacks.budget import budget_label as attack_budget_label
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
    """Column label of a budget in 1/256 units: 0 -> "clean", 8 -> "8/256", 256 -> "unbounded"."""
    return "clean" if budget == 0 else attack_budget_label(budget)


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


# ------------------------------------------------------------------------------------- report cell formats
def metric_text(metric: str, value: float | None) -> str:
    """A mean metric as shown in the report: PSNR (dB) with 2 decimals, SSIM (and others) with 3; None -> "-"."""
    if value is None:
        return "-"
    return f"{value:.2f}" if metric == "psnr" else f"{value:.3f}"


def ci_text(metric: str, value: float | None, interval: Sequence[float] | None = None) -> str:
    """A mean with its 95 % interval, compact: ``11.89 [11.21, 12.50]`` (formats of :func:`metric_text`); the
    bare mean when ``interval`` ([low, high]) is None; None -> "-"."""
    if value is None or interval is None:
        return metric_text(metric, value)
    low, high = interval
    return f"{metric_text(metric, value)} [{metric_text(metric, low)}, {metric_text(metric, high)}]"


def signed_db(value: float) -> str:
    """A PSNR difference in dB with sign and 3 decimals, e.g. ``+0.412`` (paired comparisons)."""
    return f"{value:+.3f}"


def paired_statement(row: Mapping[str, Any]) -> str:
    """The reading of one paired comparison row (keys a, b, mean, ci_low, ci_high, excludes_zero; dB): a
    ranking ("<a> higher by X dB [lo, hi]") only where the 95 % interval of a - b excludes zero, otherwise
    "not distinguishable at 95 %"."""
    if not row["excludes_zero"]:
        return f"{row['a']} and {row['b']} not distinguishable at 95 %"
    if row["mean"] > 0:
        top, other, d, low, high = row["a"], row["b"], row["mean"], row["ci_low"], row["ci_high"]
    else:
        top, other, d, low, high = row["b"], row["a"], -row["mean"], -row["ci_high"], -row["ci_low"]
    return f"{top} higher than {other} by {d:.3f} dB [{low:.3f}, {high:.3f}]"


def cond_label(cond: str) -> str:
    """Condition key -> column label: ``pgd_8`` -> ``pgd 8/256``, ``cw_l2_256`` -> ``cw_l2 unbounded``;
    ``clean`` (or any other key) stays."""
    name, _, budget = cond.rpartition("_")
    return f"{name} {attack_budget_label(int(budget))}" if name and budget.isdigit() else cond


# ------------------------------------------------------------------------------------- purifier sweep table
#: Columns of the sweep table in the report (one row per restorer x t* x sampler setting).
SWEEP_TABLE_HEADER = ("restorer", "t*", "setting", "NFE / image", "of full chain", "images/s",
                      "purified clean PSNR", "purified PGD PSNR", "Δ vs full DDPM (dB)")
SWEEP_FLOAT_COLUMNS = ("t_star", "nfe", "nfe_fraction", "seconds", "images_per_s", "psnr_clean", "psnr_adv",
                       "delta_clean_db", "delta_adv_db", "tolerance_db", "eta")
SWEEP_TABLE_COLUMNS = ("model", "setting", "within_tolerance", *SWEEP_FLOAT_COLUMNS)


def read_sweep_rows(csv_path: str | Path, required: Sequence[str] = SWEEP_TABLE_COLUMNS) -> list[dict[str, Any]]:
    """Rows of the sweep stage's ``sweep.csv`` with numbers parsed (``t_star`` int, ``within_tolerance`` bool);
    empty for a header-only file (sweep disabled).

    Raises FileNotFoundError naming the file when it is missing, ValueError when a ``required`` column is.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep table not found: {path} (run the sweep stage)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return []
    missing = [c for c in required if c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    for row in rows:
        for key in SWEEP_FLOAT_COLUMNS:
            row[key] = float(row[key])
        row["within_tolerance"] = row["within_tolerance"] == "True"
        row["t_star"] = int(row["t_star"])
    return rows


def sweep_cells(rows: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    """Formatted cells of parsed sweep rows (:func:`read_sweep_rows`), columns :data:`SWEEP_TABLE_HEADER`."""
    return [[r["model"], str(r["t_star"]), r["setting"], f"{r['nfe']:g}", f"{100 * r['nfe_fraction']:.0f} %",
             _rate(r["images_per_s"]), f"{r['psnr_clean']:.2f}", f"{r['psnr_adv']:.2f}",
             f"{r['delta_adv_db']:+.2f}"] for r in rows]


def sweep_markdown(cells: Sequence[Sequence[str]], statements: Sequence[str]) -> str:
    """Markdown table of sweep cells (:func:`sweep_cells`) followed by the comparison statements as a list;
    a one-line notice when there are no cells (sweep disabled)."""
    if not cells:
        return "Purifier sweep: disabled (sweep.enabled: false).\n"
    lines = ["| " + " | ".join(SWEEP_TABLE_HEADER) + " |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in statements) + "\n"


def _rate(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.3g}"
