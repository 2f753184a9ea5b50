"""``export_catalogue``: the database's catalogue as the bytes of an export document (shape in
the ``resolvers.transfer`` docstring), from one consistent snapshot.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic.alias_generators import to_camel

from resolvers.transfer.document import FORMAT, VERSION, encode_document
from resolvers.transfer.state import PLATFORM_SETTINGS, AppState, as_utc, load_apps
from storage import catalogue
from storage import transfer as store
from storage.db import Database

_CAMEL = {name: to_camel(name) for name in PLATFORM_SETTINGS}


@dataclass(frozen=True, slots=True)
class Export:
    """An exported catalogue: the document's bytes and how many rows of each kind it holds."""

    data: bytes
    groups: int
    categories: int
    apps: int
    icons: int


def _time_text(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _app_json(app_id: int, state: AppState) -> dict[str, Any]:
    row = state.row
    owner = row["owner_cid"]
    expires = row["previous_secret_expires_at"]
    return {
        "id": app_id,
        "appKey": row["app_key"],
        "appSecretHash": row["app_secret_hash"],
        "name": row["name"],
        "identifier": row["identifier"],
        "kind": row["kind"],
        "icon": row["icon"],
        "categoryId": row["category_id"],
        "position": row["position"],
        "userRemovable": row["user_removable"],
        "enabled": row["enabled"],
        "ownerCid": None if owner is None else str(owner),
        "audience": {
            "mode": row["audience_mode"],
            "enterpriseIds": [str(cid) for cid in state.audience],
        },
        "platforms": {
            platform.value: {_CAMEL[k]: v for k, v in settings.items()}
            for platform, settings in state.platforms.items()
        },
        "createdAt": _time_text(row["created_at"]),
        "updatedAt": _time_text(row["updated_at"]),
        "legacySigned": row["legacy_signed"],
        "ipAllowlist": row["ip_allowlist"],
        "appSecretSealed": row["app_secret_sealed"],
        "previousSecretHash": row["previous_secret_hash"],
        "previousSecretSealed": row["previous_secret_sealed"],
        "previousSecretExpiresAt": None if expires is None else _time_text(expires),
    }


async def export_catalogue(*, db: Database) -> Export:
    """The whole catalogue as an export document (issue 3 item 9; shape in the
    ``resolvers.transfer`` docstring), read from one consistent snapshot.

    For operators (the CLI): the result holds every app key and secret hash, so no principal
    is asked for and the caller must keep the bytes secret.
    """
    async with db.read() as session:
        tree = await catalogue.list_groups(session)
        apps = await load_apps(session)
        icons = await store.icons_in_use(session)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "groups": [
            {
                "id": group.id,
                "name": group.name,
                "position": group.position,
                "categories": [
                    {"id": c.id, "name": c.name, "position": c.position} for c in categories
                ],
            }
            for group, categories in tree
        ],
        "apps": [_app_json(app_id, state) for app_id, state in apps.items()],
        "icons": [
            {
                "id": icon["id"],
                "mediaType": icon["media_type"],
                "width": icon["width"],
                "height": icon["height"],
                "original": base64.b64encode(icon["original"]).decode("ascii"),
                "rendition48": base64.b64encode(icon["rendition_48"]).decode("ascii"),
            }
            for icon in icons
        ],
    }
    return Export(
        data=encode_document(document),
        groups=len(tree),
        categories=sum(len(categories) for _, categories in tree),
        apps=len(apps),
        icons=len(icons),
    )
