"""Launching an app (SPEC §5): clear its badge and tell the client what to open, with the
login parameters filled in for auto-login apps (issue 4 item 1).

A login template (``loginParams``) is ``name=value`` pairs joined by ``&``, optionally led by
``&`` or ``?``. Two forms:

- explicit placeholders: any value holding ``{account}``, ``{cid}``, ``{uid}`` or ``{ticket}``
  turns the template into this form; each placeholder is replaced by the URL-encoded value and
  the rest is kept as written;
- the seed's positional form (``&account=&password=``): the first parameter with an empty
  value receives the user's account, the second the one-time SSO ticket (never a password).

The filled parameters go after the target's query (``&``) or start one (``?``), before any
``#fragment``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from resolvers.badges import BadgeEventData, read_app
from resolvers.broker import Broker
from resolvers.identity import Principal
from resolvers.messages import BadgeCause
from resolvers.sso import DEFAULT_TICKET_TTL_S, issue_ticket
from resolvers.workbench import not_on_workbench
from storage import catalogue
from storage.db import Database
from storage.models import AppPlatform, LaunchMode, Platform

PLACEHOLDER = re.compile(r"\{(account|cid|uid|ticket)\}")


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


def needs_ticket(template: str) -> bool:
    """Whether filling ``template`` uses a ticket: ``{ticket}`` in the explicit form, or a
    second empty parameter in the positional form (so none is issued in vain)."""
    pairs = [pair.partition("=") for pair in template.lstrip("&?").split("&") if pair]
    if any(PLACEHOLDER.search(value) for _, _, value in pairs):
        return any("{ticket}" in value for _, _, value in pairs)
    return sum(1 for _, _, value in pairs if not value) >= 2


def fill_login_params(template: str, *, account: str, cid: int, uid: int, ticket: str) -> str:
    """The query string of login template ``template`` for this user and ticket, without a
    leading separator (module docstring for the two forms). Values are percent-encoded as
    RFC 3986 unreserved characters only, so any account (non-ASCII, ``&``, ``=``) is safe."""
    values = {"account": account, "cid": str(cid), "uid": str(uid), "ticket": ticket}
    pairs = [pair.partition("=") for pair in template.lstrip("&?").split("&") if pair]
    explicit = any(PLACEHOLDER.search(value) for _, _, value in pairs)
    positional = iter((account, ticket))
    filled = []
    for name, _, value in pairs:
        if explicit:
            value = PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), value)
        elif not value:
            value = quote(next(positional, ""), safe="")
        filled.append(f"{name}={value}")
    return "&".join(filled)


def append_query(target: str, query: str) -> str:
    """``target`` with ``query`` added to its query string (``?`` or ``&``), before any
    fragment; a target ending in ``?`` or ``&`` takes it as is."""
    if not query:
        return target
    base, hash_mark, fragment = target.partition("#")
    separator = "" if base.endswith(("?", "&")) else "&" if "?" in base else "?"
    return f"{base}{separator}{query}{hash_mark}{fragment}"


def launch_for(
    settings: AppPlatform, platform: Platform, login_query: str | None = None
) -> LaunchData:
    """The launch instructions of one platform's settings; ``login_query`` (filled login
    parameters) is appended to the URL or run path."""
    if settings.launch_mode == LaunchMode.WEB.value:
        return LaunchData(
            mode=LaunchMode.WEB,
            url=append_query(settings.web_url or "", login_query or ""),
            embedded_browser=platform is not Platform.PC and settings.embedded_browser,
            download_url=None,
        )
    return LaunchData(
        mode=LaunchMode.NATIVE,
        url=append_query(settings.run_path or "", login_query or ""),
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
    ticket_ttl_seconds: int = DEFAULT_TICKET_TTL_S,
) -> tuple[LaunchData, BadgeEventData]:
    """Open app ``app_id`` on ``platform``: its badge drops to 0 on every device (SPEC §4, §5).

    For an auto-login platform, a fresh one-time SSO ticket (valid ``ticket_ttl_seconds``) is
    issued and the login parameters are filled in. Raises ``AppNotFound`` when the app is not
    on the user's workbench for ``platform`` (``AppRemoved`` when the user removed it).
    """
    async with db.read() as session:
        if not await catalogue.is_visible(
            session,
            app_id=app_id,
            cid=principal.cid,
            uid=principal.uid,
            platform=platform,
        ):
            raise await not_on_workbench(
                session,
                app_id=app_id,
                cid=principal.cid,
                uid=principal.uid,
                platform=platform,
            )
        settings = (await catalogue.platform_settings(session, [app_id]))[app_id][platform]
    login_query = None
    if settings.auto_login and settings.login_params:
        ticket = ""
        if needs_ticket(settings.login_params):
            async with db.write() as session:
                ticket = issue_ticket(
                    session, app_id=app_id, principal=principal, ttl_seconds=ticket_ttl_seconds
                )
        login_query = fill_login_params(
            settings.login_params,
            account=principal.account,
            cid=principal.cid,
            uid=principal.uid,
            ticket=ticket,
        )
    event = await read_app(
        db=db,
        broker=broker,
        cid=principal.cid,
        uid=principal.uid,
        app_id=app_id,
        count=None,
        cause=BadgeCause.OPEN_APP,
    )
    return launch_for(settings, platform, login_query), event
