import pytest
import torch
from torch import nn

from udcshield.attacks import PGD, EnsembleModel, create_attack, distortion, transfer_attack

from tests.tiny import mid_images, small_net


def test_ensemble_averages_outputs():
    models = [small_net(0), small_net(1), nn.Identity()]
    x = mid_images(2, 1, 12)
    with torch.no_grad():
        expected = (models[0](x) + models[1](x) + x) / 3
        torch.testing.assert_close(EnsembleModel(models)(x), expected)
    with pytest.raises(ValueError, match="surrogates"):
        EnsembleModel([])
    with pytest.raises(ValueError, match="surrogates"):
        EnsembleModel([small_net(0), "model"])
    with pytest.raises(ValueError, match="surrogate 1"):
        EnsembleModel([nn.Identity(), nn.Conv2d(3, 4, 1)])(x)


def test_transfer_equals_attack_on_ensemble_and_keeps_surrogates():
    surrogates = [small_net(0), small_net(1)]
    surrogates[1].train()
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in surrogates]
    x, t = mid_images(3, 2, 12), mid_images(3, 3, 12)
    kwargs = {"eps": 4 / 256, "steps": 4}
    adv = transfer_attack(surrogates, "pgd", kwargs, x, t, seeds=[1, 2, 3])
    direct = create_attack("pgd", EnsembleModel(surrogates), **kwargs)(x, t, seeds=[1, 2, 3])
    assert torch.equal(adv, direct)
    assert float((adv - x).abs().max()) <= 4 / 256
    assert not surrogates[0].training and all(m.training for m in surrogates[1].modules())
    for m, b in zip(surrogates, before):
        for k, v in m.state_dict().items():
            assert torch.equal(v, b[k])
    single = transfer_attack([surrogates[0]], "pgd", kwargs, x, t, seeds=[1, 2, 3])
    torch.testing.assert_close(single, PGD(surrogates[0], **kwargs)(x, t, seeds=[1, 2, 3]), rtol=0, atol=0)


def test_transfers_to_a_held_out_target():
    surrogates = [small_net(0), small_net(1), small_net(2)]
    target = nn.Sequential(*[m for m in small_net(0)])  # same weights as surrogate 0: must transfer
    x, t = mid_images(4, 4, 12), mid_images(4, 5, 12)
    adv = transfer_attack(surrogates, "mifgsm", {"eps": 8 / 256, "steps": 5}, x, t)
    with torch.no_grad():
        assert float(distortion(target(adv), t).mean()) > float(distortion(target(x), t).mean())


def test_bad_arguments():
    x = mid_images(1, 6, 12)
    with pytest.raises(ValueError, match="unknown attack"):
        transfer_attack([nn.Identity()], "nope", {}, x, x)
    with pytest.raises(ValueError, match="model"):
        transfer_attack([nn.Identity()], "pgd", {"model": nn.Identity()}, x, x)
