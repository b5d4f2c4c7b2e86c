"""The import graph of rag_core/, connectors/ and bot/: no cycle, and the engine never imports its callers."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rag_core", "connectors", "bot")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    """Every module of ours imported anywhere in the file (lazy imports too), except under TYPE_CHECKING."""
    found: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in _imports(ast.parse(path.read_text(encoding="utf-8")), package, modules):
            # importing a submodule also runs its packages' __init__: not an edge we can avoid or care about
            if target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def _edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((src, dst) for src, targets in graph.items() for dst in targets)


def test_there_is_no_import_cycle() -> None:
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' → '.join(exc.args[1])}") from None


def test_rag_core_imports_neither_connectors_nor_bot() -> None:
    graph = import_graph()
    upward = sorted(
        f"{src} → {dst}"
        for src, dst in _edges(graph)
        if src.startswith("rag_core") and not dst.startswith("rag_core")
    )
    assert upward == []


def test_connectors_never_import_the_bot() -> None:
    graph = import_graph()
    assert (
        sorted(f"{s} → {d}" for s, d in _edges(graph) if s.startswith("connectors") and d.startswith("bot"))
        == []
    )


def test_the_walk_sees_real_edges() -> None:
    """Guards the tests above against a walk that finds nothing."""
    graph = import_graph()
    assert "connectors.base" in graph["connectors.registry"]
    assert "rag_core.threshold" in graph["rag_core.engine"]
    assert "bot.cli_report" in graph["bot.cli"]  # a lazy import inside a function counts
