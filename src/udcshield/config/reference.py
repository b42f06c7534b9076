"""Configuration reference generated from the schema: a Markdown page and a JSON Schema of ``params.yaml``.

Both walk the dataclasses of :mod:`udcshield.config`: types come from the annotations, defaults from the
dataclass defaults (equal to the shipped ``params.yaml``), descriptions from each field's ``doc``
metadata (:func:`udcshield.config.base.option`) and each section's docstring.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import operator
import re
import types
import typing
from dataclasses import MISSING
from typing import Any, Literal, get_args, get_origin

from udcshield.config.base import doc_of, to_dict
from udcshield.config.params import Params

__all__ = ["iter_keys", "json_schema", "markdown_reference", "section_doc", "type_label"]

_HEADER = ("| Key | Type | Default | Description |", "| --- | --- | --- | --- |")
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _plain(text: str) -> str:
    """Docstring text as Markdown: reST roles and double backticks become inline code."""
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", text))


def section_doc(cls: type) -> str:
    """The docstring of a section dataclass, cleaned, as Markdown paragraphs."""
    doc = inspect.getdoc(cls) or ""
    paragraphs = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    return "\n\n".join(_plain(p) for p in paragraphs)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(tp: Any) -> tuple[Any, bool]:
    """(``tp`` without ``None``, whether ``None`` was allowed)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != len(get_args(tp)):
            return functools.reduce(operator.or_, args), True
    return tp, False


def _item_class(tp: Any) -> type | None:
    """The dataclass of the entries of a ``tuple[<dataclass>, ...]`` annotation, else None."""
    if get_origin(tp) is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0]):
            return args[0]
    return None


def _plural(tp: Any) -> str:
    """Label of list entries: ``integers``, ``mappings``, ```base` / `finetuned```."""
    if get_origin(tp) is Literal:
        return " / ".join(f"`{a}`" for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "mappings"
    return type_label(tp) + "s"


def type_label(tp: Any) -> str:
    """Human-readable type of a key, e.g. ``integer``, ``list of number``, ``one of `l2`, `l1` ``."""
    base, nullable = _optional(tp)
    suffix = " or null" if nullable else ""
    origin = get_origin(base)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(base)) + suffix
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_label(a) for a in get_args(base)) + suffix
    if origin is tuple:
        args = get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_plural(args[0])}" + suffix
        return f"list of {len(args)} {_plural(args[0])}" + suffix
    if origin is dict or base is dict:
        return "mapping" + suffix
    if dataclasses.is_dataclass(base):
        return "mapping" + suffix
    names = {int: "integer", float: "number", bool: "boolean", str: "string", Any: "any"}
    return names.get(base, getattr(base, "__name__", str(base))) + suffix


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _default_label(value: Any) -> str:
    if value is MISSING:
        return "*required*"
    plain = to_dict(value)
    if isinstance(plain, str):
        return f"`{plain}`"
    return f"`{json.dumps(plain)}`"


def iter_keys(cls: type = Params, prefix: str = "") -> list[tuple[str, Any, dataclasses.Field]]:
    """Every key of ``cls`` depth-first as (dotted key, annotation, field); list entries as ``key[]``."""
    out = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        out.append((key, hints[f.name], f))
        if dataclasses.is_dataclass(hints[f.name]):
            out += iter_keys(hints[f.name], key)
        item = _item_class(hints[f.name])
        if item is not None:
            out += iter_keys(item, f"{key}[]")
    return out


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(cls: type, prefix: str) -> list[str]:
    """A Markdown table of the direct keys of ``cls`` (nested sections get their own tables)."""
    hints = _hints(cls)
    rows = list(_HEADER)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            default, doc = "see below", f"{doc_of(f)} See `{key}`."
        else:
            default, doc = _default_label(_default(f)), doc_of(f)
            if _item_class(tp) is not None:
                doc += f" Entries: see `{key}[]`."
        rows.append(f"| `{key}` | {_escape(type_label(tp))} | {_escape(default)} | {_escape(doc)} |")
    return rows


def _section(cls: type, key: str, level: int, title_suffix: str = "") -> list[str]:
    lines = [f"{'#' * level} `{key}`{title_suffix}", ""]
    doc = section_doc(cls)
    if doc:
        lines += [doc, ""]
    lines += _table(cls, key) + [""]
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        child = f"{key}.{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            lines += _section(hints[f.name], child, level + 1)
        item = _item_class(hints[f.name])
        if item is not None:
            lines += _section(item, f"{child}[]", level + 1, " (each entry)")
    return lines


def markdown_reference() -> str:
    """The configuration reference as one Markdown page.

    One section per ``params.yaml`` section (nested sections and list entries as subsections), one
    table row per key: dotted key, type, default and description. The top-level scalars come first.
    """
    hints = _hints(Params)
    intro = ("Every key of `params.yaml`, generated from the schema in `udcshield.config`. The defaults are "
             "the values of the shipped `params.yaml` (the default run); a key left out of a params file "
             "takes its default. Unknown keys, wrong types and out-of-range values are refused before any "
             "work starts, naming the dotted key. Budgets are integers in [1, 256], in units of 1/256 of "
             "the tone-mapped [0, 1] image domain.")
    lines = ["# Configuration reference", "", intro, "", "## Top-level keys", "", *_HEADER]
    sections = []
    for f in dataclasses.fields(Params):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            sections.append((f.name, tp))
            continue
        lines.append(f"| `{f.name}` | {_escape(type_label(tp))} | {_escape(_default_label(_default(f)))} "
                     f"| {_escape(doc_of(f))} |")
    lines.append("")
    for name, cls in sections:
        lines += _section(cls, name, 2)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------- JSON Schema
def _type_schema(tp: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(tp):
        return _object_schema(tp)
    origin = get_origin(tp)
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type_schema(a) for a in get_args(tp)]}
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0])}
        return {"type": "array", "prefixItems": [_type_schema(a) for a in args], "items": False,
                "minItems": len(args), "maxItems": len(args)}
    if origin is dict or tp is dict:
        return {"type": "object"}
    if tp is type(None):
        return {"type": "null"}
    simple = {int: "integer", float: "number", bool: "boolean", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    return {}


def _object_schema(cls: type) -> dict[str, Any]:
    hints = _hints(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):
        prop = _type_schema(hints[f.name])
        if doc_of(f):
            prop["description"] = doc_of(f)
        default = _default(f)
        if default is MISSING:
            required.append(f.name)
        elif not dataclasses.is_dataclass(hints[f.name]):
            prop["default"] = to_dict(default)
        properties[f.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    doc = section_doc(cls)
    if doc:
        schema["description"] = doc
    return schema


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``params.yaml``, for editors: types, enums, defaults, descriptions.

    Structure only; value ranges and cross-section rules are checked by :func:`udcshield.config.load_params`.
    """
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "udcshield params.yaml"}
    schema.update(_object_schema(Params))
    return schema
