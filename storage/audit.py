"""Statements over the audit log (``audit_entry``; issue 3 item 8): entries are added in the
transaction of the change they describe (``resolvers.audit.record``), and read newest first."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.models import AuditEntry


def add_entry(session: AsyncSession, *, entry: AuditEntry) -> None:
    """Add ``entry`` to ``session``'s transaction (written at its flush or commit)."""
    session.add(entry)


async def find_entries(
    session: AsyncSession,
    *,
    scope_cid: int | None,
    action: str | None,
    target_type: str | None,
    target_id: int | None,
    actor_cid: int | None,
    actor_uid: int | None,
    before_id: int | None,
    limit: int,
) -> tuple[list[AuditEntry], int]:
    """Up to ``limit`` entries matching every condition that is not ``None``, newest (highest
    id) first, with ids below ``before_id``; and how many entries match in all (``before_id``
    aside). Two statements: run them in one ``Database.read()`` snapshot."""
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (t.audit_entry.c.scope_cid, scope_cid),
        (t.audit_entry.c.action, action),
        (t.audit_entry.c.target_type, target_type),
        (t.audit_entry.c.target_id, target_id),
        (t.audit_entry.c.actor_cid, actor_cid),
        (t.audit_entry.c.actor_uid, actor_uid),
    ):
        if value is not None:
            conditions.append(column == value)
    stmt = select(AuditEntry).where(*conditions).order_by(t.audit_entry.c.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(t.audit_entry.c.id < before_id)
    count = select(func.count()).select_from(t.audit_entry).where(*conditions)
    rows = list((await session.execute(stmt)).scalars().all())
    total = int((await session.execute(count)).scalar_one())
    return rows, total
