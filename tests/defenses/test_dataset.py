"""purify_set: per-image seeds make set purification independent of batching (DiffPure, Nie et al. 2022)."""

import pytest
import torch

from udcshield.defenses import SamplerConfig, reverse_chain
from udcshield.defenses.dataset import purify_set
from udcshield.seeding import torch_generator

from tests.tiny import images, tiny_purifier as tiny

CPU = torch.device("cpu")


@pytest.mark.parametrize("kwargs", [{}, {"sampler": "ddim", "eta": 0.4}, {"guidance_scale": 10.0}])
def test_batch_size_does_not_change_the_noise(kwargs):
    p, x, ids = tiny(), images(3, 12, 12), ["a", "b", "c"]
    common = {"t_star": 6, "num_steps": 3, "seed": 4, "stage": "test", "device": CPU, **kwargs}
    one = purify_set(p, x, ids, batch_size=1, **common)
    three = purify_set(p, x, ids, batch_size=3, **common)
    torch.testing.assert_close(one, three)  # same noise; batched convolutions may round differently
    cfg = SamplerConfig(kind=kwargs.get("sampler", "ddpm"), t_star=6, num_steps=3, eta=kwargs.get("eta", 0.0),
                        guidance_scale=kwargs.get("guidance_scale", 0.0))
    with torch.no_grad():
        expected = reverse_chain(p, x[1:2], cfg, [torch_generator(4, "test", "b")])
    assert torch.equal(one[1:2], expected)


def test_noise_predictor_is_passed_to_the_chain_and_errors():
    p, x, ids = tiny(), images(2, 8, 8), ["a", "b"]
    calls = []

    def predictor(z_t, t0):
        calls.append(z_t.shape[0])
        return p.unet(z_t, t0).sample

    common = {"t_star": 4, "num_steps": 2, "seed": 0, "stage": "test", "batch_size": 2, "device": CPU}
    plain = purify_set(p, x, ids, **common)
    assert torch.equal(purify_set(p, x, ids, noise_predictor=predictor, **common), plain)
    assert calls == [2, 2]
    with pytest.raises(ValueError, match="image ids"):
        purify_set(p, x, ["a"], **common)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        purify_set(p, x[:, :1], ids, **common)
    with pytest.raises(ValueError, match="sampler kind"):
        purify_set(p, x, ids, sampler="heun", **common)
