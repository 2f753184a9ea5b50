"""The export document's format (shape and rules in the ``resolvers.transfer`` docstring): its
name and version, the size an import accepts, the pydantic models each entry of a section must
satisfy (strict JSON types, no unknown fields, camelCase names), and the bytes a document is
written as.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from storage.models import MAX_ROW_ID, AppKind, AudienceMode, LaunchMode, Platform

FORMAT = "workbench-catalogue"
VERSION = 1
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
SECTIONS = ("groups", "apps", "icons")  # the document's lists, in the order problems are reported
# A SHA-256 as the file writes it: icon ids and app-secret hashes.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _utc_time(value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    raise PydanticCustomError(
        "utc_time", "must be an ISO-8601 time with its UTC offset, e.g. 2026-01-02T03:04:05Z"
    )


UtcTime = Annotated[datetime, BeforeValidator(_utc_time)]
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
Position = Annotated[int, Field(ge=0, le=MAX_ROW_ID)]
# Enumerations arrive as their string values: lax for these fields only (a value still has to
# be one of the members).
Kind = Annotated[AppKind, Strict(False)]
Mode = Annotated[AudienceMode, Strict(False)]
Launch = Annotated[LaunchMode, Strict(False)]
PlatformName = Annotated[Platform, Strict(False)]


class _Document(BaseModel):
    """Strict: JSON types as written (no "1" for 1, no 1 for true), no unknown fields, names
    in camelCase."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)


class CategoryDocument(_Document):
    """A category of a group in the file."""

    id: RowId
    name: str
    position: Position


class GroupDocument(_Document):
    """A group in the file, with its categories in order."""

    id: RowId
    name: str
    position: Position
    categories: list[CategoryDocument]


class AudienceDocument(_Document):
    """An app's audience: ALL minus ``enterpriseIds``, or SELECTED ``enterpriseIds`` only."""

    mode: Mode
    enterprise_ids: list[str]


class PlatformDocument(_Document):
    """One platform's launch settings (SPEC §2); absent strings are ``null``."""

    launch_mode: Launch
    web_url: str | None = None
    run_path: str | None = None
    download_url: str | None = None
    embedded_browser: bool
    auto_login: bool
    login_params: str | None = None


class AppDocument(_Document):
    """An app in the file: every administrable field plus its credentials and times. The
    signed-legacy-mode fields (``legacySigned`` to ``previousSecretExpiresAt``) may be absent
    (files exported before they existed) and then default to false and null."""

    id: RowId
    app_key: str
    app_secret_hash: str | None
    name: str
    identifier: str
    kind: Kind
    icon: str
    category_id: RowId
    position: Position
    user_removable: bool
    enabled: bool
    owner_cid: str | None
    audience: AudienceDocument
    platforms: dict[PlatformName, PlatformDocument]
    created_at: UtcTime
    updated_at: UtcTime
    # Added to version 1 later: files written before lack them and import with these defaults.
    legacy_signed: bool = False
    ip_allowlist: str | None = None
    app_secret_sealed: str | None = None
    previous_secret_hash: str | None = None
    previous_secret_sealed: str | None = None
    previous_secret_expires_at: UtcTime | None = None


class IconDocument(_Document):
    """An uploaded icon: ``id`` the hex SHA-256 of ``original``; both images in base64."""

    id: str
    media_type: str
    width: int = Field(ge=1, le=MAX_ROW_ID)
    height: int = Field(ge=1, le=MAX_ROW_ID)
    original: str
    rendition48: str


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The file's bytes for ``document``: UTF-8 JSON, keys sorted, indent 2, final newline."""
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
