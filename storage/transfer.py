"""Whole-table statements of the catalogue export and import (``resolvers.transfer``): rows
read and written as plain column mappings, in bulk, with the ids the file gives.

Whole tables are read without id lists, which would meet the drivers' parameter limits on a large
site. An import runs in one write transaction; on PostgreSQL it first locks the catalogue's
tables (``lock_catalogue``), so that validation and writes see one state, and at the end moves
the id sequences past the ids it wrote (``advance_id_sequences``). On SQLite both are needless:
the transaction holds the database's write lock, and ``AUTOINCREMENT`` follows the highest id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import is_postgresql
from storage.icons import ICON_REF_PREFIX

_LOCKED_TABLES = "app_group, app_category, app, app_platform, app_audience, icon_image"
_SEQUENCED_TABLES = ("app_group", "app_category", "app")


async def lock_catalogue(session: AsyncSession) -> None:
    """PostgreSQL: lock the catalogue's tables against other writers until the transaction
    ends (``SHARE ROW EXCLUSIVE``: readers go on). SQLite: nothing (see the module docstring)."""
    if is_postgresql(session):
        await session.execute(text(f"LOCK TABLE {_LOCKED_TABLES} IN SHARE ROW EXCLUSIVE MODE"))


async def advance_id_sequences(session: AsyncSession) -> None:
    """PostgreSQL: rows inserted with explicit ids leave their SERIAL sequence behind; move the
    sequences of ``app_group``, ``app_category`` and ``app`` past the highest id, never back
    (app ids are never reused, ``storage.models``). SQLite: nothing."""
    if not is_postgresql(session):
        return
    for table in _SEQUENCED_TABLES:
        sequence = (
            await session.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
        ).scalar_one()
        top = (
            await session.execute(
                text(
                    f"SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), "
                    "COALESCE(pg_sequence_last_value(CAST(:s AS regclass)), 0))"
                ),
                {"s": sequence},
            )
        ).scalar_one()
        if top > 0:
            await session.execute(
                text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": sequence, "v": top}
            )


async def app_rows(session: AsyncSession) -> Sequence[RowMapping]:
    """Every row of ``app``, every column, by id ascending."""
    return (await session.execute(select(t.app).order_by(t.app.c.id))).mappings().all()


async def platform_rows(session: AsyncSession) -> Sequence[RowMapping]:
    """Every row of ``app_platform``, every column, in no particular order."""
    return (await session.execute(select(t.app_platform))).mappings().all()


async def audience_pairs(session: AsyncSession) -> list[tuple[int, int]]:
    """Every ``(app_id, cid)`` of ``app_audience``, ascending."""
    stmt = select(t.app_audience.c.app_id, t.app_audience.c.cid).order_by(
        t.app_audience.c.app_id, t.app_audience.c.cid
    )
    return [(app_id, cid) for app_id, cid in (await session.execute(stmt)).all()]


async def update_app_row(session: AsyncSession, *, app_id: int, values: Mapping[str, Any]) -> None:
    """Set the given columns of app ``app_id``."""
    await session.execute(update(t.app).where(t.app.c.id == app_id).values(**values))


async def insert_catalogue_rows(
    session: AsyncSession,
    *,
    apps: Sequence[Mapping[str, Any]],
    platforms: Sequence[Mapping[str, Any]],
    audience: Sequence[Mapping[str, Any]],
) -> None:
    """Insert app rows (with their ids), then platform rows, then audience rows, each kind as
    one executemany; an empty kind is skipped."""
    for table, rows in ((t.app, apps), (t.app_platform, platforms), (t.app_audience, audience)):
        if rows:
            await session.execute(insert(table), list(rows))


async def icon_ids(session: AsyncSession) -> set[str]:
    """The id of every stored icon."""
    return set((await session.execute(select(t.icon_image.c.id))).scalars().all())


async def icons_in_use(session: AsyncSession) -> Sequence[RowMapping]:
    """Every column of each stored icon some app refers to (``sha256:<id>``), by id."""
    used = select(func.substr(t.app.c.icon, len(ICON_REF_PREFIX) + 1)).where(
        t.app.c.icon.like(f"{ICON_REF_PREFIX}%")
    )
    stmt = select(t.icon_image).where(t.icon_image.c.id.in_(used)).order_by(t.icon_image.c.id)
    return (await session.execute(stmt)).mappings().all()


async def icon_values(
    session: AsyncSession, *, icon_id: str, columns: Sequence[str]
) -> dict[str, Any]:
    """The named columns of icon ``icon_id``, which must exist (``NoResultFound`` otherwise)."""
    stmt = select(*(t.icon_image.c[name] for name in columns)).where(t.icon_image.c.id == icon_id)
    return dict((await session.execute(stmt)).mappings().one())


async def update_icon(session: AsyncSession, *, icon_id: str, values: Mapping[str, Any]) -> None:
    """Set the given columns of icon ``icon_id``."""
    await session.execute(update(t.icon_image).where(t.icon_image.c.id == icon_id).values(**values))


async def insert_icons(session: AsyncSession, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert icon rows (every column given), as one executemany; nothing when empty."""
    if rows:
        await session.execute(insert(t.icon_image), list(rows))
