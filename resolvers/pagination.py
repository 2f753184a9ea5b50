"""Cursor pagination for connections (GraphQL Cursor Connections Specification, Relay).

Cursors are opaque to clients: URL-safe base64 of ``"<kind>:<row id>"`` (row ids are 32-bit
``storage.models`` ids, so a larger number is no cursor of ours). A page lists rows
after the cursor's row in the connection's order; ``first`` is 1..``MAX_PAGE_SIZE``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from resolvers.errors import FieldError, InvalidInput
from storage.models import MAX_ROW_ID

_DIGITS = re.compile(r"[0-9]{1,10}")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a connection: ``rows`` in order, ``cursors`` one per row, whether more
    rows follow, and how many rows match the filter in all."""

    rows: list[T]
    cursors: list[str]
    has_next_page: bool
    total_count: int


def encode_cursor(kind: str, row_id: int) -> str:
    """The opaque cursor of row ``row_id`` in a connection of ``kind`` (e.g. ``"app"``)."""
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None, field: str = "after") -> int | None:
    """The row id in ``cursor`` (``None`` for no cursor). Raises ``InvalidInput`` naming
    ``field`` for a cursor this connection did not issue."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != kind or not _DIGITS.fullmatch(number) or int(number) > MAX_ROW_ID:
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidInput.single(
            field, "is not a cursor of this connection", "INVALID_CURSOR"
        ) from error


def page_size(first: int | None, field: str = "first") -> int:
    """``first`` checked: 1..MAX_PAGE_SIZE, default DEFAULT_PAGE_SIZE; else ``InvalidInput``."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput([FieldError(field, f"must be 1 to {MAX_PAGE_SIZE}", "PAGE_SIZE")])
    return first
