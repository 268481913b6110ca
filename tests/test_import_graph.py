"""The project's import graph: no circles, and arrows one way.

    ops -> train -> pipeline        bench -> ops, train, pipeline

Every ``.py`` under pipeline/, train/, ops/ and bench/ is read with ``ast``; an import counts
wherever it is written (a lazy import inside a function is still an edge), except under
``if TYPE_CHECKING:``, which never runs. The one arrow from ops into bench is the CLI adding
the ``instructflow bench`` commands (``ops.cli`` -> ``bench.cli``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "train", "ops", "bench")
# Which top-level packages each one must never import.
FORBIDDEN = {
    "pipeline": {"train", "ops", "bench"},
    "train": {"ops", "bench"},
    "ops": {"bench"},
}
ALLOWED = {("ops.cli", "bench.cli")}  # the entry point of `instructflow bench`

Graph = dict[str, set[str]]


def project_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement in ``tree`` may load, outside TYPE_CHECKING."""
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return names


def import_graph(root: Path = ROOT) -> Graph:
    modules = project_modules(root)
    graph: Graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            # `from pipeline import plan` loads pipeline.plan; `from pipeline.plan import
            # StageFailure` loads pipeline.plan: the longest project module that matches.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def back_edges(graph: Graph) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        forbidden = FORBIDDEN.get(module.split(".")[0], set())
        for target in sorted(targets):
            if target.split(".")[0] in forbidden and (module, target) not in ALLOWED:
                wrong.append(f"{module} -> {target}")
    return wrong


def test_the_graph_sees_every_package_and_lazy_imports():
    graph = import_graph()
    assert {module.split(".")[0] for module in graph} == set(PACKAGES)
    assert "pipeline.registry" in graph["pipeline.config"]
    # ops.cli imports its commands' modules inside the handlers only.
    assert "ops.datarun" in graph["ops.cli"]


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_arrows_point_one_way():
    assert back_edges(import_graph()) == []


def test_stages_never_import_the_registry_nor_conversion_its_export():
    graph = import_graph()
    registry_users = {module for module, targets in graph.items() if "pipeline.registry" in targets}
    stages = registry_users & set(graph["pipeline.registry"])
    assert stages == set()
    assert "pipeline.convert_back" not in graph["pipeline.convert"]


def test_the_checks_catch_a_circle_a_back_edge_and_skip_type_checking(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "a.py").write_text("def f():\n    from pipeline import b\n")
    (tmp_path / "pipeline" / "b.py").write_text("from .a import f\nimport ops.cli\n")
    (tmp_path / "pipeline" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from train import x\n"
    )
    graph = import_graph(tmp_path)
    assert find_cycle(graph) == ["pipeline.a", "pipeline.b", "pipeline.a"]
    assert back_edges(graph) == ["pipeline.b -> ops"]
    assert graph["pipeline.c"] == set()
