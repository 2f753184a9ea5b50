"""Dependencies point one way: storage <- resolvers <- schema / legacy_rest <- imworkbench
(STYLE.md), and the installed distribution owns every top-level name it installs."""

from __future__ import annotations

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
