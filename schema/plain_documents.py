"""Compiled "plain" documents: the hot operations run without graphql-core's executor (issue 6).

Strawberry resolves every field of every result through graphql-core: for a fan-out that is
most of the cost of each event, and for a 200-app workbench most of the cost of the query. The
documents clients send for these operations have one plain shape, so they are compiled once
(LRU, ``PLAN_CACHE_SIZE`` texts) into a ``Plan`` that builds the very ``data`` the executor
would build. Anything else runs through Strawberry unchanged. A document is plain when:

- it has one operation of the expected type (its name matching ``operationName`` when given)
  whose only root field is the expected one; no fragments and no directives anywhere;
- the root field's only argument is ``platform``: an enum literal, ``null`` where the argument
  is nullable, or the operation's one variable, declared ``Platform`` / ``Platform!`` as the
  argument allows, with or without a default;
- every other field is one the compiled type lists (``ObjectType``), without arguments, with a
  selection exactly when it is an object field, each response key once; at most ``MAX_FIELDS``
  fields and ``MAX_DOCUMENT_CHARS`` characters;
- it is within the schema's own limits (``Limits``: depth, aliases, tokens), which are checked
  here as Strawberry checks them, so a document over a limit falls back and gets its error.

Documents are parsed by ``parse_document``, the one parse cache the schema's executor uses too
(``schema.DocumentCache``), so a document that falls back is not parsed a second time.

Such a document passes graphql-core's validation by construction. Variables are checked here as
graphql-core coerces them; a value that would fail (an unknown platform, a missing required
variable) falls back, so every error keeps Strawberry's exact wording.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import GraphQLError, parse
from graphql.language import (
    DocumentNode,
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

from schema.limits import refuse_long_int_literals
from storage.models import Platform

MAX_DOCUMENT_CHARS = 4000
MAX_FIELDS = 48
PLAN_CACHE_SIZE = 256
# Distinct document texts whose parse is kept (``parse_document``).
DOCUMENT_CACHE_SIZE = 256
_UNSET: Any = object()

Getter = Callable[[Any], Any]


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def parse_document(query: str, max_tokens: int | None) -> DocumentNode:
    """``query`` parsed as graphql-core parses it for the executor (locations kept), at most
    ``max_tokens`` tokens; raises ``GraphQLError`` for a syntax error or too many tokens.

    One LRU cache for the process: the compiled paths and the executor's parsing step
    (``schema.DocumentCache``) share it, keyed by text and token limit, so each document is
    parsed once. Failures are not cached. An integer literal too long for any argument is a
    ``GraphQLError`` too (``schema.limits.refuse_long_int_literals``)."""
    document = parse(query, max_tokens=max_tokens)
    refuse_long_int_literals(query, document)
    return document


@dataclass(frozen=True, slots=True)
class Limits:
    """The schema's document limits (``schema.limits``, ``MaxTokensLimiter``): a compiled
    document must satisfy them as Strawberry would check them. Depth counts nesting below the
    root field (the root field is 0); every aliased field counts as an alias; a document of at
    most ``max_tokens`` characters cannot hold more tokens than that."""

    max_depth: int
    max_aliases: int
    max_tokens: int


@dataclass(frozen=True, slots=True)
class Leaf:
    """A leaf field: its GraphQL ``type`` as SDL writes it (``"Int!"``, ``"ID!"``,
    ``"String"``), checked against the schema at start-up (``schema.compiled.check_tables``),
    and ``get``, the value from the source object, already as the executor serialises it."""

    type: str
    get: Getter


@dataclass(frozen=True, slots=True)
class Child:
    """An object field: its GraphQL ``type`` as SDL writes it (``"[AppBadge!]!"``), ``get``,
    the child source (a list of them when the type is a list), and the child's ``kind``."""

    type: str
    get: Getter
    kind: ObjectType


@dataclass(frozen=True, eq=False)  # hashed by identity: part of the plan cache's key
class ObjectType:
    """A GraphQL object type as the compiler sees it: its ``name`` (``__typename``), its leaf
    fields (``leaves``) and its object fields (``objects``), by GraphQL field name."""

    name: str
    leaves: Mapping[str, Leaf]
    objects: Mapping[str, Child]

    def project(self, selection: Selection, source: Any) -> dict[str, Any]:
        """The result object for ``source``: keys in the selection's order."""
        out: dict[str, Any] = {}
        for key, get, child in selection:
            if child is None:
                out[key] = self.name if get is None else get(source)
                continue
            get_child, kind, fields = child
            value = get_child(source)
            if isinstance(value, list):
                out[key] = [kind.project(fields, item) for item in value]
            else:
                out[key] = kind.project(fields, value)
        return out


# (response key, a leaf's getter (None: __typename), (getter, child type, its selection) for
# object fields): the getters are looked up once, when the document is compiled, not per event.
Selection = tuple[tuple[str, "Getter | None", "tuple[Getter, ObjectType, Selection] | None"], ...]


@dataclass(frozen=True, slots=True)
class Shape:
    """What a plain document says before its variables are known."""

    key: str  # the root field's response key
    platform: Platform | None  # the literal (None: null or absent) when ``variable`` is None
    variable: str | None
    required: bool  # the variable is declared non-null
    default: Any  # _UNSET, None or a Platform
    selection: Selection


@dataclass(frozen=True, slots=True)
class Plan:
    """A plain document with its variables applied: the root type, its platform argument and
    the selection. ``data(source)`` is the result's ``data``."""

    root: ObjectType
    platform: Platform | None
    shape: Shape

    def data(self, source: Any) -> dict[str, Any]:
        """``{root key: the projected root object}`` for ``source``."""
        return {self.shape.key: self.root.project(self.shape.selection, source)}


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


@dataclass(slots=True)
class _Count:
    fields: int = 0
    aliases: int = 0
    depth: int = 0


def _compile(
    selection_set: SelectionSetNode, kind: ObjectType, count: _Count, depth: int = 1
) -> Selection:
    # Raises ValueError for anything outside the plain shape; counts fields, aliases, depth.
    found: list[tuple[str, Getter | None, tuple[Getter, ObjectType, Selection] | None]] = []
    for node in selection_set.selections:
        if not isinstance(node, FieldNode) or node.directives or node.arguments:
            raise ValueError("not a plain field")
        name = node.name.value
        count.fields += 1
        count.aliases += node.alias is not None
        count.depth = max(count.depth, depth)
        if count.fields > MAX_FIELDS:
            raise ValueError("too many fields")
        if name in kind.objects:
            if node.selection_set is None:
                raise ValueError("an object field needs a selection")
            field = kind.objects[name]
            child = _compile(node.selection_set, field.kind, count, depth + 1)
            found.append((_key(node), None, (field.get, field.kind, child)))
        elif name in kind.leaves or name == "__typename":
            if node.selection_set is not None:
                raise ValueError("a leaf takes no selection")
            getter = kind.leaves[name].get if name in kind.leaves else None
            found.append((_key(node), getter, None))
        else:
            raise ValueError("unknown field")
    keys = [key for key, _, _ in found]
    if not found or len(set(keys)) != len(keys):
        raise ValueError("repeated response key")
    return tuple(found)


def _platform_value(node: object) -> Any:
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, EnumValueNode) and node.value in Platform.__members__:
        return Platform[node.value]
    return _UNSET


def _name(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def shape_of(
    query: str,
    operation_name: str | None,
    operation_type: OperationType,
    root_field: str,
    platform_required: bool,
    root: ObjectType,
    limits: Limits,
) -> Shape | None:
    """The shape of a plain document (module docstring) whose root field ``root_field``
    returns ``root``, or ``None``."""
    if len(query) > min(MAX_DOCUMENT_CHARS, limits.max_tokens):
        return None
    try:
        document = parse_document(query, limits.max_tokens)
    except (GraphQLError, RecursionError):
        return None
    if len(document.definitions) != 1:
        return None
    operation = document.definitions[0]
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not operation_type
        or operation.directives
        or (operation_name is not None and _name(operation) != operation_name)
        or len(operation.selection_set.selections) != 1
    ):
        return None
    definitions = operation.variable_definitions or ()
    field = operation.selection_set.selections[0]
    arguments = field.arguments or () if isinstance(field, FieldNode) else ()
    if (
        not isinstance(field, FieldNode)
        or field.name.value != root_field
        or field.directives
        or field.selection_set is None
        or len(arguments) > 1
        or (arguments and arguments[0].name.value != "platform")
        or len(definitions) > 1
    ):
        return None
    value = arguments[0].value if arguments else None
    platform: Any = None
    variable: str | None = None
    required = False
    default: Any = _UNSET
    if isinstance(value, VariableNode):
        definition = definitions[0] if definitions else None
        if (
            definition is None
            or definition.variable.name.value != value.name.value
            or definition.directives
        ):
            return None
        declared = definition.type
        required = isinstance(declared, NonNullTypeNode)
        named = declared.type if isinstance(declared, NonNullTypeNode) else declared
        if not isinstance(named, NamedTypeNode) or named.name.value != "Platform":
            return None
        if platform_required and not required:
            return None
        if definition.default_value is not None:
            default = _platform_value(definition.default_value)
            if default is _UNSET or (required and default is None):
                return None
        variable = value.name.value
    else:
        if definitions:
            return None  # declared but unused: a validation error Strawberry reports
        if value is not None:
            platform = _platform_value(value)
        if platform is _UNSET or (platform_required and platform is None):
            return None
    count = _Count(aliases=field.alias is not None)
    try:
        selection = _compile(field.selection_set, root, count)
    except ValueError:
        return None
    if count.aliases > limits.max_aliases or count.depth > limits.max_depth:
        return None
    return Shape(_key(field), platform, variable, required, default, selection)


def plan(shape: Shape | None, root: ObjectType, variables: Mapping[str, Any] | None) -> Plan | None:
    """``shape`` with ``variables`` applied, or ``None`` when they would not coerce."""
    if shape is None:
        return None
    if shape.variable is None:
        return Plan(root, shape.platform, shape)
    values = variables or {}
    if shape.variable in values:
        value = values[shape.variable]
        if value is None:
            return None if shape.required else Plan(root, None, shape)
        if isinstance(value, str) and value in Platform.__members__:
            return Plan(root, Platform[value], shape)
        return None
    if shape.default is not _UNSET:
        return Plan(root, shape.default, shape)
    return None if shape.required else Plan(root, None, shape)
