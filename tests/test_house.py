"""House rules of the library: no import cycle, small files, a pure schema."""

from pathlib import Path

from scripts import stage_deps

SRC = Path(__file__).resolve().parents[1] / "src" / "udcshield"


def library_graph() -> dict[str, set[str]]:
    """udcshield module -> udcshield modules it imports (any nesting, TYPE_CHECKING blocks excluded)."""
    modules = {k: v for k, v in stage_deps.module_files().items() if k.split(".")[0] == "udcshield"}
    return {m: {i for i in stage_deps.imported_names(p, m) if i in modules and i != m} for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    """Lazy (function-level) imports count: a cycle through them is still a cycle of the design."""
    graph = library_graph()
    # A package's __init__ may re-export its own modules; a module importing its package is the cycle.
    assert cycles(graph) == []


def test_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_library_file_over_500_lines():
    long = {p.relative_to(SRC).as_posix(): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_schema_imports_no_library_module():
    graph = library_graph()
    outside = {m: sorted(i for i in deps if not i.startswith("udcshield.config"))
               for m, deps in graph.items() if m.startswith("udcshield.config")}
    assert {m: d for m, d in outside.items() if d} == {}


def test_no_stage_imports_another_stage():
    """Names shared by stages live in udcshield.pipeline.names (and other non-stage modules)."""
    from udcshield.pipeline.runner import STAGE_NAMES

    stage_modules = {f"udcshield.pipeline.{name}" for name in STAGE_NAMES}
    graph = library_graph()
    crossing = {m: sorted(graph[m] & (stage_modules - {m})) for m in stage_modules}
    assert {m: d for m, d in crossing.items() if d} == {}
