"""Imports run one way: the layers of `rtms_gateway`, read from the source with `ast`.

A package here is a first-level unit of the project: `protocol`, `client`, `gateway`,
`sinks`, `api`, `webhooks`, `simulator`, and the top-level modules (`config`, `cli`,
`logs`, `metrics`). Every import counts, also one inside a function; only imports under
`if TYPE_CHECKING:` are left out, as they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import rtms_gateway

SOURCE = Path(rtms_gateway.__file__).parent
ROOT = SOURCE.name  # "rtms_gateway"


def _modules() -> dict[str, tuple[Path, list[str]]]:
    """Each module's dotted name (without the root) -> its file and its package's parts."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = parts
        else:
            package = parts[:-1]
        found[".".join(parts[1:])] = (path, package)
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, but not the bodies of `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path, package: list[str]) -> Iterator[str]:
    """The dotted names `path` imports (absolute, the root included)."""
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import x` imports the module x
                yield f"{target}.{alias.name}"
                yield target


MODULES = _modules()


def _module_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, (path, package) in MODULES.items():
        targets = set()
        for imported in _imports(path, package):
            if imported == ROOT or imported.startswith(ROOT + "."):
                inner = imported[len(ROOT) + 1:]
                # A module's own packages are imported before it in any case: not an edge.
                if inner in MODULES and not (name + ".").startswith(inner + "." if inner else ""):
                    targets.add(inner)
        graph[name] = targets
    return graph


def _unit(module: str) -> str:
    return module.split(".")[0] if module else "__init__"


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source, targets in _module_graph().items():
        units = graph.setdefault(_unit(source), set())
        units.update(_unit(t) for t in targets if _unit(t) != _unit(source))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected parts of `graph` with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = set()
            while True:
                member = stack.pop()
                part.add(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(part)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_the_layers():
    # Guards the reader itself: a parse that found nothing would make every rule pass.
    graph = _package_graph()
    assert {"protocol", "client"} <= graph["gateway"]
    assert "protocol" in graph["simulator"]


def test_the_protocol_imports_nothing_else_of_ours():
    assert _package_graph()["protocol"] == set()


def test_the_simulator_imports_only_the_protocol_and_logs():
    # Zoom's side shares the wire's facts with the client, never its code or its settings.
    assert _package_graph()["simulator"] <= {"protocol", "logs"}


def test_settings_import_neither_the_client_nor_the_simulator():
    assert not _package_graph()["config"] & {"client", "simulator", "gateway", "sinks", "api", "cli"}


def test_no_import_circle_between_packages():
    assert _cycles(_package_graph()) == []


def test_no_import_circle_between_modules():
    assert _cycles(_module_graph()) == []


# Where a database driver's errors may be caught: the store's own modules, which turn them
# into StoreUnavailable or RecordRefused (`sinks.store_errors`), and the settings and store
# opening, which only check a URL's form (ArgumentError).
READS_DATABASE_ERRORS = {"sinks.store_errors", "sinks.store_open", "sinks.keys", "config"}
DATABASE_ERROR_MODULES = ("sqlalchemy.exc", "asyncpg", "aiosqlite", "sqlite3", "psycopg")


def test_database_errors_are_read_only_at_the_stores_boundary():
    readers = {name for name, (path, package) in MODULES.items()
               if any(imported.startswith(DATABASE_ERROR_MODULES) for imported in _imports(path, package))}
    assert "sinks.store_errors" in readers  # the reader sees them where they are
    assert readers <= READS_DATABASE_ERRORS, readers - READS_DATABASE_ERRORS


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
