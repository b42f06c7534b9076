"""Stage ``attack``: adversarial test sets per restorer variant x attack x budget.

Each attack is crafted on the bare restorer (base or fine-tuned): white-box ones with full gradient
access, black-box ones (SimBA, Square) through a counted query oracle, the universal one on the training
set; all against the configured objective and reference (Song et al., arXiv 2402.13629: PGD-20 at
1, 2, 4, 8 / 256). Output: ``adversarial.zarr`` with array ``<model>/<variant>/<attack>/<budget>`` (N, 3, H, W)
float32 in [0, 1] whose distance to the clean input is within its budget (checked here, exactly), plus
the cost (iterations, forward-backward passes, queries, seconds) and realised norms as attributes; an
iterative attack's set also holds its mean objective per iteration and the convergence probe's record
(a rerun on the first test images with twice the steps and one more restart;
:mod:`udcshield.pipeline.convergence`).

Work is split into shards of ``attack.shard_size`` consecutive test images per set (the universal attack,
whose one perturbation is optimised on the training set, is one shard). Each shard is crafted by
:func:`run_shard` (on any worker: it reads its inputs and checkpoint from the data root) and kept in the
shard cache (:mod:`udcshield.pipeline.shards`) as soon as it is done; :func:`assemble` concatenates the
shards into the final store. Rerunning after a crash recomputes only the missing shards. Random starts
use per-image seeds ``derive_seed(seed, 'attack/<set>', image_id)``, so the result does not depend on the
shard size, the runner or the order in which shards finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from udcshield.accel import AccelCache, accelerate_restorer_for
from udcshield.attacks.base import project_linf
from udcshield.attacks.quantize import quantize_linf
from udcshield.attacks.budget import budget_to_linf
from udcshield.attacks.objectives import ClampedOutput
from udcshield.attacks.registry import attack_constructor_eps, budget_mode, budget_radius, create_attack, threat_norm
from udcshield.attacks.universal import apply_universal, universal_perturbation
from udcshield.config import AttackSpec, Params, to_dict
from udcshield.pipeline.common import apply_batched, check_rgb_pairs, load_pairs, run_batched, to_numpy_images
from udcshield.pipeline.checkpoints import load_restorer, verified_checkpoint_digest
from udcshield.pipeline.convergence import add_history, convergence_record, history_sums, mean_objective, probe_spec
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import array_name, conditions, restorers
from udcshield.pipeline.runner import run_stage
from udcshield.pipeline.stage import StageContext, Unit
from udcshield.pipeline.shards import (Shard, ShardCache, ShardedStage, cache_root, code_digest, ids_digest, make_shards,
                                      shard_units, units_by_set)
from udcshield.seeding import derive_seed, torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import read_images, store_attrs, verified_digest, write_store

Progress = Callable[[dict], None] | None


PROBE_IMAGES = 16  # test images on which accel.amp 'auto' compares bf16 with float32


def attack_kwargs(spec: AttackSpec, budget: int, params: Params, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """Keyword arguments for :func:`udcshield.attacks.registry.create_attack`."""
    kwargs: dict[str, Any] = {"objective": params.attack.objective, "reference": params.attack.reference,
                              **spec.kwargs}
    eps = attack_constructor_eps(spec.name, budget, image_shape)
    if eps is not None:  # None: a minimum-norm attack, projected onto its threat ball afterwards
        kwargs["eps"] = eps
    return kwargs


def craft(model: torch.nn.Module, spec: AttackSpec, budget: int, inputs: torch.Tensor, targets: torch.Tensor,
          image_ids: list[str], params: Params, source: str, device: torch.device,
          train: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Craft one adversarial set. Returns (adv (N, 3, H, W) float32 in [0, 1], attributes with cost and norms).

    ``train`` (inputs, targets) is needed by ``universal`` only: its one perturbation is optimised on the
    training set and added to every test input.
    """
    stage = f"attack/{array_name(source, spec.name, budget)}"
    adv, cost = craft_images(model, spec, budget, inputs, targets, image_ids, params, source, device, train)
    return to_numpy_images(adv), _norm_attrs(spec, budget, adv, inputs, source, stage, cost)


def craft_images(model: torch.nn.Module, spec: AttackSpec, budget: int, inputs: torch.Tensor, targets: torch.Tensor,
                 image_ids: list[str], params: Params, source: str, device: torch.device,
                 train: tuple[torch.Tensor, torch.Tensor] | None = None,
                 probe: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None,
                 accel_cache: AccelCache | None = None,
                 ) -> tuple[torch.Tensor, dict[str, Any]]:
    """Adversarial inputs (N, 3, H, W) float32 in [0, 1] on CPU for these images, and their cost.

    The attack raises the distortion of the output clamped to [0, 1] (``attack.output: clamped``, what PSNR
    scores) or of the raw output; with ``attack.quantize`` an L-inf set is rounded to 8-bit levels inside its
    budget (:func:`udcshield.attacks.quantize.quantize_linf`). The cost counts iterations, forward-backward
    passes, queries and seconds. Image ``i``'s random start
    comes from ``derive_seed(seed, 'attack/<set>', image_ids[i])``, so any subset (shard) of a set gets
    the same random starts as in the whole set. ``probe()`` gives the (inputs, targets) on which
    ``accel.amp: auto`` decides bf16 on CUDA (default: the first 16 of these images); ``accel_cache``
    keeps that choice and the accelerated (compiled) wrapper across calls.
    """
    model = model.to(device).eval()
    probe = probe if probe is not None else (lambda: (inputs[:PROBE_IMAGES], targets[:PROBE_IMAGES]))
    model, accel = accelerate_restorer_for(params.accel, model, probe, device, accel_cache)
    if params.attack.output == "clamped":
        model = ClampedOutput(model)
    stage = f"attack/{array_name(source, spec.name, budget)}"
    start = time.perf_counter()
    if spec.name == "universal":
        adv, cost = _universal(model, spec, budget, inputs, train, params, stage, device)
    else:
        adv, cost = _per_image(model, spec, budget, inputs, targets, image_ids, params, stage, device)
    cost["seconds"] = round(time.perf_counter() - start, 3)
    cost["accel"] = accel
    if budget_mode(spec.name) == "projected":
        adv = project_linf(adv, inputs, budget_radius(spec.name, budget, tuple(inputs.shape[1:])))
    if quantized(params, spec):
        adv = quantize_linf(adv, inputs, budget_radius(spec.name, budget, tuple(inputs.shape[1:])))
    return adv, cost


def quantized(params: Params, spec: AttackSpec) -> bool:
    """Whether ``spec``'s sets are rounded to 8-bit levels: ``attack.quantize`` and an L-inf threat model."""
    return params.attack.quantize and threat_norm(spec.name) == "linf"


def _per_image(model, spec, budget, inputs, targets, image_ids, params, stage, device):
    atk = create_attack(spec.name, model, **attack_kwargs(spec, budget, params, tuple(inputs.shape[1:])))
    cost: dict[str, Any] = {"iterations": 0, "forward_backward": 0, "queries": 0}
    history: dict[str, Any] | None = None

    def one_batch(s: slice) -> torch.Tensor:
        nonlocal history
        seeds = [derive_seed(params.seed, stage, i) for i in image_ids[s]]
        adv = atk(inputs[s].to(device), targets[s].to(device), seeds=seeds).detach().float().cpu()
        for key in ("iterations", "forward_backward", "queries"):  # counted only for batches that completed
            cost[key] += int(atk.last_cost.get(key, 0))
        if "successes" in atk.last_cost:  # a minimum-norm attack: images that met its success rule
            cost["successes"] = cost.get("successes", 0) + int(atk.last_cost["successes"])
        history = add_history(history, history_sums(atk))
        return adv

    advs = run_batched(one_batch, inputs.shape[0], params.attack.batch_size, stage)
    if history is not None:
        cost["objective"] = history  # summed over images; the set's mean curve is made in assemble
    return torch.cat(advs), cost


def _universal(model, spec, budget, inputs, train, params, stage, device):
    if train is None:
        raise ValueError("the universal attack needs the training set")
    eps = budget_radius(spec.name, budget, tuple(inputs.shape[1:]))
    kwargs = {"steps": 100, "lr": budget_to_linf(budget) / 10, **spec.kwargs}
    delta = universal_perturbation(model, (train[0].to(device), train[1].to(device)), eps,
                                   generator=torch_generator(params.seed, stage, device=device),
                                   objective=params.attack.objective, reference=params.attack.reference,
                                   **kwargs)
    adv = project_linf(apply_universal(inputs.to(device), delta).float(), inputs.to(device), eps)
    return adv.cpu(), {"iterations": int(kwargs["steps"]), "forward_backward": int(kwargs["steps"]), "queries": 0}


def _norm_attrs(spec: AttackSpec, budget: int, adv: torch.Tensor, inputs: torch.Tensor, source: str, stage: str,
                cost: dict[str, Any]) -> dict[str, Any]:
    """Check the stored perturbation against its budget and describe it."""
    delta = (adv - inputs).flatten(1)
    norm = threat_norm(spec.name)
    eps = budget_radius(spec.name, budget, tuple(inputs.shape[1:]))
    realised = delta.abs().amax(dim=1) if norm == "linf" else delta.double().norm(dim=1)
    limit = float(np.float32(eps)) if norm == "linf" else eps * (1 + 1e-6)
    if float(realised.max()) > limit:
        raise RuntimeError(f"{stage}: adversarial input exceeds its {norm} budget ({float(realised.max())} > {eps})")
    return {"restorer": source, "attack": spec.name, "budget": budget, "norm": norm, "eps": float(eps),
            "cost": cost, "norm_max": float(realised.max()), "linf_max": float(delta.abs().max()),
            "l2_mean": float(delta.norm(dim=1).mean()), "seed_stage": stage}


def training_pairs(params: Params, layout: Layout) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Training (inputs, targets) when an attack needs them (``universal``), else None."""
    if any(spec.name == "universal" for spec in params.attack.attacks):
        return load_pairs(layout.train_store)[:2]
    return None




# ------------------------------------------------------------------------------------------ shards
def spec_of(params: Params, set_name: str) -> tuple[str, AttackSpec, int]:
    """(restorer ``<model>/<variant>``, attack spec, budget) of set ``<model>/<variant>/<attack>/<budget>``."""
    for source, spec, budget in conditions(params):
        if array_name(source, spec.name, budget) == set_name:
            return source, spec, budget
    raise KeyError(f"{set_name!r} is not an attack set of these params")


def shard_cache(params: Params, layout: Layout) -> ShardCache:
    """The attack stage's shard cache (``runner.shard_cache`` or ``<data root>/.shards``)."""
    return ShardCache(cache_root(params.runner.shard_cache, layout.root), "attack")


def plan(params: Params, layout: Layout, device: torch.device) -> dict[str, list[Shard]]:
    """Every set's shards (set name -> shards in image order), keyed by everything their content depends on.

    Key material: seed, objective, reference, output (clamped or raw), quantize, batch and shard size, the attack's spec, the restorer
    checkpoint's digest, the content digests of the test inputs and targets (and of the training pairs
    for ``universal``; recomputed from the stored data and checked against the recorded ones, so an
    altered or non-finite input is refused here, before any work), the image ids, the code digest and the
    device type.
    """
    attrs = store_attrs(layout.test_store)
    ids = list(attrs["image_ids"])
    common = {"stage": "attack", "seed": params.seed, "objective": params.attack.objective,
              "reference": params.attack.reference, "output": params.attack.output,
              "quantize": params.attack.quantize, "batch_size": params.attack.batch_size,
              "shard_size": params.attack.shard_size, "code": code_digest(), "device": device.type,
              "accel": to_dict(params.accel) if device.type == "cuda" else None,
              "inputs": verified_digest(layout.test_store, "inputs"),
              "targets": verified_digest(layout.test_store, "targets"), "ids": ids_digest(ids)}
    checkpoints = {source: verified_checkpoint_digest(layout.checkpoint(*source.split("/")), "restorer")
                   for source in restorers(params)}
    out: dict[str, list[Shard]] = {}
    for source, spec, budget in conditions(params):
        material = {**common, "restorer": checkpoints[source], "spec": to_dict(spec), "budget": budget}
        size = params.attack.shard_size
        if spec.name == "universal":  # one perturbation optimised on the training set: one shard
            material["train"] = [verified_digest(layout.train_store, name) for name in ("inputs", "targets")]
            size = max(1, len(ids))
        name = array_name(source, spec.name, budget)
        out[name] = make_shards(name, len(ids), size, material)
    return out


def craft_shard(params: Params, layout: Layout, shard: Shard, device: torch.device,
                model: torch.nn.Module | None = None,
                accel_cache: AccelCache | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Craft one shard: (adv (shard.size, 3, H, W) float32 in [0, 1], cost).

    Reads only the shard's images from the test store; loads the restorer checkpoint unless ``model`` is
    given (the same checkpoint, already loaded).
    """
    source, spec, budget = spec_of(params, shard.set_name)
    inputs = torch.from_numpy(read_images(layout.test_store, "inputs", rows=shard.rows))
    targets = torch.from_numpy(read_images(layout.test_store, "targets", rows=shard.rows))
    check_rgb_pairs(layout.test_store, inputs, targets)
    ids = list(store_attrs(layout.test_store)["image_ids"])[shard.rows]
    train = load_pairs(layout.train_store)[:2] if spec.name == "universal" else None
    model = load_restorer(layout, source) if model is None else model
    adv, cost = craft_images(model, spec, budget, inputs, targets, ids, params, source, device, train,
                             probe=lambda: probe_pairs(layout), accel_cache=accel_cache)
    return to_numpy_images(adv), cost


def probe_pairs(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """The first :data:`PROBE_IMAGES` test (inputs, targets), (n, 3, H, W) in [0, 1]: where
    ``accel.amp: auto`` measures bf16 against float32, the same images whichever shard asks."""
    rows = slice(0, PROBE_IMAGES)
    return (torch.from_numpy(read_images(layout.test_store, "inputs", rows=rows)),
            torch.from_numpy(read_images(layout.test_store, "targets", rows=rows)))


def run_shard(params: Params, layout: Layout, shard: Shard, device: torch.device,
              model: torch.nn.Module | None = None, accel_cache: AccelCache | None = None) -> dict[str, Any]:
    """Craft ``shard`` unless the cache already holds it; write it to the cache as soon as it is done.

    Returns {"set", "start", "stop", "images", "computed" (False when reused from the cache), "device"}.
    ``accel_cache`` (CUDA runs) keeps the amp choice and the compiled restorer wrapper across shards.
    """
    def compute() -> tuple[np.ndarray, dict[str, Any]]:
        adv, cost = craft_shard(params, layout, shard, device, model, accel_cache)
        return adv, {"cost": cost}

    return shard_cache(params, layout).ensure(shard, compute, device)


def assemble(params: Params, layout: Layout, shards: dict[str, list[Shard]], device: torch.device,
             runner: str = "local") -> dict[str, Any]:
    """Read every set's shards from the cache, check budgets, write ``adversarial.zarr``; per-set attributes.

    The cost of a set is the sum over its shards; an iterative set also gets its mean objective per
    iteration (``objective_history``) and the convergence probe's record (``convergence``,
    :func:`convergence_check`). Unless ``runner.keep_shards``, the shards are removed
    from the cache once the store is in place.
    """
    cache = shard_cache(params, layout)
    inputs = torch.from_numpy(read_images(layout.test_store, "inputs"))
    models: dict[str, torch.nn.Module] = {}
    results = {}
    for name, parts in shards.items():
        source, spec, budget = spec_of(params, name)
        arrays, cost, history = [], {}, None
        for shard in parts:
            images, attrs = cache.read(shard)
            arrays.append(images)
            for key, value in attrs.get("cost", {}).items():  # counts add up; labels (accel) are kept
                if key == "objective":
                    history = add_history(history, value)
                else:
                    cost[key] = cost.get(key, 0) + value if isinstance(value, (int, float)) else value
        cost["seconds"] = round(float(cost.get("seconds", 0.0)), 3)
        adv = torch.from_numpy(np.concatenate(arrays))
        attrs = _norm_attrs(spec, budget, adv, inputs, source, f"attack/{name}", cost)
        extra: dict[str, Any] = {"output": params.attack.output, "quantized": quantized(params, spec)}
        if history is not None:
            extra["objective_history"] = mean_objective(history)
        check = convergence_check(params, layout, name, adv, device, models) if history is not None else None
        if check is not None:
            extra["convergence"] = check
        results[name] = (to_numpy_images(adv), {**attrs, **extra, "shards": len(parts)})
    summary = write_outputs(params, layout, results, device, runner=runner)
    if not params.runner.keep_shards:
        cache.remove(shard for parts in shards.values() for shard in parts)
    return summary


def convergence_check(params: Params, layout: Layout, name: str, adv: torch.Tensor, device: torch.device,
                      models: dict[str, torch.nn.Module]) -> dict[str, Any] | None:
    """Rerun set ``name``'s attack on the first ``attack.convergence.probe_images`` test images with twice
    the steps and one more restart (same per-image seeds) and compare the restorer's PSNR there with the
    stored set's ``adv`` (N, 3, H, W) in [0, 1] (:mod:`udcshield.pipeline.convergence`).

    Returns the record with the probe's cost, or None when the check is off or the attack has no steps.
    ``models`` caches the loaded restorers across sets.
    """
    cfg = params.attack.convergence
    source, spec, budget = spec_of(params, name)
    if not cfg.enabled or spec.name == "universal":
        return None
    rows = slice(0, min(cfg.probe_images, adv.shape[0]))
    inputs = torch.from_numpy(read_images(layout.test_store, "inputs", rows=rows))
    targets = torch.from_numpy(read_images(layout.test_store, "targets", rows=rows))
    if source not in models:
        models[source] = load_restorer(layout, source)
    model = models[source].to(device).eval()
    atk = create_attack(spec.name, model, **attack_kwargs(spec, budget, params, tuple(inputs.shape[1:])))
    probe = probe_spec(spec, atk)
    if probe is None:
        return None
    ids = list(store_attrs(layout.test_store)["image_ids"])[rows]
    longer, cost = craft_images(model, probe, budget, inputs, targets, ids, params, source, device)
    size = params.attack.batch_size
    restored = apply_batched(model, adv[rows], size, device)
    restored_probe = apply_batched(model, longer, size, device)
    record = convergence_record(spec, probe, restored, restored_probe, targets, cfg.tolerance_db, atk)
    cost.pop("objective", None)
    return {**record, "probe_cost": {k: v for k, v in cost.items() if k != "accel"}}


def write_outputs(params: Params, layout: Layout, results: dict[str, tuple[np.ndarray, dict[str, Any]]],
                  device: torch.device, runner: str = "local") -> dict[str, Any]:
    """Write all adversarial sets into one store atomically; return per-set cost and norms."""
    inputs = {"test": layout.test_store,
              **{f"restorer {src}": layout.checkpoint(*src.split("/")) for src in restorers(params)}}
    prov = make_provenance("attack", to_dict(params.attack), inputs=inputs,
                           seeds={"seed": params.seed, "derivation": "derive_seed(seed, 'attack/<set>', image_id)"},
                           device=str(device), extra={"sets": sorted(results), "runner": runner})
    with write_store(layout.adversarial, prov) as w:
        for name, (adv, attrs) in results.items():  # 8-bit sets as uint8 levels, decoded exactly on read
            w.add_images(name, adv, attrs=attrs, encoding="uint8" if attrs.get("quantized") else "float32")
    return {name: attrs for name, (_, attrs) in results.items()}


class AttackStage(ShardedStage):
    """Units: shards of every (restorer variant, attack, budget) set; assemble: ``adversarial.zarr``."""

    def plan(self, ctx: StageContext) -> list[Unit]:
        return shard_units(plan(ctx.params, ctx.layout, ctx.device))

    def prepare(self, ctx: StageContext) -> dict[str, Any]:
        cache = AccelCache() if ctx.device.type == "cuda" else None  # acceleration is a no-op on CPU
        return {"models": {source: load_restorer(ctx.layout, source) for source in restorers(ctx.params)},
                "accel_cache": cache}

    def run_unit(self, ctx: StageContext, unit: Unit, resources: Any) -> dict[str, Any]:
        if resources is None:
            return run_shard(ctx.params, ctx.layout, unit.payload, ctx.device)
        model = resources["models"][spec_of(ctx.params, unit.payload.set_name)[0]]
        return run_shard(ctx.params, ctx.layout, unit.payload, ctx.device, model, resources["accel_cache"])

    def assemble(self, ctx, units, results, resources) -> dict[str, Any]:
        return assemble(ctx.params, ctx.layout, units_by_set(list(units)), ctx.device, ctx.runner)


STAGE = AttackStage(
    name="attack",
    desc="Craft every adversarial test set (restorer variant x attack x budget) on the bare restorers, "
         "shard by shard",
    params=("accel", "seed", "attack", "train.models", "train.seeds"),
    deps=("data/simulated", "data/restorers", "data/finetuned"),
    outs=("data/attack",),
    sections=("attack",),
    distributed=True,
)


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage on the local runner: every shard in turn (reusing finished ones), then the store.

    ``progress`` receives one :class:`~udcshield.progress.ProgressMeter` row per shard (images done,
    rate, ETA, set, shard range, computed or reused).
    """
    return run_stage(STAGE, params, layout, device, progress)
