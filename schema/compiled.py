"""The hot operations compiled (``schema.plain_documents``): the ``badges`` subscription and the
``workbench`` query. ``WorkbenchSchema`` (``schema``) runs a plain document of either here,
without graphql-core's executor, and any other document through Strawberry; the transports
never know which.

Each ``ObjectType`` below mirrors its Strawberry type (``schema.badges``, ``schema.workbench``,
``schema.apps``) for the fields it lists, with each field's GraphQL type written out;
``check_tables`` compares them with the schema at start-up (a mismatch fails it), and the tests
compare both paths' results leaf by leaf, generated from these tables."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLObjectType, GraphQLSchema
from graphql.language import OperationType
from strawberry.types import ExecutionResult

from resolvers.workbench import WorkbenchData, load_workbench
from schema.badges import badge_stream, capped
from schema.context import USER_ROLES, Context
from schema.plain_documents import Child, Leaf, Limits, ObjectType, Plan, plan, shape_of
from storage.catalogue import WorkbenchRow
from storage.models import AppKind

logger = logging.getLogger("workbench.graphql")

APP_BADGE = ObjectType(
    "AppBadge",
    leaves={
        "appId": Leaf("ID!", lambda pair: str(pair[0])),
        "unread": Leaf("Int!", lambda pair: pair[1]),
    },
    objects={},
)
BADGE_EVENT = ObjectType(
    "BadgeEvent",
    leaves={
        "cause": Leaf("BadgeCause!", lambda e: e.cause.value),
        "unseenCount": Leaf("Int!", lambda e: capped(e.unseen_count)),
        "unreadTotal": Leaf("Int!", lambda e: capped(e.unread_total)),
        "version": Leaf("Int!", lambda e: e.version),
    },
    objects={"badges": Child("[AppBadge!]!", lambda e: list(e.badges), APP_BADGE)},
)
APP = ObjectType(
    "App",
    leaves={
        "id": Leaf("ID!", lambda app: str(app.id)),
        "name": Leaf("String!", lambda app: app.name),
        "identifier": Leaf("String!", lambda app: app.identifier),
        "kind": Leaf("AppKind!", lambda app: AppKind(app.kind).value),
        "icon": Leaf("String!", lambda app: app.icon),
        "userRemovable": Leaf("Boolean!", lambda app: app.user_removable),
    },
    objects={},
)
WORKBENCH_APP = ObjectType(
    "WorkbenchApp",
    leaves={
        "unread": Leaf("Int!", lambda row: row.unread),
        "removable": Leaf("Boolean!", lambda row: row.app.user_removable),
    },
    objects={"app": Child("App!", lambda row: row.app, APP)},
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
    leaves={"id": Leaf("ID!", lambda c: c.id), "name": Leaf("String!", lambda c: c.name)},
    objects={"apps": Child("[WorkbenchApp!]!", lambda c: c.rows, WORKBENCH_APP)},
)
GROUP = ObjectType(
    "WorkbenchGroup",
    leaves={"id": Leaf("ID!", lambda g: g.id), "name": Leaf("String!", lambda g: g.name)},
    objects={"categories": Child("[WorkbenchCategory!]!", lambda g: g.categories, CATEGORY)},
)
WORKBENCH = ObjectType(
    "Workbench",
    leaves={
        "platform": Leaf("Platform!", lambda d: d.platform.value),
        "unseenCount": Leaf("Int!", lambda d: capped(d.unseen_count)),
        "unreadTotal": Leaf("Int!", lambda d: capped(d.unread_total)),
        "version": Leaf("Int!", lambda d: d.version),
    },
    objects={
        "apps": Child("[WorkbenchApp!]!", lambda d: d.rows, WORKBENCH_APP),
        "groups": Child("[WorkbenchGroup!]!", _groups, GROUP),
    },
)


@dataclass(frozen=True, slots=True)
class CompiledRoot:
    """A root field answered compiled: the operation it belongs to, the field, its GraphQL type
    as SDL writes it, whether its ``platform`` argument is required, and the result's type."""

    operation: OperationType
    field: str
    type: str
    platform_required: bool
    root: ObjectType


BADGES = CompiledRoot(OperationType.SUBSCRIPTION, "badges", "BadgeEvent!", False, BADGE_EVENT)
WORKBENCH_QUERY = CompiledRoot(OperationType.QUERY, "workbench", "Workbench!", True, WORKBENCH)
COMPILED_ROOTS = (BADGES, WORKBENCH_QUERY)


class CompiledTableMismatch(Exception):
    """A compiled table disagrees with the Strawberry schema (``check_tables``); the message
    names the field, as ``Type.field``."""


def _object_types(root: ObjectType) -> Iterator[ObjectType]:
    seen: set[str] = set()
    pending = [root]
    while pending:
        kind = pending.pop()
        if kind.name in seen:
            continue
        seen.add(kind.name)
        yield kind
        pending.extend(child.kind for child in kind.objects.values())


def _expect(schema: GraphQLSchema, kind: ObjectType, name: str, declared: str) -> None:
    found = schema.type_map.get(kind.name)
    if not isinstance(found, GraphQLObjectType):
        raise CompiledTableMismatch(f"{kind.name}.{name}: {kind.name} is not an object type")
    graphql_field = found.fields.get(name)
    if graphql_field is None:
        raise CompiledTableMismatch(f"{kind.name}.{name}: no such field in the schema")
    if graphql_field.args:
        raise CompiledTableMismatch(f"{kind.name}.{name}: the schema's field takes arguments")
    if str(graphql_field.type) != declared:
        raise CompiledTableMismatch(
            f"{kind.name}.{name}: compiled as {declared}, the schema says {graphql_field.type}"
        )


def check_tables(schema: GraphQLSchema, roots: tuple[CompiledRoot, ...] = COMPILED_ROOTS) -> None:
    """Check every compiled root, type and field against ``schema``: each exists under the
    same name, leaves and object fields have the declared type (named type, list and
    nullability), and no compiled field takes arguments. Raises ``CompiledTableMismatch``
    naming the first field that disagrees; ``build_schema`` calls it, so a mismatch fails
    start-up instead of serving data the executor would not."""
    for compiled in roots:
        parent = schema.get_root_type(compiled.operation)
        if parent is None:
            raise CompiledTableMismatch(f"{compiled.field}: the schema has no {compiled.operation}")
        root_field = parent.fields.get(compiled.field)
        if root_field is None:
            raise CompiledTableMismatch(f"{parent.name}.{compiled.field}: no such field")
        platform = root_field.args.get("platform")
        expected_platform = "Platform!" if compiled.platform_required else "Platform"
        if str(root_field.type) != compiled.type or (
            platform is None or str(platform.type) != expected_platform
        ):
            raise CompiledTableMismatch(
                f"{parent.name}.{compiled.field}: compiled as "
                f"(platform: {expected_platform}): {compiled.type}, the schema differs"
            )
        if str(root_field.type).rstrip("!") != compiled.root.name:
            raise CompiledTableMismatch(
                f"{parent.name}.{compiled.field}: returns {root_field.type}, "
                f"compiled as {compiled.root.name}"
            )
        for kind in _object_types(compiled.root):
            for name, leaf in kind.leaves.items():
                _expect(schema, kind, name, leaf.type)
            for name, child in kind.objects.items():
                _expect(schema, kind, name, child.type)
                if child.type.strip("[]!") != child.kind.name:
                    raise CompiledTableMismatch(
                        f"{kind.name}.{name}: compiled as {child.kind.name}, typed {child.type}"
                    )


def _plain(query: object, variables: object, operation_name: object) -> bool:
    # Requests are checked by the view before execution, but whatever is not of the expected
    # types (an operationName list, say) is left to Strawberry to refuse.
    return (
        isinstance(query, str)
        and (variables is None or isinstance(variables, Mapping))
        and (operation_name is None or isinstance(operation_name, str))
    )


def _plan(
    compiled: CompiledRoot,
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    limits: Limits,
) -> Plan | None:
    if not _plain(query, variables, operation_name):
        return None
    shape = shape_of(
        query,
        operation_name,
        compiled.operation,
        compiled.field,
        compiled.platform_required,
        compiled.root,
        limits,
    )
    return plan(shape, compiled.root, variables)


def badges_plan(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None, limits: Limits
) -> Plan | None:
    """The compiled ``subscription { badges(platform) { ... } }`` within ``limits``;
    ``data(BadgeEventData)``. ``None``: run the document through Strawberry."""
    return _plan(BADGES, query, variables, operation_name, limits)


def workbench_plan(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None, limits: Limits
) -> Plan | None:
    """The compiled ``query { workbench(platform) { ... } }`` within ``limits``;
    ``data(WorkbenchData)``. ``None``: run the document through Strawberry."""
    return _plan(WORKBENCH_QUERY, query, variables, operation_name, limits)


def _user_context(context: object) -> Context | None:
    # The compiled paths serve authenticated workbench users; anyone else gets Strawberry's
    # refusal, worded and masked as it words and masks it.
    if (
        isinstance(context, Context)
        and context.principal is not None
        and context.principal.role in USER_ROLES
    ):
        return context
    return None


async def answer_workbench(
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    context: object,
    limits: Limits,
) -> ExecutionResult | None:
    """The result of a plain ``workbench`` query by a workbench user, without the executor;
    ``None``: let Strawberry run it. A failed read is ``None`` too, so that its error is
    reported, masked and logged exactly as Strawberry does."""
    user = _user_context(context)
    if user is None:
        return None
    compiled = workbench_plan(query, variables, operation_name, limits)
    if compiled is None:
        return None
    assert compiled.platform is not None  # the argument is non-null: plain shapes say so
    assert user.principal is not None
    try:
        data = await load_workbench(
            db=user.db, principal=user.principal, platform=compiled.platform
        )
    except Exception:
        return None
    user.meter.operation("query", "ok")
    return ExecutionResult(data=compiled.data(data), errors=None)


def badge_results(
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    context: object,
    limits: Limits,
    *,
    debug: bool,
) -> AsyncGenerator[ExecutionResult, None] | None:
    """The results of a plain ``badges`` subscription by a workbench user, one per event,
    without the executor; ``None``: let Strawberry run it. An unexpected error ends the stream
    with one result of ``data: null`` and the error, masked unless ``debug``, as Strawberry
    ends a failing subscription."""
    user = _user_context(context)
    if user is None:
        return None
    compiled = badges_plan(query, variables, operation_name, limits)
    if compiled is None:
        return None
    return _badge_results(user, compiled, debug=debug)


async def _badge_results(
    context: Context, compiled: Plan, *, debug: bool
) -> AsyncGenerator[ExecutionResult, None]:
    assert context.principal is not None
    events = badge_stream(context, context.principal, compiled.platform).events()
    context.meter.subscription_started("badges")
    outcome = "ok"
    try:
        async for event in events:
            yield ExecutionResult(data=compiled.data(event), errors=None)
    except Exception as error:
        outcome = "error"
        logger.error("unexpected error in badges: %r", error, exc_info=error)
        message = str(error) if debug else "Unexpected error."
        yield ExecutionResult(data=None, errors=[GraphQLError(message)])
    finally:
        await events.aclose()
        context.meter.subscription_ended("badges")
        context.meter.operation("subscription", outcome)


__all__ = [
    "COMPILED_ROOTS",
    "CompiledRoot",
    "CompiledTableMismatch",
    "Limits",
    "Plan",
    "answer_workbench",
    "badge_results",
    "badges_plan",
    "check_tables",
    "workbench_plan",
]
