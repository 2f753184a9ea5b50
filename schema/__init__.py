"""The GraphQL schema: Strawberry types and thin root fields, one module per domain.

Root fields unpack the context, call one resolver and convert its result; domain errors map to
GraphQL errors in ``schema.errors``. ``build_schema`` assembles Query, Mutation and
Subscription with the protocol-safety extensions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    get_operation_ast,
    parse,
)
from graphql import OperationType as GraphQLOperationType
from strawberry.extensions import MaxTokensLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, StreamResult
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from schema.anonymous import token_exchange
from schema.apps import (
    AppAdminMutation,
    AppLifecycleMutation,
    AppListQuery,
    AppMutation,
    AppQuery,
    IconMutation,
    IconQuery,
)
from schema.audit import AuditQuery
from schema.badges import BadgeMutation, BadgeSubscription
from schema.compiled import answer_workbench, badge_results, check_tables
from schema.errors import is_unexpected, masking_extension
from schema.groups import GroupMutation, GroupQuery
from schema.introspection import (
    CallerValidation,
    IntrospectionPolicy,
    caller_execution,
    introspection_only,
)
from schema.limits import DocumentLimiter, LongIntLiteral
from schema.plain_documents import Limits, parse_document
from schema.vendor import DeviceMutation, NotificationSubscription, VendorMutation
from schema.visibility import VisibilityQuery
from schema.workbench import (
    RemovalMutation,
    RemovalQuery,
    WorkbenchQuery,
    WorkbenchSubscription,
)

Query = merge_types(
    "Query",
    (
        WorkbenchQuery,
        RemovalQuery,
        VisibilityQuery,
        GroupQuery,
        AppQuery,
        AppListQuery,
        AuditQuery,
        IconQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AppMutation,
        AppAdminMutation,
        AppLifecycleMutation,
        BadgeMutation,
        RemovalMutation,
        GroupMutation,
        IconMutation,
        VendorMutation,
        DeviceMutation,
    ),
)
Subscription = merge_types(
    "Subscription", (BadgeSubscription, WorkbenchSubscription, NotificationSubscription)
)


logger = logging.getLogger("workbench.graphql")
# extensions.code of the refusal of an operation the transport does not run (graphql-ws runs
# subscriptions only); the transport words it.
OPERATION_NOT_ALLOWED = "OPERATION_NOT_ALLOWED"
# What a caller without credentials may select (SPEC §8).
PUBLIC_MUTATION_FIELDS = frozenset({"appAccessToken", "__typename"})
# A token exchange document is short; anything longer is not public (parsed before any
# credentials are checked, so it is kept cheap).
PUBLIC_MAX_TOKENS = 200
# Strawberry's HTTP answer to a request without a document (400, BAD_REQUEST).
NO_QUERY = "No GraphQL query found in the request"


class OperationNotSelected(CannotGetOperationTypeError):
    """The request does not select exactly one operation of its document (GraphQL spec,
    "GetOperation"): ``message`` says why, in graphql-core's words. Strawberry's HTTP view
    answers it 400 with that message (``as_http_error_reason``)."""

    def __init__(self, operation_name: str | None, message: str) -> None:
        super().__init__(operation_name)
        self.message = message

    def as_http_error_reason(self) -> str:
        """The message of the 400 answer."""
        return self.message


def selection_problem(document: DocumentNode, operation_name: str | None) -> str | None:
    """Why ``operation_name`` selects no operation of ``document``, or ``None`` when it selects
    one (GraphQL spec, "GetOperation"): without a name the document must hold exactly one
    operation; with one (the empty string included), an operation of that name. Strawberry
    would run the first operation of several, and reports the other cases as unexpected
    errors on the WebSocket transports (issue 11 item 1)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        if not operations:
            return "Must provide an operation."
        if len(operations) > 1:
            return "Must provide operation name if query contains multiple operations."
        return None
    if any(o.name is not None and o.name.value == operation_name for o in operations):
        return None
    return f'Unknown operation named "{operation_name}".'


class DocumentCache(SchemaExtension):
    """Strawberry's parsing step through ``parse_document``, the one parse cache the compiled
    paths use too, so a document is parsed once per process whichever path runs it (LRU,
    ``DOCUMENT_CACHE_SIZE`` texts). It replaces Strawberry's ``ParserCache``, whose cache is
    its own.

    A document that does not parse (a syntax error, over the token or nesting limit) is left
    to Strawberry's own parse, which reports it as the request's error: an exception raised
    here escapes that handling, which HTTP masks but the WebSocket transports did not (no
    ``error`` message, an ERROR traceback instead; issue 11 item 1). Failures are not cached,
    so such a document is parsed twice; either parse stops at the first error or limit.

    A document that parses but holds an over-long integer literal (``LongIntLiteral``) is kept
    with that error as its pre-execution error, which Strawberry answers like a validation
    error without validating (its own parse would accept it, and validation would then fail
    inside graphql-core's ``int()``; issue 11 item 6)."""

    def on_parse(self) -> Iterator[None]:
        """Parse (or find) the document before Strawberry would."""
        context = self.execution_context
        if context.query and context.graphql_document is None:
            try:
                context.graphql_document = parse_document(
                    context.query, context.parse_options.get("max_tokens")
                )
            except LongIntLiteral as refused:
                context.graphql_document = refused.document
                context.pre_execution_errors = [refused]
            except (GraphQLError, RecursionError):
                pass  # left to Strawberry's own parse, which reports it
        yield


class WorkbenchSchema(strawberry.Schema):
    """The Strawberry schema, and the one door to the compiled fast paths (``schema.compiled``).

    Strawberry's transports call ``execute`` (HTTP), ``stream`` (graphql-transport-ws) and
    ``subscribe`` (graphql-ws, through ``stream``); each first asks whether the document is
    plain: a plain ``workbench`` query or ``badges`` subscription by a workbench user is
    answered without graphql-core's executor (the same data: half the time for a 200-app
    catalogue, most of each fan-out event's cost, issue 6); anything else runs through
    Strawberry. So the transports never know a field by name. Also:

    - ``execute`` (HTTP) never runs a subscription: those need a WebSocket, so over HTTP they
      are a 400 request error, not a crash.
    - ``stream`` refuses an operation of a type its transport does not run (graphql-ws:
      subscriptions only) as the client's error, ``extensions.code`` ``OPERATION_NOT_ALLOWED``,
      which the transport words; Strawberry would mask and log it as unexpected.
    - ``public`` says which documents run without credentials (SPEC §8), and introspection
      documents too when ``introspection`` is ``everyone`` (``schema.introspection``).
    - ``process_errors`` logs only unexpected errors, with their traceback; client errors
      (validation, domain errors) are logged at DEBUG without the query text, so clients can
      neither flood the error log nor forge lines in it.
    - The compiled tables are checked against the schema when it is built (``check_tables``):
      a table that disagrees fails start-up.
    """

    # The document limits, for the compiled paths (build_schema sets the configured ones).
    limits = Limits(max_depth=12, max_aliases=30, max_tokens=2000)
    # Unexpected errors of a compiled subscription are shown unmasked (build_schema sets it).
    debug = False
    # Who may introspect (build_schema sets the configured policy).
    introspection = IntrospectionPolicy.AUTHENTICATED

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_tables(self._schema)

    def public(self, query: str) -> bool:
        """Whether ``query`` may run without credentials (SPEC §8: how a vendor gets its first
        token). A document over ``PUBLIC_MAX_TOKENS`` tokens, or that does not parse, is not.
        Unless everyone may introspect, only the plain token exchange is
        (``schema.anonymous.token_exchange``: the answers to anonymous callers must not depend
        on which names the schema holds, issue 11 item 3). When everyone may introspect: every
        definition a mutation selecting only ``PUBLIC_MUTATION_FIELDS``, without fragments at
        the root, or a document that only introspects
        (``schema.introspection.introspection_only``, within the schema's token limit: GraphiQL
        without a token). Anonymous documents are parsed outside the shared document cache, so
        callers without credentials cannot push other clients' documents out of it."""
        try:
            document = parse(query, no_location=True, max_tokens=PUBLIC_MAX_TOKENS)
        except (GraphQLError, RecursionError):
            return self._public_introspection(query, None)
        if self.introspection is not IntrospectionPolicy.EVERYONE:
            return token_exchange(document) is not None
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode) or (
                definition.operation is not GraphQLOperationType.MUTATION
            ):
                return self._public_introspection(query, document)
            for selection in definition.selection_set.selections:
                if not isinstance(selection, FieldNode) or (
                    selection.name.value not in PUBLIC_MUTATION_FIELDS
                ):
                    return self._public_introspection(query, document)
        return True

    def _public_introspection(self, query: str, document: DocumentNode | None) -> bool:
        # ``document``: ``query`` already parsed (within PUBLIC_MAX_TOKENS), else None.
        if self.introspection is not IntrospectionPolicy.EVERYONE:
            return False
        if document is None:
            try:
                document = parse(query, no_location=True, max_tokens=self.limits.max_tokens)
            except (GraphQLError, RecursionError):
                return False
        return introspection_only(document)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Execute a query or mutation, compiled when plain; subscriptions are refused. Raises
        ``OperationNotSelected`` when ``operation_name`` selects no single operation."""
        allowed = set(allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION))
        allowed.discard(OperationType.SUBSCRIPTION)
        if query:
            self._selection(query, operation_name)
        if query is not None and OperationType.QUERY in allowed:
            compiled = await answer_workbench(
                query, variable_values, operation_name, context_value, self.limits
            )
            if compiled is not None:
                return compiled
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed,
            operation_extensions=operation_extensions,
        )

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        """Stream an operation's results (WebSocket transports): a plain ``badges``
        subscription or ``workbench`` query compiled, anything else through Strawberry."""
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        if not query:
            # Strawberry reports a missing query as an unexpected error; it is the client's
            # mistake, refused with HTTP's words for it (issue 11 item 1).
            error = GraphQLError(NO_QUERY, extensions={"code": "BAD_REQUEST"})
            return _one(PreExecutionError(data=None, errors=[error]))
        if query is not None:
            refusal = self._refusal(query, operation_name, allowed)
            if refusal is not None:
                return _one(refusal)
            if OperationType.SUBSCRIPTION in allowed:
                events = badge_results(
                    query,
                    variable_values,
                    operation_name,
                    context_value,
                    self.limits,
                    debug=self.debug,
                )
                if events is not None:
                    return events
            if OperationType.QUERY in allowed:
                answer = await answer_workbench(
                    query, variable_values, operation_name, context_value, self.limits
                )
                if answer is not None:
                    return _one(answer)
        return await super().stream(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            operation_extensions=operation_extensions,
            allowed_operation_types=allowed,
        )

    def _selection(self, query: str, operation_name: str | None) -> None:
        """Raise ``OperationNotSelected`` when ``operation_name`` selects no single operation
        of ``query``; a document that does not parse is left to Strawberry, which reports it."""
        try:
            document = parse_document(query, self.limits.max_tokens)
        except LongIntLiteral as refused:
            document = refused.document
        except (GraphQLError, RecursionError):
            return
        problem = selection_problem(document, operation_name)
        if problem is not None:
            raise OperationNotSelected(operation_name, problem)

    def _refusal(
        self, query: str, operation_name: str | None, allowed: set[OperationType]
    ) -> PreExecutionError | None:
        # Refused before Strawberry sees it, as the client's mistake: no single operation
        # selected (Strawberry runs the first of several, or reports an unexpected error), a
        # document with an over-long integer on a transport that takes only some operation
        # types, and an operation of a type the transport does not run (Strawberry masks it
        # and logs a traceback).
        try:
            self._selection(query, operation_name)
        except OperationNotSelected as unselected:
            return PreExecutionError(data=None, errors=[GraphQLError(unselected.message)])
        if len(allowed) == len(OperationType):
            return None
        try:
            document = parse_document(query, self.limits.max_tokens)
        except LongIntLiteral as refused:
            return PreExecutionError(data=None, errors=[refused])
        except (GraphQLError, RecursionError):
            return None  # Strawberry reports it
        operation = get_operation_ast(document, operation_name)
        if operation is None or OperationType(operation.operation.value) in allowed:
            return None
        kind = {"query": "queries", "mutation": "mutations"}.get(operation.operation.value)
        message = f"{kind or 'subscriptions'} are not allowed"
        error = GraphQLError(message, extensions={"code": OPERATION_NOT_ALLOWED})
        return PreExecutionError(data=None, errors=[error])

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log unexpected errors with their traceback, client errors briefly (DEBUG)."""
        for error in errors:
            original = error.original_error
            if is_unexpected(error):
                assert original is not None
                logger.error(
                    "unexpected error at %s: %r",
                    error.path,
                    original,
                    exc_info=(type(original), original, original.__traceback__),
                )
            else:
                logger.debug("client error: %s", error.message.splitlines()[0][:200])


async def _one(
    result: ExecutionResult | PreExecutionError,
) -> AsyncGenerator[ExecutionResult | PreExecutionError, None]:
    yield result


class OperationMeter(SchemaExtension):
    """Reports each operation's type and outcome (ok or error) to ``Context.meter``."""

    def on_operation(self) -> Iterator[None]:
        """Count the operation once it has run."""
        yield
        context = self.execution_context.context
        meter = getattr(context, "meter", None)
        if meter is None:
            return
        try:
            kind = self.execution_context.operation_type.value
        except (RuntimeError, AttributeError, KeyError, TypeError):
            kind = "invalid"
        result = self.execution_context.result
        failed = result is None or bool(getattr(result, "errors", None))
        meter.operation(kind, "error" if failed else "ok")


def build_schema(
    *,
    max_depth: int = 12,
    max_tokens: int = 2000,
    max_aliases: int = 30,
    debug: bool = False,
    introspection: IntrospectionPolicy = IntrospectionPolicy.AUTHENTICATED,
) -> WorkbenchSchema:
    """The service's schema; limits bound query depth, token count and aliases per document.

    Parsing and validation results are cached per document text (LRU, ``DOCUMENT_CACHE_SIZE``
    entries): clients send the same few documents over and over, and validating the badges
    subscription took a third of the server's time when 1,000 clients subscribed at once
    (issue 6). A document over the token limit is never cached (parsing raises).
    ``introspection`` says who may introspect and see suggestions (``schema.introspection``).
    Raises ``CompiledTableMismatch`` when a compiled table disagrees with the schema."""
    extensions: list[Callable[[], SchemaExtension]] = [
        OperationMeter,
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        DocumentCache,
        lambda: DocumentLimiter(max_depth=max_depth, max_aliases=max_aliases),
        lambda: CallerValidation(policy=introspection),
    ]
    if not debug:
        extensions.append(masking_extension)
    schema = WorkbenchSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=caller_execution(introspection),
    )
    schema.limits = Limits(max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens)
    schema.debug = debug
    schema.introspection = introspection
    return schema
