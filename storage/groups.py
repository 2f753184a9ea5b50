"""Statements over workbench groups (``app_group``) and their categories (``app_category``).

Names are compared case-insensitively (``lower()`` on both sides), as the uniqueness rule of
``resolvers.groups`` says. Reading the whole tree and ensuring a default row are in
``storage.catalogue`` (``list_groups``, ``ensure_group``, ``ensure_category``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.models import MAX_ROW_ID, AppCategory, AppGroup, utcnow


async def get_group(session: AsyncSession, *, group_id: int) -> AppGroup | None:
    """The group with id ``group_id``, or ``None`` (also for ids past a 32-bit column)."""
    if group_id > MAX_ROW_ID:
        return None
    return await session.get(AppGroup, group_id)


async def get_category(session: AsyncSession, *, category_id: int) -> AppCategory | None:
    """The category with id ``category_id``, or ``None`` (also for ids past a 32-bit column)."""
    if category_id > MAX_ROW_ID:
        return None
    return await session.get(AppCategory, category_id)


async def group_name_taken(session: AsyncSession, *, name: str, except_id: int | None) -> bool:
    """Whether a group other than ``except_id`` is named ``name``, case-insensitively."""
    stmt = select(t.app_group.c.id).where(func.lower(t.app_group.c.name) == name.lower())
    if except_id is not None:
        stmt = stmt.where(t.app_group.c.id != except_id)
    return (await session.execute(stmt)).first() is not None


async def category_name_taken(
    session: AsyncSession, *, group_id: int, name: str, except_id: int | None
) -> bool:
    """Whether a category of group ``group_id`` other than ``except_id`` is named ``name``,
    case-insensitively."""
    stmt = select(t.app_category.c.id).where(
        t.app_category.c.group_id == group_id,
        func.lower(t.app_category.c.name) == name.lower(),
    )
    if except_id is not None:
        stmt = stmt.where(t.app_category.c.id != except_id)
    return (await session.execute(stmt)).first() is not None


async def next_group_position(session: AsyncSession) -> int:
    """The position after the last group (0 when there is none)."""
    stmt = select(func.coalesce(func.max(t.app_group.c.position), -1))
    return int((await session.execute(stmt)).scalar_one()) + 1


async def next_category_position(session: AsyncSession, *, group_id: int) -> int:
    """The position after the last category of group ``group_id`` (0 when it has none)."""
    stmt = select(func.coalesce(func.max(t.app_category.c.position), -1)).where(
        t.app_category.c.group_id == group_id
    )
    return int((await session.execute(stmt)).scalar_one()) + 1


async def category_ids_of_groups(session: AsyncSession, *, group_ids: Sequence[int]) -> list[int]:
    """Ids of the categories of the given groups, in no particular order."""
    stmt = select(t.app_category.c.id).where(t.app_category.c.group_id.in_(list(group_ids)))
    return list((await session.execute(stmt)).scalars().all())


async def _set_positions(
    session: AsyncSession, model: type[AppGroup] | type[AppCategory], ids: Sequence[int]
) -> None:
    # An ORM-enabled UPDATE (on the entity, not its table) also updates the rows ``session``
    # already holds, so a tree read afterwards in the same session shows the new positions,
    # not the ones loaded before (issue 11 item 11).
    table = t.app_group if model is AppGroup else t.app_category
    for position, row_id in enumerate(ids):
        await session.execute(
            update(model)
            .where(table.c.id == row_id)
            .values(position=position)
            .execution_options(synchronize_session="fetch")
        )


async def set_group_positions(session: AsyncSession, *, group_ids: Sequence[int]) -> None:
    """Give each group of ``group_ids`` its index there as its position (one UPDATE each);
    groups loaded in ``session`` show their new positions too."""
    await _set_positions(session, AppGroup, group_ids)


async def set_category_positions(session: AsyncSession, *, category_ids: Sequence[int]) -> None:
    """Give each category of ``category_ids`` its index there as its position; categories
    loaded in ``session`` show their new positions too."""
    await _set_positions(session, AppCategory, category_ids)


async def add_group(session: AsyncSession, *, name: str, position: int) -> AppGroup:
    """Insert a group and return it with its new id."""
    group = AppGroup(name=name, position=position)
    session.add(group)
    await session.flush()
    return group


async def add_category(
    session: AsyncSession, *, group_id: int, name: str, position: int
) -> AppCategory:
    """Insert a category into group ``group_id`` and return it with its new id."""
    category = AppCategory(group_id=group_id, name=name, position=position)
    session.add(category)
    await session.flush()
    return category


async def insert_group(session: AsyncSession, *, group_id: int, name: str, position: int) -> None:
    """Insert a group with an explicit id (a catalogue import keeps the file's ids; on
    PostgreSQL the caller then moves the id sequence on, ``catalogue.advance_id_sequences``)."""
    await session.execute(
        insert(t.app_group).values(id=group_id, name=name, position=position, created_at=utcnow())
    )


async def insert_category(
    session: AsyncSession, *, category_id: int, group_id: int, name: str, position: int
) -> None:
    """Insert a category with an explicit id (see ``insert_group``)."""
    await session.execute(
        insert(t.app_category).values(
            id=category_id,
            group_id=group_id,
            name=name,
            position=position,
            created_at=utcnow(),
        )
    )


async def update_group(session: AsyncSession, *, group_id: int, name: str, position: int) -> None:
    """Set a group's name and position."""
    await session.execute(
        update(t.app_group).where(t.app_group.c.id == group_id).values(name=name, position=position)
    )


async def update_category(
    session: AsyncSession, *, category_id: int, name: str, position: int
) -> None:
    """Set a category's name and position."""
    await session.execute(
        update(t.app_category)
        .where(t.app_category.c.id == category_id)
        .values(name=name, position=position)
    )


async def delete_group(session: AsyncSession, *, group_id: int) -> None:
    """Delete group ``group_id`` and the categories still in it. Apps refer to categories with
    ``ON DELETE RESTRICT``: the caller moves or refuses a category that holds apps first, else
    the database raises ``IntegrityError``."""
    await session.execute(delete(t.app_category).where(t.app_category.c.group_id == group_id))
    await session.execute(delete(t.app_group).where(t.app_group.c.id == group_id))


async def delete_category(session: AsyncSession, *, category_id: int) -> None:
    """Delete category ``category_id`` (which must hold no app: ``ON DELETE RESTRICT``)."""
    await session.execute(delete(t.app_category).where(t.app_category.c.id == category_id))


async def move_categories(
    session: AsyncSession, *, categories: Sequence[AppCategory], group_id: int, start: int
) -> None:
    """Put ``categories`` (loaded in ``session``) into group ``group_id`` in their order, at
    positions ``start``, ``start + 1``, ..., and write them now (before statements that depend
    on it, such as deleting their former group)."""
    for offset, category in enumerate(categories):
        category.group_id = group_id
        category.position = start + offset
    await session.flush()
