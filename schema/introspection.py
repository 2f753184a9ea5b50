"""Who may introspect the schema, and so who is told names they did not send (issue 11 item 3).

``IntrospectionPolicy`` (the ``WORKBENCH_INTROSPECTION`` setting) says which callers may select
``__schema`` and ``__type`` (``__typename`` is not introspection: it names a type the caller
already selected). graphql-core's "Did you mean ...?" suggestions enumerate the schema too
(types, fields, arguments, enum values, input fields), so callers who may not introspect get
errors without them. Two hooks apply it per caller, over HTTP and both WebSocket protocols:

- ``CallerValidation``, Strawberry's validation step: ``NoIntrospection`` and graphql-core's
  ``hide_suggestions``, cached per document and outcome (it replaces Strawberry's
  ``ValidationCache``); a caller without credentials first gets ``schema.anonymous``'s
  fixed answer for a wrong name in the token exchange, as validation errors name types;
- ``caller_execution``, the executor class: ``hide_suggestions`` for the errors of coercing
  variable values, which graphql-core words at execution.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, validate
from graphql.language import (
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    OperationType,
)
from graphql.validation import ASTValidationRule, ValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from resolvers.identity import Principal
from schema.anonymous import MISNAMED, token_exchange
from schema.plain_documents import DOCUMENT_CACHE_SIZE

# The introspection fields; an introspection document may select ``__typename`` too.
INTROSPECTION = frozenset({"__schema", "__type"})
INTROSPECTION_FIELDS = INTROSPECTION | {"__typename"}
NOT_ALLOWED = "Introspection is not allowed for this caller: the document selects '{}'."


class IntrospectionPolicy(enum.StrEnum):
    """Who may introspect: ``everyone`` (callers without a token too), ``authenticated`` (any
    valid token: users, administrators, vendors), ``administrators`` (platform and enterprise
    administrators) or ``nobody``."""

    EVERYONE = "everyone"
    AUTHENTICATED = "authenticated"
    ADMINISTRATORS = "administrators"
    NOBODY = "nobody"

    def allows(self, principal: Principal | None) -> bool:
        """Whether ``principal`` (``None``: no credentials) may introspect."""
        if self is IntrospectionPolicy.EVERYONE:
            return True
        if principal is None or self is IntrospectionPolicy.NOBODY:
            return False
        return self is IntrospectionPolicy.AUTHENTICATED or principal.is_admin


def caller_of(context: Any) -> Principal | None:
    """The principal of an operation's context (``schema.context.Context``), if any."""
    principal = getattr(context, "principal", None)
    return principal if isinstance(principal, Principal) else None


def introspection_only(document: DocumentNode) -> bool:
    """Whether ``document`` only introspects: query operations selecting only
    ``INTROSPECTION_FIELDS`` at the root, and fragments on introspection types (``__Type``
    ...), as GraphiQL's introspection query has."""
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            if not definition.type_condition.name.value.startswith("__"):
                return False
        elif isinstance(definition, OperationDefinitionNode):
            if definition.operation is not OperationType.QUERY:
                return False
            for selection in definition.selection_set.selections:
                if not isinstance(selection, FieldNode) or (
                    selection.name.value not in INTROSPECTION_FIELDS
                ):
                    return False
        else:
            return False
    return True


class NoIntrospection(ValidationRule):
    """Refuses ``__schema`` and ``__type`` wherever they are selected, once each (graphql-core's
    ``NoSchemaIntrospectionCustomRule`` also names every field below them)."""

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        """Report an introspection field."""
        if node.name.value in INTROSPECTION:
            self.report_error(GraphQLError(NOT_ALLOWED.format(node.name.value), node))


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    introspect: bool,
) -> list[GraphQLError]:
    # Strawberry's validate_document, with the caller's introspection rule and suggestions.
    extra = () if introspect else (NoIntrospection,)
    return validate(
        schema,
        document,
        (*rules, *extra, MaybeNullValidationRule, OneOfInputValidationRule),
        hide_suggestions=not introspect,
    )


class CallerValidation(SchemaExtension):
    """Validation as the caller's ``IntrospectionPolicy`` allows (module docstring); results
    cached per document text's parse, rules and outcome (LRU, ``DOCUMENT_CACHE_SIZE``)."""

    def __init__(self, *, policy: IntrospectionPolicy) -> None:
        self.policy = policy

    def on_validate(self) -> Iterator[None]:
        """Validate before Strawberry would (it skips validation once errors are set), unless
        the parsing step already refused the document (``schema.DocumentCache``)."""
        context = self.execution_context
        assert context.graphql_document is not None
        if context.pre_execution_errors is not None:
            yield
            return
        caller = caller_of(context.context)
        if caller is None and not self.policy.allows(None):
            # Judged by the token exchange's own names only (``schema.anonymous``).
            refused = token_exchange(context.graphql_document)
            if refused is None or refused:
                context.pre_execution_errors = refused or [GraphQLError(MISNAMED)]
                yield
                return
        context.pre_execution_errors = _validate(
            context.schema._schema,
            context.graphql_document,
            tuple(context.validation_rules),
            self.policy.allows(caller),
        )
        yield


@cache
def caller_execution(policy: IntrospectionPolicy) -> type[StrawberryGraphQLCoreExecutionContext]:
    """Strawberry's executor class, with graphql-core's ``hide_suggestions`` on for callers
    ``policy`` does not allow to introspect (errors of coercing variable values)."""

    class CallerExecution(StrawberryGraphQLCoreExecutionContext):
        """Strawberry's executor; suggestions as ``policy`` allows the caller."""

        @classmethod
        def build(
            cls,
            schema: GraphQLSchema,
            document: DocumentNode,
            root_value: Any = None,
            context_value: Any = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            """graphql-core's ``build``, hiding suggestions from callers who may not see
            them."""
            if not policy.allows(caller_of(context_value)):
                kwargs["hide_suggestions"] = True
            return super().build(schema, document, root_value, context_value, *args, **kwargs)

    return CallerExecution
