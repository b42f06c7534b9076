"""Benchmark: the robustness numbers of a finished run under the project's old evaluation protocol.

    python -m benchmarks.protocol_comparison [--data data] [--device cpu] [--threads 1] [--skip-adaptive]

Reads a finished ``dvc repro`` (``--data``: its data folder, or the repository root holding ``dvc.yaml``,
``params.yaml`` and ``data/``): the base and fine-tuned restorers of every model in ``train.models``, the
purifier and the simulated test store, with that run's ``params.yaml``. It then measures, on those same
checkpoints and images, what the old protocol reported, so that the numbers can be set beside the new
protocol's in the run's ``data/evaluate/metrics.json`` and ``data/adaptive/metrics.json`` (the matching cells
of those files are copied into the record under ``new_protocol``).

Old protocol, non-adaptive (every restorer variant, budgets 1, 2, 4, 8 / 256, L-inf):

* PGD (Madry et al. 2018; Song et al., arXiv 2402.13629), 20 steps, random start, step 2.5 eps / steps (the
  PGD class's default), the LAST iterate (``keep_best=False``), objective MSE of the restorer's *raw*
  (unclamped) output against the ground truth (``attack.output: raw``), adversarial inputs kept in float32
  (not quantised to 8-bit levels). Random starts per image from
  ``derive_seed(seed, 'attack/<model>/<variant>/pgd/<budget>', image_id)``, as the attack stage seeds its set;
* scored by PSNR (:func:`udcshield.evaluation.metrics.psnr`: clamp, 8-bit, RGB) undefended, and purified with
  ONE purifier draw (:func:`udcshield.pipeline.purify.purify_one` with the run's ``purify`` section: noise from
  ``derive_seed(seed, 'purify/<set>', image_id)``, the purify stage's draw 0) then restored by the same variant.

Old protocol, adaptive (purified base and fine-tuned restorer, budget 8 / 256, the first 8 test images), built
with the adaptive stage's :func:`udcshield.pipeline.adaptive.defended_system` and
:func:`~udcshield.pipeline.adaptive.make_attack` on the raw output, then ``keep_best=False``:

* ``pgd_full``: PGD through the whole reverse chain (exact gradients), 5 steps, EOT 1, last iterate;
* ``pgd_bpda``: PGD with BPDA (Athalye et al., ICML 2018), 10 steps, EOT 4, last iterate.

Attack noise per image from ``derive_seed(seed, 'adaptive/<model>/<variant>/<attack>/8', image_id)``. Each
adversarial set (and the clean inputs, for reference) is scored on the adaptive stage's evaluation draws
(``derive_seed(seed, 'adaptive/eval/draw<k>', image_id)``, k = 0..7): ``psnr_one_draw`` (draw 0, the old
score), ``psnr_worst_of_8`` (per image the worst draw, averaged: the new protocol's worst-of-N) and
``psnr_mean_of_8`` (``_of_<K>`` with ``--adaptive-draws K``).

Every cell: the mean over its images, the 95 % percentile bootstrap interval of that mean
(:func:`udcshield.evaluation.statistics.bootstrap_ci`, images sorted by id, seed
:func:`~udcshield.evaluation.statistics.cell_seed` of the run seed and the cell's label
``<model>:<variant>|<defense>|<condition>|<metric>``, the label the evaluate and adaptive stages use) and
``n_images``. The record also holds the dvc.lock md5s of the checkpoints and test store used (recomputed from
the files and compared with the lock), the settings, per-image values, the cost and the wall time.

Writes ``benchmarks/results/protocol_comparison_<device>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.common import RESULTS, environment
from udcshield.attacks.base import project_linf
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.pgd import PGD
from udcshield.config import AdaptiveSpec, Params, load_params, to_dict
from udcshield.defenses.purifier import DiffusionPurifier, load_purifier
from udcshield.evaluation.metrics import psnr
from udcshield.evaluation.statistics import bootstrap_ci, cell_seed, per_image
from udcshield.pipeline.adaptive import defended_system, draw_outputs, make_attack, run_attack
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.common import apply_batched, load_pairs, write_json
from udcshield.pipeline.layout import Layout, configure_torch, resolve_device
from udcshield.pipeline.names import CLEAN, array_name, condition_label, model_label
from udcshield.pipeline.purify import purify_one
from udcshield.pipeline.summary import cell_label
from udcshield.seeding import derive_seed

ROOT = Path(__file__).resolve().parents[1]
#: Restorer variants of the old protocol.
VARIANTS: tuple[str, ...] = ("base", "finetuned")
#: Old protocol, non-adaptive: PGD budgets (units of 1/256) and steps.
BUDGETS: tuple[int, ...] = (1, 2, 4, 8)
PGD_STEPS = 20
#: Old protocol, adaptive: budget, images, evaluation draws, and (steps, EOT samples) per gradient mode.
ADAPTIVE_BUDGET = 8
ADAPTIVE_IMAGES = 8
ADAPTIVE_DRAWS = 8
ADAPTIVE_ATTACKS: dict[str, dict[str, Any]] = {
    "pgd_full": {"gradient": "full", "steps": 5, "eot_samples": 1},
    "pgd_bpda": {"gradient": "bpda", "steps": 10, "eot_samples": 4},
}


# ------------------------------------------------------------------------------------------ the run
@dataclass(frozen=True)
class Run:
    """A finished run: ``root`` (repository root: dvc.yaml, params.yaml, dvc.lock) and ``data`` (its data folder)."""

    root: Path
    data: Path

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "dvc.lock"


def resolve_run(path: str | Path) -> Run:
    """The run at ``path``: a repository root (holding ``data/`` and ``params.yaml``) or its data folder.

    Raises SystemExit when neither form is found.
    """
    path = Path(path).resolve()
    if (path / "data").is_dir() and (path / "params.yaml").is_file():
        return Run(path, path / "data")
    if path.is_dir() and (path.parent / "params.yaml").is_file():
        return Run(path.parent, path)
    raise SystemExit(f"--data {path}: expected a run's data folder (beside its params.yaml) or the run's root")


def old_params(params: Params, adaptive_images: int, adaptive_draws: int) -> Params:
    """The run's params with the old protocol's attack settings: MSE of the raw (unclamped) output against the
    ground truth, no quantisation; the adaptive section's images and draws set to the old protocol's."""
    attack = dataclasses.replace(params.attack, objective="mse", reference="target", output="raw", quantize=False)
    adaptive = dataclasses.replace(params.adaptive, max_images=adaptive_images, draws=adaptive_draws)
    return dataclasses.replace(params, attack=attack, adaptive=adaptive)


def file_md5(path: Path) -> str:
    """MD5 hex digest of one file's bytes (DVC's file hash)."""
    h = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_md5(folder: Path) -> dict[str, Any]:
    """DVC's directory hash of ``folder``: md5 of the JSON list of ``{"md5", "relpath"}`` of its files sorted by
    path, suffixed ``.dir``; with ``nfiles`` and ``files`` (relpath -> md5)."""
    files = {p.relative_to(folder).as_posix(): file_md5(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    entries = [{"md5": md5, "relpath": rel} for rel, md5 in sorted(files.items())]
    digest = hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"
    return {"md5": digest, "nfiles": len(files), "files": files}


def lock_outs(lock: Path) -> dict[str, dict[str, Any]]:
    """Every stage output of ``dvc.lock`` by path: {path: {"stage", "md5", "size", "nfiles"}} ({} without a lock)."""
    if not lock.is_file():
        return {}
    doc = yaml.safe_load(lock.read_text()) or {}
    out: dict[str, dict[str, Any]] = {}
    for stage, body in (doc.get("stages") or {}).items():
        for entry in body.get("outs") or []:
            out[entry["path"]] = {"stage": stage, **{k: entry[k] for k in ("md5", "size", "nfiles") if k in entry}}
    return out


def provenance(run: Run, params: Params) -> dict[str, Any]:
    """The artifacts used, by their ``dvc.lock`` output (``data/restorers``, ``data/finetuned``, ``data/purifier``,
    ``data/simulated``): the lock's md5 (None without a lock), the md5 recomputed from the files now and whether
    they agree; plus each checkpoint folder's and the test store's own directory hash and file md5s."""
    locked = lock_outs(run.lock)
    outs = {}
    for name in ("restorers", "finetuned", "purifier", "simulated"):
        rel = f"data/{name}"
        now = tree_md5(run.data / name)
        entry = locked.get(rel, {})
        outs[rel] = {"lock_md5": entry.get("md5"), "lock_stage": entry.get("stage"), "md5": now["md5"],
                     "nfiles": now["nfiles"], "matches_lock": entry.get("md5") == now["md5"] if entry else None}
    layout = Layout(run.data)
    folders = {"data/simulated/test.zarr": layout.test_store, "data/purifier": layout.purifier}
    for spec in params.train.runs():
        for variant in VARIANTS:
            folders[f"data/{'restorers' if variant == 'base' else 'finetuned'}/{spec.label}"] = \
                layout.checkpoint(spec.label, variant)
    used = {}
    for rel, folder in folders.items():
        tree = tree_md5(folder)
        used[rel] = {"md5": tree["md5"], "nfiles": tree["nfiles"],
                     **({"files": tree["files"]} if tree["nfiles"] <= 4 else {})}
    return {"lock": str(run.lock) if run.lock.is_file() else None,
            "lock_source": "dvc.lock" if run.lock.is_file() else "hashed files (no dvc.lock)",
            "outs": outs, "used": used}


# ------------------------------------------------------------------------------------------ statistics
def cell(image_ids: Sequence[str], values: torch.Tensor | Sequence[float], seed: int, label: str) -> dict[str, Any]:
    """Mean over the images, its 95 % bootstrap interval (seed ``cell_seed(seed, label)``) and ``n_images``.

    ``values``: one finite value per image of ``image_ids`` (e.g. PSNR in dB), any order; sorted by id before
    resampling. ``values_by_id`` keeps them for paired comparisons.
    """
    ids, per = per_image(zip(image_ids, [float(v) for v in values]))
    low, high = bootstrap_ci(per, cell_seed(seed, label))
    return {"mean": round(float(per.mean()), 4), "ci_low": round(low, 4), "ci_high": round(high, 4),
            "n_images": len(ids), "values_by_id": {i: round(float(v), 4) for i, v in zip(ids, per)}}


# ------------------------------------------------------------------------------------------ non-adaptive
def craft_pgd(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, image_ids: list[str],
              source: str, budget: int, params: Params, device: torch.device,
              steps: int = PGD_STEPS) -> tuple[torch.Tensor, dict[str, Any]]:
    """Old-protocol PGD on the bare restorer's raw output: (adv (N, 3, H, W) float32 in [0, 1] on CPU, within
    budget / 256 of ``inputs`` in L-inf, not quantised; cost {iterations, forward_backward, seconds, linf_max}).

    ``inputs``, ``targets``: (N, 3, H, W) float32 in [0, 1]. Random start of image i from a generator seeded with
    ``derive_seed(seed, 'attack/<source>/pgd/<budget>', image_ids[i])``.
    """
    eps = budget_to_linf(budget)
    atk = PGD(model.to(device).eval(), eps=eps, steps=steps, random_start=True, objective=params.attack.objective,
              reference=params.attack.reference, keep_best=False)
    stage = f"attack/{array_name(source, 'pgd', budget)}"
    advs, iterations, fb = [], 0, 0
    start = time.perf_counter()
    for lo in range(0, inputs.shape[0], params.attack.batch_size):
        s = slice(lo, min(lo + params.attack.batch_size, inputs.shape[0]))
        seeds = [derive_seed(params.seed, stage, i) for i in image_ids[s]]
        adv = atk(inputs[s].to(device), targets[s].to(device), seeds=seeds).detach().float().cpu()
        advs.append(project_linf(adv, inputs[s], eps))
        iterations += int(atk.last_cost["iterations"])
        fb += int(atk.last_cost["forward_backward"])
    adv = torch.cat(advs)
    linf = float((adv - inputs).abs().max())
    if linf > float(torch.tensor(eps, dtype=torch.float32)):
        raise RuntimeError(f"{stage}: L-inf {linf} exceeds the budget {eps}")
    return adv, {"iterations": iterations, "forward_backward": fb, "seconds": round(time.perf_counter() - start, 3),
                 "linf_max": linf, "seed_stage": stage}


def nonadaptive(params: Params, layout: Layout, purifier: DiffusionPurifier, device: torch.device,
                budgets: Sequence[int], steps: int, max_images: int | None) -> dict[str, Any]:
    """Old non-adaptive protocol for every model x variant: label -> cell (:func:`cell`).

    Cells ``<model>:<variant>|<none|purified>|<clean|pgd_<budget>>|psnr``; ``cost`` per set.
    """
    inputs, targets, ids = load_pairs(layout.test_store)
    if max_images is not None:
        inputs, targets, ids = inputs[:max_images], targets[:max_images], ids[:max_images]
    bs = params.evaluate.batch_size
    cells, cost = {}, {}
    clean_purified: torch.Tensor | None = None  # one draw of the clean inputs, shared by every variant
    for spec in params.train.runs():
        for variant in VARIANTS:
            source = f"{spec.label}/{variant}"
            label = model_label(source)
            model = load_restorer(layout, source).to(device).eval()
            sets: list[tuple[str, str, torch.Tensor]] = [(CLEAN, CLEAN, inputs)]
            for budget in budgets:
                name = array_name(source, "pgd", budget)
                adv, cost[name] = craft_pgd(model, inputs, targets, ids, source, budget, params, device, steps)
                sets.append((condition_label("pgd", budget), name, adv))
            for cond, set_name, x in sets:
                if set_name == CLEAN and clean_purified is not None:
                    purified = clean_purified
                else:
                    start = time.perf_counter()
                    purified = purify_one(params, purifier, set_name, x, ids, device)
                    cost.setdefault(set_name, {})["purify_seconds"] = round(time.perf_counter() - start, 3)
                    if set_name == CLEAN:
                        clean_purified = purified
                for defense, restorer_input in (("none", x), ("purified", purified)):
                    values = psnr(apply_batched(model, restorer_input, bs, device), targets)
                    key = cell_label(label, defense, cond, "psnr")
                    cells[key] = cell(ids, values, params.seed, key)
                print(f"{label:22s} {cond:6s}  none {cells[cell_label(label, 'none', cond, 'psnr')]['mean']:6.2f} dB"
                      f"  purified {cells[cell_label(label, 'purified', cond, 'psnr')]['mean']:6.2f} dB", flush=True)
    return {"cells": cells, "cost": cost}


# ------------------------------------------------------------------------------------------ adaptive
def adaptive_spec(name: str, settings: dict[str, Any]) -> AdaptiveSpec:
    """The old adaptive attack ``name`` as the adaptive stage's spec: PGD, one restart, no checkpointing."""
    return AdaptiveSpec(name=name, algorithm="pgd", gradient=settings["gradient"], eot_samples=settings["eot_samples"],
                        steps=settings["steps"], restarts=1, checkpoint=False)


def draw_psnrs(params: Params, defended: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor,
               image_ids: list[str], device: torch.device) -> torch.Tensor:
    """PSNR (dB) per evaluation draw and image, (draws, N) float64: the adaptive stage's draws
    (:func:`udcshield.pipeline.adaptive.draw_outputs`, seeds ``derive_seed(seed, 'adaptive/eval/draw<k>', id)``)."""
    return torch.stack([torch.as_tensor(psnr(out, targets))
                        for _, _, out in draw_outputs(params, defended, x, image_ids, device)])


def adaptive(params: Params, layout: Layout, purifier: DiffusionPurifier, device: torch.device,
             attacks: dict[str, dict[str, Any]], budget: int) -> dict[str, Any]:
    """Old adaptive protocol for every model x variant, on the first ``adaptive.max_images`` test images.

    Cells ``<model>:<variant>|purified|<clean|<attack>_<budget>>|<metric>``, metric ``psnr_one_draw`` (draw 0),
    ``psnr_worst_of_<K>`` and ``psnr_mean_of_<K>`` over the K = ``adaptive.draws`` draws; ``cost`` per crafted set.
    """
    n = params.adaptive.max_images
    inputs, targets, ids = load_pairs(layout.test_store)
    inputs, targets, ids = inputs[:n], targets[:n], ids[:n]
    eps = budget_to_linf(budget)
    cells, cost = {}, {}
    for spec in params.train.runs():
        for variant in VARIANTS:
            source = f"{spec.label}/{variant}"
            label = model_label(source)
            restorer = load_restorer(layout, source).to(device).eval()
            sets: list[tuple[str, torch.Tensor]] = [(CLEAN, inputs)]
            for name, settings in attacks.items():
                aspec = adaptive_spec(name, settings)
                defended = defended_system(params, purifier, restorer, aspec.gradient, aspec.checkpoint).to(device)
                atk = make_attack(params, defended, aspec, budget)
                atk.keep_best = False  # the old protocol's last iterate
                set_name = array_name(source, name, budget)
                adv, totals = run_attack(atk, inputs, targets, ids, f"adaptive/{set_name}", params, device, eps)
                cost[set_name] = {"seconds": round(totals["seconds"], 3),
                                  "forward_backward": totals["forward_backward"],
                                  "purifier_evals": totals["purifier_evals"],
                                  "linf_max": float((adv - inputs).abs().max()), "seed_stage": f"adaptive/{set_name}"}
                sets.append((condition_label(name, budget), adv))
            plain = defended_system(params, purifier, restorer, "none").to(device)
            for cond, x in sets:
                per_draw = draw_psnrs(params, plain, x, targets, ids, device)
                k = per_draw.shape[0]
                aggregates = {"psnr_one_draw": per_draw[0], f"psnr_worst_of_{k}": per_draw.min(0).values,
                              f"psnr_mean_of_{k}": per_draw.mean(0)}
                for metric, values in aggregates.items():
                    key = cell_label(label, "purified", cond, metric)
                    cells[key] = cell(ids, values, params.seed, key)
                means = (f"{m} {cells[cell_label(label, 'purified', cond, m)]['mean']:6.2f}" for m in aggregates)
                print(f"{label:22s} {cond:12s} " + "  ".join(means), flush=True)
    return {"cells": cells, "cost": cost}


# ------------------------------------------------------------------------------------------ new protocol
def new_protocol(run: Run, nonadaptive_cells: dict[str, Any], adaptive_cells: dict[str, Any]) -> dict[str, Any]:
    """The new protocol's numbers beside the old cells, from the run's ``evaluate/metrics.json`` and
    ``adaptive/metrics.json`` (absent files: ``None``). Per file: its path, md5, and ``fresh`` (written after the
    newest checkpoint and the test store: it describes these artifacts, not an earlier run); per old cell label
    the matching new cell {metric, mean, ci_low, ci_high} (the adaptive stage's attacks and its worst-draw and
    mean-over-draws aggregates for the adaptive cells: they are the new protocol's counterparts, not the same
    attack)."""
    layout = Layout(run.data)
    newest = max(p.stat().st_mtime for folder in (run.data / "restorers", run.data / "finetuned", layout.purifier,
                                                   layout.test_store) if folder.exists()
                 for p in folder.rglob("*") if p.is_file())
    out: dict[str, Any] = {}
    for key, path in (("evaluate", layout.metrics), ("adaptive", run.data / "adaptive" / "metrics.json")):
        if not path.is_file():
            out[key] = None
            continue
        doc = json.loads(path.read_text())
        out[key] = {"path": str(path), "md5": file_md5(path), "fresh": path.stat().st_mtime >= newest, "cells": {}}

        def new_cell(model: str, defense: str, cond: str, metric: str) -> dict[str, Any] | None:
            c = ((doc.get(model) or {}).get(defense) or {}).get(cond)
            if not c or metric not in c:
                return None
            return {"metric": metric, "mean": c[metric], "ci_low": c.get(f"{metric}_ci_low"),
                    "ci_high": c.get(f"{metric}_ci_high")}

        if key == "evaluate":
            for label in nonadaptive_cells:
                model, defense, cond, metric = label.split("|")
                found = new_cell(model, defense, cond, metric)
                if found is not None:
                    out[key]["cells"][label] = found
                worst = cond.replace("pgd_", "worst_case_")
                if cond != CLEAN and (found := new_cell(model, defense, worst, metric)) is not None:
                    out[key]["cells"][f"{model}|{defense}|{worst}|{metric}"] = found
        else:
            models = {label.split("|")[0] for label in adaptive_cells}
            for model in sorted(models):
                for cond in sorted(((doc.get(model) or {}).get("purified") or {})):
                    for metric in ("psnr_worst_draw", "psnr_mean_draws"):
                        if (found := new_cell(model, "purified", cond, metric)) is not None:
                            out[key]["cells"][f"{model}|purified|{cond}|{metric}"] = found
    return out


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "data"),
                        help="a finished run's data folder or its repository root (default: this repo's data/)")
    parser.add_argument("--params", type=Path, default=None, help="params file (default: the run's params.yaml)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), help="non-adaptive PGD budgets (/256)")
    parser.add_argument("--pgd-steps", type=int, default=PGD_STEPS)
    parser.add_argument("--images", type=int, default=None, help="non-adaptive: first N test images (default all)")
    parser.add_argument("--adaptive-budget", type=int, default=ADAPTIVE_BUDGET)
    parser.add_argument("--adaptive-images", type=int, default=ADAPTIVE_IMAGES)
    parser.add_argument("--adaptive-draws", type=int, default=ADAPTIVE_DRAWS)
    parser.add_argument("--full-steps", type=int, default=ADAPTIVE_ATTACKS["pgd_full"]["steps"])
    parser.add_argument("--full-eot", type=int, default=ADAPTIVE_ATTACKS["pgd_full"]["eot_samples"])
    parser.add_argument("--bpda-steps", type=int, default=ADAPTIVE_ATTACKS["pgd_bpda"]["steps"])
    parser.add_argument("--bpda-eot", type=int, default=ADAPTIVE_ATTACKS["pgd_bpda"]["eot_samples"])
    parser.add_argument("--skip-adaptive", action="store_true")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/protocol_comparison_<device>.json)")
    args = parser.parse_args(argv)
    for name in ("threads", "pgd_steps", "adaptive_images", "adaptive_draws", "full_steps", "full_eot",
                 "bpda_steps", "bpda_eot"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.images is not None and args.images < 1:
        parser.error("--images must be >= 1")
    if not all(1 <= b <= 256 for b in [*args.budgets, args.adaptive_budget]):
        parser.error("budgets must lie in [1, 256] (units of 1/256)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the old protocol on a finished run and write the JSON record; returns it."""
    args = parse_args(argv)
    wall = time.perf_counter()
    torch.set_num_threads(args.threads)
    configure_torch()
    device = resolve_device(args.device)
    run = resolve_run(args.data)
    params_path = args.params or run.params
    params = old_params(load_params(params_path), args.adaptive_images, args.adaptive_draws)
    layout = Layout(run.data)
    purifier = load_purifier(layout.purifier).to(device).eval()
    attacks = {"pgd_full": {"gradient": "full", "steps": args.full_steps, "eot_samples": args.full_eot},
               "pgd_bpda": {"gradient": "bpda", "steps": args.bpda_steps, "eot_samples": args.bpda_eot}}
    record_provenance = provenance(run, params)

    start = time.perf_counter()
    part1 = nonadaptive(params, layout, purifier, device, args.budgets, args.pgd_steps, args.images)
    part1["seconds"] = round(time.perf_counter() - start, 1)
    part2: dict[str, Any] | None = None
    if not args.skip_adaptive:
        start = time.perf_counter()
        part2 = adaptive(params, layout, purifier, device, attacks, args.adaptive_budget)
        part2["seconds"] = round(time.perf_counter() - start, 1)

    settings = {
        "params": str(params_path), "seed": params.seed, "models": [s.label for s in params.train.runs()],
        "variants": list(VARIANTS), "purify": to_dict(params.purify),
        "nonadaptive": {"attack": "pgd", "budgets": list(args.budgets), "steps": args.pgd_steps,
                        "random_start": True, "alpha": "2.5 * eps / steps (PGD default)", "keep_best": False,
                        "objective": "mse", "reference": "target", "output": "raw", "quantize": False,
                        "images": args.images, "purifier_draws": 1,
                        "seeds": {"attack": "derive_seed(seed, 'attack/<model>/<variant>/pgd/<budget>', image_id)",
                                  "purify": "derive_seed(seed, 'purify/<set>', image_id)"}},
        "adaptive": None if args.skip_adaptive else {
            "budget": args.adaptive_budget, "images": args.adaptive_images, "draws": args.adaptive_draws,
            "attacks": {name: {**s, "algorithm": "pgd", "restarts": 1, "keep_best": False}
                        for name, s in attacks.items()},
            "objective": "mse", "reference": "target", "output": "raw",
            "metrics": {"psnr_one_draw": "evaluation draw 0",
                        f"psnr_worst_of_{args.adaptive_draws}": "per image the worst draw, averaged",
                        f"psnr_mean_of_{args.adaptive_draws}": "per image the mean over draws, averaged"},
            "seeds": {"attack": "derive_seed(seed, 'adaptive/<model>/<variant>/<attack>/<budget>', image_id)",
                      "draws": "derive_seed(seed, 'adaptive/eval/draw<k>', image_id)"}},
        "statistics": {"interval": "95 % percentile bootstrap over images, 2000 resamples",
                       "seed": "cell_seed(seed, '<model>:<variant>|<defense>|<condition>|<metric>')"},
    }
    result = {"environment": environment(str(device)), "data": str(run.data), "settings": settings,
              "provenance": record_provenance, "nonadaptive": part1, "adaptive": part2,
              "new_protocol": new_protocol(run, part1["cells"], (part2 or {}).get("cells", {})),
              "wall_seconds": round(time.perf_counter() - wall, 1)}
    out = args.out or RESULTS / f"protocol_comparison_{device.type}.json"
    write_json(result, out)
    print(f"wall {result['wall_seconds']} s -> {out}")
    return result


if __name__ == "__main__":
    main()
