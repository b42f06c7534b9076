"""Stage ``report``: a markdown robustness report built only from the stage outputs (records, store attributes).

Sections: PSNR and SSIM tables per (restorer variant, defense); automated sanity checks from DESIGN.md
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
from udcshield.pipeline.attack import array_name, conditions
from udcshield.pipeline.evaluate import DEFENSES, means, model_label
from udcshield.pipeline.layout import Layout
from udcshield.store.atomic import write_text_atomic
from udcshield.store.provenance import code_version, input_digests
from udcshield.store.zarr_io import read_array, store_attrs

PASS, FAIL = "pass", "FAIL"


def sanity_checks(params: Params, summary: dict[str, Any], attack_attrs: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(check, status, detail) rows; status is ``pass`` or ``FAIL``."""
    rows = []
    for variant in params.attack.models:
        model = model_label(params, variant)
        for spec in params.attack.attacks:
            for defense in DEFENSES:
                vals = [summary[model][defense][f"{spec.name}_{b}"]["psnr"] for b in sorted(spec.budgets)]
                ok = all(b <= a + 0.05 for a, b in zip(vals, vals[1:]))
                rows.append((f"{model} {defense}: PSNR non-increasing in budget ({spec.name})", PASS if ok else FAIL,
                             " > ".join(f"{v:.2f}" for v in vals)))
        names = {s.name for s in params.attack.attacks}
        if {"pgd", "fgsm"} <= names:
            common = sorted(set(next(s for s in params.attack.attacks if s.name == "pgd").budgets)
                            & set(next(s for s in params.attack.attacks if s.name == "fgsm").budgets))
            worse = [b for b in common if summary[model]["none"][f"fgsm_{b}"]["psnr"]
                     < summary[model]["none"][f"pgd_{b}"]["psnr"] - 0.05]
            rows.append((f"{model}: PGD at least as strong as FGSM (no gradient masking sign)",
                         FAIL if worse else PASS, f"FGSM stronger at budgets {worse}" if worse else f"budgets {common}"))
    for name, attrs in sorted(attack_attrs.items()):
        ok = attrs["linf_max"] <= attrs["eps"]
        rows.append((f"{name}: stored perturbation within budget", PASS if ok else FAIL,
                     f"max |delta| = {attrs['linf_max'] * 256:.4f}/256 <= {attrs['budget']}/256"))
    return rows


def render(params: Params, layout: Layout) -> str:
    """The report as markdown."""
    records = read_records_csv(layout.records)
    summary = means(records)
    attack_attrs = {array_name(v, s.name, b): store_attrs(layout.adversarial, array_name(v, s.name, b))
                    for v, s, b in conditions(params)}
    lines = ["# udcshield robustness report", "",
             f"Restorer `{params.train.model}` on {len({r['image_id'] for r in records})} simulated test images "
             f"({params.simulate.optics.mask} display mask, {params.simulate.patch_size}x{params.simulate.patch_size}). "
             "PSNR/SSIM: tone-mapped, clamped to [0,1], 8-bit, RGB. Budgets in units of 1/256.", "",
             "Attacks are white-box on the bare restorer variant; the purified rows use the same adversarial "
             "inputs, purified afterwards (non-adaptive, the study's setting). **A defense number measured only "
             "non-adaptively is not a robustness claim.**", "",
             "## PSNR (dB)", "", markdown_table(records, metric="psnr"), ""]
    if "ssim" in params.evaluate.metrics:
        lines += ["## SSIM", "", markdown_table(records, metric="ssim"), ""]
    lines += ["## Defense at a glance", "", "| model | clean PSNR, no defense | clean PSNR, purified | "
              "worst attacked PSNR, no defense | worst attacked PSNR, purified |", "|---|---|---|---|---|"]
    for variant in params.attack.models:
        m = model_label(params, variant)
        worst = {d: min(v["psnr"] for k, v in summary[m][d].items() if k != "clean") for d in DEFENSES}
        lines.append(f"| {m} | {summary[m]['none']['clean']['psnr']:.2f} | {summary[m]['purified']['clean']['psnr']:.2f}"
                     f" | {worst['none']:.2f} | {worst['purified']:.2f} |")
    lines += ["", "## Sanity checks", "", "| check | status | detail |", "|---|---|---|"]
    lines += [f"| {c} | {s} | {d} |" for c, s, d in sanity_checks(params, summary, attack_attrs)]
    lines += ["", "## Attack cost", "", "| set | iterations | forward+backward | seconds | max L-inf (x256) | mean L2 |",
              "|---|---|---|---|---|---|"]
    for name, a in sorted(attack_attrs.items()):
        c = a["cost"]
        lines.append(f"| {name} | {c['iterations']} | {c['forward_backward']} | {c['seconds']:.2f} | "
                     f"{a['linf_max'] * 256:.3f} | {a['l2_mean']:.4f} |")
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
    artifacts.update({f"restorer ({v})": layout.checkpoint(v) for v in params.attack.models})
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
