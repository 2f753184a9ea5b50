"""The one document a caller without credentials may send: the plain token exchange (SPEC §8,
issue 11 item 3, finding F4).

When such a caller may not introspect, graphql-core's validation errors would still map the
schema for it ("can never be of type 'App'" against "Unknown type 'Nope'", an input field or enum
value refused or not, "on type 'UserError'"). So the document is judged here, before validation,
by rules that mention only the token exchange's own names, and the answers depend on nothing
else in the schema:

- **The shape** (else the document is not public: the HTTP view answers 401, as for any
  document without credentials): exactly one definition, a ``mutation`` without directives;
  variables declared as ``ID!`` or ``String!`` (the arguments' types), without defaults or
  directives; every selection a plain field (no fragment, alias or directive); at the root only
  ``appAccessToken`` and ``__typename``; argument values string or integer literals or
  variables.
- **The names** (else the answer is ``MISNAMED``, one fixed message per wrong node, with its
  location, instead of validation's): ``appAccessToken`` takes ``appId`` and ``appSecret`` and
  selects ``accessToken``, ``expiresIn`` and ``errors { field message code }``; ``__typename``
  may be selected at every level (it names only ``Mutation`` and the types SPEC §8 and §5
  publish); leaves have no selection, objects need one, only ``appAccessToken`` has arguments.

What graphql-core's validation may still say about such a document (a missing argument, a
variable in the other argument's position, a literal of the wrong scalar type, an unused
variable) names only these and the built-in scalars.
"""

from __future__ import annotations

from collections.abc import Collection

from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    IntValueNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    StringValueNode,
    VariableNode,
)

ROOT_FIELDS = frozenset({"appAccessToken", "__typename"})
ARGUMENTS = frozenset({"appId", "appSecret"})
VARIABLE_TYPES = frozenset({"ID", "String"})
# Each object of the exchange: the fields it may select and which of them are objects.
PAYLOAD_FIELDS = frozenset({"accessToken", "expiresIn", "errors", "__typename"})
ERROR_FIELDS = frozenset({"field", "message", "code", "__typename"})
MISNAMED = (
    "A token exchange selects only appAccessToken(appId, appSecret) "
    "{ accessToken expiresIn errors { field message code } } and __typename (SPEC §8)."
)


def token_exchange(document: DocumentNode) -> list[GraphQLError] | None:
    """Judge an anonymous caller's ``document`` by the module's rules: ``None`` when it is not
    the token exchange's shape, else the errors of its wrong names (``MISNAMED`` each; empty:
    it goes on to validation and execution)."""
    if len(document.definitions) != 1:
        return None
    [operation] = document.definitions
    if (
        not isinstance(operation, OperationDefinitionNode)
        or operation.operation is not OperationType.MUTATION
        or operation.directives
    ):
        return None
    for variable in operation.variable_definitions or ():
        kind = variable.type
        if (
            variable.default_value is not None
            or variable.directives
            or not isinstance(kind, NonNullTypeNode)
            or not isinstance(kind.type, NamedTypeNode)
            or kind.type.name.value not in VARIABLE_TYPES
        ):
            return None
    if not _plain(operation.selection_set.selections):
        return None
    errors: list[GraphQLError] = []
    for root in operation.selection_set.selections:
        assert isinstance(root, FieldNode)
        if root.name.value not in ROOT_FIELDS:
            return None
        if root.name.value == "__typename":
            _leaf(root, errors)
            continue
        for argument in root.arguments or ():
            if not isinstance(argument.value, StringValueNode | IntValueNode | VariableNode):
                return None
            if argument.name.value not in ARGUMENTS:
                errors.append(GraphQLError(MISNAMED, argument))
        _object(root, PAYLOAD_FIELDS, errors)
    return errors


def _plain(selections: Collection[SelectionNode]) -> bool:
    # Every selection, at every level, a field without alias or directives.
    for selection in selections:
        if not isinstance(selection, FieldNode) or selection.alias or selection.directives:
            return False
        if selection.selection_set and not _plain(selection.selection_set.selections):
            return False
    return True


def _object(node: FieldNode, fields: frozenset[str], errors: list[GraphQLError]) -> None:
    # ``node`` selects an object whose fields are ``fields``.
    if node.selection_set is None:
        errors.append(GraphQLError(MISNAMED, node))
        return
    for selection in node.selection_set.selections:
        assert isinstance(selection, FieldNode)
        name = selection.name.value
        if name not in fields:
            errors.append(GraphQLError(MISNAMED, selection))
        elif name == "errors":
            if selection.arguments:
                errors.append(GraphQLError(MISNAMED, selection))
            _object(selection, ERROR_FIELDS, errors)
        else:
            _leaf(selection, errors)


def _leaf(node: FieldNode, errors: list[GraphQLError]) -> None:
    if node.arguments or node.selection_set is not None:
        errors.append(GraphQLError(MISNAMED, node))
