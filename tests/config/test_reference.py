"""The generated configuration reference (Markdown) and the JSON Schema of params.yaml."""

import json
import re
from pathlib import Path

import pytest
import yaml

from udcshield.cli import main
from udcshield.config import Params, to_dict
from udcshield.config.reference import (
    iter_keys,
    json_schema,
    markdown_reference,
    type_label,
)

ROOT = Path(__file__).resolve().parents[2]


def _yaml_keys(raw, prefix=""):
    """Dotted keys of a params mapping, list entries as ``key[]`` (as in the reference)."""
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else key
        yield dotted
        if isinstance(value, dict) and key != "kwargs":
            yield from _yaml_keys(value, dotted)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for entry in value:
                yield from _yaml_keys(entry, f"{dotted}[]")


def test_every_key_has_a_row_with_a_description():
    md = markdown_reference()
    rows = dict(re.findall(r"^\| `([^`]+)` \| [^|]+ \| [^|]+ \| ([^|]*) \|$", md, flags=re.MULTILINE))
    keys = [key for key, _, _ in iter_keys() if "." in key or key in ("profile", "seed", "device")]  # sections: headings
    assert sorted(rows) == sorted(keys)
    assert all(len(rows[key].strip()) > 5 for key in keys), [k for k in keys if len(rows[k].strip()) <= 5]


def test_every_params_yaml_key_is_documented():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    keys = {key for key, _, _ in iter_keys()}
    assert set(_yaml_keys(raw)) <= keys


def test_one_section_per_params_yaml_section_with_defaults():
    md = markdown_reference()
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    headings = re.findall(r"^## `([a-z_]+)`$", md, flags=re.MULTILINE)
    assert headings == [k for k in raw if isinstance(raw[k], dict)]
    assert "| `purify.t_star` | integer | `50` |" in md
    assert "| `finetune.purify_batch_size` | integer | `64` |" in md
    assert "| `simulate.optics.mask` | one of `toled`, `poled`, `circle`, `open`, `user` | `toled` |" in md
    assert "| `attack.attacks[].name` | string | *required* |" in md


def test_type_labels():
    assert type_label(int) == "integer"
    assert type_label(str | None) == "string or null"
    assert type_label(tuple[float, ...]) == "list of numbers"
    assert type_label(tuple[float, float]) == "list of 2 numbers"
    assert type_label(str | tuple[str, ...]) == "string or list of strings"


def test_json_schema_accepts_params_yaml_and_refuses_unknown_keys():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert not list(validator.iter_errors(raw))
    assert not list(validator.iter_errors(to_dict(Params())))
    assert list(validator.iter_errors({"attack": {"epsilon": 8}}))
    assert list(validator.iter_errors({"purify": {"sampler": "euler"}}))
    assert list(validator.iter_errors({"attack": {"attacks": [{"budgets": [8]}]}}))  # name is required


def test_json_schema_carries_defaults_and_descriptions():
    schema = json_schema()
    t_star = schema["properties"]["purify"]["properties"]["t_star"]
    assert t_star["type"] == "integer" and t_star["default"] == 50 and "purifier" in t_star["description"]
    json.dumps(schema)


def test_cli_prints_the_reference(capsys):
    assert main(["config-reference"]) == 0
    assert capsys.readouterr().out == markdown_reference()
    assert main(["config-reference", "--format", "json-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_committed_json_schema_is_current():
    """params.schema.json (for editors, named in params.yaml's modeline) is generated from the schema."""
    import json
    from pathlib import Path

    from udcshield.config.reference import json_schema

    path = Path(__file__).resolve().parents[2] / "params.schema.json"
    assert json.loads(path.read_text()) == json_schema(), \
        "regenerate: udcshield config-reference --format json-schema > params.schema.json"
