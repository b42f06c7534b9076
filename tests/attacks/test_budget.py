"""Budgets (units of 1/256) -> radii: declared threat models, bit-identical radii, refused budgets."""

import importlib
import math

import numpy as np
import pytest
from torch import nn

from udcshield.attacks import (
    BUDGET_UNIT,
    ImageAttack,
    attack_class,
    attack_constructor_eps,
    budget_mode,
    budget_radius,
    budget_to_linf,
    check_budget,
    list_attacks,
    threat_model,
    threat_norm,
    universal,
)
from udcshield.attacks.budget import BUDGET_MODES, THREAT_NORMS

NAMES = [*list_attacks(), "universal"]
SHAPES = [(3, 32, 32), (3, 256, 256), (3, 17, 9), (1, 1, 1)]
EXPECTED = {"fgsm": ("linf", "radius"), "pgd": ("linf", "radius"), "bim": ("linf", "radius"),
            "apgd": ("linf", "radius"), "apgd_l2": ("l2", "radius"),
            "mifgsm": ("linf", "radius"), "lpips_pgd": ("linf", "radius"), "pgd_l2": ("l2", "radius"),
            "cw": ("linf", "projected"), "cw_l2": ("l2", "unbounded"), "simba": ("linf", "radius"), "square": ("linf", "radius"),
            "universal": ("linf", "radius")}


def legacy_budget_eps(name: str, budget: int, image_shape: tuple[int, ...]) -> float:
    """The attack stage's conversion before the threat models were declared by the attacks (frozen copy)."""
    eps = budget / 256.0
    if name in ("pgd_l2", "apgd_l2", "cw_l2"):  # later L2 attacks share pgd_l2's convention
        return eps * math.sqrt(math.prod(image_shape))
    return eps


def stage_budget_eps():
    """The attack stage's own ``budget_eps`` while it still has one (None once it uses this module)."""
    try:
        module = importlib.import_module("udcshield.pipeline.attack")
    except ImportError:
        return None
    return getattr(module, "budget_eps", None)


def bits(value: float) -> int:
    return int(np.float64(value).view(np.int64))


def test_every_registered_class_declares_its_threat_model():
    assert set(NAMES) == set(EXPECTED)
    for name in list_attacks():
        cls = attack_class(name)
        assert cls.threat_norm in THREAT_NORMS and cls.budget_mode in BUDGET_MODES, name
        assert (cls.threat_norm, cls.budget_mode) == EXPECTED[name] == threat_model(name), name
        assert threat_norm(name) == cls.threat_norm and budget_mode(name) == cls.budget_mode
    assert (universal.THREAT_NORM, universal.BUDGET_MODE) == threat_model("universal") == EXPECTED["universal"]
    assert threat_model("PGD") == threat_model("pgd")


def test_cw_objective_is_l2_but_its_threat_model_is_the_projected_linf_ball():
    cw = attack_class("cw")
    assert cw.norm == "L2"
    assert (cw.threat_norm, cw.budget_mode) == ("linf", "projected")
    assert attack_constructor_eps("cw", 8, (3, 32, 32)) is None
    assert budget_radius("cw", 8, (3, 32, 32)) == 8 / 256


def test_cw_l2_is_the_unbounded_minimum_norm_attack_at_the_one_budget_256():
    cw_l2 = attack_class("cw_l2")
    assert (cw_l2.threat_norm, cw_l2.budget_mode) == ("l2", "unbounded")
    assert attack_constructor_eps("cw_l2", 256, (3, 32, 32)) is None
    assert budget_radius("cw_l2", 256, (3, 32, 32)) == math.sqrt(3 * 32 * 32)  # holds every delta in [-1, 1]^n
    with pytest.raises(ValueError, match="takes only budget 256"):
        attack_constructor_eps("cw_l2", 8, (3, 32, 32))
    from udcshield.attacks.budget import budget_label
    assert (budget_label(8), budget_label(256)) == ("8/256", "unbounded")


@pytest.mark.parametrize("shape", SHAPES)
def test_radius_is_bit_identical_to_the_stage_conversion(shape):
    current = stage_budget_eps()
    for name in NAMES:
        for budget in range(1, BUDGET_UNIT + 1):
            radius = budget_radius(name, budget, shape)
            assert type(radius) is float
            assert bits(radius) == bits(legacy_budget_eps(name, budget, shape)), (name, budget)
            if current is not None:
                assert bits(radius) == bits(current(name, budget, shape)), (name, budget)
            if budget_mode(name) == "unbounded" and budget != BUDGET_UNIT:
                with pytest.raises(ValueError, match="takes only budget 256"):
                    attack_constructor_eps(name, budget, shape)
                continue
            ctor = attack_constructor_eps(name, budget, shape)
            if budget_mode(name) == "radius":
                assert ctor is not None and bits(ctor) == bits(radius)
            else:
                assert ctor is None


def test_budget_to_linf_is_exact():
    assert BUDGET_UNIT == 256
    for budget in range(1, 257):
        assert budget_to_linf(budget) == budget / 256.0 == budget * 2.0**-8
    assert budget_to_linf(np.int64(8)) == 0.03125
    assert budget_to_linf(256) == 1.0


@pytest.mark.parametrize("bad", [0, -1, 257, 1000, 1.0, 8.5, "8", None, True, False, [8]])
def test_bad_budgets_are_refused(bad):
    with pytest.raises(ValueError, match=r"budget must be an int in \[1, 256\]"):
        check_budget(bad)
    with pytest.raises(ValueError, match="budget must be"):
        budget_to_linf(bad)
    for name in ("pgd", "pgd_l2", "cw", "universal"):
        with pytest.raises(ValueError, match="budget must be"):
            budget_radius(name, bad, (3, 8, 8))
        with pytest.raises(ValueError, match="budget must be"):
            attack_constructor_eps(name, bad, (3, 8, 8))


def test_unknown_names_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"unknown attack 'deepfool'.*universal"):
        threat_norm("deepfool")
    with pytest.raises(ValueError, match="unknown attack"):
        budget_radius(None, 8, (3, 8, 8))  # type: ignore[arg-type]
    for shape in [(), (3, 0, 8), (3, -1), "3x8x8", (3.0, 8, 8), None]:
        with pytest.raises(ValueError, match="image_shape"):
            budget_radius("pgd_l2", 8, shape)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="image_shape"):
            attack_constructor_eps("cw", 8, shape)  # type: ignore[arg-type]


def test_a_bad_declaration_is_refused_at_class_creation():
    with pytest.raises(ValueError, match="Bad: threat_norm must be one of"):
        type("Bad", (ImageAttack,), {"threat_norm": "l1", "budget_mode": "radius"})
    with pytest.raises(ValueError, match="Worse: budget_mode must be one of"):
        type("Worse", (ImageAttack,), {"threat_norm": "linf", "budget_mode": "sometimes"})


def test_constructor_eps_builds_every_radius_attack_at_its_radius():
    shape = (3, 8, 8)
    for name in list_attacks():
        if budget_mode(name) != "radius":
            continue
        eps = attack_constructor_eps(name, 4, shape)
        if eps is None:
            continue
        kwargs = {"eps": eps}
        if name == "lpips_pgd":
            from udcshield.attacks import LPIPS

            kwargs["lpips"] = LPIPS.random_for_tests(0)
        atk = attack_class(name)(nn.Identity(), **kwargs)
        assert atk.eps == budget_radius(name, 4, shape)
