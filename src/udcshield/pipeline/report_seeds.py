"""The report's spread across training runs: a restorer trained with several seeds (``train.seeds``).

Every seed of ``train.seeds`` after the first trains a replicate of each restorer (identity
``<label>-seed<s>``, :func:`udcshield.config.training.replicate_name`) that goes through every stage like
the restorer itself. For each restorer variant x defense and for the clean condition and the headline's
per-image worst case at each budget, this section gives the mean over seeds x images with a 95 % interval
that counts the variance across training runs as well as across images (the pigeonhole bootstrap for
crossed designs, Owen 2007, Annals of Applied Statistics 1(2);
:func:`udcshield.evaluation.statistics.crossed_bootstrap_ci`), each run's mean and their standard deviation.

:func:`seed_spread` builds the data (part of ``report.json``); :func:`seed_spread_lines` and
:func:`seed_spread_section` render it as markdown and HTML.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from udcshield.attacks.budget import budget_label
from udcshield.config import Params
from udcshield.evaluation import html as H
from udcshield.evaluation.statistics import cell_seed, crossed_bootstrap_ci, per_image
from udcshield.evaluation.tables import ci_text
from udcshield.pipeline.names import CLEAN, DEFENSES, model_label
from udcshield.pipeline.worst_case import WORST_CASE

INTRO = ("Spread across training runs: each restorer trained once per seed of `train.seeds`, every run attacked, "
         "purified and scored on the same test images. Mean over runs x images with a 95 % interval that resamples "
         "both the runs and the images (pigeonhole bootstrap, Owen 2007); per-run means and their standard "
         "deviation beside it.")
HEADER = ["restorer", "defense", "condition", "runs", "mean [95 % CI, runs x images]", "per-run means",
          "sd across runs"]


def _matrix(cells: Mapping[tuple[str, str, str], list[tuple[str, float]]], labels: list[str], defense: str,
            cond: str) -> list[list[float]] | None:
    """(S, N) per-image values of one cell for the runs ``labels``, or None when a run lacks the cell or the
    runs scored different images (ValueError: a spread over different images is not a spread over runs)."""
    rows, ids = [], None
    for label in labels:
        values = cells.get((label, defense, cond))
        if not values:
            return None
        run_ids, vals = per_image(values)
        if ids is not None and run_ids != ids:
            raise ValueError(f"seed spread of {labels[0]}/{defense}/{cond}: the runs scored different images")
        ids = run_ids
        rows.append(list(vals))
    return rows


def seed_spread(params: Params, records: list[dict[str, Any]], metric: str = "psnr") -> list[dict[str, Any]]:
    """Rows {model, variant, defense, condition, runs, mean, ci, seed_means, seed_std, n_images} for every
    restorer with more than one training run; empty when ``train.seeds`` has one seed. ``records``: the
    evaluation rows (one per image x metric x cell, worst-case rows included); values in dB for PSNR."""
    groups = params.train.seed_groups()
    if not any(len(runs) > 1 for runs in groups.values()):
        return []
    cells: dict[tuple[str, str, str], list[tuple[str, float]]] = defaultdict(list)
    for r in records:
        if r["metric"] == metric and r["attack"] in (CLEAN, WORST_CASE):
            cond = CLEAN if r["attack"] == CLEAN else f"{WORST_CASE}_{int(r['budget'])}"
            cells[(r["model"], r["defense"], cond)].append((r["image_id"], float(r["value"])))
    budgets = sorted({int(c.rsplit("_", 1)[1]) for _, _, c in cells if c != CLEAN})
    rows = []
    for model, runs in groups.items():
        if len(runs) < 2:
            continue
        for variant in params.attack.models:
            labels = [model_label(f"{run}/{variant}") for run in runs]
            for defense in DEFENSES:
                for cond in [CLEAN] + [f"{WORST_CASE}_{b}" for b in budgets]:
                    matrix = _matrix(cells, labels, defense, cond)
                    if matrix is None:
                        continue
                    seed = cell_seed(params.seed, f"seeds|{model}|{variant}|{defense}|{cond}|{metric}")
                    stats = crossed_bootstrap_ci(matrix, seed)
                    rows.append({"model": model, "variant": variant, "defense": defense, "condition": cond,
                                 "runs": runs, "mean": stats["mean"], "ci": [stats["ci_low"], stats["ci_high"]],
                                 "seed_means": stats["seed_means"], "seed_std": stats["seed_std"],
                                 "n_images": stats["n_images"]})
    return rows


def _condition_text(cond: str) -> str:
    if cond == CLEAN:
        return CLEAN
    return f"worst case {budget_label(int(cond.rsplit('_', 1)[1]))}"


def _cells(row: Mapping[str, Any]) -> list[str]:
    return [f"{row['model']}/{row['variant']}", row["defense"], _condition_text(row["condition"]),
            str(len(row["runs"])), ci_text("psnr", row["mean"], row["ci"]),
            ", ".join(f"{v:.2f}" for v in row["seed_means"]), f"{row['seed_std']:.2f}"]


def seed_spread_lines(data: Mapping[str, Any]) -> list[str]:
    """``## Across training seeds``: one markdown row per cell; nothing when every restorer ran once."""
    rows = data.get("seed_spread") or []
    if not rows:
        return []
    lines = ["## Across training seeds", "", INTRO, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return lines + ["| " + " | ".join(_cells(r)) + " |" for r in rows] + [""]


def seed_spread_section(data: Mapping[str, Any]) -> H.Section | None:
    """The same table as :func:`seed_spread_lines`, for the HTML view; None when every restorer ran once."""
    rows = data.get("seed_spread") or []
    if not rows:
        return None
    body = H.paragraph(INTRO) + H.table(HEADER, [_cells(r) for r in rows], left_columns=3, table_id="seed-spread")
    return H.Section("seed-spread", "Across training seeds", body)
