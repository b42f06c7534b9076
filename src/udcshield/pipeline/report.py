"""Stage ``report``: a markdown robustness report built only from the stage outputs (records, store attributes).

Sections: PSNR and SSIM tables per (restorer, defense); transfer matrix; automated sanity checks from DESIGN.md
section 5 (PSNR non-increasing in the budget, stored budgets respected, a one-step attack not beating
the iterative one); attack cost; the price of the defense on clean inputs; provenance footer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from udcshield.config import Params, to_dict
from udcshield.evaluation.figures import mask_panel, psf_panel, save_png
from udcshield.evaluation.records import read_records_csv
from udcshield.evaluation.tables import markdown_table
from udcshield.pipeline import adaptive
from udcshield.pipeline.attack import array_name, conditions, restorers
from udcshield.pipeline.evaluate import DEFENSES, TRANSFER, means, model_label
from udcshield.pipeline.layout import Layout
from udcshield.store.atomic import write_text_atomic
from udcshield.store.provenance import code_version, input_digests
from udcshield.store.zarr_io import read_array, store_attrs

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


def render(params: Params, layout: Layout) -> str:
    """The report as markdown."""
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
    lines += ["", "## Provenance", ""] + provenance_lines(params, layout)
    return "\n".join(lines) + "\n"


def provenance_lines(params: Params, layout: Layout) -> list[str]:
    """Params hash, input artifact digests and code version."""
    params_hash = hashlib.sha256(json.dumps(to_dict(params), sort_keys=True).encode()).hexdigest()
    code = code_version()
    artifacts = {"records": layout.records, "test set": layout.test_store, "psf": layout.psf_store,
                 "adversarial": layout.adversarial, "purified": layout.purified, "purifier": layout.purifier}
    artifacts.update({f"restorer {src}": layout.checkpoint(*src.split("/")) for src in restorers(params)})
    digests = input_digests(artifacts)
    lines = [f"- params sha256: `{params_hash[:16]}`",
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


def write_figures(layout: Layout) -> None:
    """``psf.png`` (centre PSF per channel, log scale) and ``mask.png`` beside the report."""
    save_png(psf_panel(read_array(layout.psf_store, "psf")[0]), layout.report.parent / "psf.png")
    save_png(mask_panel(read_array(layout.psf_store, "mask")), layout.report.parent / "mask.png")


def run(params: Params, layout: Layout) -> dict[str, Any]:
    """Whole stage: write ``report.md`` and its figures."""
    text = render(params, layout)
    write_figures(layout)
    write_text_atomic(layout.report, text)
    return {"report": layout.report.as_posix(), "bytes": len(text)}
