"""Markdown generated from the files the pipeline and the benchmarks write, for the docs site and the README.

Pure functions turn parsed files into Markdown:

* ``dvc.yaml`` (a dict) -> the stage DAG (:func:`stage_edges`, :func:`mermaid_dag`) and the table of what
  each stage reads and writes (:func:`stage_io_table`);
* the metrics JSON of the stages (``data/evaluate/metrics.json``, ``data/adaptive/metrics.json``,
  ``data/sweep/metrics.json``) -> the results page (:func:`results_page`);
* ``benchmarks/results/*.json`` -> the benchmark sections (:func:`benchmark_sections`) and the README's
  results-at-a-glance block (:func:`readme_results`).

The loaders (:func:`load_results`, :func:`load_benchmarks`, :func:`load_dvc_yaml`) are the only functions
that read files. ``docs/hooks.py`` calls these at ``mkdocs build`` time. From the command line::

    python docs/gen.py readme-results            # print the README block
    python docs/gen.py readme-results --write    # rewrite it in README.md
    python docs/gen.py results [--data data]     # print the generated results section
    python docs/gen.py benchmarks                # print every benchmark section
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------- formatting


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: ``-`` for None/NaN, thousands separators for ints, ``digits`` decimals for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:,.{digits}f}"
    return escape(str(value))


def escape(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` holds one ``l`` or ``r`` per column (default: first left, rest right)."""
    header = list(header)
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} does not match {len(header)} columns")
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(header)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def speedup(value: Any) -> str:
    """``10.1x`` (or ``-``)."""
    return "-" if value is None else f"{value:.1f}x"


def environment_line(env: Mapping[str, Any] | None) -> str:
    """One line naming the device, threads, torch version and date of a benchmark run."""
    if not env:
        return "environment not recorded"
    device = env.get("gpu") or env.get("device", "?")
    threads = env.get("torch_threads")
    parts = [f"{device}" + (f" ({env.get('cpu', '?')}, {threads} thread{'' if threads == 1 else 's'})"
                            if env.get("device") == "cpu" and threads is not None else "")]
    torch = (env.get("versions") or {}).get("torch")
    if torch:
        parts.append(f"torch {torch}")
    if env.get("date_utc"):
        parts.append(str(env["date_utc"])[:10])
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------- dvc.yaml


def _paths(entries: Any) -> list[str]:
    """Paths of a ``deps``/``outs``/``metrics``/``plots`` list (each entry a string or ``{path: options}``)."""
    out = []
    for entry in entries or []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, Mapping):
            out.extend(str(k) for k in entry)
    return [p.rstrip("/") for p in out]


def stage_outputs(stage: Mapping[str, Any]) -> list[str]:
    """Everything a stage writes: its ``outs``, ``metrics`` and ``plots``."""
    return _paths(stage.get("outs")) + _paths(stage.get("metrics")) + _paths(stage.get("plots"))


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def stage_edges(dvc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(upstream, downstream) for every stage that reads a path another stage writes (or a path inside or
    around it), in ``dvc.yaml`` order: the DAG ``dvc dag`` draws."""
    stages = dvc.get("stages") or {}
    outs = {name: stage_outputs(stage) for name, stage in stages.items()}
    edges = []
    for down, stage in stages.items():
        deps = _paths(stage.get("deps"))
        for up in stages:
            if up != down and any(_overlap(d, o) for d in deps for o in outs[up]):
                edges.append((up, down))
    order = list(stages)
    return sorted(set(edges), key=lambda e: (order.index(e[0]), order.index(e[1])))


def mermaid_dag(dvc: Mapping[str, Any]) -> str:
    """A fenced ``mermaid`` flowchart of :func:`stage_edges` (left to right)."""
    lines = ["```mermaid", "flowchart LR"]
    for name in dvc.get("stages") or {}:
        lines.append(f"    {name}([{name}])")
    for up, down in stage_edges(dvc):
        lines.append(f"    {up} --> {down}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _code_list(items: Iterable[str]) -> str:
    items = list(items)
    return "<br>".join(f"`{escape(i)}`" for i in items) if items else "-"


def stage_io_table(dvc: Mapping[str, Any]) -> str:
    """Per stage: the stages it depends on, the data it reads, its params sections and what it writes."""
    stages = dvc.get("stages") or {}
    edges = stage_edges(dvc)
    rows = []
    for name, stage in stages.items():
        upstream = [u for u, d in edges if d == name]
        data = [p for p in _paths(stage.get("deps")) if p.startswith("data/")]
        params = []
        for entry in stage.get("params") or []:
            params.extend([entry] if isinstance(entry, str) else [str(k) for k in entry])
        rows.append([f"`{name}`", ", ".join(f"`{u}`" for u in upstream) or "-", _code_list(data),
                     _code_list(params), _code_list(stage_outputs(stage))])
    return table(["stage", "after", "reads", "params", "writes"], rows, "lllll")


def downstream(dvc: Mapping[str, Any], stages: Iterable[str]) -> list[str]:
    """``stages`` and every stage downstream of them, in ``dvc.yaml`` order."""
    edges = stage_edges(dvc)
    found = set(stages)
    grew = True
    while grew:
        grew = False
        for up, down in edges:
            if up in found and down not in found:
                found.add(down)
                grew = True
    return [name for name in dvc.get("stages") or {} if name in found]


def params_rerun_table(dvc: Mapping[str, Any]) -> str:
    """Per params key that a stage declares: the stages ``dvc repro`` reruns when it changes (those that
    list the key or a section holding it, and everything downstream of them)."""
    stages = dvc.get("stages") or {}
    listed: dict[str, list[str]] = {}
    for name, stage in stages.items():
        for entry in stage.get("params") or []:
            for key in ([entry] if isinstance(entry, str) else [str(k) for k in entry]):
                listed.setdefault(key, []).append(name)
    rows = []
    for key in sorted(listed, key=lambda k: (k.split(".")[0], k)):
        direct = {s for other, names in listed.items() if other == key or key.startswith(other + ".")
                  for s in names}
        rerun = downstream(dvc, direct)
        rows.append([f"`{escape(key)}`", ", ".join(f"`{s}`" for s in rerun)])
    return table(["params key", "stages rerun by `dvc repro` when it changes"], rows, "ll")


# --------------------------------------------------------------------------------------------- results

RESULT_FILES: dict[str, str] = {
    "evaluate": "evaluate/metrics.json",
    "adaptive": "adaptive/metrics.json",
    "sweep": "sweep/metrics.json",
}
DEFENSE_LABELS = {"none": "none", "purified": "purified (non-adaptive)"}
ADAPTIVE_ROWS = (("none", "psnr", "undefended"), ("purified", "psnr_mean_draws", "purified, mean over draws"),
                 ("purified", "psnr_worst_draw", "purified, worst draw"),
                 ("purified", "psnr_avg_output", "purified, averaged output"))
ATTACK_ORDER = ("pgd", "fgsm", "bim", "mifgsm", "pgd_l2", "cw", "lpips_pgd", "simba", "square", "universal",
                "bpda_eot", "full")
REPRO_HINT = ("Run the pipeline to produce them:\n\n```bash\nmake repro                 # or: .venv/bin/dvc repro\n"
              ".venv/bin/dvc metrics show   # the same numbers in the terminal\n```\n")


def split_condition(cond: str) -> tuple[str, int]:
    """``pgd_8`` -> (``pgd``, 8); ``clean`` -> (``clean``, 0); ``pgd@resunet/finetuned_8`` ->
    (``pgd@resunet/finetuned``, 8). A condition without a numeric suffix keeps budget 0."""
    name, sep, budget = cond.rpartition("_")
    if sep and budget.isdigit():
        return name, int(budget)
    return cond, 0


def _attack_rank(attack: str) -> tuple[int, str]:
    base = attack.split("@")[0]
    return (ATTACK_ORDER.index(base) if base in ATTACK_ORDER else len(ATTACK_ORDER), attack)


def condition_sort_key(cond: str) -> tuple:
    """``clean`` first, then by attack (the study's PGD first) and budget."""
    attack, budget = split_condition(cond)
    return (0,) if cond == "clean" else (1, _attack_rank(attack), budget)


def condition_label(cond: str) -> str:
    """``clean``, ``pgd 8/256``, or ``pgd 8/256 from resunet/finetuned`` for a transfer cell."""
    if cond == "clean":
        return "clean"
    attack, budget = split_condition(cond)
    name, _, surrogate = attack.partition("@")
    return f"{name} {budget}/256" + (f" from {surrogate}" if surrogate else "")


def _defense_order(defenses: Iterable[str]) -> list[str]:
    known = [d for d in DEFENSE_LABELS if d in defenses]
    return known + sorted(d for d in defenses if d not in DEFENSE_LABELS)


def evaluate_table(metrics: Mapping[str, Any], metric: str = "psnr") -> str:
    """Mean ``metric`` per restorer variant x defense (rows) and condition (columns), transfer cells left out."""
    conds = sorted({c for by_def in metrics.values() for by_cond in by_def.values() for c in by_cond
                    if "@" not in c}, key=condition_sort_key)
    rows = []
    for model in sorted(metrics):
        for defense in _defense_order(metrics[model]):
            cells = metrics[model][defense]
            rows.append([f"`{escape(model)}`", DEFENSE_LABELS.get(defense, escape(defense))]
                        + [fmt((cells.get(c) or {}).get(metric), 4 if metric == "ssim" else 2) for c in conds])
    return table(["restorer", "defense", *map(condition_label, conds)], rows, "ll" + "r" * len(conds))


def transfer_table(metrics: Mapping[str, Any], metric: str = "psnr") -> str:
    """Transfer cells (sets crafted on another restorer, no defense): target rows, source columns; "" if none."""
    conds = sorted({c for by_def in metrics.values() for c in (by_def.get("none") or {}) if "@" in c},
                   key=condition_sort_key)
    if not conds:
        return ""
    rows = [[f"`{escape(model)}`"] + [fmt(((metrics[model].get("none") or {}).get(c) or {}).get(metric)) for c in conds]
            for model in sorted(metrics)]
    return table(["attacked restorer", *map(condition_label, conds)], rows)


def adaptive_table(metrics: Mapping[str, Any]) -> str:
    """PSNR per restorer variant: undefended, and purified (mean / worst draw / averaged output), per condition."""
    conds = sorted({c for by_def in metrics.values() for by_cond in by_def.values() for c in by_cond},
                   key=condition_sort_key)
    rows = []
    for model in sorted(metrics):
        for defense, key, label in ADAPTIVE_ROWS:
            cells = metrics[model].get(defense)
            if cells is None:
                continue
            rows.append([f"`{escape(model)}`", label] + [fmt((cells.get(c) or {}).get(key)) for c in conds])
    return table(["restorer", "system", *map(condition_label, conds)], rows, "ll" + "r" * len(conds))


def sweep_table(metrics: Mapping[str, Any]) -> str:
    """Per restorer and t*: the full DDPM chain and the cheapest setting within tolerance of it."""
    if metrics.get("enabled") is False:
        return "The sweep was disabled (`sweep.enabled: false`).\n"
    rows = []
    for model in sorted(m for m in metrics if isinstance(metrics[m], Mapping)):
        by_t = metrics[model]
        for key in sorted(by_t, key=lambda k: int(k[1:]) if k[1:].isdigit() else 0):
            cell = by_t[key]
            best = cell.get("best_setting")
            rows.append([f"`{escape(model)}`", key[1:], fmt(cell.get("reference_nfe"), 0),
                         fmt(cell.get("reference_psnr_clean")), fmt(cell.get("reference_psnr_adv")),
                         f"`{escape(best)}`" if best else "none within tolerance",
                         fmt(cell.get("best_nfe"), 0) if best else "-",
                         f"{100 * cell['nfe_fraction']:.0f} %" if best and cell.get("nfe_fraction") is not None else "-",
                         f"{cell['delta_adv_db']:+.2f}" if best and cell.get("delta_adv_db") is not None else "-",
                         fmt(bool(cell.get("meets_target")))])
    return table(["restorer", "t*", "full chain NFE", "purified clean PSNR", "purified PGD PSNR",
                  "cheapest matching setting", "its NFE", "of full chain", "Δ PGD PSNR (dB)", "≤ 1/10 of NFE"],
                 rows, "lrrrrlrrrl")


def results_page(results: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The generated part of the results page from the stages' metrics (None where a file is absent)."""
    present = {k: v for k, v in results.items() if v is not None}
    if not present:
        return ("!!! note \"No results in `data/` yet\"\n"
                "    This build found none of " + ", ".join(f"`data/{p}`" for p in RESULT_FILES.values())
                + " (a fresh clone, or a docs-only build).\n\n" + REPRO_HINT)
    out = []
    missing = [f"`data/{RESULT_FILES[k]}`" for k in RESULT_FILES if results.get(k) is None]
    if missing:
        out.append(f"Not found in this build: {', '.join(missing)}; the sections below show what exists.\n")
    if "evaluate" in present:
        ev = present["evaluate"]
        out += ["## Robustness (evaluate stage)\n",
                "Mean over the test images, from `data/evaluate/metrics.json`. Attacks are crafted on the bare "
                "restorer variant (white-box); *purified* feeds those same inputs through the purifier first "
                "(non-adaptive, the setting of Song et al.).\n",
                "### PSNR (dB)\n", evaluate_table(ev, "psnr")]
        if any("ssim" in cell for by_def in ev.values() for by_cond in by_def.values() for cell in by_cond.values()):
            out += ["### SSIM\n", evaluate_table(ev, "ssim")]
        transfer = transfer_table(ev)
        if transfer:
            out += ["### Transfer (PSNR dB, no defense)\n",
                    "Inputs crafted on another restorer variant, fed to this one.\n", transfer]
    if "adaptive" in present:
        out += ["## Against adaptive attacks (adaptive stage)\n",
                "PSNR (dB) on the first `adaptive.max_images` test images, from `data/adaptive/metrics.json`. "
                "`pgd` is the non-adaptive set (crafted on the bare restorer); the other attacks see the "
                "purifier (BPDA with EOT, or full gradients through the reverse chain). Purified rows are over "
                "`adaptive.draws` stochastic draws of the purifier. This table, not the non-adaptive one, is "
                "the defense's robustness claim.\n",
                adaptive_table(present["adaptive"])]
    if "sweep" in present:
        out += ["## Purifier sweep (sweep stage)\n",
                "From `data/sweep/metrics.json`: per t*, the full DDPM chain's defended PSNR and the cheapest "
                "few-step setting within `sweep.tolerance_db` of it (all rows: `data/sweep/sweep.csv`, "
                "sentences: `data/sweep/summary.md`).\n",
                sweep_table(present["sweep"])]
    return "\n".join(out)


def load_results(data_root: str | Path) -> dict[str, dict | None]:
    """The stages' metrics JSON under ``data_root`` (None where absent)."""
    root = Path(data_root)
    out: dict[str, dict | None] = {}
    for key, rel in RESULT_FILES.items():
        path = root / rel
        out[key] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return out


# --------------------------------------------------------------------------------------------- benchmarks

BENCHMARK_KINDS: dict[str, str] = {
    "simulate": "python -m benchmarks.simulate",
    "models": "python -m benchmarks.models",
    "attacks": "python -m benchmarks.attacks",
    "purify": "python -m benchmarks.purify --quick",
    "speed": "python -m benchmarks.speed",
    "dynamic_filter": "python -m benchmarks.dynamic_filter",
    "startup": "python -m benchmarks.startup",
    "store_encoding": "python -m benchmarks.store_encoding",
    "run": "python -m benchmarks.record_run --root <workspace> --name <name> --log <log>",
}
ATTACK_LABELS = {"fgsm": "FGSM", "pgd": "PGD", "bim": "BIM", "mifgsm": "MI-FGSM", "pgd_l2": "PGD-L2",
                 "cw": "C&W-L2", "lpips_pgd": "LPIPS-PGD", "simba": "SimBA", "square": "Square",
                 "universal": "Universal"}


def benchmark_kind(stem: str) -> str | None:
    """The benchmark that wrote ``benchmarks/results/<stem>.json`` (from its name), or None."""
    for kind in sorted(BENCHMARK_KINDS, key=len, reverse=True):
        if stem == kind or stem.startswith(kind + "_"):
            return kind
    return None


def is_quick(result: Mapping[str, Any]) -> bool:
    """Whether a benchmark record comes from a ``--quick`` (smoke) run."""
    return bool(result.get("quick") or (result.get("setup") or {}).get("quick"))


def simulate_section(d: Mapping[str, Any]) -> str:
    """PSF and image-formation times (``benchmarks.simulate``)."""
    psf = d.get("psf_seconds") or {}
    kinds = sorted({k.split("_support")[0] for k in psf})
    supports = sorted({int(k.split("_support")[1]) for k in psf if "_support" in k})
    rows = [[f"`{k}`"] + [fmt(1e3 * psf[f"{k}_support{s}"], 1) if f"{k}_support{s}" in psf else "-" for s in supports]
            for k in kinds]
    out = ["PSF, 3 wavelengths, ms per PSF by mask and support:\n",
           table(["mask", *(f"support {s} px" for s in supports)], rows)]
    size = d.get("frame_size")
    frame = d.get("formation_seconds_per_frame")
    if frame:
        out.append(f"\nOne {size} x {size} frame (pseudo-HDR, FFT blur with a {d.get('psf_support_formation')} px "
                   f"PSF, clip, tone map both sides): **{1e3 * frame:.0f} ms** ({d.get('images_per_s', 1 / frame):.1f} "
                   "images/s).\n")
    return "\n".join(out)


def models_section(d: Mapping[str, Any]) -> str:
    """Parameters, FLOPs and forward+backward time per restorer (``benchmarks.models``)."""
    rows_in = d.get("results") or []
    cuda = any("cuda_fwd_bwd_ms_median" in r for r in rows_in)
    side = next((r["input"][-1] for r in rows_in if r.get("input")), "?")
    rows = []
    for r in rows_in:
        diff = r.get("params_rel_diff")
        rows.append([f"`{escape(r['model'])}`", escape(r.get("size", "")), fmt(r.get("params")),
                     fmt(r.get("published_params")), "-" if diff is None else f"{100 * diff:+.1f} %",
                     fmt(r.get("gflops_forward"), 1), fmt(r.get("cpu_fwd_bwd_ms_median") / 1e3, 2)
                     if r.get("cpu_fwd_bwd_ms_median") is not None else "-"]
                    + ([fmt(r.get("cuda_fwd_bwd_ms_median"), 2)] if cuda else []))
    header = ["restorer", "size", "parameters", "published", "vs published", f"GFLOPs at {side}²",
              f"CPU forward+backward at {side}² (s)"] + (["CUDA forward+backward (ms)"] if cuda else [])
    note = f"\n{d['flops_note']}.\n" if d.get("flops_note") else ""
    return table(header, rows, "ll" + "r" * (len(header) - 2)) + note


def attacks_section(d: Mapping[str, Any]) -> str:
    """Strength and cost of every attack on one restorer (``benchmarks.attacks``)."""
    attacks = d.get("attacks") or {}
    rows = []
    for name in sorted(attacks, key=_attack_rank):
        a = attacks[name]
        cost = a.get("cost") or {}
        kwargs = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in (a.get("kwargs") or {}).items())
        rows.append([ATTACK_LABELS.get(name, escape(name)), f"`{escape(kwargs)}`" if kwargs else "-",
                     escape(a.get("norm", "")), fmt(a.get("psnr")), fmt(a.get("psnr_drop")),
                     fmt(cost.get("iterations")), fmt(cost.get("forward_backward")), fmt(cost.get("queries")),
                     fmt(a.get("seconds"), 1)])
    head = (f"Restorer `{escape(d.get('model', '?'))}`, {d.get('images', '?')} test images, budget "
            f"{d.get('budget', '?')}/256, clean PSNR **{fmt(d.get('clean_psnr'))} dB**.\n")
    return head + "\n" + table(["attack", "kwargs", "norm", "PSNR (dB)", "drop (dB)", "iterations",
                                "forward+backward", "queries", "seconds"], rows, "lll" + "r" * 6)


def purify_section(d: Mapping[str, Any]) -> str:
    """Samplers of one purifier on synthetic images (``benchmarks.purify``)."""
    setup = d.get("setup") or {}
    base = d.get("baselines") or {}
    rows = [[f"`{escape(name)}`", fmt(m.get("network_evals_per_image")), fmt(m.get("images_per_s"), 1),
             fmt(m.get("psnr_clean_input")), fmt(m.get("psnr_perturbed_input"))]
            for name, m in (d.get("methods") or {}).items()]
    out = [f"t* = {setup.get('t_star', '?')}, {setup.get('images', '?')} images of {setup.get('size', '?')}², "
           f"perturbation ±{fmt(256 * setup['eps'], 0) if setup.get('eps') else '?'}/256, purifier trained "
           f"{setup.get('train_steps', '?')} steps, {setup.get('threads', '?')} thread(s), torch "
           f"{setup.get('torch', '?')}.\n",
           table(["method", "network evals / image", "images/s", "PSNR vs clean, clean input",
                  "PSNR vs clean, perturbed input"], rows)]
    if base:
        out.append(f"\nThe perturbed input itself scores {fmt(base.get('psnr_perturbed_vs_clean'))} dB; diffused to "
                   f"t* without denoising, {fmt(base.get('psnr_diffused_to_t_star_vs_clean'))} dB.\n")
    grads = d.get("input_gradient_ddim_10") or {}
    grad_rows = [[f"`{k}`", fmt(v.get("seconds_per_grad"), 3)] for k, v in grads.items() if isinstance(v, Mapping)]
    if grad_rows:
        out += [f"\nInput gradient through DDIM-10 purification, batch {grads.get('batch', '?')} "
                "(adaptive-attack gradient modes):\n", table(["gradient", "seconds per gradient"], grad_rows)]
    return "\n".join(out)


def fastest_at_equal_psnr(purify: Mapping[str, Any], tolerance_db: float) -> dict[str, Any]:
    """The fastest purification row within ``tolerance_db`` of the per-image baseline's defended PSNR on the
    baseline images (the rule of ``benchmarks.speed``); ``{}`` if none."""
    base = (purify.get("baseline_per_image_ddpm_fp32") or {}).get("defended_psnr_baseline_images")
    if base is None:
        return {}
    eligible = {k: r for k, r in purify.items() if isinstance(r, Mapping) and "speedup" in r
                and r.get("defended_psnr_baseline_images", -math.inf) >= base - tolerance_db}
    if not eligible:
        return {}
    name, row = max(eligible.items(), key=lambda item: item[1]["speedup"])
    return {"row": name, "speedup": row["speedup"], "images_per_s": row["images_per_s"],
            "psnr_gap_db": row["defended_psnr_baseline_images"] - base, "tolerance_db": tolerance_db}


def _best(rows: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    scored = [(k, r) for k, r in rows.items() if k != "at_equal_psnr" and isinstance(r, Mapping) and "speedup" in r]
    return max(scored, key=lambda item: item[1]["speedup"]) if scored else None


def diverged(model: Mapping[str, Any]) -> bool:
    """Whether a ``benchmarks.speed`` restorer scores below its own input (its brief training diverged)."""
    clean, inp = model.get("clean_psnr"), model.get("input_psnr")
    return clean is not None and inp is not None and clean < inp


def speed_model_section(name: str, m: Mapping[str, Any], setup: Mapping[str, Any]) -> str:
    """One restorer of a ``benchmarks.speed`` record: attack, purification, fine-tune and evaluation tables."""
    if "skipped" in m:
        return f"#### `{escape(name)}`\n\nSkipped ({escape(m['skipped'])}).\n"
    out = [f"#### `{escape(name)}` ({fmt(m.get('parameters'))} parameters, size `{escape(m.get('size', '?'))}`)\n"]
    clean, inp = m.get("clean_psnr"), m.get("input_psnr")
    facts = []
    if clean is not None:
        facts.append(f"clean PSNR after the harness's brief training {fmt(clean)} dB (input {fmt(inp)} dB)")
    if m.get("flops_per_pgd_step_per_image"):
        facts.append(f"{m['flops_per_pgd_step_per_image'] / 1e9:.3g} GFLOP per PGD step per image")
    if facts:
        text = "; ".join(facts)
        out.append(text[:1].upper() + text[1:] + ".\n")
    if diverged(m):
        out.append("!!! warning \"Diverged warm-up training\"\n"
                   f"    The restorer scores below its own input ({fmt(clean)} < {fmt(inp)} dB): its brief training "
                   "diverged, so the PSNR columns of this restorer measure a broken model; only its speed columns "
                   "count.\n")
    attack = m.get("attack") or {}
    if attack:
        base = attack.get("baseline_per_image_fp32") or {}
        rows = [["per image, fp32 (baseline)", fmt(base.get("images_per_s"), 1), "1.0x", "-", "-", "-"]]
        for label, r in attack.items():
            if label == "baseline_per_image_fp32" or not isinstance(r, Mapping):
                continue
            frac = r.get("fraction_of_bf16_peak")
            rows.append([f"batched `{escape(label)}`", fmt(r.get("images_per_s"), 1), speedup(r.get("speedup")),
                         fmt(r.get("tflops"), 1), "-" if frac is None else f"{100 * frac:.1f} %",
                         fmt(r.get("psnr_gap_vs_fp32_db"), 4)])
        best = _best(attack)
        out += [f"PGD-{setup.get('pgd_steps', 20)} at {fmt(256 * setup['eps'], 0) if setup.get('eps') else '?'}/256:\n",
                table(["variant", "images/s", "speed-up", "TFLOP/s", "of bf16 peak", "PSNR gap to fp32 (dB)"], rows),
                f"\n- Fastest: `{escape(best[0])}`, **{speedup(best[1]['speedup'])}** the per-image loop.\n" if best else ""]
    purify = m.get("purify") or {}
    if purify:
        base = purify.get("baseline_per_image_ddpm_fp32") or {}
        ref = base.get("defended_psnr_baseline_images")
        rows = [["full DDPM chain, per image, fp32 (baseline)", fmt(base.get("network_evals_per_image")),
                 fmt(base.get("images_per_s"), 1), "1.0x", fmt(ref), "-"]]
        for label, r in purify.items():
            if label in ("baseline_per_image_ddpm_fp32", "at_equal_psnr") or not isinstance(r, Mapping):
                continue
            psnr = r.get("defended_psnr_baseline_images")
            rows.append([f"batched `{escape(label)}`", fmt(r.get("network_evals_per_image")),
                         fmt(r.get("images_per_s"), 1), speedup(r.get("speedup")), fmt(psnr),
                         "-" if psnr is None or ref is None else f"{psnr - ref:+.2f}"])
        out += [f"\nPurification of the PGD inputs at t* = {setup.get('t_star', '?')} (defended PSNR: this restorer "
                "applied to the purified input, on the images the per-image baseline saw):\n",
                table(["sampler / variant", "network evals / image", "images/s", "speed-up", "defended PSNR (dB)",
                       "Δ vs baseline (dB)"], rows)]
        tol = float(setup.get("equal_psnr_db", 0.1))
        equal = purify.get("at_equal_psnr")
        recorded = equal is not None
        if not recorded:
            equal = fastest_at_equal_psnr(purify, tol)
        best = _best(purify)
        lines = []
        if best:
            lines.append(f"- Fastest: `{escape(best[0])}`, **{speedup(best[1]['speedup'])}**"
                         + (f" ({best[1]['defended_psnr_baseline_images'] - ref:+.2f} dB)"
                            if ref is not None and "defended_psnr_baseline_images" in best[1] else "") + ".")
        if diverged(m):
            lines.append("- At equal defended PSNR: not meaningful for a diverged restorer.")
        elif equal:
            lines.append(f"- Fastest at equal defended PSNR (at most {equal['tolerance_db']:g} dB below the baseline's)"
                         + ("" if recorded else " (computed here with the harness's rule; this record predates it)")
                         + f": `{escape(equal['row'])}`, **{speedup(equal['speedup'])}** ({equal['psnr_gap_db']:+.2f} dB).")
        elif base:
            lines.append(f"- No batched row stays within {tol:g} dB below the baseline's defended PSNR.")
        if lines:
            out.append("\n" + "\n".join(lines) + "\n")
    finetune = m.get("finetune") or {}
    evaluate = m.get("evaluate") or {}
    if finetune:
        rows = [[("batch 1, fp32 (baseline)" if k == "baseline_batch1_fp32" else f"batch {r.get('batch')}, `{escape(k)}`"),
                 fmt(r.get("images_per_s"), 0), speedup(r.get("speedup"))]
                for k, r in finetune.items() if isinstance(r, Mapping)]
        out += ["\nFine-tune step (Adam, L2):\n", table(["variant", "images/s", "speed-up"], rows)]
    if evaluate:
        rows = [[("per image (baseline)" if k.startswith("baseline") else f"batch {r.get('batch')}"),
                 fmt(r.get("images_per_s"), 0), speedup(r.get("speedup", 1.0)), fmt(r.get("psnr")),
                 fmt(r.get("ssim"), 4)] for k, r in evaluate.items() if isinstance(r, Mapping)]
        out += ["\nEvaluation (forward + PSNR + SSIM, fp32):\n",
                table(["variant", "images/s", "speed-up", "PSNR (dB)", "SSIM"], rows)]
    return "\n".join(o for o in out if o)


def speed_section(d: Mapping[str, Any]) -> str:
    """A ``benchmarks.speed`` record: set-up line and one sub-section per restorer."""
    s = d.get("setup") or {}
    pur = d.get("purifier") or {}
    head = (f"Images {s.get('size', '?')}², {s.get('images', '?')} per measurement ({s.get('baseline_images', '?')} "
            f"for the per-image baselines), batch {s.get('batch', '?')}, median of {s.get('repeats', '?')} timed "
            f"run(s) after a warm-up; restorers at size `{escape(s.get('preset', '?'))}` trained "
            f"{s.get('train_steps', '?')} steps; purifier UNet widths "
            f"{'/'.join(str(c) for c in s.get('purifier_channels', [])) or '?'}"
            + (f" ({fmt(pur.get('parameters'))} parameters)" if pur.get("parameters") else "")
            + f", trained {s.get('purifier_steps', '?')} steps.\n")
    if s.get("peak_bf16_flops"):
        head += f"Dense bf16 peak taken as {s['peak_bf16_flops'] / 1e12:.0f} TFLOP/s.\n"
    parts = [head] + [speed_model_section(name, m, s) for name, m in (d.get("models") or {}).items()]
    return "\n".join(parts)


def dynamic_filter_section(d: Mapping[str, Any]) -> str:
    """Unfold vs shifted dynamic filtering, eager and compiled (``benchmarks.dynamic_filter``)."""
    out = []
    ops = d.get("op") or []
    if ops:
        rows = [[" x ".join(str(v) for v in op.get("shape", [])), fmt(op.get("eager_unfold_ms"), 1),
                 fmt(op.get("eager_shifted_ms"), 1), fmt(op.get("compiled_unfold_ms"), 1),
                 fmt(op.get("compiled_shifted_ms"), 1)] for op in ops]
        out += ["One dynamic filter, forward + backward, ms per call (lower is better):\n",
                table(["features (B, C, H, W)", "eager unfold", "eager shifted", "compiled unfold", "compiled shifted"],
                      rows)]
    p = d.get("pgd_step") or {}
    if p:
        rows = [[f"`{escape(p.get('preset', '?'))}` ({fmt(p.get('parameters'))} parameters)",
                 f"{p.get('batch', '?')} x {p.get('size', '?')}²", fmt(p.get("eager_images_per_s"), 1),
                 fmt(p.get("compiled_unfold_images_per_s"), 1), fmt(p.get("compiled_shifted_images_per_s"), 1),
                 speedup(p.get("shifted_over_unfold")), f"{p.get('compiled_shifted_grad_rel_diff', float('nan')):.1e}"]]
        out += ["\nOne PGD step through a whole DISCNet (forward + backward to the input), images/s:\n",
                table(["DISCNet", "input", "eager", "compiled, unfold", "compiled, shifted (shipped)",
                       "shifted / unfold", "gradient vs eager (relative)"], rows)]
    return "\n".join(out) or "No measurement in this record.\n"


def startup_section(d: Mapping[str, Any]) -> str:
    """Stage start-up: imports and the Prefect API, before and after the shared server (``benchmarks.startup``)."""
    labels = {"imports": "imports only (`import flows.stages`)",
              "temporary_server": "before: Prefect's temporary server in every stage",
              "shared_cold": "after: first stage (starts the shared server)",
              "shared_warm": "after: every later stage (reuses it)"}
    seconds = d.get("seconds") or {}
    medians = d.get("median_s") or {}
    rows = [[label, "-" if medians.get(k) is None else f"{medians[k]:.2f}",
             ", ".join(str(v) for v in seconds.get(k, []))] for k, label in labels.items()]
    out = [f"{d.get('load_processes', 0)} CPU-bound busy processes beside the measurements, "
           f"{d.get('repeats', '?')} repeats.\n", table(["process", "median (s)", "each run (s)"], rows)]
    over = d.get("api_overhead_s") or {}
    if over:
        out.append("\n" + table(["Prefect API cost per stage", "s"],
                                 [[k, "-" if v is None else f"{v:.2f}"] for k, v in over.items()]))
    return "\n".join(out)


def store_encoding_section(d: Mapping[str, Any]) -> str:
    """Quantised adversarial images stored as float32 + zstd and as uint8 levels + zstd
    (``benchmarks.store_encoding``)."""
    setup = d.get("setup") or {}
    rows_in = d.get("encodings") or {}
    if not rows_in:
        return "No measurement in this record.\n"
    shape = " x ".join(str(v) for v in setup.get("shape", [])) or "?"
    repeats = setup.get("repeats", "?")
    runs = f"{repeats} run{'' if repeats == 1 else 's'}"
    rows = []
    for enc, r in rows_in.items():
        w, rv, ru = r.get("write") or {}, r.get("read_verified") or {}, r.get("read_unverified") or {}
        rows.append([f"`{escape(enc)}`", fmt(r.get("chunk_bytes")), fmt((r.get("bytes_per_image") or 0) / 1e3, 1),
                     f"{100 * r['fraction_of_float32_values']:.1f} %" if "fraction_of_float32_values" in r else "-",
                     fmt(w.get("images_per_s"), 0), fmt(w.get("mb_per_s"), 0), fmt(rv.get("images_per_s"), 0),
                     fmt(rv.get("mb_per_s"), 0), fmt(ru.get("images_per_s"), 0),
                     fmt((r.get("study") or {}).get("gb"), 1)])
    study = d.get("study") or {}
    out = [f"{setup.get('images', '?')} images of {shape}, {setup.get('perturbation', '?')} perturbation of "
           f"±{setup.get('eps_levels', '?')}/255, quantised to 8-bit levels ({setup.get('distinct_levels', '?')} "
           f"distinct values); median of {runs}; MB/s of float32 image data.\n",
           table(["encoding", "chunk bytes", "kB per image", "of the float32 values", "write images/s", "write MB/s",
                  "read images/s (verified)", "read MB/s (verified)", "read images/s (unverified)",
                  "study sets (GB)"], rows, "l" + "r" * 9),
           f"float32 + zstd / uint8 + zstd: **{fmt(d.get('ratio'))}x**; float32 values / uint8 + zstd: "
           f"**{fmt(d.get('ratio_to_float32_values'))}x**. Study sets: {fmt(study.get('images'))} images "
           f"({fmt(study.get('test_images'))} test images x {study.get('restorers', '?')} restorers x "
           f"{study.get('variants', '?')} variants x {study.get('sets', '?')} sets) of 3 x 256 x 256, "
           f"{fmt(study.get('float32_values_gb'), 1)} GB as float32 values, extrapolated from the bytes per image.\n"]
    return "\n".join(out)


def _cell(cells: Mapping[str, Any], cond: str, ci: bool = False) -> str:
    """PSNR mean of one metrics.json cell (``-`` when absent), with its 95 % interval when ``ci``."""
    c = cells.get(cond) or {}
    if c.get("psnr") is None:
        return "-"
    if ci and c.get("psnr_ci_low") is not None:
        return f"{c['psnr']:.2f} [{c['psnr_ci_low']:.2f}, {c['psnr_ci_high']:.2f}]"
    return f"{c['psnr']:.2f}"


def run_section(d: Mapping[str, Any]) -> str:
    """A recorded pipeline run (``benchmarks.record_run``): per restorer its size and PSNR (dB) clean, under the
    per-image worst case of the attack suite at each budget, and defended at the largest budget; stage times."""
    ev = d["evaluate"]
    budgets = sorted({int(c.rsplit("_", 1)[1]) for by_def in ev.values() if isinstance(by_def, dict)
                      for by_cond in by_def.values() for c in by_cond if c.startswith("worst_case_")})
    top = budgets[-1] if budgets else None
    header = ["restorer", "parameters", "input", "clean"] + [f"worst {b}/256" for b in budgets]
    header += [f"purified, worst {top}/256", f"fine-tuned, worst {top}/256", f"fine-tuned + purified, worst {top}/256"]
    input_cells = ((ev.get("input") or {}).get("none") or {})
    rows = []
    for label in d["models"]:
        base = ev.get(f"{label}:base", {})
        ft = ev.get(f"{label}:finetuned", {})
        name = d.get("architectures", {}).get(label, label)
        rows.append([f"`{escape(label)}`" + ("" if name == label else f" ({escape(name)})"),
                     fmt(d.get("parameters", {}).get(label)), _cell(input_cells, "clean"),
                     _cell(base.get("none", {}), "clean", ci=True)]
                    + [_cell(base.get("none", {}), f"worst_case_{b}") for b in budgets]
                    + [_cell(base.get("purified", {}), f"worst_case_{top}", ci=True),
                       _cell(ft.get("none", {}), f"worst_case_{top}", ci=True),
                       _cell(ft.get("purified", {}), f"worst_case_{top}", ci=True)])
    attacks = ", ".join(f"{a['name']} at {', '.join(map(str, a['budgets']))}" for a in d.get("attacks", []))
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in d.get("stage_seconds") or [])
    wall = d.get("wall_seconds")
    lines = [f"Profile `{d.get('profile')}`; attacks {attacks}. PSNR (dB), mean over the test images, 95 % "
             "bootstrap interval in brackets; *worst* is each image's worst PSNR over the attack suite, averaged. "
             "Purified columns are non-adaptive (attacks crafted on the bare restorer).\n",
             table(header, rows, "lr" + "r" * (len(header) - 2)), ""]
    if wall is not None:
        lines.append(f"Wall time {wall / 60:.1f} min" + (f" (stages: {stages})." if stages else "."))
    return "\n".join(lines) + "\n"


SECTIONS = {"simulate": simulate_section, "models": models_section, "attacks": attacks_section,
            "purify": purify_section, "speed": speed_section, "dynamic_filter": dynamic_filter_section,
            "startup": startup_section, "store_encoding": store_encoding_section, "run": run_section}


def benchmark_sections(results: Mapping[str, Mapping[str, Any]], kind: str) -> str:
    """Every record of benchmark ``kind`` (full runs first, then ``--quick`` smoke runs), each under a heading
    naming its file and environment; a pointer to the command when there is none."""
    if kind not in SECTIONS:
        raise ValueError(f"unknown benchmark {kind!r}; known: {', '.join(SECTIONS)}")
    stems = sorted((s for s in results if benchmark_kind(s) == kind), key=lambda s: (is_quick(results[s]), s))
    if not stems:
        return (f"No record (`benchmarks/results/{kind}_*.json`) in this checkout; run "
                f"`.venv/bin/{BENCHMARK_KINDS[kind]}` from the repository root.\n")
    out = []
    for stem in stems:
        d = results[stem]
        env = d.get("environment") or _setup_environment(d.get("setup") or {})
        smoke = " — smoke run (`--quick`)" if is_quick(d) else ""
        out.append(f"### `{stem}.json`{smoke}\n\n{environment_line(env)}.\n")
        if is_quick(d):
            out.append("!!! note \"Smoke run\"\n    A `--quick` run checks that the harness works (tiny sizes, few "
                       "steps or repeats): do not compare its numbers with a full run's, and read no PSNR in it.\n")
        out.append(SECTIONS[kind](d))
    return "\n".join(out)


def _setup_environment(setup: Mapping[str, Any]) -> dict[str, Any]:
    """An environment record rebuilt from a record's ``setup`` (``benchmarks.purify`` writes no other)."""
    if not setup:
        return {}
    return {"device": "cpu", "cpu": setup.get("machine", "?"), "torch_threads": setup.get("threads"),
            "versions": {"torch": setup.get("torch")}}


def load_benchmarks(folder: str | Path) -> dict[str, dict]:
    """``benchmarks/results/*.json`` by file stem, sorted."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.json"))}


# --------------------------------------------------------------------------------------------- README block

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def readme_results(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The README's results at a glance, from the committed benchmark records: attack strength on the
    default restorer (``attacks_cpu.json``), the GPU speed-ups (``speed_cuda.json``) and the zoo run
    (``run_zoo_cpu.json``)."""
    out = []
    attacks = results.get("attacks_cpu")
    if attacks:
        rows = []
        for name in sorted(attacks.get("attacks") or {}, key=_attack_rank):
            a = attacks["attacks"][name]
            cost = a.get("cost") or {}
            n = cost.get("queries") or cost.get("forward_backward")
            work = f"{fmt(n)} {'queries' if cost.get('queries') else 'gradient'}{'' if n == 1 or cost.get('queries') else 's'}"
            rows.append([ATTACK_LABELS.get(name, escape(name)), fmt(a.get("psnr")), fmt(a.get("psnr_drop")), work,
                         fmt(a.get("seconds"), 1)])
        env = attacks.get("environment") or {}
        out += [f"Attacks on the default restorer (`{escape(attacks.get('model', '?'))}`, {attacks.get('images', '?')} "
                f"test images, budget {attacks.get('budget', '?')}/256; clean PSNR {fmt(attacks.get('clean_psnr'))} dB; "
                f"{environment_line(env)}):", "",
                table(["attack", "PSNR (dB)", "drop (dB)", "cost", "seconds"], rows, "lrrrr").rstrip("\n")]
    speed = results.get("speed_cuda")
    if speed:
        rows, broken = [], []
        tol = float((speed.get("setup") or {}).get("equal_psnr_db", 0.1))
        for name, m in (speed.get("models") or {}).items():
            if "skipped" in m:
                continue
            purify = m.get("purify") or {}
            att, pur = _best(m.get("attack") or {}), _best(purify)
            equal = purify.get("at_equal_psnr") or fastest_at_equal_psnr(purify, tol)
            base = (purify.get("baseline_per_image_ddpm_fp32") or {}).get("defended_psnr_baseline_images")
            gap = "" if not pur or base is None else f", {pur[1]['defended_psnr_baseline_images'] - base:+.2f} dB"
            label = f"`{escape(name)}`"
            if diverged(m):
                label += " \\*"
                broken.append(name)
                gap, equal = "", {}
            rows.append([label, f"{speedup(att[1]['speedup'])} (`{escape(att[0])}`)" if att else "-",
                         f"{speedup(pur[1]['speedup'])} (`{escape(pur[0])}`{gap})" if pur else "-",
                         f"{speedup(equal['speedup'])} (`{escape(equal['row'])}`)" if equal else "-"])
        env = speed.get("environment") or {}
        out += ["", f"Speed-up over the per-image float32 loop ({environment_line(env)}; Δ: defended PSNR against "
                "the per-image full DDPM chain):", "",
                table(["restorer", "PGD-20, fastest", "purification, fastest",
                       f"purification at equal PSNR (≤ {tol:g} dB below)"], rows, "llll").rstrip("\n")]
        if broken:
            out += ["", "\\* its warm-up training diverged in this run (clean PSNR below the input's): its "
                    "speeds count, its PSNR numbers mean nothing."]
    zoo = results.get("run_zoo_cpu")
    if zoo:
        out += ["", f"The study's seven restorers (tiny sizes) and the ResUNet, one `dvc exp run -S profile=zoo` "
                f"({environment_line(zoo.get('environment') or {})}):", "", run_section(zoo).rstrip("\n")]
    if not out:
        out = ["No benchmark record in `benchmarks/results/`."]
    return "\n".join(out) + "\n"


def readme_block(results: Mapping[str, Mapping[str, Any]]) -> str:
    """:func:`readme_results` between the README's start and end markers."""
    return (f"{README_START}\n<!-- generated from benchmarks/results/*.json by `python docs/gen.py readme-results "
            f"--write`; edit the generator, not this block -->\n{readme_results(results)}{README_END}")


def replace_readme_block(readme: str, block: str) -> str:
    """``readme`` with its results block replaced by ``block``; ValueError without exactly one block."""
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if len(pattern.findall(readme)) != 1:
        raise ValueError(f"README must hold exactly one {README_START} ... {README_END} block")
    return pattern.sub(lambda _: block, readme)


def load_dvc_yaml(path: str | Path) -> dict:
    """``dvc.yaml`` parsed."""
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


# --------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/gen.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_readme = sub.add_parser("readme-results", help="the README's results block")
    p_readme.add_argument("--write", action="store_true", help="rewrite the block in the README in place")
    p_readme.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p_readme.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    p_results = sub.add_parser("results", help="the generated part of the results page")
    p_results.add_argument("--data", type=Path, default=ROOT / "data")
    p_bench = sub.add_parser("benchmarks", help="every benchmark section")
    p_bench.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.command == "readme-results":
        block = readme_block(load_benchmarks(args.results))
        if args.write:
            args.readme.write_text(replace_readme_block(args.readme.read_text(encoding="utf-8"), block),
                                   encoding="utf-8")
        else:
            print(block)
    elif args.command == "results":
        print(results_page(load_results(args.data)))
    else:
        records = load_benchmarks(args.results)
        print("\n".join(f"## {kind}\n\n{benchmark_sections(records, kind)}" for kind in SECTIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
