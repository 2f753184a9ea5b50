"""Domain errors on the GraphQL surface: one mapping for the whole schema, applied by one
field extension (``DomainErrors``) that every root field carries (``schema.fields``).

- ``InvalidInput`` in a payload mutation becomes the payload's ``errors: [UserError!]!``, the
  payload's other fields at their defaults (null, empty, false).
- A payload mutation may name further domain errors that are part of its answer
  (``payload_errors``: ``appAccessToken``'s wrong secret, ``setAppBadge``'s stale version).
- Every other ``WorkbenchError`` becomes a GraphQL error whose ``extensions.code`` is the
  domain code (``UNAUTHENTICATED``, ``FORBIDDEN``, ``APP_NOT_FOUND``, ``INVALID_INPUT`` ...).
- ``DatabaseBusy`` (a write waited for a lock past its timeout) becomes a GraphQL error with
  ``extensions.code`` ``DATABASE_BUSY``: the client may try again; it is no bug.
- Anything else is masked as "Unexpected error." outside debug (``masking_extension``).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import FieldExtension, MaskErrors
from strawberry.extensions.field_extension import AsyncExtensionResolver, SyncExtensionResolver
from strawberry.types.base import has_object_definition
from strawberry.types.field import StrawberryField

from resolvers.errors import DatabaseBusy, FieldError, InvalidInput, WorkbenchError

# How a payload mutation answers a domain error it declares: the ``UserError.field`` to name
# (``None``: the whole input), or a function building the whole payload from the error.
PayloadRule = str | Callable[[Any], object] | None


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

    @classmethod
    def of(cls, error: WorkbenchError, field: str | None) -> UserError:
        """``error``'s message and code, reported on input ``field`` (``None``: whole input)."""
        return cls(field=field, message=error.message, code=error.code)


def user_errors(error: InvalidInput) -> list[UserError]:
    """Every field error of ``error`` as ``UserError`` values."""
    return [UserError.from_field_error(e) for e in error.errors]


def to_graphql_error(error: WorkbenchError) -> GraphQLError:
    """A GraphQL error carrying the domain message and ``extensions.code``; an
    ``InvalidInput`` outside a payload also lists its field errors (``extensions.fields``)."""
    extensions: dict[str, object] = {"code": error.code}
    if isinstance(error, InvalidInput):
        extensions["fields"] = [
            {"field": e.field, "message": e.message, "code": e.code} for e in error.errors
        ]
    return GraphQLError(error.message, extensions=extensions)


def payload_type(annotation: object) -> type | None:
    """The Strawberry object type ``annotation`` names if it is a payload (it has an
    ``errors`` field), else ``None``."""
    if not isinstance(annotation, type) or not has_object_definition(annotation):
        return None
    names = {f.python_name for f in annotation.__strawberry_definition__.fields}
    return annotation if "errors" in names else None


class DomainErrors(FieldExtension):
    """The field extension that maps domain errors for one root field (see module docstring).

    ``payload=True`` marks a payload mutation: its return type must have ``errors``, and
    ``InvalidInput`` plus the errors in ``payload_errors`` come back inside the payload. With
    ``payload=False`` the return type must not be a payload, so that no payload mutation is
    declared without its mapping. Both are checked when the schema is built (``TypeError``).

    Async resolvers, sync ones and subscriptions (async generators) alike: an error raised
    while a subscription's stream runs becomes its GraphQL error at the same point of the
    stream. Exceptions that are not ``WorkbenchError`` pass through untouched (masked later).
    """

    def __init__(
        self,
        *,
        payload: bool = False,
        payload_errors: Mapping[type[WorkbenchError], PayloadRule] | None = None,
    ) -> None:
        if payload_errors and not payload:
            raise TypeError("payload_errors needs a payload mutation")
        self.payload = payload
        self.payload_errors = dict(payload_errors or {})
        self._payload_type: type | None = None

    def apply(self, field: StrawberryField) -> None:
        """Find the field's payload type and check it against ``payload``."""
        found = payload_type(field.type)
        if self.payload and found is None:
            raise TypeError(f"{field.python_name}: a payload mutation must return a payload")
        if not self.payload and found is not None:
            raise TypeError(f"{field.python_name} returns a payload: use payload_mutation")
        self._payload_type = found

    def resolve(
        self, next_: SyncExtensionResolver, source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        """Run a sync resolver, mapping its domain errors."""
        try:
            return next_(source, info, **kwargs)
        except WorkbenchError as error:
            return self._answer(error)
        except DatabaseBusy as error:
            raise GraphQLError(str(error), extensions={"code": "DATABASE_BUSY"}) from None

    async def resolve_async(
        self, next_: AsyncExtensionResolver, source: Any, info: strawberry.Info, **kwargs: Any
    ) -> Any:
        """Run an async resolver or start a subscription's stream, mapping domain errors."""
        try:
            result = next_(source, info, **kwargs)
            if inspect.isasyncgen(result):
                return self._stream(result)
            return await result
        except WorkbenchError as error:
            return self._answer(error)
        except DatabaseBusy as error:
            raise GraphQLError(str(error), extensions={"code": "DATABASE_BUSY"}) from None

    async def _stream(self, events: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        async with aclosing(events):
            try:
                async for event in events:
                    yield event
            except WorkbenchError as error:
                raise to_graphql_error(error) from None

    def _answer(self, error: WorkbenchError) -> object:
        if self._payload_type is not None:
            if isinstance(error, InvalidInput):
                return self._payload_type(errors=user_errors(error))
            for kind, rule in self.payload_errors.items():
                if isinstance(error, kind):
                    if callable(rule):
                        return rule(error)
                    return self._payload_type(errors=[UserError.of(error, rule)])
        raise to_graphql_error(error) from None


def is_unexpected(error: GraphQLError) -> bool:
    """Whether ``error`` is a bug rather than a client's mistake: errors raised as GraphQLError
    (validation, domain errors) carry no other original error; anything that escaped a resolver
    as another exception does."""
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def masking_extension() -> MaskErrors:
    """The extension that hides unexpected errors' messages from clients."""
    return MaskErrors(should_mask_error=is_unexpected)
