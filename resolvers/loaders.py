"""DataLoader batch functions: one short read transaction per batch of keys.

Each function takes the database and the keys one GraphQL operation asked for, and returns
one result per key, in key order (the contract of ``strawberry.dataloader.DataLoader``).
``schema.context.Loaders`` wires them into per-request loaders.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage import catalogue
from storage.db import Database
from storage.models import AppCategory, AppGroup, AppPlatform, Platform


async def platform_settings(
    db: Database, app_ids: Sequence[int]
) -> list[dict[Platform, AppPlatform]]:
    """Each app's platform rows, ``{platform: settings}``; an app on no platform gets ``{}``."""
    async with db.read() as session:
        found = await catalogue.platform_settings(session, app_ids)
    return [found[app_id] for app_id in app_ids]


async def audience_ids(db: Database, app_ids: Sequence[int]) -> list[list[int]]:
    """Each app's listed enterprise ids, ascending; ``[]`` when none are listed."""
    async with db.read() as session:
        found = await catalogue.audience_ids(session, app_ids)
    return [found[app_id] for app_id in app_ids]


async def categories_with_groups(
    db: Database, category_ids: Sequence[int]
) -> list[tuple[AppCategory, AppGroup] | None]:
    """Each category with its group; ``None`` for an id that does not exist."""
    async with db.read() as session:
        found = await catalogue.categories_with_groups(session, category_ids)
    return [found.get(category_id) for category_id in category_ids]
