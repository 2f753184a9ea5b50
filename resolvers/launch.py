"""Launching an app (SPEC §5): clear its badge and tell the client what to open."""

from __future__ import annotations

from dataclasses import dataclass

from pubsub import Broker
from resolvers.badges import BadgeCause, BadgeEventData, read_app
from resolvers.errors import AppNotFound
from resolvers.identity import Principal
from storage import catalogue
from storage.db import Database
from storage.models import AppPlatform, LaunchMode, Platform


@dataclass(frozen=True, slots=True)
class LaunchData:
    """What the client does (SPEC §7 ``Launch``): open ``url`` (WEB) or run it (NATIVE).

    ``download_url`` is for NATIVE apps that are not installed; ``embedded_browser`` is true only
    for WEB apps on ANDROID or IOS set to open in the IM's in-app browser.
    """

    mode: LaunchMode
    url: str
    embedded_browser: bool
    download_url: str | None


def launch_for(settings: AppPlatform, platform: Platform) -> LaunchData:
    """The launch instructions of one platform's settings."""
    if settings.launch_mode == LaunchMode.WEB.value:
        return LaunchData(
            mode=LaunchMode.WEB,
            url=settings.web_url or "",
            embedded_browser=platform is not Platform.PC and settings.embedded_browser,
            download_url=None,
        )
    return LaunchData(
        mode=LaunchMode.NATIVE,
        url=settings.run_path or "",
        embedded_browser=False,
        download_url=settings.download_url,
    )


async def open_app(
    *,
    db: Database,
    broker: Broker,
    principal: Principal,
    app_id: int,
    platform: Platform,
) -> tuple[LaunchData, BadgeEventData]:
    """Open app ``app_id`` on ``platform``: its badge drops to 0 on every device (SPEC §4, §5).

    Raises ``AppNotFound`` when the app is not on the user's workbench for ``platform``.
    """
    async with db.read() as session:
        if not await catalogue.is_visible(
            session,
            app_id=app_id,
            cid=principal.cid,
            uid=principal.uid,
            platform=platform,
        ):
            raise AppNotFound(app_id)
        settings = (await catalogue.platform_settings(session, [app_id]))[app_id][platform]
    event = await read_app(
        db=db,
        broker=broker,
        cid=principal.cid,
        uid=principal.uid,
        app_id=app_id,
        count=None,
        cause=BadgeCause.OPEN_APP,
    )
    return launch_for(settings, platform), event
