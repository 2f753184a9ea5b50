"""Dependencies point one way: storage <- resolvers <- schema / legacy_rest <- imworkbench
(STYLE.md), and the installed distribution owns every top-level name it installs."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

from pytest_archon import archrule

import imworkbench
import legacy_rest
import resolvers
import schema
import storage
from tests.conftest import TIMEOUT

ROOT = Path(__file__).parent.parent
DISTRIBUTION = "imworkbench"
TOP_LEVEL = ("imworkbench", "legacy_rest", "resolvers", "schema", "storage")


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name (a package by its own)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        # A relative import counts from the module's package (itself when it is one).
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports, read from source: module level,
    ``TYPE_CHECKING`` blocks and function bodies alike. ``from pkg import name`` imports the
    module ``pkg.name`` when there is one, else ``pkg``."""
    modules = module_names(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _imported(node, module, is_package)
            if isinstance(node, ast.Import):
                edges.update(name for name in names if name in modules)
                continue
            base, members = names[0], names[1:]
            submodules = [name for name in members if name in modules]
            edges.update(submodules)
            if len(submodules) < len(members) and base in modules:
                edges.add(base)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle, as a closed path ``[a, b, ..., a]``, through each strongly connected
    component of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return [_closed_path(graph, set(component)) for component in components]


def _closed_path(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    # Breadth-first from the component's first module back to itself: the shortest cycle
    # through it, which names the imports to break.
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & component):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if successor not in parents:
                    parents[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def test_storage_depends_on_nothing_above_it():
    """storage imports no strawberry, starlette, resolvers, schema, legacy_rest or shell code."""
    (
        archrule("storage is the bottom layer")
        .match("storage*")
        .should_not_import(
            "strawberry*", "starlette*", "resolvers*", "schema*", "legacy_rest*", "imworkbench*"
        )
        .check("storage")
    )


def test_resolvers_know_no_transport():
    """resolvers import neither strawberry, starlette, nor the layers above them."""
    (
        archrule("resolvers are transport-free")
        .match("resolvers*")
        .should_not_import("strawberry*", "starlette*", "schema*", "legacy_rest*", "imworkbench*")
        .check("resolvers")
    )


def test_schema_and_legacy_do_not_import_each_other_or_the_shell():
    """schema and legacy_rest import neither each other nor the shell; legacy_rest no storage."""
    (
        archrule("schema is independent of legacy_rest")
        .match("schema*")
        .should_not_import("legacy_rest*", "starlette*", "imworkbench*")
        .check("schema")
    )
    (
        archrule("legacy_rest parses, calls resolvers and encodes")
        .match("legacy_rest*")
        .should_not_import("schema*", "strawberry*", "imworkbench*", "storage*")
        .check("legacy_rest")
    )


def test_packages_are_this_repository():
    """Every top-level package resolves to this checkout, not to a PyPI namesake."""
    for package in (imworkbench, schema, storage, resolvers, legacy_rest):
        assert Path(package.__file__).resolve().parent.parent == ROOT.resolve()


def test_the_distribution_owns_every_name_it_installs():
    """imworkbench installs at most six top-level names, and no other distribution installs any
    of them (PyPI has packages named schema, storage, pubsub, auth, app and graphql_ws)."""
    owners = packages_distributions()
    installed = sorted(name for name, dists in owners.items() if DISTRIBUTION in dists)
    assert installed == sorted(TOP_LEVEL)
    # A name may be listed twice for one distribution (an editable install's egg-info in the
    # checkout beside its dist-info): what matters is who else installs it.
    others = {name: set(owners[name]) - {DISTRIBUTION} for name in installed}
    assert others == dict.fromkeys(installed, frozenset())


def test_the_installed_command_works_from_any_folder(tmp_path: Path):
    """The installed ``workbench schema``, run from an empty folder, prints schema.graphql."""
    command = Path(sys.executable).with_name("workbench")
    assert distribution(DISTRIBUTION).entry_points["workbench"].value == "imworkbench.cli:main"
    result = subprocess.run(
        [str(command), "schema"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=6 * TIMEOUT,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.stdout == (ROOT / "schema.graphql").read_text()


def test_no_import_cycle_among_the_product_packages():
    """No product module imports, at any level, a module that imports it back."""
    graph = import_graph(ROOT, TOP_LEVEL)
    assert "resolvers.badges" in graph  # the graph is of this checkout
    found = [" -> ".join(cycle) for cycle in cycles(graph)]
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_the_cycle_finder_sees_deferred_imports(tmp_path: Path):
    """Cycles closed by TYPE_CHECKING, function-local or from-package imports are found."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import A\n")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\nA = 1\n"
    )
    (package / "b.py").write_text("def f():\n    from pkg.c import C\n")
    (package / "c.py").write_text("from . import a\nC = 1\n")
    (package / "d.py").write_text("from pkg import A\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.a"},
        "pkg.d": {"pkg"},
    }
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
