"""Robust fine-tuning modes: frozen layers stay bit-identical, the inner attack keeps its budget, the TRADES
term vanishes at eps = 0, the purified mode is the plain trainer, bad modes and prefixes fail clearly."""

import pytest
import torch
from torch import nn

from udcshield.config import ConfigError
from udcshield.models import create_restorer
from udcshield.training.restorer import train_restorer
from udcshield.training.robust import MODES, finetune_restorer, select_trainable
from udcshield.training.robust import craft_adversarial, inner_attack, trades_objective

from tests.tiny import gen


def pairs(n=6, size=16, seed=0):
    inputs = 0.2 + 0.6 * torch.rand(n, 3, size, size, generator=gen(seed))
    return inputs, (inputs + 0.05 * torch.rand(n, 3, size, size, generator=gen(seed + 1))).clamp(0, 1)


class NormNet(nn.Module):
    """head conv -> batch norm -> tail conv, residual; a restorer with running statistics."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.tail = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        return x + 0.1 * self.tail(torch.tanh(self.norm(self.head(x))))


def run(model, mode, **overrides):
    inputs, targets = pairs()
    pur_in, pur_tgt = pairs(seed=5)
    args = dict(mode=mode, purified_inputs=pur_in, purified_targets=pur_tgt, attack_eps=8 / 256, attack_steps=2,
                iterations=3, batch_size=4, crop_size=8, lr=1e-2, lr_min=1e-3, generator=gen(3), log_every=1)
    args.update(overrides)
    return finetune_restorer(model, inputs, targets, **args)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_trains_only_the_trainable_layers(mode):
    model = create_restorer("resunet_tiny", generator=gen(9))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = run(model, mode, trainable=["decoders", "tail"], iterations=4)
    assert [r["step"] for r in history] == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    after = model.state_dict()
    for name, value in after.items():
        if name.startswith(("decoders.", "tail.")):
            continue
        assert torch.equal(value, before[name]), f"{mode}: frozen {name} changed"
    assert not torch.equal(after["tail.weight"], before["tail.weight"]), mode
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("decoders.")), mode
    assert not model.training


def test_frozen_batch_norm_keeps_its_running_statistics():
    model = NormNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(model, "adversarial", trainable=["tail"])
    after = model.state_dict()
    for name in ("head.weight", "norm.weight", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"):
        assert torch.equal(after[name], before[name]), name
    assert not torch.equal(after["tail.weight"], before["tail.weight"])
    # the same run with everything trainable does move the statistics (so the check above can fail)
    model = NormNet()
    run(model, "adversarial")
    assert not torch.equal(model.state_dict()["norm.running_mean"], before["norm.running_mean"])


def test_frozen_parameters_are_not_in_the_optimizer(monkeypatch):
    seen = []
    real_adam = torch.optim.Adam

    def spy(params, **kwargs):
        params = list(params)
        seen.append(sum(p.numel() for p in params))
        return real_adam(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    model = create_restorer("resunet_tiny", generator=gen(9))
    run(model, "trades", trainable=["tail"], iterations=1)
    assert seen == [model.tail.weight.numel() + model.tail.bias.numel()]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["tail.weight", "tail.bias"]


@pytest.mark.parametrize("mode", ["adversarial", "trades", "mixed"])
def test_inner_attack_respects_budget_and_moves(mode):
    seen = []
    model = create_restorer("resunet_tiny", generator=gen(9))
    eps = 4 / 256
    run(model, mode, attack_eps=eps, on_adversarial=lambda x, a: seen.append((x.clone(), a.clone())))
    assert len(seen) == 3
    expected_batch = 2 if mode == "mixed" else 4
    for x, adv in seen:
        assert adv.shape == x.shape == (expected_batch, 3, 8, 8)
        delta = (adv - x).abs().max().item()
        assert 0 < delta <= eps
        assert adv.min() >= 0 and adv.max() <= 1


def test_inner_attack_increases_the_distortion():
    model = create_restorer("resunet_tiny", generator=gen(9))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen(4)))
    x, y = pairs(n=4)
    adv = craft_adversarial(inner_attack(model, eps=8 / 256, steps=3), x, y, gen(2))
    with torch.no_grad():
        clean_err = (model(x) - y).square().mean()
        adv_err = (model(adv) - y).square().mean()
    assert adv_err > clean_err * 1.05


def test_trades_term_is_zero_without_budget_and_positive_with_one():
    model = create_restorer("resunet_tiny", generator=gen(9))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen(4)))
    x, y = pairs(n=4)
    for eps, zero in ((0.0, True), (8 / 256, False)):
        attack = inner_attack(model, eps=eps, steps=2, reference="clean_output")
        adv = craft_adversarial(attack, x, y, gen(2))
        total, robust = trades_objective(model, x, y, adv, nn.functional.mse_loss, beta=6.0)
        clean = nn.functional.mse_loss(model(x), y)
        if zero:
            assert torch.equal(adv, x)
            assert robust.item() == 0.0
            assert total.item() == pytest.approx(clean.item(), rel=1e-6)
        else:
            assert robust.item() > 0
            assert total.item() == pytest.approx(clean.item() + 6.0 * robust.item(), rel=1e-5)


def test_purified_mode_is_the_plain_trainer_bit_for_bit():
    pur_in, pur_tgt = pairs(seed=5)
    a = create_restorer("resunet_tiny", generator=gen(9))
    b = create_restorer("resunet_tiny", generator=gen(9))
    run(a, "purified")
    train_restorer(b, pur_in, pur_tgt, iterations=3, batch_size=4, crop_size=8, lr=1e-2, lr_min=1e-3,
                   generator=gen(3), log_every=1)
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), name


def test_same_seed_same_weights_in_adversarial_mode():
    a = create_restorer("resunet_tiny", generator=gen(9))
    b = create_restorer("resunet_tiny", generator=gen(9))
    run(a, "mixed")
    run(b, "mixed")
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), name


def test_bad_mode_prefix_and_missing_purified_pairs():
    model = create_restorer("resunet_tiny")
    with pytest.raises(ValueError, match="unknown fine-tuning mode 'madry'"):
        run(model, "madry")
    with pytest.raises(ConfigError, match=r"finetune.trainable: prefixes \['decoder', 'neck'\]"):
        select_trainable(model, ["decoders", "decoder", "neck"])
    with pytest.raises(ConfigError, match="'all' or a list"):
        select_trainable(model, "decoders")
    with pytest.raises(ValueError, match="needs purified_inputs"):
        run(model, "mixed", purified_inputs=None)
    with pytest.raises(ValueError, match="adversarial_weight"):
        run(model, "adversarial", adversarial_weight=1.5)


def test_prefixes_match_whole_name_components():
    model = NormNet()
    assert select_trainable(model, ["norm"]) == ["norm.weight", "norm.bias"]
    assert select_trainable(model, ["head.weight"]) == ["head.weight"]
    with pytest.raises(ConfigError, match=r"\['nor'\]"):
        select_trainable(model, ["nor"])
    assert len(select_trainable(model, "all")) == 6


@pytest.mark.parametrize("mode, calls_per_step", [("adversarial", 2), ("trades", 1), ("purified", 1)])
def test_gan_loss_trains_its_discriminator_once_per_loss_evaluation(mode, calls_per_step):
    from udcshield.training.gan import GANLoss, PatchDiscriminator
    from udcshield.training.perceptual import restoration_loss

    gan = GANLoss(PatchDiscriminator(channels=4, layers=1, generator=gen(9)))
    run(NormNet(), mode, loss=restoration_loss("l2", gan=gan, gan_weight=0.1))
    assert len(gan.discriminator_losses) == 3 * calls_per_step  # 3 iterations; w = 0.5 splits benign/adversarial
