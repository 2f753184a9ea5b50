"""Uploaded icons (``IconImage``, SPEC §2 ``icon``; issue 3 item 4): content-addressed rows, and
the ``sha256:<id>`` references apps hold in ``app.icon``.

An icon row lives as long as some app refers to it. The two sides are kept race-free by one
lock: whoever makes an app refer to an icon goes through ``save_icon`` (or
``get_icon(..., lock=True)``), which locks the icon row until the transaction ends, and
``delete_if_unreferenced`` locks that row before it looks for references. On PostgreSQL (READ
COMMITTED) the look therefore runs after the referencing transaction has committed and sees its
app; on SQLite, writers are serialised anyway (``storage.db``). Lock app rows before icon rows,
in every transaction, so that the two never wait for each other.
"""

from __future__ import annotations

import re
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import upsert_insert
from storage.models import IconImage, utcnow

ICON_REF_PREFIX = "sha256:"
_UPLOADED_REF = re.compile(re.escape(ICON_REF_PREFIX) + r"([0-9a-f]{64})")


class IconContent(Protocol):
    """An accepted icon as ``resolvers.icons.ProcessedIcon`` gives it (storage cannot import
    resolvers): ``id`` the hex SHA-256 of ``original``, ``rendition_48`` a 48x48 PNG."""

    @property
    def id(self) -> str:
        """64 lowercase hex characters."""
        ...

    @property
    def media_type(self) -> str:
        """``image/png``, ``image/gif`` or ``image/jpeg``."""
        ...

    @property
    def width(self) -> int:
        """Width of the original, in pixels."""
        ...

    @property
    def height(self) -> int:
        """Height of the original, in pixels."""
        ...

    @property
    def original(self) -> bytes:
        """The upload exactly as received."""
        ...

    @property
    def rendition_48(self) -> bytes:
        """A 48x48 PNG made from the original."""
        ...


def icon_ref(icon_id: str) -> str:
    """The ``app.icon`` value that refers to uploaded icon ``icon_id``: ``sha256:<id>``.

    Raises ``ValueError`` unless ``icon_id`` is 64 lowercase hex characters.
    """
    ref = ICON_REF_PREFIX + icon_id
    if uploaded_icon_id(ref) is None:
        raise ValueError(f"not an icon id: {icon_id!r}")
    return ref


def uploaded_icon_id(ref: str) -> str | None:
    """The icon id in ``ref`` when it refers to an uploaded icon (``sha256:`` and exactly 64
    lowercase hex characters), else ``None`` (a built-in icon name such as ``chat``)."""
    found = _UPLOADED_REF.fullmatch(ref)
    return None if found is None else found.group(1)


async def save_icon(session: AsyncSession, icon: IconContent) -> IconImage:
    """The stored row for ``icon``, inserted when absent and locked until the transaction ends.

    Content-addressed: the same bytes saved twice, even by concurrent transactions, make one row
    (``INSERT ... ON CONFLICT DO NOTHING``; a concurrent inserter waits for the first to commit).
    Raises ``ValueError`` when ``icon.id`` is not an icon id.
    """
    icon_ref(icon.id)
    stmt = (
        upsert_insert(session, t.icon_image)
        .values(
            id=icon.id,
            media_type=icon.media_type,
            width=icon.width,
            height=icon.height,
            original=icon.original,
            rendition_48=icon.rendition_48,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    await session.execute(stmt)
    stored = await get_icon(session, icon.id, lock=True)
    assert stored is not None
    return stored


async def get_icon(session: AsyncSession, icon_id: str, *, lock: bool = False) -> IconImage | None:
    """The icon with id ``icon_id``, or ``None``. ``lock=True`` locks its row until the
    transaction ends (``FOR UPDATE`` on PostgreSQL): do so before making an app refer to an icon
    that is already stored, so that ``delete_if_unreferenced`` cannot remove it meanwhile."""
    stmt = select(IconImage).where(t.icon_image.c.id == icon_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalars().first()


async def delete_if_unreferenced(session: AsyncSession, ref: str) -> bool:
    """Delete the uploaded icon ``ref`` (an ``app.icon`` value) when no app refers to it any
    more; whether a row was deleted. ``False`` for built-in icon names and unknown icons.

    Call it in a write transaction after changing or deleting the app that held ``ref``; the
    session's pending changes are flushed first. It locks the icon row before looking for
    references (see the module docstring).
    """
    icon_id = uploaded_icon_id(ref)
    if icon_id is None:
        return False
    await session.flush()  # the session's pending changes of app.icon count as references
    locked = select(t.icon_image.c.id).where(t.icon_image.c.id == icon_id).with_for_update()
    if (await session.execute(locked)).first() is None:
        return False
    referenced = select(t.app.c.id).where(t.app.c.icon == ref).limit(1)
    if (await session.execute(referenced)).first() is not None:
        return False
    stmt = delete(t.icon_image).where(t.icon_image.c.id == icon_id).returning(t.icon_image.c.id)
    return (await session.execute(stmt)).first() is not None


async def all_icons(session: AsyncSession) -> list[IconImage]:
    """Every stored icon, ordered by id (for the catalogue export)."""
    stmt = select(IconImage).order_by(t.icon_image.c.id)
    return list((await session.execute(stmt)).scalars().all())
