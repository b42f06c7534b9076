"""The ``attack``, ``purify``, ``adaptive`` and ``sweep`` sections (pure checks)."""

import pytest

from udcshield.config import AttackSpec, ConfigError, SweepSampler, params_from_dict

SWEEP_OFF = {"sweep": {"enabled": False}}


@pytest.mark.parametrize("raw, culprit", [
    ({"attack": {"batchsize": 4}}, "attack.batchsize"),
    ({"attack": {"attacks": [{"name": "pgd", "budgets": [1, -2]}]}}, "attack.attacks[0].budgets[1]"),
    ({"attack": {"attacks": [{"name": "pgd", "budgets": [1, "4"]}]}}, "attack.attacks[0].budgets[1]"),
    ({"attack": {"attacks": [{"name": "pgd", "budgets": []}]}}, "attack.attacks[0].budgets must list"),
    ({"attack": {"attacks": [{"name": "pgd", "budgets": [4, 4]}]}}, "attack.attacks[0].budgets has duplicates"),
    ({"attack": {"attacks": [{"budgets": [4]}]}}, "attack.attacks[0].name is required"),
    ({"attack": {"attacks": [{"name": ""}]}}, "attack.attacks[0].name"),
    ({"attack": {"attacks": [{"name": "pgd"}, {"name": "pgd"}]}}, "attack.attacks lists an attack twice"),
    ({"attack": {"models": []}}, "attack.models"),
    ({"attack": {"models": ["robust"]}}, "attack.models[0]"),
    ({"purify": {"t_star": 0}}, "purify.t_star"),
    ({"purify": {"t_star": 10, "num_steps": 20}},
     "purify.num_steps (20) exceeds purify.t_star (10): strided steps must be in [1, t*] or null"),
    ({"purify": {"num_steps": 0}}, "purify.num_steps (0) must be in [1, purify.t_star] = [1, 50] or null"),
    ({"purify": {"eta": 2.0}}, "purify.eta"),
    ({"adaptive": {"budgets": []}}, "adaptive.budgets must list"),
    ({"adaptive": {"attacks": [{"name": "a/b"}]}}, "adaptive.attacks[0].name"),
    ({"adaptive": {"attacks": [{"name": "x"}, {"name": "x"}]}}, "adaptive.attacks lists a name twice"),
    ({"adaptive": {"attacks": [{"name": "pgd"}]}}, "adaptive.attacks[0].name ('pgd') is reserved"),
    ({"adaptive": {"attacks": [{"name": "clean"}]}}, "adaptive.attacks[0].name ('clean') is reserved"),
    ({"adaptive": {"attacks": [{"name": "x", "gradient": "spsa"}]}}, "adaptive.attacks[0].gradient"),
    ({"sweep": {"t_stars": [20, 20]}}, "sweep.t_stars must be distinct"),
    ({"sweep": {"samplers": [{"sampler": "ddim", "num_steps": 2}]}}, "must include the full DDPM chain"),
    ({"sweep": {"samplers": [{"sampler": "ddpm"}, {"sampler": "ddpm", "num_steps": None}]}}, "twice"),
    ({"sweep": {"samplers": [{"sampler": "euler"}]}}, "sweep.samplers[0].sampler must be one of"),
    ({"sweep": {"samplers": [{"sampler": "ddpm"}, {"sampler": "ddim", "num_steps": 21}]}},
     "sweep.samplers[1].num_steps (21) exceeds the smallest t* (20)"),
    ({"sweep": {"samplers": [{"sampler": "ddpm"}, {"sampler": "ddim", "eta": -0.5}]}}, "sweep.samplers[1].eta"),
])
def test_bad_robustness_params_name_the_culprit(raw, culprit):
    with pytest.raises(ConfigError) as info:
        params_from_dict({**SWEEP_OFF, **raw} if "sweep" not in raw else raw)
    assert culprit in str(info.value)


@pytest.mark.parametrize("budget, ok", [(1, True), (256, True), (0, False), (257, False)])
def test_attack_budgets_in_1_to_256(budget, ok):
    raw = {"attack": {"attacks": [{"name": "pgd", "budgets": [4, budget]}]}}
    if ok:
        assert params_from_dict(raw).attack.attacks[0].budgets == (4, budget)
        return
    with pytest.raises(ConfigError, match=r"attack.attacks\[0\].budgets\[1\] must be an integer number of 1/256 "
                                          r"steps in \[1, 256\] \(256 = the whole \[0, 1\] range\)"):
        params_from_dict(raw)


@pytest.mark.parametrize("budget, ok", [(1, True), (256, True), (0, False), (300, False)])
def test_adaptive_budgets_in_1_to_256(budget, ok):
    raw = {"adaptive": {"budgets": [8, budget]}}
    if ok:
        assert params_from_dict(raw).adaptive.budgets == (8, budget)
        return
    with pytest.raises(ConfigError, match=r"adaptive.budgets\[1\] must be an integer number of 1/256 steps"):
        params_from_dict(raw)


def test_attack_names_are_plain_strings_in_the_schema():
    """A newly registered attack is not refused by a closed list: the registry (preflight) decides."""
    raw = {"attack": {"attacks": [{"name": "my_new_attack", "budgets": [8], "kwargs": {"steps": 3}}]},
           "sweep": {"attack": "my_new_attack"}, "report": {"grid_attack": "my_new_attack"}}
    p = params_from_dict(raw)
    assert p.attack.attacks == (AttackSpec("my_new_attack", (8,), {"steps": 3}),)


def test_sweep_labels():
    assert [SweepSampler("ddpm").label, SweepSampler("ddim", 5).label, SweepSampler("ddim", 5, 0.5).label,
            SweepSampler("ddpm", 3, 0.5).label] == ["ddpm-all", "ddim-5", "ddim-5-eta0.5", "ddpm-3"]

