"""What an app is, for export and import alike: the columns that make one (``APP_FIELDS``,
``PLATFORM_SETTINGS``), ``AppState`` to compare the file's app with the database's, and
``load_apps`` to read every app of the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage import transfer as store
from storage.models import Platform

# Every column of ``app`` but ``id``, and of ``app_platform`` but its key: what an app is.
# tests/resolvers/test_catalogue_transfer.py checks these against the tables, so that a new
# column is exported (or deliberately left out) rather than silently lost in a move.
APP_FIELDS = (
    "app_key",
    "name",
    "identifier",
    "identifier_key",
    "kind",
    "icon",
    "category_id",
    "position",
    "user_removable",
    "enabled",
    "audience_mode",
    "owner_cid",
    "app_secret_hash",
    "created_at",
    "updated_at",
    # Signed legacy mode and its secrets (SPEC §8): optional in the file (``NEW_APP_FIELDS``).
    "legacy_signed",
    "ip_allowlist",
    "app_secret_sealed",
    "previous_secret_hash",
    "previous_secret_sealed",
    "previous_secret_expires_at",
)
# The columns added to version 1 after its first files were written: an app of the file may
# lack them, and then takes these defaults.
NEW_APP_FIELDS: dict[str, Any] = {
    "legacy_signed": False,
    "ip_allowlist": None,
    "app_secret_sealed": None,
    "previous_secret_hash": None,
    "previous_secret_sealed": None,
    "previous_secret_expires_at": None,
}
PLATFORM_SETTINGS = (
    "launch_mode",
    "web_url",
    "run_path",
    "download_url",
    "embedded_browser",
    "auto_login",
    "login_params",
)


@dataclass(frozen=True, slots=True)
class AppState:
    """An app without its id: ``row`` holds ``APP_FIELDS``, ``platforms`` each platform's
    ``PLATFORM_SETTINGS``, ``audience`` the listed enterprise ids ascending. Equal states mean
    an import has nothing to change."""

    row: dict[str, Any]
    platforms: dict[Platform, dict[str, Any]]
    audience: tuple[int, ...]


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC time."""
    # SQLite keeps no offset: the stored times are UTC (storage.models.utcnow).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def load_apps(session: AsyncSession) -> dict[int, AppState]:
    """Every app of the database by id (ascending), read whole-table (no id lists, which
    would meet the drivers' parameter limits on a large site)."""
    platforms: dict[int, dict[Platform, dict[str, Any]]] = {}
    for row in await store.platform_rows(session):
        settings = {name: row[name] for name in PLATFORM_SETTINGS}
        settings["embedded_browser"] = bool(settings["embedded_browser"])
        settings["auto_login"] = bool(settings["auto_login"])
        platforms.setdefault(row["app_id"], {})[Platform(row["platform"])] = settings
    audience: dict[int, list[int]] = {}
    for app_id, cid in await store.audience_pairs(session):
        audience.setdefault(app_id, []).append(cid)
    apps: dict[int, AppState] = {}
    for row in await store.app_rows(session):
        values = {name: row[name] for name in APP_FIELDS}
        values["user_removable"] = bool(values["user_removable"])
        values["enabled"] = bool(values["enabled"])
        values["legacy_signed"] = bool(values["legacy_signed"])
        values["created_at"] = as_utc(values["created_at"])
        values["updated_at"] = as_utc(values["updated_at"])
        expires = values["previous_secret_expires_at"]
        values["previous_secret_expires_at"] = None if expires is None else as_utc(expires)
        found = platforms.get(row["id"], {})
        apps[row["id"]] = AppState(
            row=values,
            platforms={p: found[p] for p in Platform if p in found},
            audience=tuple(audience.get(row["id"], ())),
        )
    return apps
