"""Everything the report shows, computed once from the stage outputs, as JSON-serialisable data.

:func:`build_report_data` reads the evaluation records, the adaptive and sweep stages' output files, the
attributes of the adversarial sets, the grid store (restorations made by the evaluate stage) and the test
store, and returns one dict (written to ``data/report/report.json``). The markdown and HTML views
(:mod:`udcshield.pipeline.report_markdown`, :mod:`udcshield.pipeline.report_html`) are functions of that
dict alone; ordered content is held in lists, so a round trip through JSON (sorted keys) changes nothing.

Means come with their 95 % percentile bootstrap intervals over the test images (stored beside them by
:func:`udcshield.pipeline.summary.means`); ``paired`` holds paired per-image PSNR differences between
settings with their intervals (Efron & Tibshirani 1993, "An Introduction to the Bootstrap";
:mod:`udcshield.evaluation.statistics`); ``input_baseline`` the raw UDC input beside each restorer on the clean
test images, with the restorer's paired PSNR gain over it (:mod:`udcshield.pipeline.report_input`).

Sanity checks (budgets, gradient masking): :mod:`udcshield.pipeline.report_checks`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import torch

from udcshield.attacks.budget import UNBOUNDED
from udcshield.attacks.registry import attack_label, budget_mode
from udcshield.config import Params
from udcshield.evaluation.metrics import psnr, worse
from udcshield.evaluation.records import read_records_csv
from udcshield.evaluation.statistics import LEVEL, RESAMPLES, cell_seed, paired_difference, per_image
from udcshield.evaluation.tables import SWEEP_TABLE_HEADER, read_sweep_rows, sweep_cells
from udcshield.pipeline.grid import grid_attack, grid_conditions, read_grid
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import (CLEAN, DEFENSES, TRANSFER, array_name, condition_label, conditions, model_label,
                                      restorers)
from udcshield.pipeline.report_provenance import (adaptive_checks_path, adaptive_metrics_path, provenance, sweep_csv_path,
                                                  sweep_summary_path)
from udcshield.pipeline.report_checks import sanity_checks
from udcshield.pipeline.report_headline import headline
from udcshield.pipeline.report_input import input_baseline, metric_header
from udcshield.pipeline.report_minnorm import minimum_norm
from udcshield.pipeline.report_seeds import seed_spread
from udcshield.pipeline.worst_case import attach_convergence
from udcshield.pipeline.summary import interval, means
from udcshield.store.zarr_io import read_images, store_attrs

SCHEMA = 1
TITLE = "udcshield robustness report"
DEFENSE_LABELS = {("base", "none"): "undefended", ("base", "purified"): "purified",
                  ("finetuned", "none"): "fine-tuned, no purification",
                  ("finetuned", "purified"): "purified + fine-tuned"}


def defense_label(source: str, defense: str) -> str:
    """Reader-facing name of (restorer ``<model>/<variant>``, defense), e.g. ``purified + fine-tuned``."""
    return DEFENSE_LABELS[(source.split("/")[1], defense)]


def attacked_conditions(params: Params) -> list[tuple[str, int]]:
    """(attack, budget) of every non-transfer attacked condition, in params order."""
    return [(s.name, b) for s in params.attack.attacks for b in sorted(s.budgets)]


def robustness(params: Params, summary: dict[str, Any]) -> dict[str, Any]:
    """Per model and metric: one row per (restorer variant, defense) with the mean over the test images for
    clean and each attack x budget (``summary``: :func:`udcshield.pipeline.summary.means`), ``intervals``: the
    95 % interval [low, high] of each (None where absent); ``worst``: the worst attacked value of the row (the
    lowest; the highest for a metric where lower is better, LPIPS)."""
    conds = [{"key": CLEAN, "label": CLEAN}] + [{"key": f"{a}_{b}", "label": attack_label(a, b)}
                                                 for a, b in attacked_conditions(params)]
    tables = []
    for spec in params.train.runs():
        for metric in params.evaluate.metrics:
            rows = []
            for source in restorers(params):
                if source.split("/")[0] != spec.label:
                    continue
                for defense in DEFENSES:
                    cells = summary.get(model_label(source), {}).get(defense, {})
                    vals = [cells.get(c["key"], {}).get(metric) for c in conds]
                    attacked = [v for v in vals[1:] if v is not None]
                    rows.append({"source": source, "model": model_label(source), "variant": source.split("/")[1],
                                 "defense": defense, "defense_label": defense_label(source, defense),
                                 "values": vals, "worst": worse(metric)(attacked) if attacked else None,
                                 "intervals": [interval(cells.get(c["key"]), metric) for c in conds]})
            tables.append({"model": spec.label, "metric": metric, "rows": rows, "unit": metric_header(metric)})
    return {"conditions": conds, "metrics": list(params.evaluate.metrics), "tables": tables}


def worst_attacked(summary: dict[str, Any], model: str, defense: str, metric: str = "psnr") -> tuple[float, str]:
    """(lowest mean ``metric`` over attacked conditions, the condition) for one restorer and defense."""
    cells = {k: v[metric] for k, v in summary[model][defense].items()
             if k != CLEAN and TRANSFER not in k and metric in v}
    cond = min(cells, key=lambda k: (cells[k], k))
    return cells[cond], cond


def adaptive_worst(adaptive_summary: dict[str, Any] | None, model: str) -> tuple[float, str] | None:
    """(lowest worst-draw PSNR over the adaptive attacks, the condition) of a purified restorer, or None."""
    if not adaptive_summary or model not in adaptive_summary:
        return None
    cells = {k: v["psnr_worst_draw"] for k, v in adaptive_summary[model].get("purified", {}).items()
             if k != CLEAN and "psnr_worst_draw" in v}
    if not cells:
        return None
    cond = min(cells, key=lambda k: (cells[k], k))
    return cells[cond], cond


def worst_cases(params: Params, summary: dict[str, Any], adaptive_summary: dict[str, Any] | None) -> dict[str, Any]:
    """Per restorer variant: clean PSNR and the worst attacked PSNR per defense (and the adaptive worst
    draw), each with its 95 % interval (``clean_ci``, ``ci``: [low, high] or None); ``bars``: the same means
    per model for the bar chart."""
    rows = []
    for source in restorers(params):
        m = model_label(source)
        worst = []
        for defense in DEFENSES:
            value, cond = worst_attacked(summary, m, defense)
            worst.append({"defense": defense, "label": defense_label(source, defense), "psnr": value,
                          "condition": cond, "ci": interval(summary[m][defense][cond], "psnr")})
        adapt = adaptive_worst(adaptive_summary, m)
        rows.append({"source": source, "model": m, "worst": worst,
                     "clean": [summary[m][d][CLEAN]["psnr"] for d in DEFENSES],
                     "clean_ci": [interval(summary[m][d][CLEAN], "psnr") for d in DEFENSES],
                     "adaptive": None if adapt is None else {
                         "psnr": adapt[0], "condition": adapt[1],
                         "ci": interval(adaptive_summary[m]["purified"][adapt[1]], "psnr_worst_draw")}})
    models = [spec.label for spec in params.train.runs()]
    by_source = {r["source"]: r for r in rows}
    series = []
    for label, variant, k, what in (("clean, undefended", "base", 0, "clean"),
                                    ("worst attack, undefended", "base", 0, "worst"),
                                    ("worst attack, purified", "base", 1, "worst"),
                                    ("worst attack, purified + fine-tuned", "finetuned", 1, "worst")):
        vals = [None if (r := by_source.get(f"{model}/{variant}")) is None
                else (r["clean"][k] if what == "clean" else r["worst"][k]["psnr"]) for model in models]
        if any(v is not None for v in vals):
            series.append({"label": label, "values": vals})
    if adaptive_summary is not None:
        vals = []
        for model in models:
            found = [r["adaptive"]["psnr"] for v in params.attack.models
                     if (r := by_source.get(f"{model}/{v}")) is not None and r["adaptive"] is not None]
            vals.append(min(found) if found else None)
        if any(v is not None for v in vals):
            series.append({"label": "adaptive attack, purified (worst draw)", "values": vals})
    return {"rows": rows, "bars": {"groups": models, "series": series}}


def curves(params: Params, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per attack: metric vs budget (0 = clean), one line per restorer variant x defense; none for an unbounded
    attack (``cw_l2``, one budget)."""
    out = []
    for spec in params.attack.attacks:
        if budget_mode(spec.name) == UNBOUNDED:
            continue
        budgets = [0, *sorted(spec.budgets)]
        lines = []
        for source in restorers(params):
            for defense in DEFENSES:
                cells = summary[model_label(source)][defense]
                rows = [cells[CLEAN if b == 0 else f"{spec.name}_{b}"] for b in budgets]
                label = defense_label(source, defense)
                lines.append({"label": f"{source.split('/')[0]}: {label}", "group": source.split("/")[0],
                              "kind": label, "values": {m: [r[m] for r in rows] for m in params.evaluate.metrics}})
        out.append({"attack": spec.name, "budgets": budgets, "lines": lines})
    return out


def adaptive(params: Params, adaptive_summary: dict[str, Any] | None) -> dict[str, Any]:
    """The defense grid {undefended, purified, purified + fine-tuned} x {clean, non-adaptive PGD, each adaptive
    attack} per restorer variant and budget; cells are the adaptive stage's means (None when absent)."""
    cfg = params.adaptive
    out: dict[str, Any] = {"enabled": adaptive_summary is not None, "max_images": cfg.max_images,
                           "draws": cfg.draws, "budgets": list(cfg.budgets),
                           "attacks": [{"name": a.name, "gradient": a.gradient, "eot_samples": a.eot_samples,
                                        "steps": a.steps} for a in cfg.attacks], "rows": []}
    if adaptive_summary is None:
        return out
    for source in restorers(params):
        m = model_label(source)
        for budget in cfg.budgets:
            for defense in DEFENSES:
                got = adaptive_summary.get(m, {}).get(defense, {})
                out["rows"].append({"source": source, "model": m, "budget": budget, "defense": defense,
                                    "label": "undefended" if defense == "none" else defense_label(source, defense),
                                    "clean": got.get(CLEAN), "pgd": got.get(f"pgd_{budget}"),
                                    "adaptive": [got.get(f"{a.name}_{budget}") for a in cfg.attacks]})
    return out


def transfer(params: Params, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per attack at its largest budget: surrogate (rows) x target (columns) PSNR, no defense; empty with
    a single restorer variant."""
    sources = list(restorers(params))
    if len(sources) < 2:
        return []
    out = []
    for spec in params.attack.attacks:
        b = max(spec.budgets)
        rows = []
        for src in sources:
            keys = [f"{spec.name}_{b}" if src == tgt else f"{spec.name}{TRANSFER}{src}_{b}" for tgt in sources]
            rows.append({"surrogate": src, "psnr": [summary[model_label(t)]["none"][k]["psnr"]
                                                    for t, k in zip(sources, keys)]})
        out.append({"attack": spec.name, "budget": b, "sources": sources, "rows": rows})
    return out


#: Paired comparisons: (name, (variant, defense) of setting A, (variant, defense) of setting B); shown as A - B.
PAIRS = (("purified vs undefended", ("base", "purified"), ("base", "none")),
         ("fine-tuned vs base", ("finetuned", "none"), ("base", "none")),
         ("purified + fine-tuned vs purified", ("finetuned", "purified"), ("base", "purified")))


def paired(params: Params, records: list[dict[str, Any]], metric: str = "psnr") -> dict[str, Any]:
    """Paired per-image differences A - B of ``metric`` (dB for PSNR) per restorer model and condition (clean,
    each attack x budget; no transfer cells) for every pair of :data:`PAIRS` present in ``records``: mean,
    95 % percentile bootstrap interval [ci_low, ci_high] over the images (4 decimals), n, and excludes_zero
    (of the rounded bounds, so it agrees with the numbers shown).

    Images are matched by id (values of one image averaged over draws); each row's seed derives from
    ``params.seed`` and the row's label. ValueError naming both cells when they hold different images."""
    cells: dict[tuple[str, str, str], list[tuple[str, float]]] = defaultdict(list)
    for r in records:
        if r["metric"] == metric and TRANSFER not in r["attack"]:
            cells[(r["model"], r["defense"], condition_label(r["attack"], r["budget"]))].append(
                (r["image_id"], r["value"]))
    conds = [(CLEAN, CLEAN)] + [(f"{a}_{b}", attack_label(a, b)) for a, b in attacked_conditions(params)]
    rows = []
    for spec in params.train.runs():
        for cond, cond_text in conds:
            for name, *sides in PAIRS:
                keys = [(model_label(f"{spec.label}/{v}"), d, cond) for v, d in sides]
                if not all(cells.get(k) for k in keys):
                    continue
                (ids_a, a), (ids_b, b) = (per_image(cells[k]) for k in keys)
                if ids_a != ids_b:
                    raise ValueError(f"paired comparison {name}: cells {keys[0]} and {keys[1]} hold different images")
                label = f"paired|{spec.label}|{name}|{cond}|{metric}"
                stats = paired_difference(a, b, cell_seed(params.seed, label))
                low, high = round(stats["ci_low"], 4), round(stats["ci_high"], 4)
                rows.append({"model": spec.label, "comparison": name, "condition": cond, "condition_label": cond_text,
                             "a": defense_label(f"{spec.label}/{sides[0][0]}", sides[0][1]),
                             "b": defense_label(f"{spec.label}/{sides[1][0]}", sides[1][1]),
                             "mean": round(stats["mean"], 4), "ci_low": low, "ci_high": high, "n": stats["n"],
                             "excludes_zero": low > 0 or high < 0})
    return {"metric": metric, "unit": "dB" if metric == "psnr" else "", "level": LEVEL, "resamples": RESAMPLES,
            "seed": params.seed, "rows": rows}


def attack_cost(attack_attrs: dict[str, dict]) -> list[dict[str, Any]]:
    """Per adversarial set: iterations, gradient evaluations, queries, seconds and perturbation size."""
    return [{"set": name, "iterations": a["cost"]["iterations"], "forward_backward": a["cost"]["forward_backward"],
             "queries": a["cost"].get("queries", 0), "seconds": a["cost"]["seconds"], "linf_max": a["linf_max"],
             "l2_mean": a["l2_mean"]} for name, a in sorted(attack_attrs.items())]


def sweep(layout: Layout) -> dict[str, Any] | None:
    """The purifier sweep table (cells of ``sweep.csv``) and the sweep stage's comparison statements (from its
    ``summary.md``); None when the sweep has not run."""
    path = sweep_csv_path(layout)
    if not path.is_file():
        return None
    rows = read_sweep_rows(path)
    summary = sweep_summary_path(layout)
    statements = [line[2:] for line in summary.read_text().splitlines() if line.startswith("- ")] \
        if rows and summary.is_file() else []
    return {"enabled": bool(rows), "header": list(SWEEP_TABLE_HEADER), "rows": sweep_cells(rows),
            "statements": statements}


def _tile_psnr(layout: Layout, source: str, defense: str, cond: str, role: str,
               targets: torch.Tensor) -> list[float]:
    """PSNR (dB) of every image of one grid-store array against the ground truth."""
    x = torch.from_numpy(read_grid(layout, source, defense, cond, role))
    return [float(v) for v in psnr(x, targets).tolist()]


def grid(params: Params, layout: Layout, attack_attrs: dict[str, dict]) -> dict[str, Any]:
    """The image grid: ids, attack and budget, and per restorer variant the perturbation scale and the PSNR
    (dB, against the ground truth) of every tile, from the grid store and the test store's targets."""
    spec = grid_attack(params)
    budget = max(spec.budgets)
    _, attacked = grid_conditions(params)
    info = store_attrs(layout.grid_store)
    ids = list(info["image_ids"])
    targets = torch.from_numpy(read_images(layout.test_store, "targets", rows=slice(0, len(ids))))
    panels = []
    for source in restorers(params):
        name = array_name(source, spec.name, budget)
        attrs = attack_attrs[name]
        eps = float(attrs["eps"]) if attrs.get("norm", "linf") == "linf" else max(float(attrs["linf_max"]), 1e-6)

        def db(defense: str, cond: str, role: str, source: str = source) -> list[float]:
            return _tile_psnr(layout, source, defense, cond, role, targets)

        panels.append({"source": source, "set": name, "eps": eps,
                       "defended_title": "purified + fine-tuned" if source.endswith("/finetuned")
                       else "purified + restored",
                       "psnr": {"input": db("none", CLEAN, "input"), "adversarial": db("none", attacked, "input"),
                                "restored_clean": db("none", CLEAN, "restored"),
                                "restored_attacked": db("none", attacked, "restored"),
                                "purified_attacked": db("purified", attacked, "input"),
                                "defended": db("purified", attacked, "restored")}})
    return {"store": layout.grid_store.as_posix(), "attack": spec.name, "budget": budget, "condition": attacked,
            "image_ids": ids, "panels": panels}


def captions(params: Params, n_images: int) -> dict[str, str]:
    """Sentences that depend on the params: setup line, optics, adaptive attack settings."""
    o = params.simulate.optics
    size = params.simulate.patch_size
    return {
        "setup": f"Restorers {', '.join(f'`{m.label}`' for m in params.train.runs())} on {n_images} test images "
                 f"({o.mask} display mask, {size}x{size}).",
        "subtitle": f"Restorers {', '.join(m.label for m in params.train.runs())} on {n_images} test images, "
                    f"{o.mask} display mask, {size}x{size} patches. Budgets in units of 1/256.",
        "attacks": "Attacks: " + "; ".join(f"{s.name} at {', '.join(map(str, sorted(s.budgets)))}"
                                           for s in params.attack.attacks),
        "optics": f"{o.mask} mask, pitch {o.pitch_um:g} um, open ratio {o.open_ratio:g}; f = {o.focal_length_mm:g} mm, "
                  f"f/{o.f_number:g}; sensor pitch {o.sensor_pitch_um:g} um; wavelengths {list(o.wavelengths_nm)} nm. "
                  "PSF shown over 5 decades (R, G, B); diffraction orders sit at lambda*f/pitch, so red spreads furthest.",
        "adaptive_attacks": "; ".join(f"{a.name}: {a.gradient} gradients, EOT {a.eot_samples}, {a.steps} steps"
                                      for a in params.adaptive.attacks),
    }


def build_report_data(params: Params, layout: Layout) -> dict[str, Any]:
    """Everything the report shows (see the module docstring); JSON-serialisable."""
    all_records = read_records_csv(layout.records)
    summary = attach_convergence(params, layout.adversarial, means(all_records, params.seed), all_records)
    records = [r for r in all_records if TRANSFER not in r["attack"]]
    n_images = len({r["image_id"] for r in records})
    attack_attrs = {array_name(src, s.name, b): store_attrs(layout.adversarial, array_name(src, s.name, b))
                    for src, s, b in conditions(params)}
    path = adaptive_metrics_path(layout)
    adaptive_summary = json.loads(path.read_text()) if params.adaptive.enabled and path.is_file() else None
    checks = adaptive_checks_path(layout)
    adaptive_checks = json.loads(checks.read_text()) if params.adaptive.enabled and checks.is_file() else None
    report_dir = layout.report.parent
    return {
        "schema": SCHEMA, "title": TITLE, "captions": captions(params, n_images),
        "setup": {"models": [m.label for m in params.train.runs()], "sources": list(restorers(params)),
                  "n_images": n_images, "metrics": list(params.evaluate.metrics),
                  "attacks": [{"name": s.name, "budgets": sorted(s.budgets)} for s in params.attack.attacks]},
        "headline": headline(params, summary, adaptive_summary),
        "input_baseline": input_baseline(params, summary, records, defense_label),
        "robustness": robustness(params, summary),
        "worst_cases": worst_cases(params, summary, adaptive_summary),
        "curves": curves(params, summary),
        "grid": grid(params, layout, attack_attrs),
        "adaptive": adaptive(params, adaptive_summary),
        "transfer": transfer(params, summary),
        "sweep": sweep(layout),
        "attack_cost": attack_cost(attack_attrs),
        "minimum_norm": minimum_norm(params, summary, attack_attrs, n_images),
        "sanity_checks": sanity_checks(params, summary, attack_attrs, adaptive_checks),
        "figures": {"mask": (report_dir / "mask.png").as_posix(), "psf": (report_dir / "psf.png").as_posix(),
                    "html": (report_dir / "report.html").as_posix()},
        "paired": paired(params, records),
        "seed_spread": seed_spread(params, records),
        "provenance": provenance(params, layout),
    }
