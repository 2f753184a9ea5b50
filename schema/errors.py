"""Domain errors on the GraphQL surface: one mapping for the whole schema.

- ``InvalidInput`` in a mutation that returns a payload becomes ``errors: [UserError!]!``.
- Every other ``WorkbenchError`` becomes a GraphQL error whose ``extensions.code`` is the
  domain code (``UNAUTHENTICATED``, ``FORBIDDEN``, ``APP_NOT_FOUND``, ``INVALID_INPUT`` ...).
- Anything else is masked as "Unexpected error." outside debug (``masking_extension``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from resolvers.errors import FieldError, InvalidInput, WorkbenchError


@strawberry.type(description="A field-level problem with a mutation's input.")
class UserError:
    field: str | None = strawberry.field(
        description="Input path, e.g. input.name; null: whole input."
    )
    message: str
    code: str

    @classmethod
    def from_field_error(cls, error: FieldError) -> UserError:
        """Convert a domain ``FieldError``."""
        return cls(field=error.field, message=error.message, code=error.code)


def user_errors(error: InvalidInput) -> list[UserError]:
    """Every field error of ``error`` as ``UserError`` values."""
    return [UserError.from_field_error(e) for e in error.errors]


def to_graphql_error(error: WorkbenchError) -> GraphQLError:
    """A GraphQL error carrying the domain message and ``extensions.code``."""
    extensions: dict[str, object] = {"code": error.code}
    if isinstance(error, InvalidInput):
        extensions["fields"] = [
            {"field": e.field, "message": e.message, "code": e.code} for e in error.errors
        ]
    return GraphQLError(error.message, extensions=extensions)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Re-raise any ``WorkbenchError`` in the block as its GraphQL error."""
    try:
        yield
    except WorkbenchError as error:
        raise to_graphql_error(error) from None


def is_unexpected(error: GraphQLError) -> bool:
    """Whether ``error`` is a bug rather than a client's mistake: errors raised as GraphQLError
    (validation, domain errors) carry no other original error; anything that escaped a resolver
    as another exception does."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def masking_extension() -> MaskErrors:
    """The extension that hides unexpected errors' messages from clients."""
    return MaskErrors(should_mask_error=is_unexpected)
