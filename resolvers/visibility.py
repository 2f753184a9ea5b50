"""Why an app is or is not on a workbench: the rules of SPEC §3, explained one by one."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from resolvers.errors import AppNotFound, PermissionDenied
from resolvers.identity import Principal, Role
from storage import catalogue
from storage.db import Database
from storage.models import AudienceMode, Platform


class VisibilityReason(enum.StrEnum):
    """A rule of SPEC §3 that keeps an app off a workbench."""

    APP_DISABLED = "APP_DISABLED"
    NOT_ON_PLATFORM = "NOT_ON_PLATFORM"
    ENTERPRISE_HIDDEN = "ENTERPRISE_HIDDEN"
    ENTERPRISE_NOT_SELECTED = "ENTERPRISE_NOT_SELECTED"
    REMOVED_BY_USER = "REMOVED_BY_USER"


EXPLANATIONS = {
    VisibilityReason.APP_DISABLED: "the app is disabled",
    VisibilityReason.NOT_ON_PLATFORM: "the app has no settings for this platform",
    VisibilityReason.ENTERPRISE_HIDDEN: "the app is hidden from this enterprise",
    VisibilityReason.ENTERPRISE_NOT_SELECTED: "the app is shown to selected enterprises only, "
    "and this one is not among them",
    VisibilityReason.REMOVED_BY_USER: "the user removed it from their workbench",
}


@dataclass(frozen=True, slots=True)
class Visibility:
    """The verdict: ``visible`` exactly when ``reasons`` is empty; ``reasons`` in rule order."""

    app_id: int
    cid: int
    uid: int | None
    platform: Platform
    reasons: list[VisibilityReason]

    @property
    def visible(self) -> bool:
        """Whether the app is on the workbench."""
        return not self.reasons

    @property
    def explanation(self) -> str:
        """One sentence for people."""
        if not self.reasons:
            return "visible: every rule admits it"
        return "hidden: " + "; ".join(EXPLANATIONS[r] for r in self.reasons)


async def explain_visibility(
    *,
    db: Database,
    principal: Principal,
    app_id: int,
    cid: int,
    uid: int | None,
    platform: Platform,
) -> Visibility:
    """Explain whether app ``app_id`` is on the workbench of enterprise ``cid`` (and user
    ``uid``, whose removals count when given) for ``platform``.

    Platform administrators ask about any enterprise; enterprise administrators about their own
    only, and only about platform apps and their own apps (another enterprise's app looks
    absent: they learn nothing of it). Raises ``PermissionDenied`` otherwise and
    ``AppNotFound`` for an unknown app.
    """
    if principal.role is Role.ENTERPRISE_ADMIN:
        if cid != principal.cid:
            raise PermissionDenied("enterprise administrators ask about their own enterprise only")
    elif principal.role is not Role.PLATFORM_ADMIN:
        raise PermissionDenied("only administrators may ask why an app is (not) visible")
    async with db.read() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None or (
            principal.role is Role.ENTERPRISE_ADMIN
            and app.owner_cid is not None
            and app.owner_cid != principal.cid
        ):
            raise AppNotFound(app_id)
        settings = (await catalogue.platform_settings(session, [app_id]))[app_id]
        admitted = await catalogue.admitted_enterprises(session, app_id=app_id, cids=[cid])
        removed = uid is not None and await catalogue.is_removed(
            session, cid=cid, uid=uid, app_id=app_id
        )
    reasons = []
    if not app.enabled:
        reasons.append(VisibilityReason.APP_DISABLED)
    if platform not in settings:
        reasons.append(VisibilityReason.NOT_ON_PLATFORM)
    if cid not in admitted:
        reasons.append(
            VisibilityReason.ENTERPRISE_HIDDEN
            if app.audience_mode == AudienceMode.ALL.value
            else VisibilityReason.ENTERPRISE_NOT_SELECTED
        )
    if removed and app.user_removable:
        reasons.append(VisibilityReason.REMOVED_BY_USER)
    return Visibility(app_id=app_id, cid=cid, uid=uid, platform=platform, reasons=reasons)
