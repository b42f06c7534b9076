"""Stage ``report``: the robustness report, built only from the stage outputs (records, stores, checkpoints).

Two files in ``data/report``:

- ``report.md``: PSNR and SSIM tables per (restorer, defense); transfer matrix; automated sanity checks
  from DESIGN.md section 5 (PSNR non-increasing in the budget, stored budgets respected, a one-step attack
  not beating the iterative one); attack cost; the price of the defense on clean inputs; provenance.
- ``report.html``: one self-contained page (images embedded as PNG data URIs, no external reference):
  a summary with the worst case per restorer, the robustness tables, PSNR and SSIM vs budget curves per
  attack (undefended vs purified vs purified + fine-tuned), image grids for the first
  ``report.grid_images`` test images, the adaptive-attack grid, transfer, attack cost, the display mask
  and PSFs, the sanity checks and a provenance footer (params hash, artifact digests, dvc.lock hashes,
  code version, devices).

Plus ``worst_case.csv`` (for ``dvc plots``) and ``psf.png`` / ``mask.png`` (linked from the markdown).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import yaml

from udcshield.config import AttackSpec, Params, to_dict
from udcshield.evaluation import html as H
from udcshield.evaluation.figures import (
    Curve,
    budget_curves_png,
    grouped_bars_png,
    image_grid_png,
    mask_panel,
    perturbation_view,
    png_bytes,
    psf_panel,
    save_png,
)
from udcshield.evaluation.metrics import psnr
from udcshield.evaluation.records import read_records_csv
from udcshield.evaluation.tables import markdown_table
from udcshield.models.checkpoint import read_checkpoint_config
from udcshield.pipeline import adaptive
from udcshield.pipeline.sweep import SWEEP_TABLE_HEADER, render_sweep_table, sweep_dir, sweep_table
from udcshield.pipeline.attack import array_name, conditions, load_restorer, restorers
from udcshield.pipeline.common import apply_batched, load_pairs, write_rows_csv
from udcshield.pipeline.evaluate import DEFENSES, TRANSFER, means, model_label
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.purify import CLEAN
from udcshield.store.atomic import write_text_atomic
from udcshield.store.provenance import code_version, input_digests, library_versions
from udcshield.store.zarr_io import read_array, read_images, store_attrs

PASS, FAIL = "pass", "FAIL"


def sanity_checks(params: Params, summary: dict[str, Any], attack_attrs: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(check, status, detail) rows; status is ``pass`` or ``FAIL`` (DESIGN.md section 5)."""
    rows = []
    for source in restorers(params):
        model = model_label(source)
        for spec in params.attack.attacks:
            for defense in DEFENSES:
                vals = [summary[model][defense][f"{spec.name}_{b}"]["psnr"] for b in sorted(spec.budgets)]
                ok = all(b <= a + 0.05 for a, b in zip(vals, vals[1:]))
                rows.append((f"{model} {defense}: PSNR non-increasing in budget ({spec.name})", PASS if ok else FAIL,
                             " > ".join(f"{v:.2f}" for v in vals)))
        rows.extend(masking_checks(params, summary, model))
    for name, attrs in sorted(attack_attrs.items()):
        ok = attrs["norm_max"] <= attrs["eps"] * (1 + 1e-6)
        rows.append((f"{name}: stored perturbation within budget", PASS if ok else FAIL,
                     f"max {attrs['norm']} norm {attrs['norm_max']:.6g} <= {attrs['eps']:.6g} ({attrs['budget']}/256)"))
    return rows


def masking_checks(params: Params, summary: dict[str, Any], model: str) -> list[tuple[str, str, str]]:
    """Flag likely gradient masking: a weaker attack (one-step, black-box, universal or transferred)
    reaching a lower PSNR than white-box PGD at the same budget on the undefended restorer."""
    pgd = next((s for s in params.attack.attacks if s.name == "pgd"), None)
    if pgd is None:
        return []
    rows = []
    undefended = summary[model]["none"]
    for cond, values in sorted(undefended.items()):
        name, _, budget = cond.rpartition("_")
        if name in ("", "pgd") or cond == "clean" or not budget.isdigit() or int(budget) not in pgd.budgets:
            continue
        gap = undefended[f"pgd_{budget}"]["psnr"] - values["psnr"]
        rows.append((f"{model}: PGD at least as strong as {name} at {budget}/256 (gradient masking flag)",
                     FAIL if gap > 0.05 else PASS, f"PGD {undefended[f'pgd_{budget}']['psnr']:.2f} vs "
                     f"{name} {values['psnr']:.2f} dB"))
    return rows


def adaptive_lines(params: Params, layout: Layout) -> list[str]:
    """The defense grid: {undefended, purified, purified + fine-tuned} x {non-adaptive, adaptive}, PSNR dB."""
    path = adaptive.root(layout) / "metrics.json"
    if not params.adaptive.enabled or not path.exists():
        return ["## Adaptive attacks", "", "Not run (adaptive.enabled is false).", ""]
    summary = json.loads(path.read_text())
    n, draws = params.adaptive.max_images, params.adaptive.draws
    lines = ["## Defense against adaptive attacks (PSNR dB)", "",
             f"First {n} test images (all, if fewer). Purified numbers are over {draws} stochastic draws of the purifier: "
             "mean / worst draw / PSNR of the averaged output (seeds in `data/adaptive/records.csv`). "
             "*non-adaptive*: PGD crafted on the bare restorer, then purified; *adaptive*: PGD through the "
             "purifier (" + "; ".join(f"{a.name}: {a.gradient} gradients, EOT {a.eot_samples}, {a.steps} steps"
                                       for a in params.adaptive.attacks) + ").", "",
             "| restorer | defense | budget | clean | non-adaptive PGD | " +
             " | ".join(f"adaptive {a.name}" for a in params.adaptive.attacks) + " |",
             "|---|---|---|---|---|" + "---|" * len(params.adaptive.attacks)]
    for source in restorers(params):
        m = model_label(source)
        defense = "purified + fine-tuned" if source.endswith("/finetuned") else "purified"
        for budget in params.adaptive.budgets:
            def cell(defense_key: str, cond: str) -> str:
                v = summary.get(m, {}).get(defense_key, {}).get(cond)
                if v is None:
                    return "-"
                if defense_key == "none":
                    return f"{v['psnr']:.2f}"
                return f"{v['psnr_mean_draws']:.2f} / {v['psnr_worst_draw']:.2f} / {v['psnr_avg_output']:.2f}"
            adaptive_cells = [cell("purified", f"{a.name}_{budget}") for a in params.adaptive.attacks]
            lines.append(f"| {m} | undefended | {budget}/256 | {cell('none', 'clean')} | {cell('none', f'pgd_{budget}')}"
                         f" | " + " | ".join(cell("none", f"{a.name}_{budget}") for a in params.adaptive.attacks) + " |")
            lines.append(f"| {m} | {defense} | {budget}/256 | {cell('purified', 'clean')} | "
                         f"{cell('purified', f'pgd_{budget}')} | " + " | ".join(adaptive_cells) + " |")
    lines += ["", "The undefended row feeds the same adversarial inputs to the bare restorer (for the adaptive "
              "columns: inputs crafted through the purifier, without it).", ""]
    return lines


def transfer_lines(params: Params, summary: dict[str, Any]) -> list[str]:
    """Surrogate x target PSNR matrix per attack at its largest budget (no defense)."""
    sources = list(restorers(params))
    if len(sources) < 2:
        return []
    lines = ["## Transfer (surrogate x target, no defense, PSNR dB)", ""]
    for spec in params.attack.attacks:
        b = max(spec.budgets)
        lines += [f"{spec.name} at {b}/256 - rows: crafted on; columns: evaluated on", "",
                  "| surrogate | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
        for src in sources:
            cells = []
            for tgt in sources:
                key = f"{spec.name}_{b}" if src == tgt else f"{spec.name}{TRANSFER}{src}_{b}"
                cells.append(f"{summary[model_label(tgt)]['none'][key]['psnr']:.2f}")
            lines.append(f"| {src} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def render(params: Params, layout: Layout, digests: dict[str, dict[str, str]] | None = None) -> str:
    """The report as markdown (``digests``: :func:`artifact_digests`, computed here when not given)."""
    all_records = read_records_csv(layout.records)
    summary = means(all_records)
    records = [r for r in all_records if TRANSFER not in r["attack"]]
    attack_attrs = {array_name(src, s.name, b): store_attrs(layout.adversarial, array_name(src, s.name, b))
                    for src, s, b in conditions(params)}
    lines = ["# udcshield robustness report", "",
             f"Restorers {', '.join(f'`{m.name}`' for m in params.train.models)} on "
             f"{len({r['image_id'] for r in records})} test images "
             f"({params.simulate.optics.mask} display mask, {params.simulate.patch_size}x{params.simulate.patch_size}). "
             "PSNR/SSIM: tone-mapped, clamped to [0,1], 8-bit, RGB. Budgets in units of 1/256.", "",
             "Each attack is crafted on the bare restorer (gradients for white-box attacks, counted queries for "
             "black-box ones); the purified rows use the same adversarial inputs, purified afterwards "
             "(non-adaptive, the study's setting). **A defense number measured only non-adaptively is not a "
             "robustness claim.**", ""]
    for spec in params.train.models:
        own = [r for r in records if r["model"].split(":")[0] == spec.name]
        lines += [f"## {spec.name}", "", "PSNR (dB)", "", markdown_table(own, metric="psnr"), ""]
        if "ssim" in params.evaluate.metrics:
            lines += ["SSIM", "", markdown_table(own, metric="ssim"), ""]
    lines += ["## Defense at a glance", "", "| model | clean PSNR, no defense | clean PSNR, purified | "
              "worst attacked PSNR, no defense | worst attacked PSNR, purified |", "|---|---|---|---|---|"]
    for source in restorers(params):
        m = model_label(source)
        worst = {d: min(v["psnr"] for k, v in summary[m][d].items() if k != "clean" and TRANSFER not in k)
                 for d in DEFENSES}
        lines.append(f"| {m} | {summary[m]['none']['clean']['psnr']:.2f} | {summary[m]['purified']['clean']['psnr']:.2f}"
                     f" | {worst['none']:.2f} | {worst['purified']:.2f} |")
    lines += [""] + adaptive_lines(params, layout)
    lines += [""] + transfer_lines(params, summary)
    lines += sweep_lines(layout)
    lines += ["## Sanity checks", "", "| check | status | detail |", "|---|---|---|"]
    lines += [f"| {c} | {s} | {d} |" for c, s, d in sanity_checks(params, summary, attack_attrs)]
    lines += ["", "## Attack cost", "", "| set | iterations | forward+backward | queries | seconds | "
              "max L-inf (x256) | mean L2 |", "|---|---|---|---|---|---|---|"]
    for name, a in sorted(attack_attrs.items()):
        c = a["cost"]
        lines.append(f"| {name} | {c['iterations']} | {c['forward_backward']} | {c.get('queries', 0)} | "
                     f"{c['seconds']:.2f} | {a['linf_max'] * 256:.3f} | {a['l2_mean']:.4f} |")
    lines += ["", "## Display and PSF", "", optics_caption(params), "",
              "![display mask, 2 x 2 unit cells](mask.png) ![PSF per channel, log scale](psf.png)", ""]
    lines += ["", "## Provenance", ""] + provenance_lines(params, layout, digests)
    return "\n".join(lines) + "\n"


def params_sha256(params: Params) -> str:
    """sha256 of the resolved params (sorted JSON), hex."""
    return hashlib.sha256(json.dumps(to_dict(params), sort_keys=True).encode()).hexdigest()


def artifacts(params: Params, layout: Layout) -> dict[str, Path]:
    """The artifacts the report reads: display name -> path."""
    out = {"records": layout.records, "test set": layout.test_store, "psf": layout.psf_store,
           "adversarial": layout.adversarial, "purified": layout.purified, "purifier": layout.purifier}
    out.update({f"restorer {src}": layout.checkpoint(*src.split("/")) for src in restorers(params)})
    adaptive_metrics = adaptive.root(layout) / "metrics.json"
    if params.adaptive.enabled:
        out["adaptive"] = adaptive_metrics
    return out


def artifact_digests(params: Params, layout: Layout) -> dict[str, dict[str, str]]:
    """Content digests of every artifact the report reads: name -> {path, sha256}."""
    return input_digests(artifacts(params, layout))


def provenance_lines(params: Params, layout: Layout, digests: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Params hash, input artifact digests and code version."""
    code = code_version()
    digests = digests if digests is not None else artifact_digests(params, layout)
    lines = [f"- params sha256: `{params_sha256(params)[:16]}`",
             f"- code: package {code['package']}, git `{(code.get('git_commit') or 'unknown')[:12]}`"
             f"{' (src modified)' if code.get('src_dirty') else ''}"]
    lines += [f"- {name}: `{d['path']}` sha256 `{d['sha256'][:16]}`" for name, d in digests.items()]
    return lines


def optics_caption(params: Params) -> str:
    """One line describing the simulated panel and lens."""
    o = params.simulate.optics
    return (f"{o.mask} mask, pitch {o.pitch_um:g} um, open ratio {o.open_ratio:g}; f = {o.focal_length_mm:g} mm, "
            f"f/{o.f_number:g}; sensor pitch {o.sensor_pitch_um:g} um; wavelengths {list(o.wavelengths_nm)} nm. "
            "PSF shown over 5 decades (R, G, B); diffraction orders sit at lambda*f/pitch, so red spreads furthest.")


# ------------------------------------------------------------------------------------------------ HTML report
DEFENSE_LABELS = {("base", "none"): "undefended", ("base", "purified"): "purified",
                  ("finetuned", "none"): "fine-tuned, no purification",
                  ("finetuned", "purified"): "purified + fine-tuned"}


def html_path(layout: Layout) -> Path:
    """``data/report/report.html``, beside ``report.md``."""
    return layout.report.with_name("report.html")


def worst_case_path(layout: Layout) -> Path:
    """``data/report/worst_case.csv`` (worst attacked PSNR per restorer and defense, for ``dvc plots``)."""
    return layout.report.with_name("worst_case.csv")


def defense_label(source: str, defense: str) -> str:
    """Reader-facing name of (restorer ``<model>/<variant>``, defense), e.g. ``purified + fine-tuned``."""
    return DEFENSE_LABELS[(source.split("/")[1], defense)]


def required_inputs(params: Params, layout: Layout) -> dict[Path, str]:
    """Every input the report needs -> the stage that makes it."""
    need = {layout.records: "evaluate", layout.test_store: "simulate", layout.psf_store: "simulate",
            layout.adversarial: "attack", layout.purified: "purify", layout.purifier: "train_purifier"}
    for source in restorers(params):
        model, variant = source.split("/")
        need[layout.checkpoint(model, variant)] = "train" if variant == "base" else "finetune"
    if params.adaptive.enabled:
        need[adaptive.root(layout) / "metrics.json"] = "adaptive"
    return need


def check_inputs(params: Params, layout: Layout) -> None:
    """FileNotFoundError listing every missing input and the stage that makes it."""
    missing = [f"{path} (stage {stage})" for path, stage in required_inputs(params, layout).items()
               if not path.exists()]
    if missing:
        raise FileNotFoundError("report: missing inputs, run their stages first: " + "; ".join(missing))


def grid_attack(params: Params) -> AttackSpec:
    """The attack shown in the image grids: ``report.grid_attack`` or the first configured attack."""
    name = params.report.grid_attack or params.attack.attacks[0].name
    return next(s for s in params.attack.attacks if s.name == name)


def attacked_conditions(params: Params) -> list[tuple[str, int]]:
    """(attack, budget) of every non-transfer attacked condition, in params order."""
    return [(s.name, b) for s in params.attack.attacks for b in sorted(s.budgets)]


def worst_attacked(summary: dict[str, Any], model: str, defense: str, metric: str = "psnr") -> tuple[float, str]:
    """(lowest mean ``metric`` over attacked conditions, the condition) for one restorer and defense."""
    cells = {k: v[metric] for k, v in summary[model][defense].items()
             if k != CLEAN and TRANSFER not in k and metric in v}
    cond = min(cells, key=lambda k: (cells[k], k))
    return cells[cond], cond


def cond_label(cond: str) -> str:
    """``pgd_8`` -> ``pgd 8/256``; ``clean`` stays."""
    name, _, budget = cond.rpartition("_")
    return f"{name} {budget}/256" if name and budget.isdigit() else cond


def robustness_rows(params: Params, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (restorer, defense): mean PSNR (dB) and SSIM per condition, as ``"psnr / ssim"`` text.

    The table published as a Prefect table artifact.
    """
    rows = []
    for source in restorers(params):
        for defense in DEFENSES:
            cells = summary[model_label(source)][defense]
            row: dict[str, Any] = {"restorer": source, "defense": defense_label(source, defense)}
            for attack, budget in [(CLEAN, 0), *attacked_conditions(params)]:
                v = cells[CLEAN if attack == CLEAN else f"{attack}_{budget}"]
                key = CLEAN if attack == CLEAN else f"{attack} {budget}/256"
                row[key] = " / ".join(f"{v[m]:.2f}" if m == "psnr" else f"{v[m]:.3f}"
                                      for m in params.evaluate.metrics if m in v)
            rows.append(row)
    return rows


def worst_case_rows(params: Params, summary: dict[str, Any],
                    adaptive_summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Worst attacked mean PSNR per (restorer, defense), plus the adaptive worst draw when run."""
    rows = []
    for source in restorers(params):
        m = model_label(source)
        for defense in DEFENSES:
            value, cond = worst_attacked(summary, m, defense)
            rows.append({"label": f"{source} {defense_label(source, defense)}", "restorer": source,
                         "defense": defense_label(source, defense), "psnr": round(value, 4), "condition": cond})
        adapt = adaptive_worst(adaptive_summary, m)
        if adapt is not None:
            rows.append({"label": f"{source} adaptive, worst draw", "restorer": source,
                         "defense": "adaptive, worst draw", "psnr": round(adapt[0], 4), "condition": adapt[1]})
    return rows


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


def load_adaptive_summary(params: Params, layout: Layout) -> dict[str, Any] | None:
    """``data/adaptive/metrics.json`` when the adaptive stage is enabled, else None."""
    if not params.adaptive.enabled:
        return None
    return json.loads((adaptive.root(layout) / "metrics.json").read_text())


def summary_section(params: Params, summary: dict[str, Any], adaptive_summary: dict[str, Any] | None,
                    n_images: int) -> H.Section:
    """First screen: the worst case per restorer (table and bar chart)."""
    header = ["restorer", "clean, undefended", "clean, purified", "worst attack, undefended",
              "worst attack, purified", "adaptive worst draw"]
    rows: list[list[H.Cell]] = []
    models = [spec.name for spec in params.train.models]
    bars: dict[str, list[float | None]] = {}
    for source in restorers(params):
        m = model_label(source)
        none, none_at = worst_attacked(summary, m, "none")
        pur, pur_at = worst_attacked(summary, m, "purified")
        adapt = adaptive_worst(adaptive_summary, m)
        rows.append([source, summary[m]["none"][CLEAN]["psnr"], summary[m]["purified"][CLEAN]["psnr"],
                     (f"{none:.2f} ({cond_label(none_at)})", "bad"), f"{pur:.2f} ({cond_label(pur_at)})",
                     None if adapt is None else f"{adapt[0]:.2f} ({cond_label(adapt[1])})"])
    series = [("clean, undefended", "base", "none", "clean"), ("worst attack, undefended", "base", "none", "worst"),
              ("worst attack, purified", "base", "purified", "worst"),
              ("worst attack, purified + fine-tuned", "finetuned", "purified", "worst")]
    sources = set(restorers(params))
    for label, variant, defense, what in series:
        vals: list[float | None] = []
        for model in models:
            src = f"{model}/{variant}"
            if src not in sources:
                vals.append(None)
            elif what == "clean":
                vals.append(summary[model_label(src)][defense][CLEAN]["psnr"])
            else:
                vals.append(worst_attacked(summary, model_label(src), defense)[0])
        if any(v is not None for v in vals):
            bars[label] = vals
    if adaptive_summary is not None:
        vals = []
        for model in models:
            found = [w[0] for v in params.attack.models
                     if (w := adaptive_worst(adaptive_summary, model_label(f"{model}/{v}"))) is not None]
            vals.append(min(found) if found else None)
        if any(v is not None for v in vals):
            bars["adaptive attack, purified (worst draw)"] = vals
    chart = grouped_bars_png("Worst case per restorer (mean PSNR over test images)", models, bars)
    body = (H.paragraph(
        "Mean PSNR (dB) over the test images. Worst attack: the lowest mean PSNR over every attack and budget "
        "crafted on that restorer; the purified column feeds the same adversarial inputs through the purifier "
        "(non-adaptive). The adaptive column attacks through the purifier and takes the worst of "
        f"{params.adaptive.draws} stochastic draws.")
        + H.table(header, rows, table_id="glance") +
        H.figure(chart, "bar chart: clean and worst attacked PSNR per restorer and defense", width=700)
        + '<p class="warn">Each attack is crafted on the bare restorer; a defense number measured only '
        "non-adaptively is not a robustness claim. See the adaptive-attack grid below.</p>")
    return H.Section("summary", f"At a glance: {len(models)} restorer(s), {n_images} test images", body)


def tables_section(params: Params, summary: dict[str, Any]) -> H.Section:
    """Per model: PSNR (and SSIM) per restorer variant x defense x condition; the worst cell of a row is marked."""
    conds = [(CLEAN, CLEAN)] + [(f"{a}_{b}", f"{a} {b}/256") for a, b in attacked_conditions(params)]
    parts = []
    for spec in params.train.models:
        parts.append(f"<h3>{H.esc(spec.name)}</h3>")
        for metric in params.evaluate.metrics:
            rows: list[list[H.Cell]] = []
            for source in restorers(params):
                if source.split("/")[0] != spec.name:
                    continue
                for defense in DEFENSES:
                    cells = summary[model_label(source)][defense]
                    vals = [cells[key][metric] for key, _ in conds]
                    worst = min(vals[1:]) if len(vals) > 1 else None
                    row: list[H.Cell] = [source.split("/")[1], defense_label(source, defense)]
                    for k, v in enumerate(vals):
                        text = f"{v:.2f}" if metric == "psnr" else f"{v:.3f}"
                        row.append((text, "bad") if k > 0 and v == worst else text)
                    rows.append(row)
            unit = "PSNR (dB)" if metric == "psnr" else metric.upper()
            parts.append(H.table(["variant", "defense", *[label for _, label in conds]], rows,
                                 caption=f"{spec.name}: {unit}", left_columns=2,
                                 table_id=f"robustness-{spec.name}-{metric}".replace("_", "-")))
    intro = H.paragraph("Mean over the test images; budgets in units of 1/256 of the tone-mapped [0, 1] image; "
                        "PSNR/SSIM on clamped 8-bit RGB. Red: the strongest attack of the row.")
    return H.Section("robustness", "Robustness tables", intro + "".join(parts))


def curves_section(params: Params, summary: dict[str, Any]) -> H.Section:
    """PSNR and SSIM vs budget per attack: one line per restorer x defense."""
    figs = []
    for spec in params.attack.attacks:
        budgets = [0, *sorted(spec.budgets)]
        curves = []
        for source in restorers(params):
            for defense in DEFENSES:
                cells = summary[model_label(source)][defense]
                rows = [cells[CLEAN if b == 0 else f"{spec.name}_{b}"] for b in budgets]
                label = defense_label(source, defense)
                curves.append(Curve(f"{source.split('/')[0]}: {label}", budgets,
                                    {m: [r[m] for r in rows] for m in params.evaluate.metrics},
                                    group=source.split("/")[0], kind=label))
        png = budget_curves_png(f"{spec.name}: metric vs budget", curves)
        figs.append(H.figure(png, f"{spec.name} PSNR and SSIM vs budget", f"{spec.name}, crafted on each restorer "
                             "variant; purified lines: the same inputs purified (non-adaptive).", width=900))
    return H.Section("curves", "PSNR and SSIM vs budget", "".join(figs))


def grid_figure(params: Params, layout: Layout, source: str, inputs: torch.Tensor, targets: torch.Tensor,
                ids: list[str], device: torch.device) -> str:
    """Image grid for restorer ``source``: ground truth, UDC input, adversarial input, amplified perturbation,
    restored clean / attacked, purified attacked, defended output; PSNR under the restored tiles."""
    spec = grid_attack(params)
    budget = max(spec.budgets)
    name = array_name(source, spec.name, budget)
    k = inputs.shape[0]
    adv = torch.from_numpy(read_images(layout.adversarial, name)[:k])
    pur = torch.from_numpy(read_images(layout.purified, name)[:k])
    attrs = store_attrs(layout.adversarial, name)
    eps = float(attrs["eps"]) if attrs.get("norm", "linf") == "linf" else max(float(attrs["linf_max"]), 1e-6)
    model = load_restorer(layout, source).to(device).eval()
    restored_clean = apply_batched(model, inputs, k, device)
    restored_adv = apply_batched(model, adv, k, device)
    defended = apply_batched(model, pur, k, device)
    defended_title = "purified + fine-tuned" if source.endswith("/finetuned") else "purified + restored"

    def db(x: torch.Tensor) -> list[str]:
        return [f"{v:.2f} dB" for v in psnr(x, targets).tolist()]

    cols = [("ground truth", targets), ("UDC input", inputs), (f"adversarial ({spec.name} {budget}/256)", adv),
            (f"perturbation x{0.5 / eps:.0f}", torch.from_numpy(perturbation_view(adv.numpy(), inputs.numpy(), eps))),
            ("restored (clean input)", restored_clean), ("restored (attacked)", restored_adv),
            ("purified (attacked)", pur), (defended_title, defended)]
    notes = {"UDC input": db(inputs), f"adversarial ({spec.name} {budget}/256)": db(adv),
             "restored (clean input)": db(restored_clean), "restored (attacked)": db(restored_adv),
             "purified (attacked)": db(pur), defended_title: db(defended)}
    png = image_grid_png([(t, x.numpy()) for t, x in cols], ids, notes)
    return H.figure(png, f"image grid {source}", f"{source}: {spec.name} at {budget}/256 crafted on this restorer; "
                    "perturbation mid-grey = 0, black/white = -/+ the budget; PSNR against the ground truth.",
                    width=1150)


def grids_section(params: Params, layout: Layout, device: torch.device) -> H.Section:
    """Image grids for the first ``report.grid_images`` test images, one per restorer variant."""
    inputs, targets, ids = load_pairs(layout.test_store)
    k = min(params.report.grid_images, len(ids))
    inputs, targets, ids = inputs[:k], targets[:k], ids[:k]
    figs = "".join(grid_figure(params, layout, src, inputs, targets, ids, device) for src in restorers(params))
    intro = H.paragraph(f"The first {k} test images (ids {', '.join(ids)}).")
    return H.Section("images", "What the attack does to an image", intro + figs)


def adaptive_section(params: Params, adaptive_summary: dict[str, Any] | None) -> H.Section:
    """Defense grid: {undefended, purified, purified + fine-tuned} x {non-adaptive, adaptive} PSNR."""
    if adaptive_summary is None:
        return H.Section("adaptive", "Adaptive attacks", H.paragraph("Not run (adaptive.enabled is false)."))
    names = [a.name for a in params.adaptive.attacks]
    header = ["restorer", "defense", "budget", "clean", "non-adaptive PGD", *[f"adaptive {n}" for n in names]]
    rows: list[list[H.Cell]] = []

    def cell(m: str, defense: str, cond: str) -> H.Cell:
        v = adaptive_summary.get(m, {}).get(defense, {}).get(cond)
        if v is None:
            return None
        if defense == "none":
            return f"{v['psnr']:.2f}"
        return f"{v['psnr_mean_draws']:.2f} / {v['psnr_worst_draw']:.2f} / {v['psnr_avg_output']:.2f}"

    for source in restorers(params):
        m = model_label(source)
        for budget in params.adaptive.budgets:
            rows.append([source, "undefended", f"{budget}/256", cell(m, "none", CLEAN), cell(m, "none", f"pgd_{budget}"),
                         *[cell(m, "none", f"{n}_{budget}") for n in names]])
            rows.append([source, defense_label(source, "purified"), f"{budget}/256", cell(m, "purified", CLEAN),
                         cell(m, "purified", f"pgd_{budget}"), *[cell(m, "purified", f"{n}_{budget}") for n in names]])
    intro = H.paragraph(
        f"PSNR (dB) on the first {params.adaptive.max_images} test images. Purified cells: mean over "
        f"{params.adaptive.draws} draws / worst draw / PSNR of the averaged output. Adaptive: PGD through the "
        "purifier (" + "; ".join(f"{a.name}: {a.gradient} gradients, EOT {a.eot_samples}, {a.steps} steps"
                                 for a in params.adaptive.attacks) + "). The undefended row feeds the same inputs "
        "to the bare restorer.")
    return H.Section("adaptive", "Adaptive attacks through the purifier",
                     intro + H.table(header, rows, left_columns=3, table_id="adaptive-grid"))


def transfer_section(params: Params, summary: dict[str, Any]) -> H.Section | None:
    """Surrogate x target PSNR per attack at its largest budget, no defense (None with one restorer)."""
    sources = list(restorers(params))
    if len(sources) < 2:
        return None
    parts = []
    for spec in params.attack.attacks:
        b = max(spec.budgets)
        rows: list[list[H.Cell]] = []
        for src in sources:
            row: list[H.Cell] = [src]
            for tgt in sources:
                key = f"{spec.name}_{b}" if src == tgt else f"{spec.name}{TRANSFER}{src}_{b}"
                row.append(summary[model_label(tgt)]["none"][key]["psnr"])
            rows.append(row)
        parts.append(H.table(["crafted on \\ evaluated on", *sources], rows, caption=f"{spec.name} at {b}/256, PSNR (dB)"))
    return H.Section("transfer", "Transfer between restorers", "".join(parts))


def cost_section(attack_attrs: dict[str, dict]) -> H.Section:
    """Per adversarial set: iterations, gradient evaluations, queries, seconds and perturbation size."""
    rows: list[list[H.Cell]] = []
    for name, a in sorted(attack_attrs.items()):
        c = a["cost"]
        rows.append([name, c["iterations"], c["forward_backward"], c.get("queries", 0), f"{c['seconds']:.2f}",
                     f"{a['linf_max'] * 256:.3f}", f"{a['l2_mean']:.4f}"])
    header = ["set", "iterations", "forward+backward", "queries", "seconds", "max L-inf (x256)", "mean L2"]
    return H.Section("cost", "Attack cost", H.table(header, rows, table_id="attack-cost"))


def optics_section(params: Params, layout: Layout) -> H.Section:
    """The simulated display mask and the centre PSF (log scale)."""
    mask = png_bytes(mask_panel(read_array(layout.psf_store, "mask")))
    psf = png_bytes(psf_panel(read_array(layout.psf_store, "psf")[0]))
    body = (H.paragraph(optics_caption(params))
            + H.figure(mask, "display mask", "display transmission (white = open)", width=240)
            + H.figure(psf, "PSF per channel, log scale", "centre PSF, R G B, log scale over 5 decades", width=540))
    return H.Section("optics", "Display and PSF", body)


def sweep_csv(layout: Layout) -> Path:
    """``<data root>/sweep/sweep.csv`` (written by the sweep stage; optional for the report)."""
    return sweep_dir(layout) / "sweep.csv"


def sweep_lines(layout: Layout) -> list[str]:
    """Markdown block of the purifier t* x sampler sweep, or nothing when the sweep has not run."""
    if not sweep_csv(layout).is_file():
        return []
    return ["## Purifier sweep: t* and sampler (non-adaptive)", "", render_sweep_table(sweep_csv(layout))]


def sweep_section(layout: Layout) -> H.Section | None:
    """The sweep table (network evaluations, images/s, defended PSNR vs the full DDPM chain) as HTML."""
    if not sweep_csv(layout).is_file():
        return None
    rows, statements = sweep_table(sweep_csv(layout))
    if not rows:
        return H.Section("sweep", "Purifier sweep", H.paragraph("Purifier sweep: disabled (sweep.enabled: false)."))
    body = H.table(list(SWEEP_TABLE_HEADER), rows, left_columns=3, table_id="sweep-table",
                   caption="PGD inputs crafted on the bare restorer, then purified (non-adaptive)")
    body += "".join(H.paragraph(n) for n in statements)
    return H.Section("sweep", "Purifier sweep", body)


def checks_section(rows: list[tuple[str, str, str]]) -> H.Section:
    """The sanity checks of DESIGN.md section 5, failures highlighted."""
    cells: list[list[H.Cell]] = [[c, (s, "fail" if s == FAIL else "good"), d] for c, s, d in rows]
    failed = sum(s == FAIL for _, s, _ in rows)
    intro = H.paragraph(f"{len(rows)} checks, {failed} failed.")
    return H.Section("checks", "Sanity checks", intro + H.table(["check", "status", "detail"], cells, left_columns=3))


def dvc_lock_outputs(lock_path: Path) -> list[tuple[str, str, str]]:
    """(stage, output path, md5) of every output recorded in ``dvc.lock``; empty when there is none."""
    if not lock_path.is_file():
        return []
    lock = yaml.safe_load(lock_path.read_text()) or {}
    out = []
    for stage, body in sorted((lock.get("stages") or {}).items()):
        for o in (body or {}).get("outs") or []:
            out.append((stage, str(o.get("path", "")), str(o.get("md5", ""))))
    return out


def artifact_origin(path: Path) -> dict[str, str]:
    """Stage, creation time and device recorded with an artifact (zarr attributes or checkpoint config)."""
    try:
        if (path / "zarr.json").is_file():
            attrs = store_attrs(path)
        elif (path / "config.json").is_file():
            attrs = read_checkpoint_config(path).get("extra", {}).get("provenance", {})
        else:
            return {}
    except (OSError, ValueError):
        return {}
    return {k: str(attrs[k]) for k in ("stage", "created_utc", "device") if k in attrs}


def provenance_footer(params: Params, layout: Layout, digests: dict[str, dict[str, str]], device: torch.device) -> str:
    """Footer HTML: params hash, code version, libraries, devices, artifact digests, dvc.lock output hashes."""
    code = code_version()
    libs = ", ".join(f"{k} {v}" for k, v in library_versions().items() if v)
    git = (code.get("git_commit") or "unknown")[:12] + (" (src modified)" if code.get("src_dirty") else "")
    rows: list[list[H.Cell]] = []
    devices = set()
    stages = {p.as_posix(): stage for p, stage in required_inputs(params, layout).items()}
    for name, d in digests.items():
        origin = {"stage": stages.get(d["path"], "-"), **artifact_origin(Path(d["path"]))}
        if "device" in origin:
            devices.add(origin["device"])
        rows.append([name, d["path"], origin.get("stage", "-"), origin.get("created_utc", "-"),
                     origin.get("device", "-"), d["sha256"][:16]])
    lock = dvc_lock_outputs(layout.root.parent / "dvc.lock")
    lines = [f"params sha256 <code>{H.esc(params_sha256(params)[:16])}</code>",
             f"code: udcshield {H.esc(code['package'])}, git <code>{H.esc(git)}</code>",
             f"devices: stages ran on {H.esc(', '.join(sorted(devices)) or 'unknown')}; report figures on "
             f"{H.esc(device)}", f"libraries: {H.esc(libs)}"]
    html = "<h2>Provenance</h2><ul>" + "".join(f"<li>{x}</li>" for x in lines) + "</ul>"
    html += H.table(["artifact", "path", "stage", "created (UTC)", "device", "sha256"], rows, left_columns=6,
                    caption="Artifacts read by the report (content sha256)")
    if lock:
        html += H.table(["stage", "output", "dvc md5"], [list(r) for r in lock], left_columns=3,
                        caption="dvc.lock outputs at report time")
    return html


def render_html(params: Params, layout: Layout, digests: dict[str, dict[str, str]] | None = None,
                device: torch.device = torch.device("cpu")) -> str:
    """The self-contained HTML report (one string; every image an embedded PNG)."""
    all_records = read_records_csv(layout.records)
    summary = means(all_records)
    n_images = len({r["image_id"] for r in all_records})
    adaptive_summary = load_adaptive_summary(params, layout)
    attack_attrs = {array_name(src, s.name, b): store_attrs(layout.adversarial, array_name(src, s.name, b))
                    for src, s, b in conditions(params)}
    digests = digests if digests is not None else artifact_digests(params, layout)
    sections = [summary_section(params, summary, adaptive_summary, n_images), tables_section(params, summary),
                curves_section(params, summary), grids_section(params, layout, device),
                adaptive_section(params, adaptive_summary), transfer_section(params, summary),
                sweep_section(layout), cost_section(attack_attrs), optics_section(params, layout),
                checks_section(sanity_checks(params, summary, attack_attrs))]
    o = params.simulate
    subtitle = [f"Restorers {', '.join(m.name for m in params.train.models)} on {n_images} test images, "
                f"{o.optics.mask} display mask, {o.patch_size}x{o.patch_size} patches. Budgets in units of 1/256.",
                "Attacks: " + "; ".join(f"{s.name} at {', '.join(map(str, sorted(s.budgets)))}"
                                        for s in params.attack.attacks)]
    return H.page("udcshield robustness report", subtitle, [s for s in sections if s is not None],
                  provenance_footer(params, layout, digests, device))


def write_figures(layout: Layout) -> None:
    """``psf.png`` (centre PSF per channel, log scale) and ``mask.png`` beside the report."""
    save_png(psf_panel(read_array(layout.psf_store, "psf")[0]), layout.report.parent / "psf.png")
    save_png(mask_panel(read_array(layout.psf_store, "mask")), layout.report.parent / "mask.png")


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Whole stage: ``report.md`` (+ ``psf.png``, ``mask.png``), ``report.html`` and ``worst_case.csv``.

    Everything is rendered in memory first, then each file is written atomically; a failure leaves the
    previous report in place. Returns paths, sizes and the robustness table rows (for a Prefect artifact).
    """
    check_inputs(params, layout)
    digests = artifact_digests(params, layout)
    text = render(params, layout, digests)
    page = render_html(params, layout, digests)
    summary = means(read_records_csv(layout.records))
    worst = worst_case_rows(params, summary, load_adaptive_summary(params, layout))
    write_figures(layout)
    write_rows_csv(worst, worst_case_path(layout))
    write_text_atomic(layout.report, text)
    write_text_atomic(html_path(layout), page)
    out = {"report": layout.report.as_posix(), "html": html_path(layout).as_posix(), "bytes": len(text),
           "html_bytes": len(page.encode()), "table": robustness_rows(params, summary)}
    return out
