"""train_restorer: determinism, learning a trivial map, history/lr schedule, NaN and input errors."""

import math

import pytest
import torch

from udcshield.models import create_restorer
from udcshield.training.restorer import cosine_lr, train_restorer

from tests.tiny import gen


def data(n=8, size=16, seed=0):
    inputs = 0.8 * torch.rand(n, 3, size, size, generator=gen(seed))
    return inputs, inputs + 0.1  # identity + offset, still inside [0, 1]


def train(model, inputs, targets, **overrides):
    args = dict(iterations=5, batch_size=4, crop_size=8, lr=1e-3, lr_min=1e-4, generator=gen(1),
                color_jitter=0.05)
    args.update(overrides)
    return train_restorer(model, inputs, targets, **args)


def test_same_seed_same_weights_different_seed_different():
    inputs, targets = data()
    models = [create_restorer("resunet_tiny", generator=gen(9)) for _ in range(3)]
    train(models[0], inputs, targets, generator=gen(1))
    train(models[1], inputs, targets, generator=gen(1))
    train(models[2], inputs, targets, generator=gen(2))
    for (name, a), b, c in zip(models[0].state_dict().items(), models[1].state_dict().values(),
                               models[2].state_dict().values()):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, c) for a, c in zip(models[0].state_dict().values(), models[2].state_dict().values()))


def test_learns_identity_plus_offset():
    inputs, targets = data(n=16, size=24)
    model = create_restorer("resunet_tiny")
    history = train(model, inputs, targets, iterations=100, batch_size=8, crop_size=16, lr=3e-3, lr_min=3e-4,
                    color_jitter=0.0, log_every=1)
    assert history[0]["loss"] > 5e-3  # starts as identity: error ~0.1^2
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    with torch.no_grad():
        err = (model(inputs) - targets).square().mean().item()
    assert err < 1e-3


def test_history_schedule_progress_and_eval_mode():
    inputs, targets = data()
    model = create_restorer("resunet_tiny")
    rows = []
    history = train(model, inputs, targets, iterations=7, log_every=3, progress=rows.append, loss="l1")
    assert [r["step"] for r in history] == [3, 6, 7]
    assert rows == history
    assert history[-1]["lr"] == pytest.approx(1e-4)
    assert all(set(r) >= {"step", "loss", "lr"} for r in history)
    assert not model.training


def test_cosine_lr_endpoints_and_midpoint():
    assert cosine_lr(0, 11, 1.0, 0.0) == 1.0
    assert cosine_lr(10, 11, 1.0, 0.0) == pytest.approx(0.0)
    assert cosine_lr(5, 11, 1.0, 0.2) == pytest.approx(0.6)


def test_nan_loss_names_the_step():
    inputs, targets = data()
    model = create_restorer("resunet_tiny")
    calls = []

    def flaky(output, target):
        calls.append(1)
        loss = (output - target).square().mean()
        return loss * math.nan if len(calls) == 3 else loss

    with pytest.raises(FloatingPointError, match="step 3"):
        train(model, inputs, targets, loss=flaky)
    assert not model.training


@pytest.mark.parametrize(
    "mutate, exc, match",
    [
        (lambda i, t: (i * 2, t), ValueError, r"\[0, 1\]"),
        (lambda i, t: (i, t[:, :, :8]), ValueError, "differ"),
        (lambda i, t: (i.masked_fill(i > 0.7, math.nan), t), ValueError, "NaN"),
    ],
)
def test_bad_data(mutate, exc, match):
    inputs, targets = mutate(*data())
    with pytest.raises(exc, match=match):
        train(create_restorer("resunet_tiny"), inputs, targets)


def test_bad_options():
    inputs, targets = data()
    with pytest.raises(ValueError, match="unknown loss"):
        train(create_restorer("resunet_tiny"), inputs, targets, loss="ssim")
    with pytest.raises(ValueError, match="crop_size"):
        train(create_restorer("resunet_tiny"), inputs, targets, crop_size=32)
    with pytest.raises(ValueError, match="lr"):
        train(create_restorer("resunet_tiny"), inputs, targets, lr=1e-4, lr_min=1e-3)
