"""Dependencies point one way: storage <- resolvers <- schema / legacy_rest <- app (STYLE.md)."""

from __future__ import annotations

from pathlib import Path

from pytest_archon import archrule

import legacy_rest
import resolvers
import schema
import storage

ROOT = Path(__file__).parent.parent


def test_storage_depends_on_nothing_above_it():
    """storage imports no strawberry, starlette, settings, resolvers, schema or app code."""
    (
        archrule("storage is the bottom layer")
        .match("storage*")
        .should_not_import(
            "strawberry*",
            "starlette*",
            "settings",
            "resolvers*",
            "schema*",
            "legacy_rest*",
            "app",
            "auth",
            "cli",
            "graphql_view",
        )
        .check("storage")
    )


def test_resolvers_know_no_transport():
    """resolvers import neither strawberry, starlette, settings, nor the layers above them."""
    (
        archrule("resolvers are transport-free")
        .match("resolvers*")
        .should_not_import(
            "strawberry*",
            "starlette*",
            "settings",
            "schema*",
            "legacy_rest*",
            "app",
            "auth",
            "cli",
            "graphql_view",
        )
        .check("resolvers")
    )


def test_schema_and_legacy_do_not_import_each_other_or_the_app():
    """schema and legacy_rest are siblings; neither imports the other nor app assembly."""
    (
        archrule("schema is independent of legacy_rest")
        .match("schema*")
        .should_not_import("legacy_rest*", "app", "cli", "settings")
        .check("schema")
    )
    (
        archrule("legacy_rest is independent of schema")
        .match("legacy_rest*")
        .should_not_import("schema*", "strawberry*", "app", "cli", "settings")
        .check("legacy_rest")
    )


def test_packages_are_this_repository():
    """schema, storage, resolvers and legacy_rest resolve to this repo, not PyPI namesakes."""
    for package in (schema, storage, resolvers, legacy_rest):
        assert Path(package.__file__).resolve().parent.parent == ROOT.resolve()
