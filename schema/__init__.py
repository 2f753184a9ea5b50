"""The GraphQL schema: Strawberry types and thin root fields, one module per domain.

Root fields unpack the context, call one resolver and convert its result; domain errors map to
GraphQL errors in ``schema.errors``. ``build_schema`` assembles Query, Mutation and
Subscription with the protocol-safety extensions.
"""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema.apps import AppMutation
from schema.badges import BadgeMutation, BadgeSubscription
from schema.errors import masking_extension
from schema.workbench import WorkbenchQuery

Query = merge_types("Query", (WorkbenchQuery,))
Mutation = merge_types("Mutation", (AppMutation, BadgeMutation))
Subscription = merge_types("Subscription", (BadgeSubscription,))


def build_schema(
    *,
    max_depth: int = 12,
    max_tokens: int = 2000,
    max_aliases: int = 30,
    debug: bool = False,
) -> strawberry.Schema:
    """The service's schema; limits bound query depth, token count and aliases per document."""
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: QueryDepthLimiter(max_depth=max_depth),
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
    ]
    if not debug:
        extensions.append(masking_extension)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )
