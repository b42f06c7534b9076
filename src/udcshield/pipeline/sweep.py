"""Stage ``sweep``: purification depth t* x reverse sampler, cost against defended PSNR.

The issue's benchmark "DDPM vs few-step DDIM on the pipeline's own purifier". For every t* of
``sweep.t_stars`` and every sampler setting of ``sweep.samplers`` (the full DDPM chain, Ho et al. 2020 /
DiffPure, Nie et al. 2022; strided DDPM, Nichol & Dhariwal 2021; DDIM with few steps, Song, Meng & Ermon
2021) the first ``sweep.max_images`` test images are purified, clean and attacked (the attack stage's
``<model>/base/<sweep.attack>/<largest budget>`` set: the non-adaptive setting of Song et al., arXiv
2402.13629), ``sweep.draws`` times each, and restored by the base restorer. Measured per setting:

- network (UNet) evaluations per image, counted by a forward hook (not computed from the schedule);
- wall time of the purification and images per second;
- PSNR (SYNTH convention) of the base restorer on purified clean and purified adversarial inputs, the
  mean over images averaged over draws, and its difference to the full DDPM chain at the same t*.

Image i of set s in draw d uses the noise ``derive_seed(seed, "sweep", "<s>/draw<d>/<image id>")`` in every
setting, so the settings see the same forward-diffusion noise (common random numbers).

Outputs under ``data/sweep/``: ``sweep.csv`` (one row per model x t* x setting), ``metrics.json`` (per
model and t*: the cheapest few-step setting within ``tolerance_db`` of the full chain, its fraction of
the evaluations, whether it meets the issue's target of a tenth or fewer), ``summary.md`` (the same
statements in words), ``curves/<model>_<sampler>.csv`` for ``dvc plots`` (defended PSNR vs NFE) and
``provenance.json``. :func:`render_sweep_table` turns ``sweep.csv`` into a markdown table for the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from udcshield.config import ConfigError, Params, SweepSampler, to_dict
from udcshield.defenses.dataset import purify_set
from udcshield.defenses.purifier import DiffusionPurifier, load_purifier, strided_timesteps
from udcshield.evaluation.metrics import psnr
from udcshield.evaluation.tables import read_sweep_rows, sweep_cells, sweep_markdown
from udcshield.models.checkpoint import load_checkpoint
from udcshield.pipeline.common import apply_batched, load_pairs, write_json, write_rows_csv
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import array_name
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import SingleUnitStage, StageContext
from udcshield.progress import ProgressMeter
from udcshield.store.atomic import atomic_dir, write_text_atomic
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import read_images, verified_digest

__all__ = ["COLUMNS", "sweep_dir", "check_sweep", "adversarial_set", "expected_nfe", "EvaluationCounter",
           "measure_setting", "compare_to_reference", "summarize", "run", "write_outputs", "render_sweep_table"]

Progress = Callable[[dict], None] | None
REFERENCE = "ddpm-all"
SETS = ("clean", "adv")
COLUMNS = ("model", "t_star", "setting", "sampler", "num_steps", "eta", "nfe", "nfe_fraction", "seconds",
           "images_per_s", "psnr_clean", "psnr_adv", "delta_clean_db", "delta_adv_db", "tolerance_db",
           "within_tolerance")


def sweep_dir(layout: Layout) -> Path:
    """Folder of the sweep stage's outputs: ``<data root>/sweep``."""
    return layout.root / "sweep"


def check_sweep(params: Params) -> None:
    """ConfigError naming ``sweep.attack`` unless the attack stage crafts it on the base restorers."""
    params.sweep.check_attack(params.attack, "sweep")


def adversarial_set(params: Params, model: str) -> str:
    """Name of the adversarial set the sweep purifies for ``model``: ``<model>/base/<attack>/<largest budget>``."""
    spec = next(a for a in params.attack.attacks if a.name == params.sweep.attack)
    return array_name(f"{model}/base", spec.name, max(spec.budgets))


def expected_nfe(t_star: int, spec: SweepSampler) -> int:
    """Network evaluations per image of one purification: len(strided_timesteps(t_star, num_steps))."""
    return len(strided_timesteps(t_star, spec.num_steps))


class EvaluationCounter:
    """Counts the rows (images) the purifier's UNet is evaluated on, via a forward hook; a context manager.

    ``rows`` / images purified = network evaluations per image.
    """

    def __init__(self, purifier: DiffusionPurifier) -> None:
        self.purifier = purifier
        self.rows = 0
        self._handle: Any = None

    def _hook(self, module: torch.nn.Module, args: tuple, output: Any) -> None:
        self.rows += int(args[0].shape[0])

    def __enter__(self) -> EvaluationCounter:
        self._handle = self.purifier.unet.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_setting(purifier: DiffusionPurifier, restorer: torch.nn.Module, sets: dict[str, torch.Tensor],
                    targets: torch.Tensor, ids: list[str], *, t_star: int, spec: SweepSampler, draws: int, seed: int,
                    batch_size: int, device: torch.device, meter: ProgressMeter | None = None) -> dict[str, Any]:
    """Purify every set ``draws`` times with one setting, restore, score; one result row (no deltas yet).

    All (set, draw) copies are purified together in batches of ``batch_size``; image i of set s in draw d
    gets the noise ``derive_seed(seed, "sweep", "<s>/draw<d>/<ids[i]>")``, the same for every setting.

    Args:
        sets: {"clean": (N, 3, H, W), "adv": (N, 3, H, W)} inputs in [0, 1]; targets: (N, 3, H, W) ground truth.
        ids: N image ids.
        t_star, spec: diffusion depth and reverse-chain setting.

    Returns:
        {"t_star", "setting", "sampler", "num_steps", "eta", "nfe" (measured evaluations per image),
        "seconds" (purification wall time), "images_per_s", "psnr_clean", "psnr_adv" (dB, mean over
        images, averaged over draws)}.
    """
    keys = [(name, draw) for name in sets for draw in range(draws)]
    stacked = torch.cat([sets[name] for name, _ in keys])
    copy_ids = [f"{name}/draw{draw}/{image_id}" for name, draw in keys for image_id in ids]
    with EvaluationCounter(purifier) as counter:
        _sync(device)
        start = time.perf_counter()
        out = purify_set(purifier, stacked, copy_ids, t_star=t_star, num_steps=spec.num_steps, seed=seed,
                         stage="sweep", batch_size=batch_size, device=device, sampler=spec.sampler, eta=spec.eta)
        _sync(device)
        seconds = time.perf_counter() - start
    restored = apply_batched(restorer, out, batch_size, device)
    n = len(ids)
    scores: dict[str, list[float]] = {name: [] for name in sets}
    for k, (name, _) in enumerate(keys):
        scores[name].append(float(psnr(restored[k * n:(k + 1) * n], targets).mean()))
    if meter is not None:
        meter.update(int(stacked.shape[0]), setting=spec.label, t_star=t_star)
    return {"t_star": t_star, "setting": spec.label, "sampler": spec.sampler,
            "num_steps": "all" if spec.num_steps is None else spec.num_steps, "eta": spec.eta,
            "nfe": counter.rows / stacked.shape[0], "seconds": seconds,
            "images_per_s": stacked.shape[0] / seconds if seconds > 0 else float("inf"),
            "psnr_clean": sum(scores["clean"]) / draws, "psnr_adv": sum(scores["adv"]) / draws}


def compare_to_reference(rows: list[dict[str, Any]], tolerance_db: float) -> list[dict[str, Any]]:
    """Add nfe_fraction, delta_clean_db, delta_adv_db (setting minus the full DDPM chain at the same model
    and t*), tolerance_db and within_tolerance (delta_adv_db >= -tolerance_db) to each row; returns new rows in COLUMNS order."""
    refs = {(r["model"], r["t_star"]): r for r in rows if r["setting"] == REFERENCE}
    out = []
    for row in rows:
        ref = refs.get((row["model"], row["t_star"]))
        if ref is None:
            raise ValueError(f"no full DDPM chain ({REFERENCE}) row for {row['model']} at t*={row['t_star']}")
        full = {**row, "nfe_fraction": row["nfe"] / ref["nfe"],
                "delta_clean_db": row["psnr_clean"] - ref["psnr_clean"],
                "delta_adv_db": row["psnr_adv"] - ref["psnr_adv"]}
        full["tolerance_db"] = tolerance_db
        full["within_tolerance"] = bool(full["delta_adv_db"] >= -tolerance_db)
        out.append({key: full[key] for key in COLUMNS})
    return out


def summarize(rows: list[dict[str, Any]], tolerance_db: float, target_fraction: float = 0.1) -> dict[str, Any]:
    """Per model and t*: the cheapest setting other than the full chain within ``tolerance_db`` of its
    defended PSNR, its NFE fraction and whether that is <= ``target_fraction`` (the issue's target).

    Returns {model: {"t<t*>": {...}}} plus ``"statements"``: one sentence per model and t*.
    """
    out: dict[str, Any] = {}
    statements = []
    for row in rows:
        if row["setting"] != REFERENCE:
            continue
        model, t_star = row["model"], row["t_star"]
        candidates = [r for r in rows if r["model"] == model and r["t_star"] == t_star
                      and r["setting"] != REFERENCE and r["within_tolerance"]]
        cell: dict[str, Any] = {"reference_nfe": row["nfe"], "reference_psnr_adv": row["psnr_adv"],
                                "reference_psnr_clean": row["psnr_clean"]}
        if candidates:
            best = min(candidates, key=lambda r: (r["nfe"], -r["psnr_adv"]))
            cell.update(best_setting=best["setting"], best_nfe=best["nfe"], nfe_fraction=best["nfe_fraction"],
                        delta_adv_db=best["delta_adv_db"], meets_target=best["nfe_fraction"] <= target_fraction)
            statements.append(
                f"{model}, t*={t_star}: {best['setting']} is within {tolerance_db:g} dB of the full DDPM chain "
                f"(defended PSNR {best['psnr_adv']:.2f} vs {row['psnr_adv']:.2f} dB, {best['delta_adv_db']:+.2f} dB) "
                f"at {best['nfe']:g} of {row['nfe']:g} network evaluations ({100 * best['nfe_fraction']:.0f} %); "
                f"target of a tenth or fewer {'met' if cell['meets_target'] else 'not met'}.")
        else:
            cell.update(best_setting=None, meets_target=False)
            statements.append(f"{model}, t*={t_star}: no few-step setting is within {tolerance_db:g} dB of the full "
                              f"DDPM chain (defended PSNR {row['psnr_adv']:.2f} dB at {row['nfe']:g} evaluations).")
        out.setdefault(model, {})[f"t{t_star}"] = cell
    out["statements"] = statements
    return out


def measure_sweep(params: Params, layout: Layout, device: torch.device,
                  progress: Progress = None) -> dict[str, Any]:
    """Whole stage: measure every (model, t*, setting), compare with the full chain, write the outputs."""
    cfg = params.sweep
    if not cfg.enabled:
        return write_outputs(params, layout, [], device)
    check_sweep(params)
    inputs, targets, ids = load_pairs(layout.test_store)
    n = min(cfg.max_images, inputs.shape[0])
    inputs, targets, ids = inputs[:n], targets[:n], ids[:n]
    purifier = load_purifier(layout.purifier, device=device)
    for t_star in cfg.t_stars:
        if t_star > purifier.num_train_timesteps:
            raise ConfigError(f"sweep.t_stars: {t_star} exceeds the purifier's {purifier.num_train_timesteps} "
                              "diffusion steps")
    total = len(params.train.runs()) * len(cfg.t_stars) * len(cfg.samplers) * len(SETS) * cfg.draws * n
    meter = ProgressMeter(total=total, label="sweep", emit=progress) if progress is not None else None
    rows = []
    for spec_model in params.train.runs():
        name = spec_model.label
        restorer = load_checkpoint(layout.restorer(name), device=device).eval()
        verified_digest(layout.adversarial, adversarial_set(params, name))  # the whole array, then n rows
        adv = torch.from_numpy(read_images(layout.adversarial, adversarial_set(params, name), rows=slice(0, n)))
        sets = {"clean": inputs, "adv": adv}
        for t_star in cfg.t_stars:
            for spec in cfg.samplers:
                row = measure_setting(purifier, restorer, sets, targets, ids, t_star=t_star, spec=spec,
                                      draws=cfg.draws, seed=params.seed, batch_size=cfg.batch_size, device=device,
                                      meter=meter)
                rows.append({"model": name, **row})
    return write_outputs(params, layout, compare_to_reference(rows, cfg.tolerance_db), device)


def write_outputs(params: Params, layout: Layout, rows: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Write sweep.csv, metrics.json, summary.md, curves/ and provenance.json, each atomically.

    With no rows (sweep disabled) the csv holds only its header and the metrics say ``enabled: false``.
    """
    folder = sweep_dir(layout)
    cfg = params.sweep
    if rows:
        write_rows_csv(rows, folder / "sweep.csv")
    else:
        write_text_atomic(folder / "sweep.csv", ",".join(COLUMNS) + "\n")
    summary = summarize(rows, cfg.tolerance_db) if rows else {"statements": ["sweep disabled (sweep.enabled: false)"]}
    with atomic_dir(folder / "curves") as tmp:
        for (model, sampler) in sorted({(r["model"], r["sampler"]) for r in rows}):
            curve = sorted((r for r in rows if r["model"] == model and r["sampler"] == sampler),
                           key=lambda r: (r["nfe"], r["t_star"]))
            write_rows_csv([{"nfe": r["nfe"], "psnr_adv": r["psnr_adv"], "psnr_clean": r["psnr_clean"],
                             "t_star": r["t_star"], "setting": r["setting"]} for r in curve],
                           tmp / f"{model}_{sampler}.csv")
    lines = ["# Purifier sweep: t* x sampler", "",
             f"Settings compared with the full DDPM chain at the same t*; tolerance {cfg.tolerance_db:g} dB of "
             "defended PSNR (base restorer, purified adversarial inputs).", ""]
    lines += [f"- {s}" for s in summary["statements"]]
    write_text_atomic(folder / "summary.md", "\n".join(lines) + "\n")
    metrics = {k: v for k, v in summary.items() if k != "statements"} if rows else {"enabled": False}
    write_json(metrics, folder / "metrics.json")
    models = sorted({r["model"] for r in rows})
    inputs = {"test": layout.test_store, "adversarial": layout.adversarial, "purifier": layout.purifier,
              **{f"restorer/{m}": layout.restorer(m) for m in models}} if rows else {}
    prov = make_provenance("sweep", to_dict(cfg), inputs=inputs,
                           seeds={"seed": params.seed,
                                  "derivation": "derive_seed(seed, 'sweep', '<set>/draw<d>/<image_id>')"},
                           device=str(device),
                           extra={"adversarial_sets": {m: adversarial_set(params, m) for m in models}})
    write_json(prov, folder / "provenance.json")
    return {"rows": len(rows), "statements": summary["statements"]}


def sweep_table(csv_path: str | Path) -> tuple[list[list[str]], list[str]]:
    """Formatted rows of ``sweep.csv`` (one per model x t* x setting, columns
    :data:`udcshield.evaluation.tables.SWEEP_TABLE_HEADER`) and the comparison statements; both empty when
    the sweep was disabled (header-only csv).
    Raises FileNotFoundError naming the file when it is missing, ValueError on missing columns."""
    rows = read_sweep_rows(csv_path, COLUMNS)
    if not rows:
        return [], []
    return sweep_cells(rows), list(summarize(rows, rows[0]["tolerance_db"])["statements"])


def render_sweep_table(csv_path: str | Path) -> str:
    """Markdown table of ``sweep.csv`` (:func:`sweep_table`) followed by the comparison statements.
    Raises FileNotFoundError naming the file when it is missing."""
    return sweep_markdown(*sweep_table(csv_path))


class SweepStage(SingleUnitStage):
    """One unit: :func:`measure_sweep`."""

    def work(self, ctx: StageContext) -> dict[str, Any]:
        return measure_sweep(ctx.params, ctx.layout, ctx.device, ctx.progress)


STAGE = SweepStage(
    name="sweep",
    desc="Purifier benchmark: t* x sampler (full DDPM, strided DDPM, few-step DDIM) on clean and PGD inputs: "
         "network evaluations, images/s, defended PSNR",
    params=("seed", "sweep", "attack", "train.models", "train.seeds"),
    deps=("data/simulated/test.zarr", "data/attack", "data/restorers", "data/purifier"),
    outs=({"data/sweep/sweep.csv": {"cache": False}}, {"data/sweep/summary.md": {"cache": False}},
          {"data/sweep/provenance.json": {"cache": False}}),
    metrics=({"data/sweep/metrics.json": {"cache": False}},),
    plots=({"data/sweep/curves": {"cache": False}},),
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner (:func:`measure_sweep`)."""
    return run_stage(STAGE, params, layout, device, progress)
