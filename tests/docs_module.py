"""docs/gen.py, imported by path (docs/ is not a package) for the tests that render benchmark records."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_docs_gen(name: str) -> ModuleType:
    """A fresh import of ``docs/gen.py`` registered as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "gen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
