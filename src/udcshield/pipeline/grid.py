"""Restorations for the report's image grid, made by the evaluate stage (the report runs no restorer).

For the first ``report.grid_images`` test images and every restorer variant ``<model>/<variant>`` the grid
holds, per defense (``none``, ``purified``) and condition (``clean``; the grid attack ``report.grid_attack``,
or the first of ``attack.attacks``, at its largest budget, crafted on that variant), the restorer's input
and its output:

    <model>/<variant>/<defense>/<condition>/input      (k, 3, H, W) float32 in [0, 1]
    <model>/<variant>/<defense>/<condition>/restored   (k, 3, H, W) float32

``<condition>`` is ``clean`` or ``<attack>_<budget>`` (:func:`udcshield.pipeline.names.condition_label`).
The inputs are copies of the first k images of ``test.zarr`` (``inputs``), ``adversarial.zarr`` and
``purified.zarr``, so the grid store together with the test store's targets is all the report reads to
draw the grid. The store is ``<data root>/evaluate/grid.zarr``; its attributes carry the provenance, the
image ids, the attack and budget, and the recorded digests of the source arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from udcshield.config import AttackSpec, Params
from udcshield.pipeline.common import apply_batched, load_pairs, to_numpy_images
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import CLEAN, DEFENSES, array_name, condition_label, restorers, split_source
from udcshield.store.provenance import input_digests, make_provenance
from udcshield.store.zarr_io import read_images, store_attrs, verified_digest, write_store

ROLES = ("input", "restored")


def grid_attack(params: Params) -> AttackSpec:
    """The attack shown in the image grids: ``report.grid_attack`` or the first configured attack."""
    name = params.report.grid_attack or params.attack.attacks[0].name
    return next(s for s in params.attack.attacks if s.name == name)


def grid_conditions(params: Params) -> tuple[str, str]:
    """The grid's two conditions: ``clean`` and ``<grid attack>_<its largest budget>``."""
    spec = grid_attack(params)
    return CLEAN, condition_label(spec.name, max(spec.budgets))


def grid_array(source: str, defense: str, condition: str, role: str) -> str:
    """Array name in the grid store: ``<model>/<variant>/<defense>/<condition>/<role>``."""
    split_source(source)
    if defense not in DEFENSES or role not in ROLES:
        raise ValueError(f"grid array: defense must be one of {DEFENSES} and role one of {ROLES}, "
                         f"got {defense!r}, {role!r}")
    return f"{source}/{defense}/{condition}/{role}"


def _source_array(params: Params, layout: Layout, source: str, defense: str, condition: str) -> tuple[Any, str]:
    """(store, array name) holding the restorer's input for one grid cell."""
    if condition == CLEAN:
        return (layout.purified, CLEAN) if defense == "purified" else (layout.test_store, "inputs")
    spec = grid_attack(params)
    name = array_name(source, spec.name, max(spec.budgets))
    return (layout.purified if defense == "purified" else layout.adversarial), name


def write_grid(params: Params, layout: Layout, models: dict[str, torch.nn.Module],
               device: torch.device) -> dict[str, Any]:
    """Restore the grid images with every restorer variant and write ``layout.grid_store``.

    Args:
        models: restorer variant ``<model>/<variant>`` -> restorer, for every variant of
            :func:`udcshield.pipeline.names.restorers` (the evaluate stage's loaded models).
        device: where the restorers run (batches of ``evaluate.batch_size``).

    Reads params ``report.grid_images``, ``report.grid_attack``, ``attack.attacks``, ``attack.models``,
    ``train.models`` and ``evaluate.batch_size``. Returns {store, images, attack, budget, arrays}.
    """
    missing = [s for s in restorers(params) if s not in models]
    if missing:
        raise KeyError(f"write_grid: no restorer given for {', '.join(missing)}")
    _, _, ids = load_pairs(layout.test_store)
    k = min(params.report.grid_images, len(ids))
    spec = grid_attack(params)
    budget = max(spec.budgets)
    arrays: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for source in restorers(params):
        model = models[source].to(device).eval()
        for defense in DEFENSES:
            for condition in grid_conditions(params):
                store, name = _source_array(params, layout, source, defense, condition)
                sources[f"{store.name}/{name}"] = verified_digest(store, name)  # the whole array, then k rows
                x = torch.from_numpy(read_images(store, name, rows=slice(0, k)))
                restored = apply_batched(model, x, params.evaluate.batch_size, device, stage=f"grid/{source}")
                arrays[grid_array(source, defense, condition, "input")] = to_numpy_images(x)
                arrays[grid_array(source, defense, condition, "restored")] = to_numpy_images(restored)
    checkpoints = {f"restorer {s}": layout.checkpoint(*split_source(s)) for s in restorers(params)}
    settings = {"report": {"grid_images": params.report.grid_images, "grid_attack": params.report.grid_attack},
                "evaluate": {"batch_size": params.evaluate.batch_size}}
    prov = make_provenance("evaluate", settings, device=str(device),
                           extra={"image_ids": ids[:k], "attack": spec.name, "budget": budget,
                                  "conditions": list(grid_conditions(params)), "defenses": list(DEFENSES),
                                  "restorers": list(restorers(params)), "input_arrays_sha256": sources,
                                  "checkpoints": input_digests(checkpoints)})
    with write_store(layout.grid_store, prov) as w:
        for name, images in arrays.items():
            w.add_images(name, images)
    return {"store": layout.grid_store.as_posix(), "images": k, "attack": spec.name, "budget": budget,
            "arrays": sorted(arrays)}


def read_grid(layout: Layout, source: str, defense: str, condition: str, role: str) -> np.ndarray:
    """One array of the grid store, (k, 3, H, W) float32."""
    return read_images(layout.grid_store, grid_array(source, defense, condition, role))


def grid_info(layout: Layout) -> dict[str, Any]:
    """The grid store's attributes: image ids, attack, budget, conditions, restorers, provenance."""
    return store_attrs(layout.grid_store)
