"""The schema package: its public names, and its purity (nothing from udcshield outside udcshield.config)."""

import ast
import subprocess
import sys
from pathlib import Path

from udcshield import config

PACKAGE = Path(config.__file__).resolve().parent
ALLOWED_THIRD_PARTY = {"yaml"}


def _imports(path: Path) -> list[tuple[int, str, int]]:
    """(line, module, relative level) of every import in ``path``, function-level ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.lineno, node.module or "", node.level))
    return out


def test_the_schema_imports_only_itself_the_standard_library_and_yaml():
    files = sorted(PACKAGE.glob("*.py"))
    assert {p.name for p in files} >= {"__init__.py", "base.py", "params.py", "reference.py"}
    offenders = []
    for path in files:
        for line, module, level in _imports(path):
            top = module.split(".")[0]
            if level > 1:
                offenders.append(f"{path.name}:{line} relative import above the package")
            elif level == 1 or module == "udcshield.config" or module.startswith("udcshield.config."):
                continue
            elif top == "udcshield" or (top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY):
                offenders.append(f"{path.name}:{line} imports {module}")
    assert not offenders, offenders


def test_importing_the_schema_loads_no_other_udcshield_module_nor_torch():
    code = ("import sys, udcshield.config, udcshield.config.reference; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('udcshield.') "
            "and not m.startswith('udcshield.config')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_files_stay_small():
    assert all(len(p.read_text().splitlines()) < 400 for p in PACKAGE.glob("*.py"))


def test_public_names():
    for name in ("Params", "load_params", "params_from_dict", "to_dict", "ConfigError", "AttackSpec", "ModelSpec",
                 "SimulateConfig", "OpticsConfig", "HdrConfig", "FormationConfig", "TrainConfig", "PurifierConfig",
                 "FinetuneConfig", "AttackConfig", "PurifyConfig", "AdaptiveSpec", "AdaptiveConfig", "SweepSampler",
                 "SweepConfig", "EvaluateConfig", "ReportConfig", "RunnerConfig", "AccelConfig", "SECTIONS"):
        assert hasattr(config, name), name
    assert set(config.__all__) <= set(dir(config))
    assert issubclass(config.ConfigError, ValueError)
    assert callable(config.reference.markdown_reference)
