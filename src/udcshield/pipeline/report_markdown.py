"""The markdown view of the report: ``render_markdown(data)``, a pure function of the report data
(:func:`udcshield.pipeline.report_data.build_report_data`, as stored in ``report.json``).

Each section is its own function returning markdown lines that start with the section's ``## `` heading, so
other consumers (the scheduled repro flow's artifact) render the same sections from the same data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from udcshield.attacks.budget import budget_label
from udcshield.evaluation.tables import ci_text, paired_statement, signed_db, sweep_markdown
from udcshield.pipeline.report_headline import headline_lines
from udcshield.pipeline.report_input import input_lines
from udcshield.pipeline.report_minnorm import minimum_norm_lines
from udcshield.pipeline.report_seeds import seed_spread_lines
from udcshield.pipeline.summary import interval

Data = Mapping[str, Any]

NON_ADAPTIVE_WARNING = ("Each attack is crafted on the bare restorer (gradients for white-box attacks, counted "
                        "queries for black-box ones); the purified rows use the same adversarial inputs, purified "
                        "afterwards (non-adaptive, the study's setting). **A defense number measured only "
                        "non-adaptively is not a robustness claim.**")


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _db(value: float | None, ci: list[float] | None = None) -> str:
    return ci_text("psnr", value, ci)


def _intervals(row: Mapping[str, Any]) -> list[Any]:
    """The row's 95 % intervals, one per value (None each for report data without them)."""
    return row.get("intervals") or [None] * len(row["values"])


def robustness_lines(data: Data) -> list[str]:
    """One ``## <model>`` section per model: a table per metric (rows restorer variant x defense), each mean
    with its 95 % bootstrap interval over the test images."""
    rob = data["robustness"]
    header = ["model", "defense", *[c["label"] for c in rob["conditions"]]]
    lines: list[str] = []
    for model in data["setup"]["models"]:
        lines += [f"## {model}", ""]
        for table in (t for t in rob["tables"] if t["model"] == model):
            lines += [table["unit"], "", _row(header), "|---|---|" + "---:|" * (len(header) - 2)]
            lines += [_row([r["model"], r["defense"], *[ci_text(table["metric"], v, ci)
                                                         for v, ci in zip(r["values"], _intervals(r))]])
                      for r in table["rows"]]
            lines.append("")
    return lines


def glance_lines(data: Data) -> list[str]:
    """``## Defense at a glance``: clean and worst attacked PSNR per restorer variant, without and with
    purification, with 95 % intervals where the data has them."""
    lines = ["## Defense at a glance", "",
             _row(["model", "clean PSNR, no defense", "clean PSNR, purified", "worst attacked PSNR, no defense",
                   "worst attacked PSNR, purified"]), "|---|---|---|---|---|"]
    for r in data["worst_cases"]["rows"]:
        clean_ci = r.get("clean_ci") or [None] * len(r["clean"])
        lines.append(_row([r["model"], *[_db(v, ci) for v, ci in zip(r["clean"], clean_ci)],
                           *[_db(w["psnr"], w.get("ci")) for w in r["worst"]]]))
    return lines + [""]


def adaptive_cell(cell: Mapping[str, float] | None, defense: str) -> str:
    """An adaptive-grid cell: PSNR undefended; mean over draws / worst draw / averaged output when purified;
    each with its 95 % interval over the images when the cell has one."""
    if cell is None:
        return "-"
    keys = ("psnr",) if defense == "none" else ("psnr_mean_draws", "psnr_worst_draw", "psnr_avg_output")
    return " / ".join(_db(cell[k], interval(cell, k)) for k in keys)


def adaptive_lines(data: Data) -> list[str]:
    """``## Defense against adaptive attacks (PSNR dB)``: the defense grid (or a line saying it did not run)."""
    a = data["adaptive"]
    if not a["enabled"]:
        return ["## Adaptive attacks", "", "Not run (adaptive.enabled is false).", ""]
    names = [x["name"] for x in a["attacks"]]
    lines = ["## Defense against adaptive attacks (PSNR dB)", "",
             f"First {a['max_images']} test images (all, if fewer). Purified numbers are over {a['draws']} "
             "stochastic draws of the purifier: mean / worst draw / PSNR of the averaged output (seeds in "
             "`data/adaptive/records.csv`). *non-adaptive*: PGD crafted on the bare restorer, then purified; "
             f"*adaptive*: PGD through the purifier ({data['captions']['adaptive_attacks']}).", "",
             _row(["restorer", "defense", "budget", "clean", "non-adaptive PGD", *[f"adaptive {n}" for n in names]]),
             "|---|---|---|---|---|" + "---|" * len(names)]
    for r in a["rows"]:
        cells = [adaptive_cell(c, r["defense"]) for c in (r["clean"], r["pgd"], *r["adaptive"])]
        lines.append(_row([r["model"], r["label"], budget_label(r["budget"]), *cells]))
    return lines + ["", "The undefended row feeds the same adversarial inputs to the bare restorer (for the "
                    "adaptive columns: inputs crafted through the purifier, without it).", ""]


PAIRED_HEADER = ["model", "condition", "A vs B", "A - B (dB) [95 % CI]", "images", "reading"]


def paired_intro(data: Data) -> str:
    """The method sentence of the paired comparisons."""
    p = data["paired"]
    return (f"Paired per-image PSNR differences A - B on the same test images: mean with its {100 * p['level']:g} % "
            f"percentile bootstrap interval ({p['resamples']} resamples of the images; Efron & Tibshirani 1993; "
            f"seeds derived from params seed {p['seed']}). One setting is ranked above the other only where the "
            "interval excludes zero. Attacked conditions: each restorer variant under the attack crafted on it. "
            "On few images (see the images column) the percentile interval is too narrow, so a ranking there is weak.")


def paired_cells(row: Mapping[str, Any]) -> list[str]:
    """Cells of one paired comparison row (:data:`PAIRED_HEADER`)."""
    diff = f"{signed_db(row['mean'])} [{signed_db(row['ci_low'])}, {signed_db(row['ci_high'])}]"
    return [row["model"], row["condition_label"], f"{row['a']} vs {row['b']}", diff, str(row["n"]),
            paired_statement(row)]


def paired_lines(data: Data) -> list[str]:
    """``## Paired comparisons``: purified vs undefended, fine-tuned vs base, purified + fine-tuned vs purified
    per model and condition; nothing for report data without them."""
    p = data.get("paired")
    if not p:
        return []
    lines = ["## Paired comparisons (PSNR dB, 95 % bootstrap intervals)", "", paired_intro(data), ""]
    if not p["rows"]:
        return lines + ["No pair of settings to compare.", ""]
    lines += [_row(PAIRED_HEADER), "|---|---|---|---:|---:|---|"]
    return lines + [_row(paired_cells(r)) for r in p["rows"]] + [""]


def transfer_lines(data: Data) -> list[str]:
    """``## Transfer``: surrogate x target PSNR per attack at its largest budget; nothing with one restorer."""
    if not data["transfer"]:
        return []
    lines = ["## Transfer (surrogate x target, no defense, PSNR dB)", ""]
    for t in data["transfer"]:
        lines += [f"{t['attack']} at {budget_label(t['budget'])} - rows: crafted on; columns: evaluated on", "",
                  _row(["surrogate", *t["sources"]]), "|---|" + "---:|" * len(t["sources"])]
        lines += [_row([r["surrogate"], *[_db(v) for v in r["psnr"]]]) for r in t["rows"]]
        lines.append("")
    return lines


def sweep_lines(data: Data) -> list[str]:
    """``## Purifier sweep``: the t* x sampler table and the statements; nothing when the sweep has not run."""
    s = data["sweep"]
    if s is None:
        return []
    return ["## Purifier sweep: t* and sampler (non-adaptive)", "", sweep_markdown(s["rows"], s["statements"])]


def checks_lines(data: Data) -> list[str]:
    """``## Sanity checks``: one row per check with its status."""
    lines = ["## Sanity checks", "", "| check | status | detail |", "|---|---|---|"]
    return lines + [_row([c["check"], c["status"], c["detail"]]) for c in data["sanity_checks"]] + [""]


def cost_lines(data: Data) -> list[str]:
    """``## Attack cost``: iterations, gradient evaluations, queries, seconds and perturbation size per set."""
    lines = ["## Attack cost", "", "| set | iterations | forward+backward | queries | seconds | max L-inf (x256) | "
             "mean L2 |", "|---|---|---|---|---|---|---|"]
    lines += [_row([c["set"], c["iterations"], c["forward_backward"], c["queries"], f"{c['seconds']:.2f}",
                    f"{c['linf_max'] * 256:.3f}", f"{c['l2_mean']:.4f}"]) for c in data["attack_cost"]]
    return lines + [""]


def optics_lines(data: Data) -> list[str]:
    """``## Display and PSF``: the optics caption and the two PNGs written beside the report."""
    return ["## Display and PSF", "", data["captions"]["optics"], "",
            "![display mask, 2 x 2 unit cells](mask.png) ![PSF per channel, log scale](psf.png)", ""]


def provenance_lines(data: Data) -> list[str]:
    """``## Provenance``: params hash, code version and the digest of every artifact read."""
    p = data["provenance"]
    code = p["code"]
    lines = ["## Provenance", "", f"- params sha256: `{p['params_sha256'][:16]}`",
             f"- code: package {code['package']}, git `{(code.get('git_commit') or 'unknown')[:12]}`"
             f"{' (src modified)' if code.get('src_dirty') else ''}"]
    return lines + [f"- {a['name']}: `{a['path']}` sha256 `{a['sha256'][:16]}`" for a in p["artifacts"]]


def render_markdown(data: Data) -> str:
    """The whole report as markdown."""
    lines = [f"# {data['title']}", "",
             f"{data['captions']['setup']} PSNR/SSIM: tone-mapped, clamped to [0,1], 8-bit, RGB. "
             "Budgets in units of 1/256. Means are shown as `mean [low, high]`: the 95 % percentile bootstrap "
             "interval of the mean over the test images.", "", NON_ADAPTIVE_WARNING, ""]
    for section in (headline_lines, input_lines, robustness_lines, minimum_norm_lines, glance_lines, paired_lines,
                    seed_spread_lines, adaptive_lines, transfer_lines, sweep_lines, checks_lines, cost_lines,
                    optics_lines, provenance_lines):
        lines += section(data)
    return "\n".join(lines).rstrip("\n") + "\n"


def sections_markdown(data: Data, names: tuple[str, ...] = ("headline", "glance", "adaptive")) -> list[str]:
    """Named sections (``headline``, ``glance``, ``paired``, ``adaptive``, ``transfer``, ``sweep``, ``checks``,
    ``cost``) as markdown strings, in the order given; an empty section is left out."""
    views = {"headline": headline_lines, "glance": glance_lines, "paired": paired_lines, "adaptive": adaptive_lines, "transfer": transfer_lines,
             "sweep": sweep_lines, "checks": checks_lines, "cost": cost_lines}
    out = []
    for name in names:
        text = "\n".join(views[name](data)).strip()
        if text:
            out.append(text)
    return out
