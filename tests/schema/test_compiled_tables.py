"""The compiled tables (``schema.compiled``) are checked against the Strawberry schema when it
is built: a table that disagrees fails start-up, naming the field."""

from __future__ import annotations

import dataclasses

import pytest

from imworkbench.app import create_app
from schema import build_schema
from schema.compiled import (
    APP,
    APP_BADGE,
    BADGE_EVENT,
    BADGES,
    COMPILED_ROOTS,
    WORKBENCH_QUERY,
    CompiledRoot,
    CompiledTableMismatch,
    check_tables,
)
from schema.plain_documents import Child, Leaf, ObjectType


def graphql_schema():
    """The service's graphql-core schema."""
    return build_schema()._schema


def with_leaf(kind: ObjectType, name: str, leaf: Leaf) -> ObjectType:
    """``kind`` with leaf ``name`` replaced or added."""
    return dataclasses.replace(kind, leaves={**kind.leaves, name: leaf})


def badges_over(root: ObjectType) -> tuple[CompiledRoot, ...]:
    """The compiled roots, the badges subscription returning ``root``."""
    return (dataclasses.replace(BADGES, root=root), WORKBENCH_QUERY)


def test_the_service_tables_match_the_schema():
    """Every compiled type and field exists in the schema with its declared type."""
    check_tables(graphql_schema(), COMPILED_ROOTS)


@pytest.mark.parametrize(
    ("roots", "named"),
    [
        (
            badges_over(with_leaf(BADGE_EVENT, "unreadTotal", Leaf("Int", len))),
            "BadgeEvent.unreadTotal",
        ),
        (badges_over(with_leaf(BADGE_EVENT, "cause", Leaf("String!", str))), "BadgeEvent.cause"),
        (
            badges_over(with_leaf(BADGE_EVENT, "unreadCount", Leaf("Int!", len))),
            "BadgeEvent.unreadCount",
        ),
        (
            badges_over(
                dataclasses.replace(
                    BADGE_EVENT,
                    objects={
                        "badges": Child(
                            "[AppBadge!]!", list, with_leaf(APP_BADGE, "appId", Leaf("Int!", len))
                        )
                    },
                )
            ),
            "AppBadge.appId",
        ),
        (
            badges_over(
                dataclasses.replace(
                    BADGE_EVENT, objects={"badges": Child("AppBadge!", list, APP_BADGE)}
                )
            ),
            "BadgeEvent.badges",
        ),
        (badges_over(dataclasses.replace(BADGE_EVENT, name="BadgeEvents")), "Subscription.badges"),
        (
            (BADGES, dataclasses.replace(WORKBENCH_QUERY, platform_required=False)),
            "Query.workbench",
        ),
        ((dataclasses.replace(BADGES, field="badge"), WORKBENCH_QUERY), "Subscription.badge"),
    ],
    ids=[
        "nullability",
        "leaf type",
        "unknown field",
        "nested type",
        "list",
        "type name",
        "argument",
        "root",
    ],
)
def test_a_wrong_table_is_refused_naming_the_field(roots, named):
    """A wrong nullability, leaf type, field or type name, list-ness or root argument raises
    CompiledTableMismatch whose message names the field."""
    with pytest.raises(CompiledTableMismatch, match=named.replace(".", r"\.")):
        check_tables(graphql_schema(), roots)


def test_a_wrong_table_fails_start_up(settings, monkeypatch):
    """create_app (start-up) fails when a table the service serves disagrees with the schema:
    here the compiled App.icon declared Int!, where the schema says String!."""
    # given
    monkeypatch.setitem(APP.leaves, "icon", Leaf("Int!", len))
    # when / then
    with pytest.raises(
        CompiledTableMismatch, match=r"^App\.icon: compiled as Int!, the schema says String!$"
    ):
        create_app(settings)
