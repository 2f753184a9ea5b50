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
    """schema and legacy_rest are siblings; neither imports the other nor the service shell."""
    (
        archrule("schema is independent of legacy_rest")
        .match("schema*")
        .should_not_import("legacy_rest*", "starlette*", "imworkbench*")
        .check("schema")
    )
    (
        archrule("legacy_rest is independent of schema")
        .match("legacy_rest*")
        .should_not_import("schema*", "strawberry*", "imworkbench*")
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
