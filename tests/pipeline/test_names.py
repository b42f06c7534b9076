"""Adversarial-set keys and the shared names of the stages."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from udcshield.pipeline.names import AdvKey, adversarial_keys, array_name, condition_label, model_label, split_source
from udcshield.config import params_from_dict

part = st.text(alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=12)


@given(part, part, part, st.integers(min_value=0, max_value=10_000))
def test_key_string_form_round_trips(model, variant, attack, budget):
    key = AdvKey(model, variant, attack, budget)
    assert AdvKey.parse(key.name) == key
    assert str(key) == key.name == f"{model}/{variant}/{attack}/{budget}"
    assert key.source == f"{model}/{variant}"
    assert AdvKey.of(key.source, attack, budget) == key


@pytest.mark.parametrize("bad", ["a/b/c", "a/b/c/d/8", "a/b/c/x", "a//c/8", ""])
def test_malformed_names_are_refused(bad):
    with pytest.raises(ValueError, match="adversarial set name"):
        AdvKey.parse(bad)


def test_variant_helpers():
    assert split_source("resunet/finetuned") == ("resunet", "finetuned")
    with pytest.raises(ValueError, match="restorer variant"):
        split_source("resunet")
    assert array_name("resunet/base", "pgd", 8) == "resunet/base/pgd/8"
    assert model_label("resunet/base") == "resunet:base"
    assert condition_label("clean", 0) == "clean" and condition_label("pgd", 8) == "pgd_8"


def test_keys_follow_params_order():
    params = params_from_dict({"train": {"models": [{"name": "resunet_tiny"}]},
                               "attack": {"models": ["base"], "attacks": [{"name": "pgd", "budgets": [2, 8]},
                                                                          {"name": "fgsm", "budgets": [8]}]}})
    assert [k.name for k in adversarial_keys(params)] == ["resunet_tiny/base/pgd/2", "resunet_tiny/base/pgd/8",
                                                          "resunet_tiny/base/fgsm/8"]


def test_draw_names_round_trip():
    from udcshield.pipeline.names import draw_name, split_draw
    assert draw_name("clean", 0) == "clean" and draw_name("m/base/pgd/8", 2) == "draw2/m/base/pgd/8"
    for name in ("clean", "m/base/pgd/8", "drawing/base/pgd/8"):
        for k in (0, 1, 12):
            assert split_draw(draw_name(name, k)) == (name, k)
