"""dvc.yaml is generated from the stage declarations and the import closure of each stage's code."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from scripts import stage_deps
from udcshield.pipeline.runner import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_dvc_yaml_is_generated_from_the_stages():
    """Adding an import (or a stage) without regenerating dvc.yaml fails here."""
    assert (ROOT / "dvc.yaml").read_text() == stage_deps.render(), \
        "dvc.yaml is stale: run `python scripts/stage_deps.py --write`"
    assert list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]) == list(STAGE_NAMES)


def test_closure_follows_every_import_form(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from . import b\nfrom .sub import c\n",
        "b.py": "def f():\n    import pkg.d  # function-level imports count\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import e\nelse:\n    import json\n",
        "e.py": "",
        "unused.py": "",
        "sub/__init__.py": "",
        "sub/c.py": "from ..b import f\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    modules = {"pkg": pkg / "__init__.py", **{f"pkg.{n[:-3].replace('/', '.')}": pkg / n
                                              for n in files if n != "__init__.py" and not n.endswith("/__init__.py")},
               "pkg.sub": pkg / "sub" / "__init__.py"}
    closure = stage_deps.import_closure(["pkg.a"], modules)
    assert closure == {"pkg", "pkg.a", "pkg.b", "pkg.d", "pkg.sub", "pkg.sub.c"}  # not e (TYPE_CHECKING), not unused


def test_stages_depend_on_what_they_use_only():
    deps = {name: stage_deps.code_deps(name) for name in ("simulate", "train", "attack")}
    assert not [d for d in deps["simulate"] if d.startswith(("src/udcshield/attacks", "src/udcshield/defenses",
                                                              "src/udcshield/models", "src/udcshield/training"))]
    assert "src/udcshield/physics" in deps["simulate"] and "src/udcshield/config" in deps["simulate"]
    assert not [d for d in deps["train"] if d.startswith(("src/udcshield/attacks", "src/udcshield/defenses"))]
    assert "src/udcshield/attacks" in deps["attack"]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_static_closure_covers_what_the_stage_imports_at_run_time(stage):
    """Cross-check of the static analysis: the repository modules loaded by importing the flows entry point
    and the stage (as ``python -m flows <stage>`` does before its first task) are all in its closure."""
    code = textwrap.dedent(f"""
        import json, sys
        import flows.__main__
        from udcshield.pipeline.runner import get_stage
        from udcshield.preflight import section_module
        stage = get_stage({stage!r})
        for section in stage.sections:
            __import__(section_module(section))
        print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('udcshield', 'flows', 'tasks'))))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1])) - {"flows.__main__"}
    closure = stage_deps.import_closure(stage_deps.stage_roots(stage))
    assert loaded <= closure, sorted(loaded - closure)
