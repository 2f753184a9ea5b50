"""The GraphQL schema: Strawberry types and thin root fields, one module per domain.

Root fields unpack the context, call one resolver and convert its result; domain errors map to
GraphQL errors in ``schema.errors``. ``build_schema`` assembles Query, Mutation and
Subscription with the protocol-safety extensions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from resolvers.workbench import load_workbench
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
from schema.compiled import Limits, workbench_plan
from schema.context import USER_ROLES, Context
from schema.errors import is_unexpected, masking_extension
from schema.groups import GroupMutation, GroupQuery
from schema.limits import DocumentLimiter
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
# Distinct document texts whose parse and validation results are kept (build_schema).
DOCUMENT_CACHE_SIZE = 256


class WorkbenchSchema(strawberry.Schema):
    """The Strawberry schema with three service rules:

    - ``execute`` (HTTP, and queries over WebSocket) never runs a subscription: those need a
      WebSocket (``subscribe``), so over HTTP they are a 400 request error, not a crash.
    - A plain ``workbench`` query (``schema.compiled``) is answered without graphql-core's
      executor: the same data, in half the time for a 200-app catalogue (issue 6).
    - ``process_errors`` logs only unexpected errors, with their traceback; client errors
      (validation, domain errors) are logged at DEBUG without the query text, so clients can
      neither flood the error log nor forge lines in it.
    """

    # The document limits, for the compiled paths (build_schema sets the configured ones).
    limits = Limits(max_depth=12, max_aliases=30, max_tokens=2000)

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
        """Execute a query or mutation; subscriptions are refused (see class docstring)."""
        allowed = set(allowed_operation_types or (OperationType.QUERY, OperationType.MUTATION))
        allowed.discard(OperationType.SUBSCRIPTION)
        if query is not None and OperationType.QUERY in allowed:
            compiled = await self._compiled_workbench(
                query, variable_values, context_value, operation_name
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

    async def _compiled_workbench(
        self,
        query: str,
        variables: dict[str, Any] | None,
        context: Any,
        operation_name: str | None,
    ) -> ExecutionResult | None:
        # A plain workbench query by a workbench user, answered without the executor
        # (schema.compiled); None: let Strawberry run it. A failure also falls back, so that
        # errors are reported (and masked, and logged) exactly as Strawberry does.
        if not isinstance(context, Context):
            return None
        plan = workbench_plan(query, variables, operation_name, self.limits)
        principal = context.principal
        if plan is None or principal is None or principal.role not in USER_ROLES:
            return None
        assert plan.platform is not None  # the argument is non-null: plain shapes say so
        try:
            data = await load_workbench(db=context.db, principal=principal, platform=plan.platform)
        except Exception:
            return None
        context.meter.operation("query", "ok")
        return ExecutionResult(data=plan.data(data), errors=None)

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
) -> strawberry.Schema:
    """The service's schema; limits bound query depth, token count and aliases per document.

    Parsing and validation results are cached per document text (LRU, ``DOCUMENT_CACHE_SIZE``
    entries): clients send the same few documents over and over, and validating the badges
    subscription took a third of the server's time when 1,000 clients subscribed at once
    (issue 6). A document over the token limit is never cached (parsing raises)."""
    extensions: list[Callable[[], SchemaExtension]] = [
        OperationMeter,
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: ParserCache(maxsize=DOCUMENT_CACHE_SIZE),
        lambda: DocumentLimiter(max_depth=max_depth, max_aliases=max_aliases),
        lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
    ]
    if not debug:
        extensions.append(masking_extension)
    schema = WorkbenchSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )
    schema.limits = Limits(max_depth=max_depth, max_aliases=max_aliases, max_tokens=max_tokens)
    return schema
