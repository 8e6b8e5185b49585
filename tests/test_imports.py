"""The import graph of the source packages, read with ``ast`` (function-level and
TYPE_CHECKING imports included, since a lazy import is still a dependency).

- No import cycle between any modules of ``monitor``, ``alerts`` and ``pipelines``.
- Serving and alerting (``monitor``, ``alerts``) import nothing of training (``pipelines``);
  training's commands reach ``finmon`` through an entry point (pyproject.toml), not an import.
  Training imports nothing of ``alerts``, and of serving's command-line modules only the shared
  config option and loader (``monitor.daemon_cli``), for ``finmon demo``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "alerts", "pipelines")
FORBIDDEN = {
    "monitor": ("pipelines",),
    "alerts": ("pipelines",),
    "pipelines": ("alerts",),
}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            parts = file.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # a script entry point: nothing imports it
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return out


def imported_names(name: str, file: Path) -> Iterator[str]:
    package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(file.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Each module's imports among the packages' modules (a name resolves to the longest
    module prefix: ``from a.b import C`` depends on ``a.b``, ``from a import b`` on ``a.b``)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, file in known.items():
        targets = set()
        for imported in imported_names(name, file):
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another, directly or not."""
    reach = {node: reachable(graph, node) for node in graph}
    groups = {
        tuple(sorted(other for other in reach[node] if node in reach[other]))
        for node in graph
        if node in reach[node]
    }
    return sorted(list(group) for group in groups)


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_serving_does_not_import_training() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if target.split(".")[0] in FORBIDDEN.get(module.split(".")[0], ())
        or (
            module.startswith("pipelines.")
            and target.startswith("monitor.")
            and "cli" in target
            and target != "monitor.daemon_cli"
        )
    ]
    assert wrong == []
