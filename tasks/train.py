"""Tasks of the ``train``, ``train_purifier`` and ``finetune`` stages."""

from __future__ import annotations

from typing import Any

import torch
from prefect import task

from tasks.common import GPU_TAGS, TASK_OPTIONS, progress_logger
from udcshield.config import Params
from udcshield.models.checkpoint import load_checkpoint
from udcshield.pipeline import finetune, train
from udcshield.pipeline.common import load_pairs
from udcshield.pipeline.layout import Layout


@task(name="load-pairs", **TASK_OPTIONS)
def load_split(store: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load (inputs, targets, image_ids) of a simulated split."""
    return load_pairs(store)


@task(name="fit-restorer", tags=GPU_TAGS, task_run_name="fit-restorer-{name}", **TASK_OPTIONS)
def fit_restorer(params: Params, name: str, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device):
    """Train base restorer ``name``; returns (model, history)."""
    return train.fit_restorer(params, name, inputs, targets, device, progress_logger(f"train {name}"))


@task(name="save-restorer", task_run_name="save-restorer-{name}", **TASK_OPTIONS)
def save_restorer(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict],
                  device: torch.device) -> dict[str, Any]:
    """Write the restorer checkpoint and its training curve."""
    return train.save_restorer(params, layout, name, model, history, device)


@task(name="fit-purifier", tags=GPU_TAGS, **TASK_OPTIONS)
def fit_purifier(params: Params, images: torch.Tensor, device: torch.device):
    """Train the diffusion purifier."""
    return train.fit_purifier(params, images, device, progress_logger("train_purifier"))


@task(name="save-purifier", **TASK_OPTIONS)
def save_purifier(params: Params, layout: Layout, purifier: torch.nn.Module, history: list[dict], device: torch.device) -> dict[str, Any]:
    """Write the purifier checkpoint and its training curve."""
    return train.save_purifier_outputs(params, layout, purifier, history, device)


@task(name="finetune-training-sets", tags=GPU_TAGS, **TASK_OPTIONS)
def finetune_training_sets(params: Params, layout: Layout, device: torch.device):
    """The clean training pairs and, for modes purified and mixed, the inputs purified at each t*."""
    return finetune.training_sets(params, layout, device)


@task(name="fit-finetuned", tags=GPU_TAGS, task_run_name="fit-finetuned-{name}", **TASK_OPTIONS)
def fit_finetuned(params: Params, layout: Layout, name: str, clean: tuple[torch.Tensor, torch.Tensor],
                  purified: tuple[torch.Tensor, torch.Tensor] | None, device: torch.device):
    """Fine-tune base restorer ``name`` in ``finetune.mode``; returns (model, history)."""
    model = load_checkpoint(layout.restorer(name))
    history = finetune.fit_finetuned(params, name, model, clean, purified, device,
                                     progress_logger(f"finetune {name}"))
    return model, history


@task(name="save-finetuned", task_run_name="save-finetuned-{name}", **TASK_OPTIONS)
def save_finetuned(params: Params, layout: Layout, name: str, model: torch.nn.Module, history: list[dict], pairs: int,
                   device: torch.device) -> dict[str, Any]:
    """Write the fine-tuned checkpoint and its training curve."""
    return finetune.save_outputs(params, layout, name, model, history, pairs, device)
