"""The demo catalogue of ``workbench demo``: a few apps across groups and platforms, WEB and
NATIVE, one hidden from enterprise 1002 and one for enterprise 1001 only, so a newcomer sees a
real workbench at once. Loading is idempotent (apps are matched by identifier)."""

from __future__ import annotations

from dataclasses import replace

from resolvers.apps import AppDraft, PlatformDraft, create_app
from resolvers.identity import Principal, Role
from storage import catalogue
from storage.db import Database
from storage.models import AppKind, AudienceMode, LaunchMode, Platform

ADMIN = Principal(cid=1, uid=1, account="demo-admin", role=Role.PLATFORM_ADMIN)


def _web(url: str) -> PlatformDraft:
    return PlatformDraft(launch_mode=LaunchMode.WEB, web_url=url)


# (group, category, draft); group and category names are created on first use.
DEMO_APPS: tuple[tuple[str, str, AppDraft], ...] = (
    (
        "沟通协作",
        "沟通协作",
        AppDraft(
            name="企业邮箱",
            identifier="CorpMail",
            kind=AppKind.SYSTEM,
            icon="mail",
            platforms={p: _web("https://mail.example.com/") for p in Platform},
        ),
    ),
    (
        "沟通协作",
        "沟通协作",
        AppDraft(
            name="日程会议",
            identifier="Calendar",
            icon="calendar",
            user_removable=False,
            platforms={p: _web("https://calendar.example.com/") for p in Platform},
        ),
    ),
    (
        "业务系统",
        "审批",
        AppDraft(
            name="OA审批",
            identifier="OaApproval",
            kind=AppKind.ENTERPRISE,
            icon="document",
            platforms={
                Platform.PC: PlatformDraft(
                    launch_mode=LaunchMode.NATIVE,
                    run_path=r"C:\Program Files\OA\oa.exe",
                    download_url="https://oa.example.com/download/oa-setup.exe",
                ),
                Platform.ANDROID: PlatformDraft(
                    launch_mode=LaunchMode.NATIVE,
                    run_path="com.example.oa",
                    download_url="https://oa.example.com/download/oa.apk",
                ),
                Platform.IOS: _web("https://oa.example.com/m/"),
            },
        ),
    ),
    (
        "业务系统",
        "报表",
        AppDraft(
            name="销售报表",
            identifier="SalesReport",
            icon="chart",
            platforms={Platform.PC: _web("https://reports.example.com/sales")},
        ),
    ),
    (
        "业务系统",
        "报表",
        AppDraft(
            name="Expense Claims",
            identifier="Expenses",
            icon="app",
            audience_mode=AudienceMode.ALL,
            audience_ids=["1002"],
            platforms={p: _web("https://expenses.example.com/") for p in Platform},
        ),
    ),
    (
        "业务系统",
        "审批",
        AppDraft(
            name="采购申请",
            identifier="Purchasing",
            kind=AppKind.ENTERPRISE,
            icon="document",
            audience_mode=AudienceMode.SELECTED,
            audience_ids=["1001"],
            platforms={
                Platform.PC: _web("https://purchasing.example.com/"),
                Platform.ANDROID: _web("https://purchasing.example.com/m/"),
            },
        ),
    ),
)


async def load_demo(db: Database) -> list[str]:
    """Create the demo groups, categories and apps that do not exist yet.

    Returns one line per app: ``id``, ``identifier``, ``app key``, and whether it was created.
    """
    lines = []
    for position, (group_name, category_name, draft) in enumerate(DEMO_APPS):
        async with db.write() as session:
            group_id = await catalogue.ensure_group(session, name=group_name, position=position)
            category_id = await catalogue.ensure_category(
                session, group_id=group_id, name=category_name, position=position
            )
            existing = await catalogue.app_by_identifier(session, draft.identifier)
        if existing is None:
            created = await create_app(
                db=db, principal=ADMIN, draft=replace(draft, category_id=str(category_id))
            )
            app, state = created.app, "created"
        else:
            app, state = existing, "exists"
        lines.append(f"app {app.id:>4}  {app.identifier:<12} appkey {app.app_key}  ({state})")
    return lines
