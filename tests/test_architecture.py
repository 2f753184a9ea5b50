"""Dependencies point one way: storage <- resolvers <- schema / legacy_rest <- imworkbench
(STYLE.md), storage alone builds SQL, and the installed distribution owns every top-level name
it installs."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import distribution, packages_distributions
from pathlib import Path
from typing import Any

import pytest
from pytest_archon import archrule

import imworkbench
import legacy_rest
import resolvers
import schema
import storage
from tests.factories import TIMEOUT

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


def test_the_shell_imports_no_test_or_benchmark_code():
    """imworkbench, the top layer, may import every product package but no tests or benchmarks."""
    (
        archrule("the shell is product code")
        .match("imworkbench*")
        .should_not_import("tests*", "benchmarks*")
        .check("imworkbench")
    )


def test_every_top_level_package_has_a_layering_rule():
    """Each installed top-level package is the subject of an archrule in this module."""
    checked = {
        node.args[0].value
        for node in ast.walk(ast.parse(Path(__file__).read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "check"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert checked == set(TOP_LEVEL)


# What only storage may do. Any object's .execute/.scalars/.scalar/.stream counts (sessions,
# connections, results), except these receivers', named here with the reason they are not SQL:
# Starlette's ``request.stream()`` (a body in chunks: legacy_rest caps its size), redis-py's
# ``pipe.execute()`` (the broker's batched PUBLISH) and ``super().execute()`` /
# ``super().stream()`` in the Strawberry schema subclass (GraphQL execution and subscriptions).
SQL_METHODS = frozenset({"execute", "scalars", "scalar", "stream"})
NOT_SQL = frozenset(
    {("request", "stream"), ("pipe", "execute"), ("super()", "execute"), ("super()", "stream")}
)
WITHOUT_SQL = ("resolvers", "schema", "legacy_rest", "imworkbench")


def _lint_config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)["tool"]["ruff"]["lint"]
    return config


def _banned(name: str) -> bool:
    # The constructors ruff's banned-api forbids outside storage, read from pyproject.toml so
    # that the lint rule and this test cannot disagree; a bare ``import sqlalchemy`` (or
    # ``sqlmodel``) would reach them as attributes.
    banned = _lint_config()["flake8-tidy-imports"]["banned-api"]
    return name in ("sqlalchemy", "sqlmodel") or any(
        name == api or name.startswith(api + ".") for api in banned
    )


def _receiver(node: ast.expr) -> str | None:
    # ``request`` for ``request.stream()``, ``super()`` for ``super().execute()``.
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        return f"{node.func.id}()"
    return None


def _sql_uses(source: str, filename: str) -> list[str]:
    """Where ``source`` runs a statement or imports a statement constructor."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
        ):
            if (_receiver(node.func.value), node.func.attr) not in NOT_SQL:
                found.append(f"{filename}:{node.lineno} .{node.func.attr}()")
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found += [
                f"{filename}:{node.lineno} from {node.module} import {alias.name}"
                for alias in node.names
                if _banned(node.module) or _banned(f"{node.module}.{alias.name}")
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"{filename}:{node.lineno} import {alias.name}"
                for alias in node.names
                if _banned(alias.name)
            ]
    return found


def test_only_storage_runs_or_builds_sql():
    """No module of resolvers, schema, legacy_rest or imworkbench calls .execute, .scalars,
    .scalar or .stream, or imports a SQLAlchemy/SQLModel statement constructor."""
    found = []
    for package in WITHOUT_SQL:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += _sql_uses(path.read_text(), str(path.relative_to(ROOT)))
    assert found == []


@pytest.mark.parametrize(
    ("source", "use"),
    [
        ("await session.execute(stmt)", "probe.py:1 .execute()"),
        ("rows = found.scalars()", "probe.py:1 .scalars()"),
        ("n = result.scalar()", "probe.py:1 .scalar()"),
        ("s = connection.stream(stmt)", "probe.py:1 .stream()"),
        ("from sqlalchemy import select", "probe.py:1 from sqlalchemy import select"),
        ("from sqlmodel import select", "probe.py:1 from sqlmodel import select"),
        (
            "from sqlalchemy.dialects import sqlite",
            "probe.py:1 from sqlalchemy.dialects import sqlite",
        ),
        ("import sqlalchemy as sa", "probe.py:1 import sqlalchemy"),
    ],
)
def test_the_sql_scan_finds_each_kind_of_use(source: str, use: str):
    """The scan behind test_only_storage_runs_or_builds_sql reports each kind of SQL use."""
    assert _sql_uses(source, "probe.py") == [use]


def test_the_sql_scan_lets_non_sql_through():
    """request.stream(), pipe.execute(), super().execute(), the engine URL parser and the
    exceptions are not SQL."""
    source = (
        "from sqlalchemy.engine import make_url\n"
        "from sqlalchemy.exc import IntegrityError\n"
        "async def f(request, pipe):\n"
        "    async for chunk in request.stream():\n"
        "        await pipe.execute()\n"
        "    return await super().execute(chunk)\n"
    )
    assert _sql_uses(source, "probe.py") == []


@pytest.mark.parametrize(
    ("filename", "banned"),
    [
        ("resolvers/probe.py", True),
        ("schema/probe.py", True),
        ("legacy_rest/probe.py", True),
        ("imworkbench/http/probe.py", True),
        ("storage/probe.py", False),
        ("tests/resolvers/test_probe.py", False),
    ],
)
def test_ruff_bans_statement_constructors_outside_storage(filename: str, banned: bool):
    """ruff check (TID251, banned-api) fails a `from sqlalchemy import select` anywhere but in
    storage/ and the tests, as configured in pyproject.toml."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("ruff")),
            *("check", "--select", "TID251", "--output-format", "concise"),
            *("--stdin-filename", filename, "-"),
        ],
        input="from sqlalchemy import select\n\nQUERY = select\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=6 * TIMEOUT,
        check=False,
    )
    assert (result.returncode == 1) is banned
    assert ("`sqlalchemy.select` is banned" in result.stdout) is banned


def test_the_lint_rule_exempts_only_storage_tests_and_the_bare_peer():
    """TID251 is on, and only storage/, tests/ and benchmarks/baseline.py may build SQL."""
    config = _lint_config()
    assert "TID251" in config["select"]
    exempt = {pattern for pattern, rules in config["per-file-ignores"].items() if "TID251" in rules}
    assert exempt == {"storage/**", "tests/**", "benchmarks/baseline.py"}


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
