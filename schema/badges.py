"""Badge mutations, ``openApp`` and the ``badges`` subscription (SPEC §4, §5, §7)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import badges as badge_resolvers
from resolvers.identity import Principal, parse_id
from resolvers.launch import LaunchData, open_app
from resolvers.streams.badges import BadgeStream
from schema.context import Context
from schema.enums import BadgeCause, LaunchMode, Platform
from schema.fields import root_mutation, root_subscription

MAX_INT = 2**31 - 1


def capped(count: int) -> int:
    """``count`` within GraphQL's ``Int`` (32-bit): a sum over many apps may exceed it."""
    return min(count, MAX_INT)


def badge_stream(context: Context, principal: Principal, platform: Platform | None) -> BadgeStream:
    """The badge stream of ``principal`` on ``platform`` (``None``: every platform) over the
    context's database, hub and catalogue watch: what the ``badges`` subscription streams,
    through Strawberry or compiled (``schema.compiled``)."""
    return BadgeStream(
        db=context.db,
        hub=context.hub,
        cid=principal.cid,
        uid=principal.uid,
        platform=platform,
        watch=context.watch,
    )


@strawberry.type(description="One app's unread count.")
class AppBadge:
    app_id: strawberry.ID
    unread: int


@strawberry.type(description="The caller's badge state after an event, as absolute values.")
class BadgeEvent:
    cause: BadgeCause
    badges: list[AppBadge] = strawberry.field(
        description="The app counts this event sets; for SNAPSHOT every app on the workbench."
    )
    unseen_count: int = strawberry.field(description="Workbench badge after the event.")
    unread_total: int
    version: int = strawberry.field(description="Per user, strictly increasing.")

    @classmethod
    def from_data(cls, data: badge_resolvers.BadgeEventData) -> BadgeEvent:
        """Adapt a resolver event."""
        return cls(
            cause=data.cause,
            badges=[AppBadge(app_id=strawberry.ID(str(a)), unread=n) for a, n in data.badges],
            unseen_count=capped(data.unseen_count),
            unread_total=capped(data.unread_total),
            version=data.version,
        )


@strawberry.type(description="What the client does to launch an app.")
class Launch:
    mode: LaunchMode
    url: str = strawberry.field(description="WEB: the page; NATIVE: the run path.")
    embedded_browser: bool
    download_url: str | None = strawberry.field(description="NATIVE: open when not installed.")

    @classmethod
    def from_data(cls, data: LaunchData) -> Launch:
        """Adapt a resolver launch."""
        return cls(
            mode=data.mode,
            url=data.url,
            embedded_browser=data.embedded_browser,
            download_url=data.download_url,
        )


@strawberry.type
class BadgeMutation:
    @root_mutation(description="The caller opened the workbench: unseenCount becomes 0.")
    async def open_workbench(self, info: strawberry.Info[Context, None]) -> BadgeEvent:
        context = info.context
        event = await badge_resolvers.open_workbench(
            db=context.db, broker=context.broker, principal=context.user()
        )
        return BadgeEvent.from_data(event)

    @root_mutation(description="Open an app: clears its badge on every device.")
    async def open_app(
        self,
        info: strawberry.Info[Context, None],
        app_id: strawberry.ID,
        platform: Platform,
    ) -> Launch:
        context = info.context
        launch, _ = await open_app(
            db=context.db,
            broker=context.broker,
            principal=context.user(),
            app_id=parse_id(app_id, "appId"),
            platform=platform,
            ticket_ttl_seconds=context.options.ticket_ttl_s,
        )
        return Launch.from_data(launch)

    @root_mutation(
        description="Mark count messages of an app read: unread = max(0, unread - count)."
    )
    async def mark_app_read(
        self,
        info: strawberry.Info[Context, None],
        app_id: strawberry.ID,
        count: int = 1,
    ) -> BadgeEvent:
        context = info.context
        principal = context.user()
        event = await badge_resolvers.read_app(
            db=context.db,
            broker=context.broker,
            cid=principal.cid,
            uid=principal.uid,
            app_id=parse_id(app_id, "appId"),
            count=count,
            require_visible=True,
        )
        return BadgeEvent.from_data(event)


@strawberry.type
class BadgeSubscription:
    @root_subscription(
        description=(
            "First a SNAPSHOT, then every change of the caller's badge state. With a platform, "
            "only that platform's workbench apps are listed and counted; without, all of them."
        )
    )
    async def badges(
        self, info: strawberry.Info[Context, None], platform: Platform | None = None
    ) -> AsyncGenerator[BadgeEvent, None]:
        context = info.context
        principal = context.user()
        events = badge_stream(context, principal, platform).events()
        context.meter.subscription_started("badges")
        try:
            async for event in events:
                yield BadgeEvent.from_data(event)
        finally:
            await events.aclose()
            context.meter.subscription_ended("badges")
