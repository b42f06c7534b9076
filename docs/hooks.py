"""MkDocs hook: fills the generated blocks of the pages at build time (``hooks:`` in ``mkdocs.yml``).

A page asks for generated Markdown with a marker on a line of its own, ``<!-- gen:NAME -->``:

* ``dag``, ``stage-io``, ``params-reruns``: the stage DAG, the reads/writes table and which stages a
  params change reruns, from ``dvc.yaml``;
* ``configuration``: the params reference, :func:`udcshield.config.reference.markdown_reference`;
* ``results``: the stages' metrics JSON under the data root (``data/``, or ``$UDCSHIELD_DOCS_DATA``);
* ``bench:<benchmark>``: the records of one benchmark in ``benchmarks/results/``.

The Markdown comes from the pure functions of ``docs/gen.py``. Nothing generated is written into the
repository; an unknown marker or a failing generator fails the build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from mkdocs.exceptions import PluginError

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
MARKER = re.compile(r"^<!--\s*gen:([a-z0-9_:-]+)\s*-->[ \t]*$", re.M)


def _load_gen():
    spec = importlib.util.spec_from_file_location("udcshield_docs_gen", DOCS / "gen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_gen()


def data_root() -> Path:
    """Where the stages' outputs are read from: ``$UDCSHIELD_DOCS_DATA``, else ``<repo>/data``."""
    return Path(os.environ.get("UDCSHIELD_DOCS_DATA") or ROOT / "data")


def configuration_reference() -> str:
    """The params reference page, generated from the schema."""
    try:
        from udcshield.config.reference import markdown_reference
    except ImportError as exc:
        raise PluginError("configuration.md: cannot import udcshield.config.reference.markdown_reference "
                          f"({exc}); build the docs in the project's environment (.venv/bin/mkdocs)") from exc
    text = markdown_reference()
    return text if text.lstrip().startswith("# ") else "# Configuration reference\n\n" + text


def generators() -> dict[str, Callable[[], str]]:
    """Marker name -> function returning its Markdown."""
    benchmarks = {}

    def bench(kind: str) -> Callable[[], str]:
        def render() -> str:
            if not benchmarks:
                benchmarks.update(gen.load_benchmarks(ROOT / "benchmarks" / "results"))
            return gen.benchmark_sections(benchmarks, kind)
        return render

    return {
        "dag": lambda: gen.mermaid_dag(gen.load_dvc_yaml(ROOT / "dvc.yaml")),
        "stage-io": lambda: gen.stage_io_table(gen.load_dvc_yaml(ROOT / "dvc.yaml")),
        "params-reruns": lambda: gen.params_rerun_table(gen.load_dvc_yaml(ROOT / "dvc.yaml")),
        "configuration": configuration_reference,
        "results": lambda: gen.results_page(gen.load_results(data_root())),
        **{f"bench:{kind}": bench(kind) for kind in gen.SECTIONS},
    }


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    """Replace every ``<!-- gen:NAME -->`` line of the page by its generated Markdown."""
    table = generators()

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in table:
            raise PluginError(f"{page.file.src_path}: unknown generated block {name!r} "
                              f"(known: {', '.join(sorted(table))})")
        try:
            return table[name]().rstrip("\n") + "\n"
        except PluginError:
            raise
        except Exception as exc:  # a generator failed: name the page and the block
            raise PluginError(f"{page.file.src_path}: generating {name!r} failed: "
                              f"{type(exc).__name__}: {exc}") from exc

    return MARKER.sub(replace, markdown)
