"""The package's import layering, read from its source with ``ast`` (nothing is imported or run).

Imports go down only: ``discovery`` (on ``names``, ``copy_records``) at the bottom; ``archive``, ``staging``,
``transcript``, ``zst`` and ``store_protocol`` on it; ``files`` (transcript files, both eras) on those;
``jsonl_store`` on ``files``; the SQLite store in four rooms, each on the ones before it: ``sqlite_db``
(read-only access to the database, on nothing of the package), ``sqlite_live`` (the live set and the
scan), ``sqlite_export`` (a transcript exported to a staging file), ``sqlite_store`` (the store class, on
``files`` too); ``stores`` (the dispatcher) on the stores; ``detector`` (Airflow-free: which agents to
scan when) on ``stores``; ``agent_check`` (Airflow-free: which agents a run scans) on ``detector`` and
``stores``; ``host_watch`` (Airflow-free: a fleet host's bounded watch) on ``detector``; ``metrics``
(Airflow's ``Stats``, through ``compat``); ``runs``, ``nexus``, ``watcher`` and ``dag`` on top.
Every import counts: module-level, function-local, under ``if``.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = "openclaw_nexus"
# The SQLite store's rooms, bottom first: each may import the ones before it, none the ones after.
SQLITE_ROOMS = ["sqlite_db", "sqlite_live", "sqlite_export", "sqlite_store"]
STORE_MODULES = {"files", "jsonl_store", *SQLITE_ROOMS, "store_protocol", "stores"}
# The Airflow glue: the modules that may import Airflow, and that nothing below them imports.
AIRFLOW_GLUE = {"compat", "dag", "metrics", "nexus", "runs", "watcher"}


def package_dir() -> Path:
    """The package as tests see it: the checkout's plugins/, or the installed wheel (tests/adoption)."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def import_graph(folder: Path) -> dict[str, set[str]]:
    """Module name (``discovery``, ``__init__``) → the modules of the package it imports."""
    modules = {path.stem for path in folder.glob("*.py")}

    def target(dotted: str) -> str | None:
        """The package module a dotted name lands in (``openclaw_nexus.x.y`` → ``x``), else None."""
        parts = dotted.split(".")
        if parts[0] != PACKAGE:
            return None
        if len(parts) == 1:
            return "__init__"
        return parts[1] if parts[1] in modules else "__init__"

    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                found = [target(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from . import x, from .x import y
                    base = ".".join([PACKAGE, node.module] if node.module else [PACKAGE])
                else:
                    base = node.module or ""
                if base == PACKAGE:  # from openclaw_nexus import x: x is a module or a name of __init__
                    found = [alias.name if alias.name in modules else "__init__" for alias in node.names]
                else:
                    found = [target(base)]
            else:
                continue
            edges.update(name for name in found if name is not None and name != path.stem)
        graph[path.stem] = edges
    return graph


def external_imports(path: Path) -> set[str]:
    """The top-level names of every module outside the package that ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {PACKAGE}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


GRAPH = import_graph(package_dir())


def test_the_parser_sees_the_imports_it_must():
    """Guards the checks below against passing on an empty graph."""
    assert {"discovery", "files", "jsonl_store", "sqlite_store", "stores", "runs"} <= GRAPH.keys()
    assert {"jsonl_store", "sqlite_store", "store_protocol"} <= GRAPH["stores"]
    assert "files" in GRAPH["jsonl_store"] and "files" in GRAPH["sqlite_store"]
    assert {"sqlite_db", "sqlite_live", "sqlite_export"} <= GRAPH["sqlite_store"]
    assert {"sqlite_db", "sqlite_live"} <= GRAPH["sqlite_export"] and "sqlite_db" in GRAPH["sqlite_live"]
    assert "discovery" in GRAPH["files"]


def test_the_parser_counts_every_form_of_import(tmp_path):
    folder = tmp_path / PACKAGE
    folder.mkdir()
    (folder / "__init__.py").write_text("__version__ = '0'\n")
    sources = {
        "a": "from openclaw_nexus import b, __version__\n",
        "b": "def f():\n    from openclaw_nexus.c import thing\n",
        "c": "import openclaw_nexus.d\n",
        "d": "if True:\n    from . import e\n",
        "e": "from .a import x\nimport os\n",
    }
    for name, source in sources.items():
        (folder / f"{name}.py").write_text(source)
    graph = import_graph(folder)
    assert graph == {
        "__init__": set(),
        "a": {"b", "__init__"},
        "b": {"c"},
        "c": {"d"},
        "d": {"e"},
        "e": {"a"},
    }
    assert find_cycle(graph) == ["a", "b", "c", "d", "e", "a"]


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_sqlite_store_does_not_import_jsonl_store():
    for module in SQLITE_ROOMS:
        assert "jsonl_store" not in reachable(GRAPH, module), (
            f"{module} reaches jsonl_store; what both eras share belongs in files"
        )


def test_the_sqlite_rooms_import_down():
    for at, module in enumerate(SQLITE_ROOMS):
        above = set(SQLITE_ROOMS[at + 1 :])
        assert not reachable(GRAPH, module) & above, (
            f"{module} reaches {sorted(reachable(GRAPH, module) & above)}, a room above it"
        )
    assert not reachable(GRAPH, "sqlite_db"), "sqlite_db (database access) imports nothing of the package"


def test_discovery_imports_no_store_module():
    assert not reachable(GRAPH, "discovery") & STORE_MODULES, (
        f"discovery (the bottom layer) reaches {sorted(reachable(GRAPH, 'discovery') & STORE_MODULES)}"
    )


def test_no_store_imports_the_dispatcher():
    for module in sorted(STORE_MODULES - {"stores"}):
        assert "stores" not in reachable(GRAPH, module), f"{module} reaches stores, the layer above it"


def test_the_detector_sits_on_the_stores_and_the_watcher_on_the_detector():
    assert {"stores", "discovery"} <= GRAPH["detector"]
    assert "detector" in GRAPH["watcher"]
    below = {"discovery", "names", "archive", "staging", "transcript", "zst", *STORE_MODULES}
    for module in sorted(below):
        assert "detector" not in reachable(GRAPH, module), f"{module} reaches detector, a layer above it"
    assert not reachable(GRAPH, "detector") & AIRFLOW_GLUE, (
        f"detector reaches the Airflow glue: {sorted(reachable(GRAPH, 'detector') & AIRFLOW_GLUE)}"
    )


def test_the_detector_and_all_it_imports_are_airflow_free():
    folder = package_dir()
    assert "airflow" in external_imports(folder / "watcher.py"), "guards the check below"
    for module in sorted({"detector"} | reachable(GRAPH, "detector")):
        assert "airflow" not in external_imports(folder / f"{module}.py"), f"{module} imports Airflow"


def test_the_agent_check_sits_on_the_detector_and_the_stores_and_only_runs_imports_it():
    assert {"detector", "stores"} <= GRAPH["agent_check"]
    assert "agent_check" in GRAPH["runs"]
    importers = {module for module, imported in GRAPH.items() if "agent_check" in imported}
    assert importers == {"runs"}, f"agent_check is imported by {sorted(importers)}"
    folder = package_dir()
    for module in sorted({"agent_check"} | reachable(GRAPH, "agent_check")):
        assert "airflow" not in external_imports(folder / f"{module}.py"), f"{module} imports Airflow"


def test_the_host_watch_sits_on_the_detector_and_only_runs_imports_it():
    assert "detector" in GRAPH["host_watch"]
    assert "host_watch" in GRAPH["runs"]
    importers = {module for module, imported in GRAPH.items() if "host_watch" in imported}
    assert importers == {"runs"}, f"host_watch is imported by {sorted(importers)}"
    folder = package_dir()
    for module in sorted({"host_watch"} | reachable(GRAPH, "host_watch")):
        assert "airflow" not in external_imports(folder / f"{module}.py"), f"{module} imports Airflow"
