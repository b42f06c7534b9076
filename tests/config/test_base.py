"""Strict coercion, documented fields and the shared budget check of the schema."""

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from udcshield.config.base import (
    MAX_BUDGET,
    ConfigError,
    build,
    check_budget,
    check_budgets,
    coerce,
    doc_of,
    option,
    to_dict,
)


@dataclass(frozen=True)
class Leaf:
    name: str = option(doc="required name")
    size: int = option(3, "an int")
    ratio: float | None = option(None, "a number or null")
    kind: Literal["a", "b"] = option("a", "a or b")
    pair: tuple[float, float] = option((1.0, 2.0), "two numbers")
    extra: dict[str, Any] = option(factory=dict, doc="free mapping")


@dataclass(frozen=True)
class Tree:
    leaves: tuple[Leaf, ...] = option((), "entries")


def test_option_keeps_the_description_and_the_default():
    fields = {f.name: f for f in dataclasses.fields(Leaf)}
    assert doc_of(fields["size"]) == "an int" and fields["size"].default == 3
    assert fields["extra"].default_factory() == {}
    assert fields["name"].default is dataclasses.MISSING and fields["name"].default_factory is dataclasses.MISSING


def test_build_converts_and_names_nested_keys():
    tree = build(Tree, {"leaves": [{"name": "x", "ratio": 2, "pair": [3, 4]}]}, "")
    assert tree.leaves[0] == Leaf("x", ratio=2.0, pair=(3.0, 4.0))
    assert isinstance(tree.leaves[0].ratio, float)
    assert to_dict(tree) == {"leaves": [{"name": "x", "size": 3, "ratio": 2.0, "kind": "a", "pair": [3.0, 4.0],
                                         "extra": {}}]}


@pytest.mark.parametrize("raw, message", [
    ({"leaves": [{"size": 1}]}, "leaves[0].name is required"),
    ({"leaves": [{"name": "x", "sise": 1}]}, "unknown key leaves[0].sise"),
    ({"leaves": [{"name": "x", "size": True}]}, "leaves[0].size must be an integer"),
    ({"leaves": [{"name": "x", "ratio": float("inf")}]}, "leaves[0].ratio must be finite"),
    ({"leaves": [{"name": "x", "kind": "c"}]}, "leaves[0].kind must be one of ['a', 'b']"),
    ({"leaves": [{"name": "x", "pair": [1.0]}]}, "leaves[0].pair must have 2 entries"),
    ({"leaves": [{"name": "x", "extra": [1]}]}, "leaves[0].extra must be a mapping"),
    ({"leaves": "x"}, "leaves must be a list"),
    ([], "params must be a mapping"),
])
def test_build_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError) as info:
        build(Tree, raw, "")
    assert message in str(info.value)


def test_coerce_rejects_unsupported_annotations():
    with pytest.raises(TypeError, match="unsupported config type"):
        coerce(set, {1}, "x")


@pytest.mark.parametrize("value", [1, 8, MAX_BUDGET])
def test_budget_in_range(value):
    check_budget(value, "b")


@pytest.mark.parametrize("value", [0, -1, MAX_BUDGET + 1, 2.0, True, "8"])
def test_budget_out_of_range_or_not_an_integer(value):
    with pytest.raises(ConfigError, match=r"^b must be an integer number of 1/256 steps in \[1, 256\]"):
        check_budget(value, "b")


def test_budget_lists():
    check_budgets((1, 2), "x.budgets")
    check_budgets((8, 8), "x.budgets", distinct=False)
    with pytest.raises(ConfigError, match="at least one budget"):
        check_budgets((), "x.budgets")
    with pytest.raises(ConfigError, match="duplicates"):
        check_budgets((8, 8), "x.budgets")
    with pytest.raises(ConfigError, match=r"x.budgets\[1\]"):
        check_budgets((8, 300), "x.budgets")
