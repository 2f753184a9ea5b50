"""A user's workbench (SPEC §3): the visible apps in order, grouped, with badges; and the
user's own removals of removable apps, which apply on every device."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.broker import Broker
from resolvers.errors import AppNotFound, AppRemoved, InvalidInput
from resolvers.identity import Principal
from resolvers.messages import RELOAD, user_channel
from storage import badges as store
from storage import catalogue
from storage.catalogue import WorkbenchRow
from storage.db import Database
from storage.models import App, Platform


@dataclass(frozen=True, slots=True)
class WorkbenchData:
    """A consistent read of one user's workbench for one platform.

    ``rows`` are in workbench order (group, category, app); ``unseen_count`` is the workbench
    badge shown, ``min(unseenCount, unread_total)`` over this platform's apps (SPEC §4).
    """

    platform: Platform
    rows: list[WorkbenchRow]
    unseen_count: int
    unread_total: int
    version: int


async def load_workbench(
    *, db: Database, principal: Principal, platform: Platform
) -> WorkbenchData:
    """Read ``principal``'s workbench for ``platform`` in one snapshot."""
    async with db.read() as session:
        rows = await catalogue.workbench_rows(
            session, cid=principal.cid, uid=principal.uid, platform=platform
        )
        state = await store.read_state(session, cid=principal.cid, uid=principal.uid)
    total = sum(row.unread for row in rows)
    return WorkbenchData(
        platform=platform,
        rows=rows,
        unseen_count=min(state.unseen, total),
        unread_total=total,
        version=state.version,
    )


async def not_on_workbench(
    session: AsyncSession, *, app_id: int, cid: int, uid: int, platform: Platform | None
) -> AppNotFound:
    """The error for app ``app_id``, found not on user ``(cid, uid)``'s workbench for
    ``platform`` (``None``: any): ``AppRemoved`` when the user's own removal is all that keeps
    it off (``restoreApp`` would bring it back there), else ``AppNotFound``."""
    restorable = await catalogue.removed_apps(session, cid=cid, uid=uid, platform=platform)
    if any(app.id == app_id for app in restorable):
        return AppRemoved(app_id)
    return AppNotFound(app_id)


async def remove_app(*, db: Database, broker: Broker, principal: Principal, app_id: int) -> App:
    """Take app ``app_id`` off the user's workbench on every device (SPEC §2 可被用户删除, §3).

    Idempotent. Raises ``AppNotFound`` when the app is not on the user's workbench (nor already
    removed by them) and ``InvalidInput`` (``NOT_REMOVABLE``) when the app may not be removed.
    Every live badge stream of the user reloads without it.
    """
    cid, uid = principal.cid, principal.uid
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        restorable = {
            a.id for a in await catalogue.removed_apps(session, cid=cid, uid=uid, platform=None)
        }
        visible = await catalogue.is_visible(
            session, app_id=app_id, cid=cid, uid=uid, platform=None
        )
        if app is None or not (visible or app_id in restorable):
            raise AppNotFound(app_id)
        if not app.user_removable:
            raise InvalidInput.single("appId", "this app cannot be removed", "NOT_REMOVABLE")
        changed = await catalogue.add_removal(session, cid=cid, uid=uid, app_id=app_id)
    if changed:
        await broker.publish(((user_channel(cid, uid), RELOAD.encode()),))
    return app


async def restore_app(*, db: Database, broker: Broker, principal: Principal, app_id: int) -> App:
    """Put a removed app back on the user's workbench on every device. Idempotent.

    Raises ``AppNotFound`` when the app is neither removed by the user and restorable nor on
    their workbench already.
    """
    cid, uid = principal.cid, principal.uid
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        restorable = {
            a.id for a in await catalogue.removed_apps(session, cid=cid, uid=uid, platform=None)
        }
        if app is None or app_id not in restorable:
            if app is not None and await catalogue.is_visible(
                session, app_id=app_id, cid=cid, uid=uid, platform=None
            ):
                return app  # already on the workbench
            raise AppNotFound(app_id)
        await catalogue.delete_removal(session, cid=cid, uid=uid, app_id=app_id)
    await broker.publish(((user_channel(cid, uid), RELOAD.encode()),))
    return app


async def list_removed_apps(
    *, db: Database, principal: Principal, platform: Platform | None
) -> list[App]:
    """The apps the user removed and could restore, newest removal first."""
    async with db.read() as session:
        return await catalogue.removed_apps(
            session, cid=principal.cid, uid=principal.uid, platform=platform
        )
