"""The ``workbench(platform)`` query (SPEC §3, §7) and the user's own removals of apps."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import workbench as workbench_resolvers
from resolvers.identity import parse_id
from resolvers.streams.workbench import WorkbenchChangeStream
from resolvers.workbench import WorkbenchData, load_workbench
from schema.apps import App
from schema.badges import capped
from schema.context import Context
from schema.enums import Platform, WorkbenchChangeKind
from schema.errors import UserError
from schema.fields import payload_mutation, root_query, root_subscription


@strawberry.type(description="An app on the caller's workbench, with its badge.")
class WorkbenchApp:
    app: App
    unread: int
    removable: bool = strawberry.field(description="The caller may remove it from the workbench.")


@strawberry.type(description="A category of the workbench with its apps, in order.")
class WorkbenchCategory:
    id: strawberry.ID
    name: str
    apps: list[WorkbenchApp]


@strawberry.type(description="A group of the workbench with its categories, in order.")
class WorkbenchGroup:
    id: strawberry.ID
    name: str
    categories: list[WorkbenchCategory]


@strawberry.type(description="The caller's workbench on one platform.")
class Workbench:
    platform: Platform
    unseen_count: int = strawberry.field(
        description="The workbench badge: min(unseen, unreadTotal)."
    )
    unread_total: int = strawberry.field(description="Sum of unread over this platform's apps.")
    version: int
    groups: list[WorkbenchGroup] = strawberry.field(
        description="Group, categories, apps, in order."
    )
    apps: list[WorkbenchApp] = strawberry.field(description="The same apps, flat, in order.")

    @classmethod
    def from_data(cls, data: WorkbenchData) -> Workbench:
        """Adapt a resolver workbench: its flat rows, in order, nested by group and category."""
        groups: list[WorkbenchGroup] = []
        apps: list[WorkbenchApp] = []
        for row in data.rows:
            item = WorkbenchApp(
                app=App(row=row.app),
                unread=row.unread,
                removable=row.app.user_removable,
            )
            apps.append(item)
            if not groups or groups[-1].id != str(row.group_id):
                groups.append(
                    WorkbenchGroup(
                        id=strawberry.ID(str(row.group_id)),
                        name=row.group_name,
                        categories=[],
                    )
                )
            categories = groups[-1].categories
            if not categories or categories[-1].id != str(row.category_id):
                categories.append(
                    WorkbenchCategory(
                        id=strawberry.ID(str(row.category_id)),
                        name=row.category_name,
                        apps=[],
                    )
                )
            categories[-1].apps.append(item)
        return cls(
            platform=data.platform,
            unseen_count=capped(data.unseen_count),
            unread_total=capped(data.unread_total),
            version=data.version,
            groups=groups,
            apps=apps,
        )


@strawberry.type
class WorkbenchQuery:
    @root_query(description="The caller's workbench for a platform.")
    async def workbench(
        self, info: strawberry.Info[Context, None], platform: Platform
    ) -> Workbench:
        context = info.context
        data = await load_workbench(db=context.db, principal=context.user(), platform=platform)
        return Workbench.from_data(data)


@strawberry.type(description="Result of removing or restoring an app on the caller's workbench.")
class AppRemovalPayload:
    app: App | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RemovalQuery:
    @root_query(
        description="Apps the caller removed and may restore, newest first (one platform: its own)."
    )
    async def removed_apps(
        self, info: strawberry.Info[Context, None], platform: Platform | None = None
    ) -> list[App]:
        context = info.context
        apps = await workbench_resolvers.list_removed_apps(
            db=context.db, principal=context.user(), platform=platform
        )
        return [App(row=app) for app in apps]


@strawberry.type
class RemovalMutation:
    @payload_mutation(
        description="Remove a user-removable app from the caller's workbench, on every device."
    )
    async def remove_app(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppRemovalPayload:
        context = info.context
        app = await workbench_resolvers.remove_app(
            db=context.db,
            broker=context.broker,
            principal=context.user(),
            app_id=parse_id(app_id, "appId"),
        )
        return AppRemovalPayload(app=App(row=app))

    @payload_mutation(description="Put a removed app back on the caller's workbench.")
    async def restore_app(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppRemovalPayload:
        context = info.context
        app = await workbench_resolvers.restore_app(
            db=context.db,
            broker=context.broker,
            principal=context.user(),
            app_id=parse_id(app_id, "appId"),
        )
        return AppRemovalPayload(app=App(row=app))


@strawberry.type(description="A change of the apps on the caller's workbench for one platform.")
class WorkbenchChange:
    platform: Platform
    kind: WorkbenchChangeKind
    app_ids: list[strawberry.ID] = strawberry.field(
        description="SNAPSHOT: every app shown, ascending; otherwise the apps concerned."
    )


@strawberry.type
class WorkbenchSubscription:
    @root_subscription(
        description=(
            "First a SNAPSHOT of the app ids on the caller's workbench for the platform, then "
            "an event whenever an app is added to it, changed, or leaves it (hidden, disabled, "
            "deleted, or removed by the user on any device): refetch `workbench` on each."
        )
    )
    async def workbench_changed(
        self, info: strawberry.Info[Context, None], platform: Platform
    ) -> AsyncGenerator[WorkbenchChange, None]:
        context = info.context
        principal = context.user()
        stream = WorkbenchChangeStream(
            db=context.db,
            hub=context.hub,
            watch=context.watch,
            cid=principal.cid,
            uid=principal.uid,
            platform=platform,
        )
        events = stream.events()
        context.meter.subscription_started("workbenchChanged")
        try:
            async for event in events:
                yield WorkbenchChange(
                    platform=event.platform,
                    kind=event.kind,
                    app_ids=[strawberry.ID(str(a)) for a in event.app_ids],
                )
        finally:
            await events.aclose()
            context.meter.subscription_ended("workbenchChanged")
