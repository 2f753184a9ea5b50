"""The audit log (issue 3 item 8): every administrative change, recorded in the transaction that
makes it, with who, when, what, and the values before and after.

Values are JSON objects built by the ``*_snapshot`` functions below, so one kind of target always
has one shape in ``before`` and ``after``. Secrets never enter the log: an app's snapshot has its
app key's last four characters only, and no secret hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.errors import PermissionDenied
from resolvers.identity import Principal, Role
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size
from storage import audit as store
from storage.db import Database
from storage.models import App, AppCategory, AppGroup, AppPlatform, AuditEntry, Platform

# Actions, as stored in ``AuditEntry.action``.
APP_CREATE = "app.create"
APP_UPDATE = "app.update"
APP_DISABLE = "app.disable"
APP_ENABLE = "app.enable"
APP_DELETE = "app.delete"
APP_ROTATE_KEY = "app.rotate_key"
APP_ROTATE_SECRET = "app.rotate_secret"
APP_MOVE = "app.move"
APP_SET_ICON = "app.set_icon"
GROUP_CREATE = "group.create"
GROUP_RENAME = "group.rename"
GROUP_REORDER = "group.reorder"
GROUP_DELETE = "group.delete"
CATEGORY_CREATE = "category.create"
CATEGORY_RENAME = "category.rename"
CATEGORY_REORDER = "category.reorder"
CATEGORY_DELETE = "category.delete"
CATALOGUE_IMPORT = "catalogue.import"

TARGET_APP = "app"
TARGET_GROUP = "group"
TARGET_CATEGORY = "category"
TARGET_CATALOGUE = "catalogue"


def platform_snapshot(row: AppPlatform) -> dict[str, Any]:
    """One platform's settings as logged."""
    return {
        "launchMode": row.launch_mode,
        "webUrl": row.web_url,
        "runPath": row.run_path,
        "downloadUrl": row.download_url,
        "embeddedBrowser": row.embedded_browser,
        "autoLogin": row.auto_login,
        "loginParams": row.login_params,
    }


def app_snapshot(
    app: App, platforms: Mapping[Platform, AppPlatform], audience: list[int]
) -> dict[str, Any]:
    """An app as logged: every administrable field, the app key masked to its last 4 chars."""
    return {
        "name": app.name,
        "identifier": app.identifier,
        "kind": app.kind,
        "icon": app.icon,
        "categoryId": app.category_id,
        "position": app.position,
        "userRemovable": app.user_removable,
        "enabled": app.enabled,
        "audience": {"mode": app.audience_mode, "enterpriseIds": [str(c) for c in audience]},
        "platforms": {p.value: platform_snapshot(platforms[p]) for p in Platform if p in platforms},
        "appKey": f"…{app.app_key[-4:]}" if app.app_key else None,
        "legacySigned": app.legacy_signed,
        "ipAllowlist": app.ip_allowlist,
    }


def group_snapshot(group: AppGroup) -> dict[str, Any]:
    """A group as logged."""
    return {"name": group.name, "position": group.position}


def category_snapshot(category: AppCategory) -> dict[str, Any]:
    """A category as logged."""
    return {"name": category.name, "groupId": category.group_id, "position": category.position}


def changed_fields(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys whose values differ, as ``(before, after)`` restricted to them."""
    keys = [k for k in before.keys() | after.keys() if before.get(k) != after.get(k)]
    keys.sort()
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def record(
    session: AsyncSession,
    *,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: int | None,
    scope_cid: int | None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one audit entry to ``session``'s transaction (committed, or rolled back, with the
    change it describes). ``before``/``after`` must be JSON-serialisable."""
    entry = AuditEntry(
        actor_cid=actor.cid,
        actor_uid=actor.uid,
        actor_role=actor.role.value,
        action=action,
        target_type=target_type,
        target_id=target_id,
        scope_cid=scope_cid,
        before=None if before is None else _dump(before),
        after=None if after is None else _dump(after),
    )
    store.add_entry(session, entry=entry)
    return entry


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Conditions of ``auditLog``; ``None`` means "any"."""

    action: str | None = None
    target_type: str | None = None
    target_id: int | None = None
    actor_cid: int | None = None
    actor_uid: int | None = None


async def list_entries(
    *,
    db: Database,
    principal: Principal,
    where: AuditFilter,
    first: int | None,
    after: str | None,
) -> Page[AuditEntry]:
    """Audit entries matching ``where``, newest first, one page at a time (issue 3
    ``auditLog``). Platform administrators read every entry; enterprise administrators those
    of their own enterprise (``scope_cid``). Raises ``PermissionDenied`` for other roles and
    ``InvalidInput`` for a bad page size or cursor.
    """
    if principal.role is Role.PLATFORM_ADMIN:
        scope = None
    elif principal.role is Role.ENTERPRISE_ADMIN:
        scope = principal.cid
    else:
        raise PermissionDenied("only administrators may read the audit log")
    limit = page_size(first)
    before_id = decode_cursor("audit", after)
    async with db.read() as session:
        rows, total = await store.find_entries(
            session,
            scope_cid=scope,
            action=where.action,
            target_type=where.target_type,
            target_id=where.target_id,
            actor_cid=where.actor_cid,
            actor_uid=where.actor_uid,
            before_id=before_id,
            limit=limit + 1,
        )
    page = rows[:limit]
    return Page(
        rows=page,
        cursors=[encode_cursor("audit", entry.id or 0) for entry in page],
        has_next_page=len(rows) > limit,
        total_count=total,
    )
