"""Queries over the app catalogue: apps, their platforms and audience, and visibility (SPEC §3)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    false,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tables as t
from storage.dialect import upsert_insert
from storage.models import (
    MAX_ROW_ID,
    App,
    AppAudience,
    AppCategory,
    AppGroup,
    AppPlatform,
    AudienceMode,
    Platform,
    utcnow,
)


def audience_admits(cid: int) -> ColumnElement[bool]:
    """SQL: the app's audience admits enterprise ``cid`` (ALL minus hidden, or SELECTED)."""
    listed = exists().where(t.app_audience.c.app_id == t.app.c.id, t.app_audience.c.cid == cid)
    return or_(
        and_(t.app.c.audience_mode == AudienceMode.ALL.value, not_(listed)),
        and_(t.app.c.audience_mode == AudienceMode.SELECTED.value, listed),
    )


def visible_to(cid: int, uid: int, platform: Platform | None) -> ColumnElement[bool]:
    """SQL: the app is on user ``(cid, uid)``'s workbench for ``platform`` (SPEC §3).

    ``platform=None`` means "on at least one platform". A removal counts only while the app is
    user-removable.
    """
    on_platform = exists().where(t.app_platform.c.app_id == t.app.c.id)
    if platform is not None:
        on_platform = exists().where(
            t.app_platform.c.app_id == t.app.c.id, t.app_platform.c.platform == platform.value
        )
    removed = exists().where(
        t.app_removal.c.app_id == t.app.c.id, t.app_removal.c.cid == cid, t.app_removal.c.uid == uid
    )
    return and_(
        t.app.c.enabled.is_(True),
        on_platform,
        audience_admits(cid),
        not_(and_(t.app.c.user_removable.is_(True), removed)),
    )


@dataclass(frozen=True, slots=True)
class WorkbenchRow:
    """One app of a user's workbench, with its group, category and the user's unread count."""

    app: App
    group_id: int
    group_name: str
    category_id: int
    category_name: str
    unread: int


def workbench_statement(*, cid: int, uid: int, platform: Platform | None) -> Select[Any]:
    """The one SELECT of a workbench read: the user's visible apps in workbench order, each
    with its group, category and the user's unread count (SPEC §3). Columns: the ``App``
    entity, ``group_id``, ``group_name``, ``category_id``, ``category_name``, ``unread``."""
    return (
        select(
            App,
            t.app_group.c.id.label("group_id"),
            t.app_group.c.name.label("group_name"),
            t.app_category.c.id.label("category_id"),
            t.app_category.c.name.label("category_name"),
            func.coalesce(t.app_badge.c.unread, 0).label("unread"),
        )
        .join(t.app_category, t.app_category.c.id == t.app.c.category_id)
        .join(t.app_group, t.app_group.c.id == t.app_category.c.group_id)
        .outerjoin(
            t.app_badge,
            and_(
                t.app_badge.c.app_id == t.app.c.id,
                t.app_badge.c.cid == cid,
                t.app_badge.c.uid == uid,
            ),
        )
        .where(visible_to(cid, uid, platform))
        .order_by(
            t.app_group.c.position,
            t.app_group.c.id,
            t.app_category.c.position,
            t.app_category.c.id,
            t.app.c.position,
            t.app.c.id,
        )
    )


async def workbench_rows(
    session: AsyncSession, *, cid: int, uid: int, platform: Platform | None
) -> list[WorkbenchRow]:
    """The user's visible apps in workbench order: group, category, app (SPEC §3)."""
    result = await session.execute(workbench_statement(cid=cid, uid=uid, platform=platform))
    return [
        WorkbenchRow(
            row.App,
            row.group_id,
            row.group_name,
            row.category_id,
            row.category_name,
            row.unread,
        )
        for row in result.all()
    ]


async def visible_app_ids(
    session: AsyncSession, *, cid: int, uid: int, platform: Platform | None
) -> set[int]:
    """Ids of the apps on the user's workbench for ``platform`` (``None``: any platform)."""
    stmt = select(t.app.c.id).where(visible_to(cid, uid, platform))
    return set((await session.execute(stmt)).scalars().all())


async def is_visible(
    session: AsyncSession, *, app_id: int, cid: int, uid: int, platform: Platform | None
) -> bool:
    """Whether app ``app_id`` is on the user's workbench for ``platform`` (``None``: any)."""
    if app_id > MAX_ROW_ID:
        return False
    stmt = select(t.app.c.id).where(t.app.c.id == app_id, visible_to(cid, uid, platform))
    return (await session.execute(stmt)).first() is not None


async def max_app_id(session: AsyncSession) -> int:
    """The highest app id ever assigned that still exists, 0 for an empty catalogue."""
    found = (await session.execute(select(func.coalesce(func.max(t.app.c.id), 0)))).scalar_one()
    return int(found)


async def get_app(session: AsyncSession, app_id: int) -> App | None:
    """The app with id ``app_id``, or ``None``."""
    if app_id > MAX_ROW_ID:
        return None
    return await session.get(App, app_id)


async def app_id_for_key(session: AsyncSession, app_key: str) -> int | None:
    """The id of the enabled app whose app key is ``app_key``, or ``None``."""
    stmt = select(t.app.c.id).where(t.app.c.app_key == app_key, t.app.c.enabled.is_(True))
    return (await session.execute(stmt)).scalar_one_or_none()


async def identifier_taken(session: AsyncSession, identifier: str) -> bool:
    """Whether an app already uses ``identifier``, compared case-insensitively (SPEC §2)."""
    stmt = select(t.app.c.id).where(t.app.c.identifier_key == identifier.lower())
    return (await session.execute(stmt)).first() is not None


async def admitted_enterprises(
    session: AsyncSession, *, app_id: int, cids: Iterable[int]
) -> set[int]:
    """The subset of ``cids`` that app ``app_id``'s audience admits."""
    wanted = set(cids)
    if not wanted:
        return set()
    app = await session.get(App, app_id)
    if app is None:
        return set()
    stmt = select(t.app_audience.c.cid).where(
        t.app_audience.c.app_id == app_id, t.app_audience.c.cid.in_(wanted)
    )
    listed = set((await session.execute(stmt)).scalars().all())
    if app.audience_mode == AudienceMode.ALL.value:
        return wanted - listed
    return listed


@dataclass(frozen=True, slots=True)
class NoticeTarget:
    """An enabled app a notice may count for: its name (push text) and which of the asked
    enterprises its audience admits."""

    app_id: int
    name: str
    admitted: frozenset[int]


async def notice_targets(
    session: AsyncSession, *, app_ids: Iterable[int], cids: Iterable[int]
) -> dict[int, NoticeTarget]:
    """The enabled apps among ``app_ids``, each with the subset of ``cids`` its audience
    admits (two statements for any number of apps: a batch of notices' checks)."""
    wanted_apps = sorted({a for a in app_ids if 0 < a <= MAX_ROW_ID})
    wanted_cids = set(cids)
    if not wanted_apps:
        return {}
    apps = (
        await session.execute(
            select(t.app.c.id, t.app.c.name, t.app.c.audience_mode).where(
                t.app.c.id.in_(wanted_apps), t.app.c.enabled.is_(True)
            )
        )
    ).all()
    listed: dict[int, set[int]] = {row.id: set() for row in apps}
    if apps and wanted_cids:
        stmt = select(t.app_audience.c.app_id, t.app_audience.c.cid).where(
            t.app_audience.c.app_id.in_(list(listed)), t.app_audience.c.cid.in_(wanted_cids)
        )
        for app_id, cid in (await session.execute(stmt)).all():
            listed[app_id].add(cid)
    return {
        row.id: NoticeTarget(
            row.id,
            row.name,
            frozenset(
                wanted_cids - listed[row.id]
                if row.audience_mode == AudienceMode.ALL.value
                else listed[row.id]
            ),
        )
        for row in apps
    }


async def platform_settings(
    session: AsyncSession, app_ids: Sequence[int]
) -> dict[int, dict[Platform, AppPlatform]]:
    """Every platform row of the given apps: ``{app_id: {platform: settings}}``."""
    found: dict[int, dict[Platform, AppPlatform]] = {app_id: {} for app_id in app_ids}
    if not app_ids:
        return found
    stmt = select(AppPlatform).where(t.app_platform.c.app_id.in_(list(app_ids)))
    for row in (await session.execute(stmt)).scalars().all():
        found[row.app_id][Platform(row.platform)] = row
    return found


async def audience_ids(session: AsyncSession, app_ids: Sequence[int]) -> dict[int, list[int]]:
    """The listed enterprise ids of each app's audience, ascending: ``{app_id: [cid, ...]}``."""
    found: dict[int, list[int]] = {app_id: [] for app_id in app_ids}
    if not app_ids:
        return found
    stmt = (
        select(t.app_audience.c.app_id, t.app_audience.c.cid)
        .where(t.app_audience.c.app_id.in_(list(app_ids)))
        .order_by(t.app_audience.c.app_id, t.app_audience.c.cid)
    )
    for app_id, cid in (await session.execute(stmt)).all():
        found[app_id].append(cid)
    return found


async def category_with_group(
    session: AsyncSession, category_id: int
) -> tuple[AppCategory, AppGroup] | None:
    """The category and its group, or ``None`` when the category does not exist."""
    if category_id > MAX_ROW_ID:
        return None
    stmt = select(AppCategory, AppGroup).join(
        AppGroup, t.app_group.c.id == t.app_category.c.group_id
    )
    row = (await session.execute(stmt.where(t.app_category.c.id == category_id))).first()
    return None if row is None else (row[0], row[1])


async def categories_with_groups(
    session: AsyncSession, category_ids: Sequence[int]
) -> dict[int, tuple[AppCategory, AppGroup]]:
    """``{category_id: (category, group)}`` for the given ids that exist."""
    if not category_ids:
        return {}
    stmt = (
        select(AppCategory, AppGroup)
        .join(AppGroup, t.app_group.c.id == t.app_category.c.group_id)
        .where(t.app_category.c.id.in_(list(category_ids)))
    )
    rows = (await session.execute(stmt)).all()
    return {category.id: (category, group) for category, group in rows if category.id is not None}


async def next_app_position(session: AsyncSession, category_id: int) -> int:
    """The position after the last app of a category (new apps go last)."""
    stmt = select(func.coalesce(func.max(t.app.c.position), -1) + 1).where(
        t.app.c.category_id == category_id
    )
    return int((await session.execute(stmt)).scalar_one())


async def ensure_group(session: AsyncSession, *, name: str, position: int) -> int:
    """The id of the group named ``name``, created at ``position`` when absent."""
    found = (
        await session.execute(select(t.app_group.c.id).where(t.app_group.c.name == name))
    ).scalar()
    if found is not None:
        return int(found)
    group = AppGroup(name=name, position=position)
    session.add(group)
    await session.flush()
    assert group.id is not None
    return group.id


async def ensure_category(session: AsyncSession, *, group_id: int, name: str, position: int) -> int:
    """The id of the category ``name`` in group ``group_id``, created when absent."""
    stmt = select(t.app_category.c.id).where(
        t.app_category.c.group_id == group_id, t.app_category.c.name == name
    )
    found = (await session.execute(stmt)).scalar()
    if found is not None:
        return int(found)
    category = AppCategory(group_id=group_id, name=name, position=position)
    session.add(category)
    await session.flush()
    assert category.id is not None
    return category.id


async def app_by_identifier(session: AsyncSession, identifier: str) -> App | None:
    """The app whose identifier equals ``identifier`` case-insensitively, or ``None``."""
    stmt = select(App).where(t.app.c.identifier_key == identifier.lower())
    return (await session.execute(stmt)).scalars().first()


async def add_removal(session: AsyncSession, *, cid: int, uid: int, app_id: int) -> bool:
    """Record that the user removed ``app_id``; ``False`` when it already was removed."""
    stmt = (
        upsert_insert(session, t.app_removal)
        .values(cid=cid, uid=uid, app_id=app_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["cid", "uid", "app_id"])
        .returning(t.app_removal.c.app_id)
    )
    return (await session.execute(stmt)).first() is not None


async def delete_removal(session: AsyncSession, *, cid: int, uid: int, app_id: int) -> bool:
    """Undo a removal; ``False`` when the app was not removed."""
    stmt = (
        delete(t.app_removal)
        .where(
            t.app_removal.c.cid == cid, t.app_removal.c.uid == uid, t.app_removal.c.app_id == app_id
        )
        .returning(t.app_removal.c.app_id)
    )
    return (await session.execute(stmt)).first() is not None


async def removed_apps(
    session: AsyncSession, *, cid: int, uid: int, platform: Platform | None
) -> list[App]:
    """Apps the user removed that restoring would bring back (enabled, removable, in the
    audience, on ``platform`` or on any platform), most recently removed first."""
    on_platform = exists().where(t.app_platform.c.app_id == t.app.c.id)
    if platform is not None:
        on_platform = exists().where(
            t.app_platform.c.app_id == t.app.c.id, t.app_platform.c.platform == platform.value
        )
    stmt = (
        select(App)
        .join(t.app_removal, t.app_removal.c.app_id == t.app.c.id)
        .where(
            t.app_removal.c.cid == cid,
            t.app_removal.c.uid == uid,
            t.app.c.enabled.is_(True),
            t.app.c.user_removable.is_(True),
            audience_admits(cid),
            on_platform,
        )
        .order_by(t.app_removal.c.created_at.desc(), t.app.c.id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def is_removed(session: AsyncSession, *, cid: int, uid: int, app_id: int) -> bool:
    """Whether the user has a removal recorded for ``app_id`` (effective or not)."""
    stmt = select(t.app_removal.c.app_id).where(
        t.app_removal.c.cid == cid, t.app_removal.c.uid == uid, t.app_removal.c.app_id == app_id
    )
    return (await session.execute(stmt)).first() is not None


async def list_groups(session: AsyncSession) -> list[tuple[AppGroup, list[AppCategory]]]:
    """Every group with its categories, both in workbench order."""
    groups = (
        (await session.execute(select(AppGroup).order_by(t.app_group.c.position, t.app_group.c.id)))
        .scalars()
        .all()
    )
    categories = (
        (
            await session.execute(
                select(AppCategory).order_by(t.app_category.c.position, t.app_category.c.id)
            )
        )
        .scalars()
        .all()
    )
    by_group: dict[int, list[AppCategory]] = {g.id: [] for g in groups if g.id is not None}
    for category in categories:
        by_group[category.group_id].append(category)
    return [(g, by_group[g.id]) for g in groups if g.id is not None]


async def app_counts(session: AsyncSession) -> dict[int, int]:
    """How many apps each category holds: ``{category_id: count}`` (absent: none)."""
    stmt = select(t.app.c.category_id, func.count()).group_by(t.app.c.category_id)
    return {category_id: count for category_id, count in (await session.execute(stmt)).all()}


async def apps_in_category(session: AsyncSession, category_id: int) -> list[App]:
    """The category's apps in workbench order (position, then id)."""
    stmt = (
        select(App).where(t.app.c.category_id == category_id).order_by(t.app.c.position, t.app.c.id)
    )
    return list((await session.execute(stmt)).scalars().all())


@dataclass(frozen=True, slots=True)
class AppRule:
    """What decides where an app shows (SPEC §3), for checks in memory: the same rule as
    ``visible_to``, kept beside it so the two cannot drift apart unnoticed (tests compare them).
    """

    app_id: int
    enabled: bool
    user_removable: bool
    platforms: frozenset[Platform]
    audience_mode: AudienceMode
    audience: frozenset[int]

    def admits(self, cid: int) -> bool:
        """The audience admits enterprise ``cid`` (ALL minus hidden, or SELECTED)."""
        listed = cid in self.audience
        return not listed if self.audience_mode is AudienceMode.ALL else listed

    def shows(self, cid: int, platform: Platform | None, *, removed: bool) -> bool:
        """The app is on the workbench of a user of ``cid`` for ``platform`` (``None``: any);
        ``removed``: the user has a removal recorded for it."""
        on_platform = bool(self.platforms) if platform is None else platform in self.platforms
        return (
            self.enabled
            and on_platform
            and self.admits(cid)
            and not (self.user_removable and removed)
        )


async def app_rules(session: AsyncSession, app_ids: Collection[int] | None) -> dict[int, AppRule]:
    """The visibility rule of each given app that exists (``None``: every app)."""
    apps = select(
        t.app.c.id, t.app.c.enabled, t.app.c.user_removable, t.app.c.audience_mode
    ).order_by(t.app.c.id)
    platforms = select(t.app_platform.c.app_id, t.app_platform.c.platform)
    audience = select(t.app_audience.c.app_id, t.app_audience.c.cid)
    if app_ids is not None:
        wanted = [a for a in set(app_ids) if 0 <= a <= MAX_ROW_ID]
        if not wanted:
            return {}
        apps = apps.where(t.app.c.id.in_(wanted))
        platforms = platforms.where(t.app_platform.c.app_id.in_(wanted))
        audience = audience.where(t.app_audience.c.app_id.in_(wanted))
    on: dict[int, set[Platform]] = {}
    for app_id, platform in (await session.execute(platforms)).all():
        on.setdefault(app_id, set()).add(Platform(platform))
    listed: dict[int, set[int]] = {}
    for app_id, cid in (await session.execute(audience)).all():
        listed.setdefault(app_id, set()).add(cid)
    return {
        app_id: AppRule(
            app_id=app_id,
            enabled=bool(enabled),
            user_removable=bool(removable),
            platforms=frozenset(on.get(app_id, ())),
            audience_mode=AudienceMode(mode),
            audience=frozenset(listed.get(app_id, ())),
        )
        for app_id, enabled, removable, mode in (await session.execute(apps)).all()
    }


async def removed_app_ids(session: AsyncSession, *, cid: int, uid: int) -> set[int]:
    """Ids of every app the user has a removal recorded for (effective or not)."""
    stmt = select(t.app_removal.c.app_id).where(
        t.app_removal.c.cid == cid, t.app_removal.c.uid == uid
    )
    return set((await session.execute(stmt)).scalars().all())


async def app_ids_in_categories(session: AsyncSession, category_ids: Sequence[int]) -> list[int]:
    """Ids of the apps in the given categories, ascending."""
    if not category_ids:
        return []
    stmt = (
        select(t.app.c.id).where(t.app.c.category_id.in_(list(category_ids))).order_by(t.app.c.id)
    )
    return list((await session.execute(stmt)).scalars().all())


@dataclass(frozen=True, slots=True)
class AppFilter:
    """Conditions of the administrators' app list; ``None`` means "any". ``owner_cid``
    restricts to an enterprise administrator's own apps; ``enterprise_id`` to apps whose
    audience admits that enterprise; ``search`` matches name or identifier, case-insensitive.
    A ``group_id`` or ``category_id`` past ``MAX_ROW_ID`` names no row and matches nothing
    (PostgreSQL could not even bind it to the int32 column).
    """

    owner_cid: int | None = None
    platform: Platform | None = None
    kind: str | None = None
    group_id: int | None = None
    category_id: int | None = None
    enterprise_id: int | None = None
    search: str | None = None
    enabled: bool | None = None


def _app_conditions(where: AppFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.owner_cid is not None:
        conditions.append(t.app.c.owner_cid == where.owner_cid)
    if where.platform is not None:
        conditions.append(
            exists().where(
                t.app_platform.c.app_id == t.app.c.id,
                t.app_platform.c.platform == where.platform.value,
            )
        )
    if where.kind is not None:
        conditions.append(t.app.c.kind == where.kind)
    for row_id in (where.category_id, where.group_id):
        if row_id is not None and row_id > MAX_ROW_ID:
            return [false()]
    if where.category_id is not None:
        conditions.append(t.app.c.category_id == where.category_id)
    if where.group_id is not None:
        conditions.append(
            t.app.c.category_id.in_(
                select(t.app_category.c.id).where(t.app_category.c.group_id == where.group_id)
            )
        )
    if where.enterprise_id is not None:
        conditions.append(audience_admits(where.enterprise_id))
    if where.search:
        term = where.search.lower()
        conditions.append(
            or_(
                func.lower(t.app.c.name).contains(term, autoescape=True),
                t.app.c.identifier_key.contains(term, autoescape=True),
            )
        )
    if where.enabled is not None:
        conditions.append(t.app.c.enabled.is_(where.enabled))
    return conditions


async def find_apps(
    session: AsyncSession, where: AppFilter, *, after_id: int | None, limit: int
) -> tuple[list[App], int]:
    """Up to ``limit`` apps matching ``where`` with ids above ``after_id``, by id, and the
    number of all matching apps."""
    conditions = _app_conditions(where)
    stmt = select(App).where(*conditions).order_by(t.app.c.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(t.app.c.id > after_id)
    rows = list((await session.execute(stmt)).scalars().all())
    total = (
        await session.execute(select(func.count()).select_from(t.app).where(*conditions))
    ).scalar_one()
    return rows, int(total)


async def delete_app(session: AsyncSession, *, app_id: int) -> None:
    """Delete app ``app_id``; its platforms, audience, badges, removals, tickets, signatures,
    idempotency records, badge versions and push rows go with it (``ON DELETE CASCADE``). Its
    uploaded icon stays: ``storage.icons.delete_if_unreferenced`` decides."""
    await session.execute(delete(t.app).where(t.app.c.id == app_id))


async def delete_platforms(session: AsyncSession, *, app_id: int) -> None:
    """Delete every platform row of app ``app_id`` (before writing its new ones)."""
    await session.execute(delete(t.app_platform).where(t.app_platform.c.app_id == app_id))


async def delete_audience(session: AsyncSession, *, app_id: int) -> None:
    """Delete every listed enterprise of app ``app_id``'s audience (before writing the new)."""
    await session.execute(delete(t.app_audience).where(t.app_audience.c.app_id == app_id))


async def add_app(session: AsyncSession, *, app: App) -> int:
    """Insert ``app`` (a new row, ``id`` unset) and return the id the database gave it. Raises
    ``IntegrityError`` when its app key or identifier is taken (the unique indexes)."""
    session.add(app)
    await session.flush()
    assert app.id is not None
    return app.id


async def add_app_settings(
    session: AsyncSession,
    *,
    app_id: int,
    platforms: Iterable[AppPlatform],
    audience: Iterable[int],
) -> None:
    """Insert app ``app_id``'s platform rows (their ``app_id`` is set here) and its listed
    audience enterprises; the app must have none yet (``replace_app_settings`` otherwise)."""
    for row in platforms:
        row.app_id = app_id
        session.add(row)
    session.add_all(AppAudience(app_id=app_id, cid=cid) for cid in audience)
    await session.flush()


async def replace_app_settings(
    session: AsyncSession,
    *,
    app_id: int,
    platforms: Iterable[AppPlatform],
    audience: Iterable[int],
) -> None:
    """Replace every platform row and listed audience enterprise of app ``app_id`` with the
    given ones. Rows of the app loaded in ``session`` must be expunged first: the new rows have
    the same keys."""
    await delete_platforms(session, app_id=app_id)
    await delete_audience(session, app_id=app_id)
    await add_app_settings(session, app_id=app_id, platforms=platforms, audience=audience)


async def move_apps(
    session: AsyncSession, *, apps: Sequence[App], category_id: int, start: int
) -> None:
    """Put ``apps`` (loaded in ``session``) into category ``category_id`` in their order, at
    positions ``start``, ``start + 1``, ..., and write them now (before statements that depend
    on it, such as deleting their former category)."""
    for offset, app in enumerate(apps):
        app.category_id = category_id
        app.position = start + offset
    await session.flush()
