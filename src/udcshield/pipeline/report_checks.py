"""The report's sanity checks: monotone budgets, stored budgets, and gradient-masking flags.

The mean PSNR must not increase with the budget (within 0.05 dB); every stored perturbation must respect
its budget; a weaker attack (one-step, black-box, universal or transferred) reaching a lower PSNR than the
strongest white-box iterative attack at the same budget on the undefended restorer flags likely gradient
masking (Athalye et al., ICML 2018; Carlini et al., "On Evaluating Adversarial Robustness", 2019).
"""

from __future__ import annotations

from typing import Any

from udcshield.attacks.budget import budget_label
from udcshield.config import Params
from udcshield.pipeline.names import CLEAN, DEFENSES, TRANSFER, model_label, restorers

PASS, FAIL = "pass", "FAIL"


def sanity_checks(params: Params, summary: dict[str, Any], attack_attrs: dict[str, dict],
                  adaptive_checks: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """{check, status, detail} rows; status is ``pass`` or ``FAIL``. ``adaptive_checks``: the adaptive stage's
    ``checks.json`` (gradient-masking checks on the defended system), one row per entry, when given."""
    rows = []
    for source in restorers(params):
        model = model_label(source)
        for spec in params.attack.attacks:
            for defense in DEFENSES:
                vals = [summary[model][defense][f"{spec.name}_{b}"]["psnr"] for b in sorted(spec.budgets)]
                ok = all(b <= a + 0.05 for a, b in zip(vals, vals[1:]))
                rows.append({"check": f"{model} {defense}: PSNR non-increasing in budget ({spec.name})",
                             "status": PASS if ok else FAIL, "detail": " > ".join(f"{v:.2f}" for v in vals)})
        rows.extend(masking_checks(params, summary, model))
    for c in (adaptive_checks or {}).get("checks", []):
        rows.append({"check": f"{c['model']} purified {budget_label(c['budget'])}: {c['check']} (defended system, "
                              "gradient masking flag)", "status": PASS if c["status"] == PASS else FAIL,
                     "detail": c["explanation"]})
    for name, attrs in sorted(attack_attrs.items()):
        ok = attrs["norm_max"] <= attrs["eps"] * (1 + 1e-6)
        rows.append({"check": f"{name}: stored perturbation within budget", "status": PASS if ok else FAIL,
                     "detail": f"max {attrs['norm']} norm {attrs['norm_max']:.6g} <= {attrs['eps']:.6g} "
                               f"({budget_label(attrs['budget'])})"})
    return rows


#: Attacks weaker than gradient ascent by construction: one step, queries only, one shared perturbation.
WEAKER = ("fgsm", "square", "simba", "universal")


def masking_checks(params: Params, summary: dict[str, Any], model: str) -> list[dict[str, str]]:
    """Gradient-masking flags on the undefended restorer: every weaker attack (:data:`WEAKER`, and transfer
    cells) against the strongest white-box iterative attack at its budget (Carlini et al. 2019, Sec. 5.4)."""
    undefended = summary[model]["none"]
    rows = []
    for cond, values in sorted(undefended.items()):
        name, _, budget = cond.rpartition("_")
        base = name.split(TRANSFER)[0]
        if cond == CLEAN or not budget.isdigit() or (base not in WEAKER and TRANSFER not in name):
            continue
        strong = {a: c["psnr"] for a in ("pgd", "apgd", "bim", "mifgsm") if (c := undefended.get(f"{a}_{budget}"))}
        if not strong:
            continue
        best = min(strong, key=lambda a: (strong[a], a))
        rows.append({"check": f"{model}: white-box {best} at least as strong as {name} at {budget_label(int(budget))} "
                              "(gradient masking flag)",
                     "status": FAIL if strong[best] - values["psnr"] > 0.05 else PASS,
                     "detail": f"{best} {strong[best]:.2f} vs {name} {values['psnr']:.2f} dB"})
    return rows
