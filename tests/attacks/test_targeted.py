import pytest
import torch

from udcshield.attacks import OBJECTIVES, PGD, SimBA, distortion

from tests.tiny import small_net


def test_targeted_kinds_are_negated_distances():
    assert {"mse", "l1", "targeted_mse", "targeted_l1"} <= set(OBJECTIVES)
    out, ref = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    ref[1] = 0.5
    torch.testing.assert_close(distortion(out, ref, "targeted_mse"), -distortion(out, ref, "mse"))
    torch.testing.assert_close(distortion(out, ref, "targeted_l1"), torch.tensor([0.0, -0.5]))


@pytest.mark.parametrize("kind", ["targeted_mse", "targeted_l1"])
def test_targeted_attacks_pull_output_toward_chosen_image(kind):
    model = small_net()
    g = torch.Generator().manual_seed(0)
    x = 0.25 + 0.5 * torch.rand(2, 3, 12, 12, generator=g)
    chosen = torch.zeros_like(x)  # attacker's image: black
    adv = PGD(model, eps=8 / 256, steps=10, objective=kind)(x, chosen)
    simba = SimBA(model, max_queries=150, objective=kind)(x, chosen)
    with torch.no_grad():
        clean = distortion(model(x), chosen, "mse")
        assert bool((distortion(model(adv), chosen, "mse") < clean).all())
        assert bool((distortion(model(simba), chosen, "mse") < clean).all())
