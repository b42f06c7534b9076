"""Building blocks of the params schema: the error type, documented fields, strict coercion, shared checks.

Pure: imports only the standard library. Every check raises :class:`ConfigError` naming the offending key
by its dotted path (e.g. ``attack.attacks[0].budgets[2]``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING, field
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "MAX_BUDGET",
    "ConfigError",
    "build",
    "check_budget",
    "check_budgets",
    "coerce",
    "doc_of",
    "join",
    "jitter_range",
    "lr_range",
    "non_negative",
    "option",
    "positive",
    "to_dict",
]

#: Budgets are integers in units of 1/256 of the tone-mapped [0, 1] domain; 256 is the whole range
#: (Song et al., arXiv 2402.13629).
MAX_BUDGET = 256


class ConfigError(ValueError):
    """A params file is malformed; the message names the offending key."""


def option(default: Any = MISSING, doc: str = "", *, factory: Any = MISSING) -> Any:
    """A dataclass field carrying its one-line description (read by :mod:`udcshield.config.reference`).

    Pass ``default`` for immutable values, ``factory`` for mutable ones (dicts, nested sections); neither
    makes the field required.
    """
    metadata = {"doc": doc}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    if default is not MISSING:
        return field(default=default, metadata=metadata)
    return field(metadata=metadata)


def doc_of(f: dataclasses.Field) -> str:
    """The description stored on a field by :func:`option` ("" if none)."""
    return str(f.metadata.get("doc", ""))


def to_dict(obj: Any) -> Any:
    """Resolved config as plain JSON-compatible data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------------- coercion
def build(cls: type, raw: Any, where: str) -> Any:
    """Instance of dataclass ``cls`` from mapping ``raw``; unknown keys and wrong types are ConfigErrors."""
    label = where or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(join(where, k) for k in unknown)}"
                          f" (valid keys: {', '.join(sorted(names))})")
    missing = [f.name for f in fields if f.default is MISSING and f.default_factory is MISSING
               and f.name not in raw]
    if missing:
        raise ConfigError(f"{join(where, missing[0])} is required")
    kwargs = {name: coerce(hints[name], value, join(where, name)) for name, value in raw.items()}
    return cls(**kwargs)


def join(where: str, key: Any) -> str:
    """Dotted key ``where.key`` (just ``key`` at the top level)."""
    return f"{where}.{key}" if where else str(key)


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against (and converted to) type annotation ``tp``; ConfigError naming ``where``."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for choice in options:
            if choice is type(None):
                continue
            try:
                return coerce(choice, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {options}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}")
        return tuple(coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {type(value).__name__} {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {type(value).__name__} {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")


# --------------------------------------------------------------------------------------------- checks
def check_budget(value: Any, where: str) -> None:
    """ConfigError naming ``where`` unless ``value`` is an integer budget in [1, 256] (units of 1/256)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BUDGET:
        raise ConfigError(f"{where} must be an integer number of 1/256 steps in [1, {MAX_BUDGET}] "
                          f"({MAX_BUDGET} = the whole [0, 1] range), got {value!r}")


def check_budgets(budgets: tuple[int, ...], where: str, *, distinct: bool = True) -> None:
    """A non-empty list of budgets, each in [1, 256], without duplicates when ``distinct``."""
    if not budgets:
        raise ConfigError(f"{where} must list at least one budget")
    for i, b in enumerate(budgets):
        check_budget(b, f"{where}[{i}]")
    if distinct and len(set(budgets)) != len(budgets):
        raise ConfigError(f"{where} has duplicates: {list(budgets)}")


def positive(obj: Any, where: str, *names: str) -> None:
    """ConfigError naming ``where.<name>`` for the first of ``names`` that is not > 0."""
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{where}.{name} must be > 0, got {getattr(obj, name)}")


def non_negative(obj: Any, where: str, *names: str) -> None:
    """ConfigError naming ``where.<name>`` for the first of ``names`` that is negative."""
    for name in names:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(obj, name)}")


def lr_range(obj: Any, where: str) -> None:
    """ConfigError naming ``where.lr_min`` unless 0 <= ``lr_min`` <= ``lr`` (the cosine decay's end points)."""
    if obj.lr_min > obj.lr:
        raise ConfigError(f"{where}.lr_min ({obj.lr_min}) exceeds {where}.lr ({obj.lr}): the cosine decay runs from "
                          f"lr down to lr_min, so lr_min must be in [0, {obj.lr}]")


def jitter_range(obj: Any, where: str) -> None:
    """ConfigError naming ``where.color_jitter`` unless it is in [0, 1) (gains drawn in [1 - j, 1 + j])."""
    if not 0.0 <= obj.color_jitter < 1.0:
        raise ConfigError(f"{where}.color_jitter ({obj.color_jitter}) must be in [0, 1): per-channel gains are drawn "
                          "in [1 - j, 1 + j] and must stay positive")
