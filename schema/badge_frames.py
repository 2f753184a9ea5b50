"""The ``badges`` subscription without per-event GraphQL execution (issue 6, fan-out).

Strawberry runs every subscription event through graphql-core's executor and the schema
extensions: about 60% of a fan-out's time, for a selection that never changes. A document of
the plain shape every client sends is compiled once into a ``BadgesPlan`` that turns a
``BadgeEventData`` into the very ``data`` the executor would produce; the WebSocket handler
(``graphql_ws``) then streams those. Anything else falls back to Strawberry unchanged:

- one ``subscription`` operation (its name matching ``operationName`` when given) whose only
  root field is ``badges``, with no directives and no fragments anywhere;
- ``platform`` absent, an enum literal, ``null``, or the one variable of the operation, declared
  ``Platform`` or ``Platform!`` (with or without a default);
- only ``BadgeEvent`` fields (``cause badges unseenCount unreadTotal version __typename``) and,
  under ``badges``, ``AppBadge`` fields (``appId unread __typename``), aliases allowed, each
  response key once; at most ``MAX_FIELDS`` fields and ``MAX_DOCUMENT_CHARS`` characters, so
  every limit of the schema (depth, aliases, tokens) holds without checking.

Such a document passes graphql-core's validation by construction, and its variables are
checked here as graphql-core coerces them; a value that would fail (an unknown platform, a
missing required variable) falls back too, so errors keep Strawberry's exact wording.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, parse
from graphql.language import (
    EnumValueNode,
    FieldNode,
    NamedTypeNode,
    NonNullTypeNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)

from resolvers.badges import BadgeEventData
from schema.badges import capped
from storage.models import Platform

MAX_DOCUMENT_CHARS = 2000
MAX_FIELDS = 24
PLAN_CACHE_SIZE = 256
_UNSET: Any = object()

Getter = Callable[[BadgeEventData], object]
_EVENT_GETTERS: dict[str, Getter] = {
    "cause": lambda e: e.cause.value,
    "unseenCount": lambda e: capped(e.unseen_count),
    "unreadTotal": lambda e: capped(e.unread_total),
    "version": lambda e: e.version,
    "__typename": lambda e: "BadgeEvent",
}
_BADGE_FIELDS = ("appId", "unread", "__typename")


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a document says, before its variables are known."""

    key: str
    platform: Platform | None  # the literal (or absent: None) when ``variable`` is None
    variable: str | None
    required: bool
    default: Any  # _UNSET, None or a Platform
    event_fields: tuple[tuple[str, str], ...]  # (response key, field) of BadgeEvent
    badge_fields: tuple[tuple[str, str], ...]  # (response key, field) of AppBadge


@dataclass(frozen=True, slots=True)
class BadgesPlan:
    """A compiled ``badges`` subscription: its platform argument and its selection.
    ``data(event)`` is the ``data`` of the ``next`` message for that event."""

    platform: Platform | None
    shape: _Shape

    def data(self, event: BadgeEventData) -> dict[str, Any]:
        """The result's ``data`` for ``event``, key for key as graphql-core would build it."""
        out: dict[str, Any] = {}
        for key, name in self.shape.event_fields:
            if name == "badges":
                out[key] = [self._badge(app_id, unread) for app_id, unread in event.badges]
            else:
                out[key] = _EVENT_GETTERS[name](event)
        return {self.shape.key: out}

    def _badge(self, app_id: int, unread: int) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for key, name in self.shape.badge_fields:
            if name == "appId":
                item[key] = str(app_id)
            elif name == "unread":
                item[key] = unread
            else:
                item[key] = "AppBadge"
        return item


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _leaf_fields(
    selection_set: SelectionSetNode, allowed: Collection[str], nested: str | None
) -> list[tuple[str, str, FieldNode]] | None:
    found: list[tuple[str, str, FieldNode]] = []
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        name = selection.name.value
        if name not in allowed:
            return None
        if (selection.selection_set is not None) != (name == nested):
            return None
        found.append((_key(selection), name, selection))
    keys = [key for key, _, _ in found]
    if not found or len(set(keys)) != len(keys):
        return None
    return found


def _platform_value(node: object) -> Any:
    # An enum literal or null as graphql-core reads it; _UNSET for anything else.
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, EnumValueNode) and node.value in Platform.__members__:
        return Platform[node.value]
    return _UNSET


def _name(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def _shape(query: str, operation_name: str | None) -> _Shape | None:
    if len(query) > MAX_DOCUMENT_CHARS:
        return None
    try:
        document = parse(query, no_location=True)
    except (GraphQLError, RecursionError):
        return None
    if len(document.definitions) != 1:
        return None
    operation = document.definitions[0]
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not OperationType.SUBSCRIPTION
        or operation.directives
        or (
            operation_name is not None
            and (operation.name is None or operation.name.value != operation_name)
        )
        or len(operation.selection_set.selections) != 1
        or len(operation.variable_definitions or ()) > 1
    ):
        return None
    definitions = operation.variable_definitions or ()
    root = operation.selection_set.selections[0]
    if (
        not isinstance(root, FieldNode)
        or root.name.value != "badges"
        or root.directives
        or root.selection_set is None
        or len(root.arguments or ()) > 1
        or (root.arguments and root.arguments[0].name.value != "platform")
    ):
        return None
    platform: Platform | None = None
    variable: str | None = None
    required = False
    default: Any = _UNSET
    arguments = root.arguments or ()
    argument = arguments[0].value if arguments else None
    if isinstance(argument, VariableNode):
        if len(definitions) != 1:
            return None
        definition = definitions[0]
        if definition.variable.name.value != argument.name.value or definition.directives:
            return None
        declared = definition.type
        required = isinstance(declared, NonNullTypeNode)
        named = declared.type if isinstance(declared, NonNullTypeNode) else declared
        if not isinstance(named, NamedTypeNode) or named.name.value != "Platform":
            return None
        if definition.default_value is not None:
            default = _platform_value(definition.default_value)
            if default is _UNSET or (required and default is None):
                return None
        variable = argument.name.value
    else:
        if definitions:
            return None  # declared but unused: a validation error Strawberry reports
        if argument is not None:
            platform = _platform_value(argument)
            if platform is _UNSET:
                return None
    event = _leaf_fields(root.selection_set, (*_EVENT_GETTERS, "badges"), "badges")
    if event is None:
        return None
    badge_fields: list[tuple[str, str]] = []
    for _, name, node in event:
        if name == "badges":
            assert node.selection_set is not None
            inner = _leaf_fields(node.selection_set, _BADGE_FIELDS, None)
            if inner is None or badge_fields:
                return None  # bad inner fields, or "badges" twice under different keys
            badge_fields = [(key, inner_name) for key, inner_name, _ in inner]
    if len(event) + len(badge_fields) > MAX_FIELDS:
        return None
    return _Shape(
        key=_key(root),
        platform=platform,
        variable=variable,
        required=required,
        default=default,
        event_fields=tuple((key, name) for key, name, _ in event),
        badge_fields=tuple(badge_fields),
    )


def badges_plan(
    query: str, variables: Mapping[str, Any] | None, operation_name: str | None
) -> BadgesPlan | None:
    """The compiled plan of a ``badges`` subscription document of the plain shape (module
    docstring) with these variables, or ``None``: run it through Strawberry instead."""
    shape = _shape(query, operation_name)
    if shape is None:
        return None
    if shape.variable is None:
        return BadgesPlan(shape.platform, shape)
    values = variables or {}
    if shape.variable in values:
        value = values[shape.variable]
        if value is None:
            return None if shape.required else BadgesPlan(None, shape)
        if isinstance(value, str) and value in Platform.__members__:
            return BadgesPlan(Platform[value], shape)
        return None
    if shape.default is not _UNSET:
        return BadgesPlan(shape.default, shape)
    return None if shape.required else BadgesPlan(None, shape)
