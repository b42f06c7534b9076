"""Stage ``attack``: adversarial test sets per restorer variant x attack x budget.

Each attack is crafted on the bare restorer (base or fine-tuned): white-box ones with full gradient
access, black-box ones (SimBA, Square) through a counted query oracle, the universal one on the training
set; all against the configured objective and reference (Song et al., arXiv 2402.13629: PGD-20 at
1, 2, 4, 8 / 256). Output: ``adversarial.zarr`` with array ``<model>/<variant>/<attack>/<budget>`` (N, 3, H, W)
float32 in [0, 1] whose distance to the clean input is within its budget (checked here, exactly), plus
the cost (iterations, forward-backward passes, queries, seconds) and realised norms as attributes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from udcshield.attacks.base import project_linf
from udcshield.attacks.registry import create_attack
from udcshield.attacks.universal import apply_universal, universal_perturbation
from udcshield.config import AttackSpec, Params, to_dict
from udcshield.models.checkpoint import load_checkpoint
from udcshield.pipeline.common import batches, load_pairs, to_numpy_images
from udcshield.pipeline.layout import Layout
from udcshield.seeding import derive_seed, torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import write_store

Progress = Callable[[dict], None] | None


def restorers(params: Params) -> Iterator[str]:
    """Every attacked restorer as ``<model>/<variant>`` (variant ``base`` or ``finetuned``)."""
    for spec in params.train.models:
        for variant in params.attack.models:
            yield f"{spec.name}/{variant}"


def load_restorer(layout: Layout, source: str) -> torch.nn.Module:
    """Load restorer ``<model>/<variant>``."""
    model, variant = source.split("/")
    return load_checkpoint(layout.checkpoint(model, variant))


def conditions(params: Params) -> Iterator[tuple[str, AttackSpec, int]]:
    """All (restorer, attack spec, budget) combinations the stage crafts; restorer = ``<model>/<variant>``."""
    for source in restorers(params):
        for spec in params.attack.attacks:
            for budget in spec.budgets:
                yield source, spec, budget


def array_name(source: str, attack: str, budget: int) -> str:
    """Name of an adversarial set inside ``adversarial.zarr``: ``<model>/<variant>/<attack>/<budget>``."""
    return f"{source}/{attack}/{budget}"


L2_ATTACKS = ("pgd_l2",)


def perturbation_norm(name: str) -> str:
    """The norm a stored perturbation of attack ``name`` is bounded in: ``linf`` or ``l2``."""
    return "l2" if name in L2_ATTACKS else "linf"


def budget_eps(name: str, budget: int, image_shape: tuple[int, ...]) -> float:
    """Radius of ``budget`` (units of 1/256) for attack ``name``; L2 attacks use the same RMS level."""
    eps = budget / 256.0
    if perturbation_norm(name) == "l2":
        return eps * math.sqrt(math.prod(image_shape))
    return eps


def attack_kwargs(spec: AttackSpec, budget: int, params: Params, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """Keyword arguments for :func:`udcshield.attacks.registry.create_attack`."""
    kwargs: dict[str, Any] = {"objective": params.attack.objective, "reference": params.attack.reference,
                              **spec.kwargs}
    if spec.name != "cw":  # minimum-norm: projected onto the L-inf ball afterwards
        kwargs["eps"] = budget_eps(spec.name, budget, image_shape)
    return kwargs


def craft(model: torch.nn.Module, spec: AttackSpec, budget: int, inputs: torch.Tensor, targets: torch.Tensor,
          image_ids: list[str], params: Params, source: str, device: torch.device,
          train: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Craft one adversarial set. Returns (adv (N, 3, H, W) float32 in [0, 1], attributes with cost and norms).

    ``train`` (inputs, targets) is needed by ``universal`` only: its one perturbation is optimised on the
    training set and added to every test input.
    """
    model = model.to(device).eval()
    stage = f"attack/{array_name(source, spec.name, budget)}"
    start = time.perf_counter()
    if spec.name == "universal":
        adv, cost = _universal(model, spec, budget, inputs, train, params, stage, device)
    else:
        adv, cost = _per_image(model, spec, budget, inputs, targets, image_ids, params, stage, device)
    cost["seconds"] = round(time.perf_counter() - start, 3)
    if spec.name == "cw":
        adv = project_linf(adv, inputs, budget / 256.0)
    return to_numpy_images(adv), _norm_attrs(spec, budget, adv, inputs, source, stage, cost)


def _per_image(model, spec, budget, inputs, targets, image_ids, params, stage, device):
    atk = create_attack(spec.name, model, **attack_kwargs(spec, budget, params, tuple(inputs.shape[1:])))
    advs, cost = [], {"iterations": 0, "forward_backward": 0, "queries": 0}
    for s in batches(inputs.shape[0], params.attack.batch_size):
        seeds = [derive_seed(params.seed, stage, i) for i in image_ids[s]]
        advs.append(atk(inputs[s].to(device), targets[s].to(device), seeds=seeds).detach().float().cpu())
        for key in cost:
            cost[key] += int(atk.last_cost.get(key, 0))
    return torch.cat(advs), cost


def _universal(model, spec, budget, inputs, train, params, stage, device):
    if train is None:
        raise ValueError("the universal attack needs the training set")
    kwargs = {"steps": 100, "lr": budget / 256.0 / 10, **spec.kwargs}
    delta = universal_perturbation(model, (train[0].to(device), train[1].to(device)), budget / 256.0,
                                   generator=torch_generator(params.seed, stage, device=device),
                                   objective=params.attack.objective, reference=params.attack.reference,
                                   **kwargs)
    adv = project_linf(apply_universal(inputs.to(device), delta).float(), inputs.to(device), budget / 256.0)
    return adv.cpu(), {"iterations": int(kwargs["steps"]), "forward_backward": int(kwargs["steps"]), "queries": 0}


def _norm_attrs(spec: AttackSpec, budget: int, adv: torch.Tensor, inputs: torch.Tensor, source: str, stage: str,
                cost: dict[str, Any]) -> dict[str, Any]:
    """Check the stored perturbation against its budget and describe it."""
    delta = (adv - inputs).flatten(1)
    norm = perturbation_norm(spec.name)
    eps = budget_eps(spec.name, budget, tuple(inputs.shape[1:]))
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


def run(params: Params, layout: Layout, device: torch.device, progress: Progress = None) -> dict[str, Any]:
    """Whole stage: craft every (variant, attack, budget) set and write ``adversarial.zarr``."""
    inputs, targets, ids = load_pairs(layout.test_store)
    train = training_pairs(params, layout)
    results = {}
    models = {source: load_restorer(layout, source) for source in restorers(params)}
    for source, spec, budget in conditions(params):
        adv, attrs = craft(models[source], spec, budget, inputs, targets, ids, params, source, device, train)
        results[array_name(source, spec.name, budget)] = (adv, attrs)
        if progress:
            progress({"set": array_name(source, spec.name, budget), **attrs["cost"]})
    return write_outputs(params, layout, results, device)


def write_outputs(params: Params, layout: Layout, results: dict[str, tuple[np.ndarray, dict[str, Any]]],
                  device: torch.device) -> dict[str, Any]:
    """Write all adversarial sets into one store atomically; return per-set cost and norms."""
    inputs = {"test": layout.test_store,
              **{f"restorer {src}": layout.checkpoint(*src.split("/")) for src in restorers(params)}}
    prov = make_provenance("attack", to_dict(params.attack), inputs=inputs,
                           seeds={"seed": params.seed, "derivation": "derive_seed(seed, 'attack/<set>', image_id)"},
                           device=str(device), extra={"sets": sorted(results)})
    with write_store(layout.adversarial, prov) as w:
        for name, (adv, attrs) in results.items():
            w.add_images(name, adv, attrs=attrs)
    return {name: attrs for name, (_, attrs) in results.items()}
