"""The demo catalogue: what a newcomer sees per enterprise and platform (SPEC §3, §10)."""

from __future__ import annotations

from resolvers.demo import load_demo
from resolvers.identity import Principal, Role
from resolvers.workbench import load_workbench
from storage.db import Database
from storage.models import Platform


def names(rows) -> list[str]:
    """Identifiers of workbench rows, in order."""
    return [row.app.identifier for row in rows]


async def test_demo_workbenches(database_url):
    """Groups in order; PC-only, hidden-from-1002 and 1001-only apps land where they should."""
    db = Database(database_url)
    try:
        # given
        lines = await load_demo(db)
        again = await load_demo(db)
        a = Principal(cid=1001, uid=1034, account="a", role=Role.USER)
        b = Principal(cid=1002, uid=7, account="b", role=Role.USER)
        # when
        a_pc = await load_workbench(db=db, principal=a, platform=Platform.PC)
        a_android = await load_workbench(db=db, principal=a, platform=Platform.ANDROID)
        b_pc = await load_workbench(db=db, principal=b, platform=Platform.PC)
    finally:
        await db.dispose()
    # then
    assert [line.endswith("(created)") for line in lines] == [True] * 6
    assert [line.endswith("(exists)") for line in again] == [True] * 6
    assert names(a_pc.rows) == [
        "CorpMail",
        "Calendar",
        "OaApproval",
        "Purchasing",
        "SalesReport",
        "Expenses",
    ]
    assert names(a_android.rows) == ["CorpMail", "Calendar", "OaApproval", "Purchasing", "Expenses"]
    assert names(b_pc.rows) == ["CorpMail", "Calendar", "OaApproval", "SalesReport"]
    assert [row.group_name for row in a_pc.rows][:3] == ["沟通协作", "沟通协作", "业务系统"]
