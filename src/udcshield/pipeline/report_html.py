"""The HTML view of the report: ``render_html(data, figures)``, one self-contained page built from the report
data (:func:`udcshield.pipeline.report_data.build_report_data`, as stored in ``report.json``) and the PNG
figures drawn from it (:func:`udcshield.pipeline.report_figures.render_figures`).

The tables hold the same cells as the markdown view (same rows, same formats). Figures are looked up by
key: ``bars``, ``curves/<attack>``, ``grid/<model>/<variant>``, ``mask`` and ``psf``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from udcshield.attacks.budget import budget_label
from udcshield.evaluation import html as H
from udcshield.evaluation.tables import ci_text, cond_label
from udcshield.pipeline.report_headline import headline_section
from udcshield.pipeline.report_input import input_section
from udcshield.pipeline.report_minnorm import minimum_norm_section
from udcshield.pipeline.report_seeds import seed_spread_section
from udcshield.pipeline.report_markdown import PAIRED_HEADER, adaptive_cell, paired_cells, paired_intro

Data = Mapping[str, Any]
Figures = Mapping[str, bytes]
FAIL = "FAIL"


def _at(value: float, cond: str, ci: list[float] | None = None) -> str:
    return f"{ci_text('psnr', value, ci)} ({cond_label(cond)})"


def summary_section(data: Data, figures: Figures) -> H.Section:
    """First screen: the worst case per restorer variant (table with 95 % intervals, and bar chart)."""
    header = ["restorer", "clean, undefended", "clean, purified", "worst attack, undefended",
              "worst attack, purified", "adaptive worst draw"]
    rows: list[list[H.Cell]] = []
    for r in data["worst_cases"]["rows"]:
        none, pur = r["worst"]
        adapt = r["adaptive"]
        clean_ci = r.get("clean_ci") or [None] * len(r["clean"])
        rows.append([r["source"], *[ci_text("psnr", v, ci) for v, ci in zip(r["clean"], clean_ci)],
                     (_at(none["psnr"], none["condition"], none.get("ci")), "bad"),
                     _at(pur["psnr"], pur["condition"], pur.get("ci")),
                     None if adapt is None else _at(adapt["psnr"], adapt["condition"], adapt.get("ci"))])
    body = (H.paragraph(
        "Mean PSNR (dB) over the test images with its 95 % percentile bootstrap interval [low, high]. Worst "
        "attack: the lowest mean PSNR over every attack and budget "
        "crafted on that restorer; the purified column feeds the same adversarial inputs through the purifier "
        "(non-adaptive). The adaptive column attacks through the purifier and takes the worst of "
        f"{data['adaptive']['draws']} stochastic draws.")
        + H.table(header, rows, table_id="glance")
        + H.figure(figures["bars"], "bar chart: clean and worst attacked PSNR per restorer and defense", width=700)
        + '<p class="warn">Each attack is crafted on the bare restorer; a defense number measured only '
        "non-adaptively is not a robustness claim. See the adaptive-attack grid below.</p>")
    setup = data["setup"]
    return H.Section("summary", f"At a glance: {len(setup['models'])} restorer(s), {setup['n_images']} test images",
                     body)


def tables_section(data: Data) -> H.Section:
    """Per model and metric: restorer variant x defense x condition; the worst cell of a row is marked."""
    rob = data["robustness"]
    labels = [c["label"] for c in rob["conditions"]]
    parts = []
    for model in data["setup"]["models"]:
        parts.append(f"<h3>{H.esc(model)}</h3>")
        for table in (t for t in rob["tables"] if t["model"] == model):
            rows: list[list[H.Cell]] = []
            for r in table["rows"]:
                row: list[H.Cell] = [r["variant"], r["defense_label"]]
                intervals = r.get("intervals") or [None] * len(r["values"])
                for k, (v, ci) in enumerate(zip(r["values"], intervals)):
                    text = ci_text(table["metric"], v, ci)
                    row.append((text, "bad") if k > 0 and v is not None and v == r["worst"] else text)
                rows.append(row)
            parts.append(H.table(["variant", "defense", *labels], rows, caption=f"{model}: {table['unit']}",
                                 left_columns=2,
                                 table_id=f"robustness-{model}-{table['metric']}".replace("_", "-")))
    intro = H.paragraph("Mean over the test images [95 % percentile bootstrap interval]; budgets in units of "
                        "1/256 of the tone-mapped [0, 1] image; "
                        "PSNR/SSIM on clamped 8-bit RGB. Red: the strongest attack of the row.")
    return H.Section("robustness", "Robustness tables", intro + "".join(parts))


def curves_section(data: Data, figures: Figures) -> H.Section:
    """PSNR and SSIM vs budget per attack: one line per restorer x defense."""
    figs = [H.figure(figures[f"curves/{c['attack']}"], f"{c['attack']} PSNR and SSIM vs budget",
                     f"{c['attack']}, crafted on each restorer variant; purified lines: the same inputs purified "
                     "(non-adaptive).", width=900) for c in data["curves"]]
    return H.Section("curves", "PSNR and SSIM vs budget", "".join(figs))


def grids_section(data: Data, figures: Figures) -> H.Section:
    """Image grids for the first ``report.grid_images`` test images, one per restorer variant."""
    g = data["grid"]
    figs = "".join(H.figure(figures[f"grid/{p['source']}"], f"image grid {p['source']}",
                            f"{p['source']}: {g['attack']} at {budget_label(g['budget'])} crafted on this restorer; "
                            "perturbation mid-grey = 0, black/white = -/+ the budget; PSNR against the ground truth.", width=1150)
                   for p in g["panels"])
    intro = H.paragraph(f"The first {len(g['image_ids'])} test images (ids {', '.join(g['image_ids'])}).")
    return H.Section("images", "What the attack does to an image", intro + figs)


def adaptive_section(data: Data) -> H.Section:
    """Defense grid: {undefended, purified, purified + fine-tuned} x {non-adaptive, adaptive} PSNR."""
    a = data["adaptive"]
    if not a["enabled"]:
        return H.Section("adaptive", "Adaptive attacks", H.paragraph("Not run (adaptive.enabled is false)."))
    names = [x["name"] for x in a["attacks"]]
    header = ["restorer", "defense", "budget", "clean", "non-adaptive PGD", *[f"adaptive {n}" for n in names]]
    rows: list[list[H.Cell]] = []
    for r in a["rows"]:
        cells: list[H.Cell] = [None if c is None else adaptive_cell(c, r["defense"])
                               for c in (r["clean"], r["pgd"], *r["adaptive"])]
        rows.append([r["source"], r["label"], budget_label(r["budget"]), *cells])
    intro = H.paragraph(
        f"PSNR (dB) on the first {a['max_images']} test images. Purified cells: mean over {a['draws']} draws / "
        f"worst draw / PSNR of the averaged output. Adaptive: PGD through the purifier "
        f"({data['captions']['adaptive_attacks']}). The undefended row feeds the same inputs to the bare restorer.")
    return H.Section("adaptive", "Adaptive attacks through the purifier",
                     intro + H.table(header, rows, left_columns=3, table_id="adaptive-grid"))


def paired_section(data: Data) -> H.Section | None:
    """Paired per-image PSNR differences between settings with 95 % intervals (None without them)."""
    p = data.get("paired")
    if not p:
        return None
    body = H.paragraph(paired_intro(data))
    if p["rows"]:
        rows: list[list[H.Cell]] = []
        for r in p["rows"]:
            cells = paired_cells(r)
            rows.append([*cells[:-1], (cells[-1], "l")])  # the reading, left-aligned
        body += H.table(PAIRED_HEADER, rows, left_columns=3, table_id="paired")
    else:
        body += H.paragraph("No pair of settings to compare.")
    return H.Section("paired", "Paired comparisons", body)


def transfer_section(data: Data) -> H.Section | None:
    """Surrogate x target PSNR per attack at its largest budget, no defense (None with one restorer)."""
    if not data["transfer"]:
        return None
    parts = [H.table(["crafted on \\ evaluated on", *t["sources"]], [[r["surrogate"], *r["psnr"]] for r in t["rows"]],
                     caption=f"{t['attack']} at {budget_label(t['budget'])}, PSNR (dB)") for t in data["transfer"]]
    return H.Section("transfer", "Transfer between restorers", "".join(parts))


def sweep_section(data: Data) -> H.Section | None:
    """The sweep table (network evaluations, images/s, defended PSNR vs the full DDPM chain)."""
    s = data["sweep"]
    if s is None:
        return None
    if not s["enabled"]:
        return H.Section("sweep", "Purifier sweep", H.paragraph("Purifier sweep: disabled (sweep.enabled: false)."))
    body = H.table(s["header"], s["rows"], left_columns=3, table_id="sweep-table",
                   caption="PGD inputs crafted on the bare restorer, then purified (non-adaptive)")
    return H.Section("sweep", "Purifier sweep", body + "".join(H.paragraph(n) for n in s["statements"]))


def cost_section(data: Data) -> H.Section:
    """Per adversarial set: iterations, gradient evaluations, queries, seconds and perturbation size."""
    rows: list[list[H.Cell]] = [[c["set"], c["iterations"], c["forward_backward"], c["queries"], f"{c['seconds']:.2f}",
                                 f"{c['linf_max'] * 256:.3f}", f"{c['l2_mean']:.4f}"] for c in data["attack_cost"]]
    header = ["set", "iterations", "forward+backward", "queries", "seconds", "max L-inf (x256)", "mean L2"]
    return H.Section("cost", "Attack cost", H.table(header, rows, table_id="attack-cost"))


def optics_section(data: Data, figures: Figures) -> H.Section:
    """The simulated display mask and the centre PSF (log scale)."""
    body = (H.paragraph(data["captions"]["optics"])
            + H.figure(figures["mask"], "display mask", "display transmission (white = open)", width=240)
            + H.figure(figures["psf"], "PSF per channel, log scale", "centre PSF, R G B, log scale over 5 decades",
                       width=540))
    return H.Section("optics", "Display and PSF", body)


def checks_section(data: Data) -> H.Section:
    """The sanity checks, failures highlighted."""
    checks = data["sanity_checks"]
    cells: list[list[H.Cell]] = [[c["check"], (c["status"], "fail" if c["status"] == FAIL else "good"), c["detail"]]
                                 for c in checks]
    failed = sum(c["status"] == FAIL for c in checks)
    intro = H.paragraph(f"{len(checks)} checks, {failed} failed.")
    return H.Section("checks", "Sanity checks", intro + H.table(["check", "status", "detail"], cells, left_columns=3))


def provenance_footer(data: Data) -> str:
    """Footer HTML: params hash, code version, libraries, devices, artifact digests, dvc.lock output hashes."""
    p = data["provenance"]
    code = p["code"]
    libs = ", ".join(f"{k} {v}" for k, v in p["libraries"].items() if v)
    git = (code.get("git_commit") or "unknown")[:12] + (" (src modified)" if code.get("src_dirty") else "")
    lines = [f"params sha256 <code>{H.esc(p['params_sha256'][:16])}</code>",
             f"code: udcshield {H.esc(code['package'])}, git <code>{H.esc(git)}</code>",
             f"devices: the stages ran on {H.esc(', '.join(p['devices']) or 'unknown')}",
             f"libraries: {H.esc(libs)}"]
    html = "<h2>Provenance</h2><ul>" + "".join(f"<li>{x}</li>" for x in lines) + "</ul>"
    rows: list[list[H.Cell]] = [[a["name"], a["path"], a["stage"], a["created_utc"], a["device"], a["sha256"][:16]]
                                for a in p["artifacts"]]
    html += H.table(["artifact", "path", "stage", "created (UTC)", "device", "sha256"], rows, left_columns=6,
                    caption="Artifacts read by the report (content sha256)")
    if p["dvc_lock"]:
        html += H.table(["stage", "output", "dvc md5"], [[o["stage"], o["path"], o["md5"]] for o in p["dvc_lock"]],
                        left_columns=3, caption="dvc.lock outputs at report time")
    return html


def render_html(data: Data, figures: Figures) -> str:
    """The self-contained HTML report (one string; every image an embedded PNG from ``figures``)."""
    sections = [headline_section(data), input_section(data), summary_section(data, figures), tables_section(data),
                minimum_norm_section(data), paired_section(data), seed_spread_section(data),
                curves_section(data, figures), grids_section(data, figures), adaptive_section(data),
                transfer_section(data), sweep_section(data), cost_section(data), optics_section(data, figures),
                checks_section(data)]
    subtitle = [data["captions"]["subtitle"], data["captions"]["attacks"]]
    return H.page(data["title"], subtitle, [s for s in sections if s is not None], provenance_footer(data))
