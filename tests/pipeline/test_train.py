"""The ``train`` stage with a user's own model: ``module:callable`` + label + given weights, not trained (the
checkpoint holds the given weights, the curve says step 0), next to a registry model fine-tuned from given
weights; downstream stages read ``data/restorers/<label>`` as usual."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from tests.own_model import assert_state_equal, given_weights, write_own_module, write_weights
from tests.pipeline_fixtures import deep_update, tiny_params
from udcshield.config import params_from_dict
from udcshield.models.checkpoint import load_checkpoint, read_checkpoint_config, read_weights_file
from udcshield.models.registry import create_restorer
from udcshield.pipeline import train
from udcshield.pipeline.checkpoints import load_restorer
from udcshield.pipeline.layout import Layout
from udcshield.pipeline.names import restorers
from udcshield.preflight import preflight
from udcshield.seeding import torch_generator
from udcshield.store.provenance import make_provenance
from udcshield.store.zarr_io import write_store
from udcshield.training.restorer import draw_batch

N, SIZE, CPU = 4, 16, torch.device("cpu")


def _write_train_store(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    targets = rng.uniform(0.1, 0.9, (N, 3, SIZE, SIZE)).astype(np.float32)
    inputs = (0.7 * targets + 0.1).astype(np.float32)
    ids = [f"img/{i:03d}" for i in range(N)]
    with write_store(layout.train_store, {**make_provenance("simulate", {}), "image_ids": ids, "split": "train"}) as w:
        w.add_images("inputs", inputs)
        w.add_images("targets", targets)
    return torch.from_numpy(inputs), torch.from_numpy(targets)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Params with an own untrained model, a registry model fine-tuned from given weights, and one from scratch;
    the train store of N tiny pairs."""
    module = write_own_module(tmp_path, monkeypatch)
    own_weights = write_weights(tmp_path / "own.safetensors", given_weights(width=4))
    reference = create_restorer("resunet_tiny", generator=torch.Generator().manual_seed(11))
    res_weights = write_weights(tmp_path / "res.pt", reference.state_dict())
    models = [{"name": f"{module}:make_net", "label": "mine", "kwargs": {"width": 4}, "weights": str(own_weights),
               "train": False},
              {"name": "resunet_tiny", "label": "res-ft", "weights": str(res_weights)},
              {"name": "resunet", "kwargs": {"base_channels": 8, "depth": 1, "blocks_per_level": 1}}]
    raw = deep_update(tiny_params(), {"simulate": {"patch_size": SIZE},
                                      "train": {"models": models, "iterations": 2, "batch_size": 2, "crop_size": SIZE,
                                                "lr": 1e-9, "lr_min": 0.0},
                                      "purifier": {"crop_size": SIZE}, "finetune": {"crop_size": SIZE}})
    params = params_from_dict(raw)
    layout = Layout(tmp_path / "data")
    inputs, targets = _write_train_store(layout)
    return params, layout, module, own_weights, res_weights, inputs, targets


def _curve(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_untrained_own_model_is_saved_from_its_weights(setup):
    params, layout, module, own_weights, res_weights, inputs, targets = setup
    preflight(params, ["train"])
    assert [u.label for u in train.STAGE.plan(train.StageContext(params, layout, CPU, None))] == [
        "fit-restorer-mine", "fit-restorer-res-ft", "fit-restorer-resunet"]
    summary = train.run(params, layout, CPU)
    assert sorted(summary) == ["mine", "res-ft", "resunet"]
    assert summary["mine"]["trained"] is False and summary["mine"]["weights"] == str(own_weights)

    # the checkpoint of label "mine" holds exactly the given weights and rebuilds the own factory
    given = read_weights_file(own_weights)
    config = read_checkpoint_config(layout.restorer("mine"))
    assert config["architecture"] == f"{module}:make_net" and config["kwargs"] == {"width": 4}
    assert config["extra"]["provenance"]["trained"] is False
    assert config["extra"]["provenance"]["inputs"]["weights"]["path"] == own_weights.as_posix()
    loaded = load_checkpoint(layout.restorer("mine"))
    assert type(loaded).__module__ == module
    assert_state_equal(loaded, given)
    assert "mine/base" in list(restorers(params))
    assert_state_equal(load_restorer(layout, "mine/base"), given)  # what attack / evaluate load

    # its curve: one row at step 0, lr 0, holding the given weights' loss on the batch training would draw
    rows = _curve(layout.log("train", "mine"))
    assert list(rows[0]) == ["step", "loss", "lr", "elapsed_s"] and len(rows) == 1
    assert (int(rows[0]["step"]), float(rows[0]["lr"])) == (0, 0.0)
    batch_in, batch_tgt = draw_batch(inputs, targets, batch_size=2, crop_size=SIZE, flips=params.train.flips,
                                     color_jitter=params.train.color_jitter,
                                     generator=torch_generator(params.seed, "train/mine/batches"))
    with torch.no_grad():
        expected = torch.nn.functional.mse_loss(loaded(batch_in), batch_tgt).item()
    assert float(rows[0]["loss"]) == pytest.approx(expected, rel=1e-5)
    assert summary["mine"]["final_loss"] == pytest.approx(expected, rel=1e-5)


def test_given_weights_with_train_true_start_the_training(setup):
    params, layout, _, _, res_weights, _, _ = setup
    train.run(params, layout, CPU)
    given = read_weights_file(res_weights)
    finetuned = load_checkpoint(layout.restorer("res-ft")).state_dict()
    scratch = load_checkpoint(layout.restorer("resunet")).state_dict()
    assert [int(r["step"]) for r in _curve(layout.log("train", "res-ft"))] == [2]  # it did train: 2 steps
    # lr 1e-9: two Adam steps move each weight by at most ~2e-9, so the result is the given weights, not a fresh init
    for key, value in given.items():
        if value.is_floating_point():
            torch.testing.assert_close(finetuned[key], value, rtol=0, atol=1e-6)
    assert any(not torch.allclose(scratch[k], given[k], atol=1e-3) for k in given if given[k].is_floating_point())
    # a model without label and weights keeps its name as identity and its seeded init (unchanged behaviour)
    fresh = create_restorer("resunet", generator=torch_generator(params.seed, "train/resunet/init"),
                            base_channels=8, depth=1, blocks_per_level=1)
    for key, value in fresh.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(scratch[key], value, rtol=0, atol=1e-6)


def test_untrained_model_without_weights_is_refused_at_run_time(setup):
    params, _, _, _, _, inputs, targets = setup
    from dataclasses import replace

    spec = replace(params.train.models[2], train=False)  # bypasses the schema, which refuses it at load time
    bad = replace(params, train=replace(params.train, models=(spec,)))
    with pytest.raises(ValueError, match="restorer 'resunet': train is false but no weights are given"):
        train.fit_restorer(bad, "resunet", inputs, targets, CPU)


def test_training_seeds_add_replicates_with_their_own_streams(tmp_path):
    """train.seeds [0, 2]: units for the model and its replicate `<label>-seed2`; seed 0 is the run without
    replicates (same streams, same weights), the replicate starts from other weights."""
    model = {"name": "resunet", "kwargs": {"base_channels": 8, "depth": 1, "blocks_per_level": 1}}
    raw = deep_update(tiny_params(), {"simulate": {"patch_size": SIZE},
                                      "train": {"models": [model], "iterations": 2, "batch_size": 2, "crop_size": SIZE},
                                      "purifier": {"crop_size": SIZE}, "finetune": {"crop_size": SIZE}})
    single = params_from_dict(raw)
    seeded = params_from_dict(deep_update(raw, {"train": {"seeds": [0, 2]}}))
    layout = Layout(tmp_path / "data")
    inputs, targets = _write_train_store(layout)
    assert [u.label for u in train.STAGE.plan(train.StageContext(seeded, layout, CPU, None))] == [
        "fit-restorer-resunet", "fit-restorer-resunet-seed2"]
    assert list(restorers(seeded)) == [f"{run}/{v}" for run in ("resunet", "resunet-seed2")
                                       for v in seeded.attack.models]
    alone, _ = train.fit_restorer(single, "resunet", inputs, targets, CPU)
    first, _ = train.fit_restorer(seeded, "resunet", inputs, targets, CPU)
    replicate, _ = train.fit_restorer(seeded, "resunet-seed2", inputs, targets, CPU)
    assert_state_equal(first, alone.state_dict())
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), replicate.state_dict().values()))
