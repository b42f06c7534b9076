"""Stage ``attack``: white-box adversarial test sets per restorer variant x attack x budget.

Each attack is crafted on the bare restorer (base or fine-tuned) with full gradient access, against the
configured objective and reference (Song et al., arXiv 2402.13629: PGD-20 at 1, 2, 4, 8 / 256; FGSM after
Goodfellow et al., 2015). Output: ``adversarial.zarr`` with array ``<variant>/<attack>/<budget>``
(N, 3, H, W) float32 in [0, 1] whose L-inf distance to the clean input is at most budget/256, plus the
cost (iterations, forward-backward passes, seconds) and the realised perturbation norms as attributes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from udcshield.attacks.registry import create_attack
from udcshield.config import AttackSpec, Params, to_dict
from udcshield.models.checkpoint import load_checkpoint
from udcshield.pipeline.common import batches, load_pairs, to_numpy_images
from udcshield.pipeline.layout import Layout
from udcshield.seeding import derive_seed
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import write_store

Progress = Callable[[dict], None] | None


def conditions(params: Params) -> Iterator[tuple[str, AttackSpec, int]]:
    """All (variant, attack spec, budget) combinations the stage crafts."""
    for variant in params.attack.models:
        for spec in params.attack.attacks:
            for budget in spec.budgets:
                yield variant, spec, budget


def array_name(variant: str, attack: str, budget: int) -> str:
    """Name of an adversarial set inside ``adversarial.zarr``."""
    return f"{variant}/{attack}/{budget}"


def attack_kwargs(spec: AttackSpec, budget: int, params: Params) -> dict[str, Any]:
    """Keyword arguments for :func:`udcshield.attacks.registry.create_attack`."""
    kwargs: dict[str, Any] = {"eps": budget / 256.0, "objective": params.attack.objective,
                              "reference": params.attack.reference, "random_start": spec.random_start}
    if spec.name == "pgd":
        kwargs.update(steps=spec.steps, restarts=spec.restarts)
    return kwargs


def craft(model: torch.nn.Module, spec: AttackSpec, budget: int, inputs: torch.Tensor, targets: torch.Tensor,
          image_ids: list[str], params: Params, variant: str, device: torch.device) -> tuple[np.ndarray, dict[str, Any]]:
    """Craft one adversarial set. Returns (adv (N, 3, H, W) float32 in [0, 1], attributes with cost and norms)."""
    model = model.to(device).eval()
    atk = create_attack(spec.name, model, **attack_kwargs(spec, budget, params))
    stage = f"attack/{array_name(variant, spec.name, budget)}"
    advs, cost = [], {"iterations": 0, "forward_backward": 0, "seconds": 0.0}
    start = time.perf_counter()
    for s in batches(inputs.shape[0], params.attack.batch_size):
        seeds = [derive_seed(params.seed, stage, i) for i in image_ids[s]]
        adv = atk(inputs[s].to(device), targets[s].to(device), seeds=seeds)
        advs.append(adv.detach().float().cpu())
        for key in ("iterations", "forward_backward"):
            cost[key] += int(atk.last_cost.get(key, 0))
    cost["seconds"] = round(time.perf_counter() - start, 3)
    adv = torch.cat(advs)
    delta = (adv - inputs).flatten(1)
    eps = np.float32(budget / 256.0)
    linf = delta.abs().amax(dim=1)
    if bool((linf > torch.tensor(eps)).any()):
        raise RuntimeError(f"{stage}: adversarial input exceeds its budget ({float(linf.max())} > {float(eps)})")
    attrs = {"variant": variant, "attack": spec.name, "budget": budget, "eps": float(eps), "cost": cost,
             "linf_max": float(linf.max()), "l2_mean": float(delta.norm(dim=1).mean()),
             "seed_stage": stage}
    return to_numpy_images(adv), attrs


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage: craft every (variant, attack, budget) set and write ``adversarial.zarr``."""
    inputs, targets, ids = load_pairs(layout.test_store)
    results = {}
    models = {v: load_checkpoint(layout.checkpoint(v)) for v in params.attack.models}
    for variant, spec, budget in conditions(params):
        adv, attrs = craft(models[variant], spec, budget, inputs, targets, ids, params, variant, device)
        results[array_name(variant, spec.name, budget)] = (adv, attrs)
        if progress:
            progress({"set": array_name(variant, spec.name, budget), **attrs["cost"]})
    return write_outputs(params, layout, results, device)


def write_outputs(params: Params, layout: Layout, results: dict[str, tuple[np.ndarray, dict[str, Any]]],
                  device: torch.device) -> dict[str, Any]:
    """Write all adversarial sets into one store atomically; return per-set cost and norms."""
    inputs = {"test": layout.test_store, **{f"restorer_{v}": layout.checkpoint(v) for v in params.attack.models}}
    prov = make_provenance("attack", to_dict(params.attack), inputs=inputs,
                           seeds={"seed": params.seed, "derivation": "derive_seed(seed, 'attack/<set>', image_id)"},
                           device=str(device), extra={"sets": sorted(results)})
    with write_store(layout.adversarial, prov) as w:
        for name, (adv, attrs) in results.items():
            w.add_images(name, adv, attrs=attrs)
    return {name: attrs for name, (_, attrs) in results.items()}
