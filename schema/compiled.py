"""The hot operations compiled (``schema.plain_documents``): the ``badges`` subscription, whose
events the WebSocket handler streams (``imworkbench.http.websocket``), and the ``workbench``
query, which the
schema answers without its executor (``WorkbenchSchema.execute``). Each ``ObjectType`` below
mirrors its Strawberry type (``schema.badges``, ``schema.workbench``, ``schema.apps``) field
for field, for the fields it lists; tests compare the two paths' results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql.language import OperationType

from resolvers.workbench import WorkbenchData
from schema.badges import capped
from schema.plain_documents import Limits, ObjectType, Plan, plan, shape_of
from storage.catalogue import WorkbenchRow
from storage.models import AppKind

APP_BADGE = ObjectType(
    "AppBadge",
    leaves={"appId": lambda pair: str(pair[0]), "unread": lambda pair: pair[1]},
    objects={},
)
BADGE_EVENT = ObjectType(
    "BadgeEvent",
    leaves={
        "cause": lambda e: e.cause.value,
        "unseenCount": lambda e: capped(e.unseen_count),
        "unreadTotal": lambda e: capped(e.unread_total),
        "version": lambda e: e.version,
    },
    objects={"badges": (lambda e: list(e.badges), APP_BADGE)},
)
APP = ObjectType(
    "App",
    leaves={
        "id": lambda app: str(app.id),
        "name": lambda app: app.name,
        "identifier": lambda app: app.identifier,
        "kind": lambda app: AppKind(app.kind).value,
        "icon": lambda app: app.icon,
        "userRemovable": lambda app: app.user_removable,
    },
    objects={},
)
WORKBENCH_APP = ObjectType(
    "WorkbenchApp",
    leaves={"unread": lambda row: row.unread, "removable": lambda row: row.app.user_removable},
    objects={"app": (lambda row: row.app, APP)},
)


@dataclass(slots=True)
class _Category:
    id: str
    name: str
    rows: list[WorkbenchRow] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    id: str
    name: str
    categories: list[_Category] = field(default_factory=list)


def _groups(data: WorkbenchData) -> list[_Group]:
    # The rows are in workbench order: consecutive runs of a group, then of a category.
    groups: list[_Group] = []
    for row in data.rows:
        if not groups or groups[-1].id != str(row.group_id):
            groups.append(_Group(str(row.group_id), row.group_name))
        categories = groups[-1].categories
        if not categories or categories[-1].id != str(row.category_id):
            categories.append(_Category(str(row.category_id), row.category_name))
        categories[-1].rows.append(row)
    return groups


CATEGORY = ObjectType(
    "WorkbenchCategory",
    leaves={"id": lambda c: c.id, "name": lambda c: c.name},
    objects={"apps": (lambda c: c.rows, WORKBENCH_APP)},
)
GROUP = ObjectType(
    "WorkbenchGroup",
    leaves={"id": lambda g: g.id, "name": lambda g: g.name},
    objects={"categories": (lambda g: g.categories, CATEGORY)},
)
WORKBENCH = ObjectType(
    "Workbench",
    leaves={
        "platform": lambda d: d.platform.value,
        "unseenCount": lambda d: capped(d.unseen_count),
        "unreadTotal": lambda d: capped(d.unread_total),
        "version": lambda d: d.version,
    },
    objects={"apps": (lambda d: d.rows, WORKBENCH_APP), "groups": (_groups, GROUP)},
)


def _plain(query: object, variables: object, operation_name: object) -> bool:
    # Requests are checked by the view before execution, but whatever is not of the expected
    # types (an operationName list, say) is left to Strawberry to refuse.
    return (
        isinstance(query, str)
        and (variables is None or isinstance(variables, Mapping))
        and (operation_name is None or isinstance(operation_name, str))
    )


def badges_plan(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None, limits: Limits
) -> Plan | None:
    """The compiled ``subscription { badges(platform) { ... } }`` within ``limits``;
    ``data(BadgeEventData)``. ``None``: run the document through Strawberry."""
    if not _plain(query, variables, operation_name):
        return None
    kind = OperationType.SUBSCRIPTION
    shape = shape_of(query, operation_name, kind, "badges", False, BADGE_EVENT, limits)
    return plan(shape, BADGE_EVENT, variables)


def workbench_plan(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None, limits: Limits
) -> Plan | None:
    """The compiled ``query { workbench(platform) { ... } }`` within ``limits``;
    ``data(WorkbenchData)``. ``None``: run the document through Strawberry."""
    if not _plain(query, variables, operation_name):
        return None
    kind = OperationType.QUERY
    shape = shape_of(query, operation_name, kind, "workbench", True, WORKBENCH, limits)
    return plan(shape, WORKBENCH, variables)


__all__ = ["Limits", "Plan", "badges_plan", "workbench_plan"]
