"""How a root field is declared: ``strawberry.field``/``mutation``/``subscription`` with the
domain-error mapping (``schema.errors.DomainErrors``) attached, so a root field's body is only
an adapter: unpack the context, call one resolver, convert its result.

- ``root_query``, ``root_mutation``, ``root_subscription``: domain errors become GraphQL
  errors with their ``extensions.code``.
- ``payload_mutation``: ``InvalidInput`` (and the errors named in ``payload_errors``) come back
  as the payload's ``errors``; the others as for ``root_mutation``.

Which one a field needs is checked when the schema is built: a mutation that returns a payload
must be a ``payload_mutation``, and only it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry

from resolvers.errors import WorkbenchError
from schema.errors import DomainErrors, PayloadRule


def root_query(*, description: str) -> Any:
    """A ``Query`` field whose domain errors become GraphQL errors."""
    return strawberry.field(description=description, extensions=[DomainErrors()])


def root_mutation(*, description: str) -> Any:
    """A ``Mutation`` field that returns no payload; domain errors become GraphQL errors."""
    return strawberry.mutation(description=description, extensions=[DomainErrors()])


def payload_mutation(
    *,
    description: str,
    payload_errors: Mapping[type[WorkbenchError], PayloadRule] | None = None,
) -> Any:
    """A ``Mutation`` field returning a payload (a type with ``errors: [UserError!]!``).

    ``InvalidInput`` becomes ``errors``; so does each error type in ``payload_errors``, as one
    ``UserError`` on the named input field, or as the payload its function builds. Other domain
    errors become GraphQL errors."""
    return strawberry.mutation(
        description=description,
        extensions=[DomainErrors(payload=True, payload_errors=payload_errors)],
    )


def root_subscription(*, description: str) -> Any:
    """A ``Subscription`` field; a domain error raised by its stream (the caller's
    authentication, first of all) becomes the stream's GraphQL error."""
    return strawberry.subscription(description=description, extensions=[DomainErrors()])
