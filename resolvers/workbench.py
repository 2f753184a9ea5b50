"""A user's workbench (SPEC §3): the visible apps in order, grouped, with badges."""

from __future__ import annotations

from dataclasses import dataclass

from resolvers.identity import Principal
from storage import badges as store
from storage import catalogue
from storage.catalogue import WorkbenchRow
from storage.db import Database
from storage.models import Platform


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
