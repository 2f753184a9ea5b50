"""Catalogue export and import (issue 3 item 9): operators moving a site copy its apps catalogue
to another database with ``workbench catalogue export`` and ``workbench catalogue import``.

The document is JSON, UTF-8 (``ensure_ascii=False``), keys sorted, indented by 2, ending with a
newline, and deterministic: one catalogue always gives the same bytes. Its shape::

    {"format": "workbench-catalogue", "version": 1,
     "groups": [{"id", "name", "position", "categories": [{"id", "name", "position"}]}],
     "apps":   [{"id", "appKey", "appSecretHash", "name", "identifier", "kind", "icon",
                 "categoryId", "position", "userRemovable", "enabled", "ownerCid",
                 "audience": {"mode", "enterpriseIds": ["1002"]},
                 "platforms": {"PC": {"launchMode", "webUrl", "runPath", "downloadUrl",
                                      "embeddedBrowser", "autoLogin", "loginParams"}},
                 "createdAt", "updatedAt"}],
     "icons":  [{"id", "mediaType", "width", "height", "original", "rendition48"}]}

Groups and their categories come in workbench order, apps and icons by id. Row ids are JSON
numbers; enterprise ids (``ownerCid``, ``enterpriseIds``) are decimal strings, being 64-bit
(SPEC §2). Times are UTC with microseconds (``2026-01-02T03:04:05.000006Z``). An app's ``icon``
is a built-in icon's name or ``sha256:<id>`` of an uploaded one; ``icons`` holds the uploads
that apps use (``original`` and the 48x48 PNG ``rendition48`` in base64). Users' badges and
removals, and the audit log, are not catalogue: they are not exported.

**The file is a secret.** It holds every app's app key and app-secret hash, so that vendors'
app ids, app keys and secrets keep working on the new site (the point of moving one). That is
credential-equivalent data: whoever can import the file somewhere, or read its keys, stands in
for the vendors. Keep it like a credential: the CLI writes it with mode 0600.

Import checks everything before it writes, and reports every problem at once with its path
(``apps[3].platforms.PC.webUrl: must be an absolute http(s) URL``): the document's shape
(strict types, no unknown fields), each app against SPEC §2 (``resolvers.apps.validate_draft``),
group and category names (``resolvers.groups.clean_name``), references (category ids, icons),
icons (SHA-256, and the upload rules of ``resolvers.icons.process_icon``), uniqueness in the
file (ids, app keys, identifiers compared case-insensitively, names), and against the database
(app keys and ids of other apps).
It then applies the whole file in one transaction, or nothing:

- a group matches the database's group with its id when the names agree (case-insensitively),
  else the group of that name; otherwise it is created with the file's id when free, else a new
  one. Categories likewise, within their group. Names and positions become the file's.
- an app matches the database's app with its identifier (case-insensitively) and takes every
  value of the file in place, keeping its database id (the report says so when the ids differ);
  otherwise it is created with the file's id, app key, secret hash and times. An id or app key
  that another app of the database holds is an error, never renumbered or taken over.
- an icon is content-addressed (its id is the SHA-256 of its original): created when absent,
  else its other columns become the file's.

Nothing is deleted: what the database holds and the file does not name stays as it is, so the
round trip is exact into an empty database. Importing the same file again changes nothing and
reports everything as unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers import audit
from resolvers.apps import (
    BUILTIN_ICONS,
    IDENTIFIER,
    PLATFORM_FIELDS,
    AppDraft,
    PlatformDraft,
    validate_draft,
)
from resolvers.errors import FieldError, InvalidInput, PermissionDenied
from resolvers.groups import clean_name
from resolvers.icons import RENDITION_SIZE, ProcessedIcon, process_icon
from resolvers.identity import Principal, Role, parse_id
from storage import catalogue
from storage.catalogue import app_t, audience_t, category_t, group_t, platform_t
from storage.db import Database
from storage.icons import ICON_REF_PREFIX, delete_if_unreferenced, uploaded_icon_id
from storage.models import (
    MAX_ROW_ID,
    AppCategory,
    AppGroup,
    AppKind,
    AudienceMode,
    IconImage,
    LaunchMode,
    Platform,
    utcnow,
)

FORMAT = "workbench-catalogue"
VERSION = 1
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

icon_t = IconImage.__table__  # type: ignore[attr-defined]

# Every column of ``app`` but ``id``, and of ``app_platform`` but its key: what an app is.
# tests/test_catalogue_transfer.py checks these against the tables, so that a new column is
# exported (or deliberately left out) rather than silently lost in a move.
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
)
PLATFORM_SETTINGS = (
    "launch_mode",
    "web_url",
    "run_path",
    "download_url",
    "embedded_browser",
    "auto_login",
    "login_params",
)

_CAMEL = {name: to_camel(name) for name in PLATFORM_SETTINGS}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_APP_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no spaces; the column's width
_SECTIONS = ("groups", "apps", "icons")
_PLATFORM_OF_FIELD = {name: platform for platform, name in PLATFORM_FIELDS.items()}
_LOCKED_TABLES = "app_group, app_category, app, app_platform, app_audience, icon_image"


# --- the document ------------------------------------------------------------------------------


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
    """An app in the file: every administrable field plus its credentials and times."""

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


class IconDocument(_Document):
    """An uploaded icon: ``id`` the hex SHA-256 of ``original``; both images in base64."""

    id: str
    media_type: str
    width: int = Field(ge=1, le=MAX_ROW_ID)
    height: int = Field(ge=1, le=MAX_ROW_ID)
    original: str
    rendition48: str


# --- what an app is, in the file and in the database ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _AppState:
    """An app without its id: ``row`` holds ``APP_FIELDS``, ``platforms`` each platform's
    ``PLATFORM_SETTINGS``, ``audience`` the listed enterprise ids ascending. Equal states mean
    an import has nothing to change."""

    row: dict[str, Any]
    platforms: dict[Platform, dict[str, Any]]
    audience: tuple[int, ...]


def _as_utc(value: datetime) -> datetime:
    # SQLite keeps no offset: the stored times are UTC (storage.models.utcnow).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time_text(value: datetime) -> str:
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _app_json(app_id: int, state: _AppState) -> dict[str, Any]:
    row = state.row
    owner = row["owner_cid"]
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
    }


async def _load_apps(session: AsyncSession) -> dict[int, _AppState]:
    """Every app of the database by id (ascending), read whole-table (no id lists, which
    would meet the drivers' parameter limits on a large site)."""
    platforms: dict[int, dict[Platform, dict[str, Any]]] = {}
    columns = [platform_t.c[name] for name in PLATFORM_SETTINGS]
    stmt = select(platform_t.c.app_id, platform_t.c.platform, *columns)
    for row in (await session.execute(stmt)).mappings():
        settings = {name: row[name] for name in PLATFORM_SETTINGS}
        settings["embedded_browser"] = bool(settings["embedded_browser"])
        settings["auto_login"] = bool(settings["auto_login"])
        platforms.setdefault(row["app_id"], {})[Platform(row["platform"])] = settings
    audience: dict[int, list[int]] = {}
    stmt = select(audience_t.c.app_id, audience_t.c.cid).order_by(
        audience_t.c.app_id, audience_t.c.cid
    )
    for app_id, cid in (await session.execute(stmt)).all():
        audience.setdefault(app_id, []).append(cid)
    apps: dict[int, _AppState] = {}
    stmt = select(app_t.c.id, *(app_t.c[name] for name in APP_FIELDS)).order_by(app_t.c.id)
    for row in (await session.execute(stmt)).mappings():
        values = {name: row[name] for name in APP_FIELDS}
        values["user_removable"] = bool(values["user_removable"])
        values["enabled"] = bool(values["enabled"])
        values["created_at"] = _as_utc(values["created_at"])
        values["updated_at"] = _as_utc(values["updated_at"])
        found = platforms.get(row["id"], {})
        apps[row["id"]] = _AppState(
            row=values,
            platforms={p: found[p] for p in Platform if p in found},
            audience=tuple(audience.get(row["id"], ())),
        )
    return apps


# --- export --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Export:
    """An exported catalogue: the document's bytes and how many rows of each kind it holds."""

    data: bytes
    groups: int
    categories: int
    apps: int
    icons: int


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The file's bytes for ``document``: UTF-8 JSON, keys sorted, indent 2, final newline."""
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


async def export_catalogue(*, db: Database) -> Export:
    """The whole catalogue as an export document (issue 3 item 9; shape in the module
    docstring), read from one consistent snapshot.

    For operators (the CLI): the result holds every app key and secret hash, so no principal
    is asked for and the caller must keep the bytes secret.
    """
    async with db.read() as session:
        tree = await catalogue.list_groups(session)
        apps = await _load_apps(session)
        used = select(func.substr(app_t.c.icon, len(ICON_REF_PREFIX) + 1)).where(
            app_t.c.icon.like(f"{ICON_REF_PREFIX}%")
        )
        icons = (
            (
                await session.execute(
                    select(icon_t).where(icon_t.c.id.in_(used)).order_by(icon_t.c.id)
                )
            )
            .mappings()
            .all()
        )
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


# --- parsing and the checks that need no database ----------------------------------------------


@dataclass(slots=True)
class _Category:
    path: str
    id: int
    name: str
    position: int


@dataclass(slots=True)
class _Group:
    path: str
    id: int
    name: str
    position: int
    categories: list[_Category]


@dataclass(slots=True)
class _App:
    """An app of the file; ``state`` is ``None`` when a rule of SPEC §2 failed (its other
    fields are still checked against the database)."""

    path: str
    doc: AppDocument
    state: _AppState | None


@dataclass(slots=True)
class _Parsed:
    digest: str
    groups: list[_Group]
    apps: list[_App]
    icons: dict[str, dict[str, Any]]
    named_icons: set[str]  # ids of every icon entry, valid or not
    errors: list[FieldError]


_Model = TypeVar("_Model", bound=_Document)


def _problem_path(prefix: str, loc: Iterable[int | str]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for "the dict key itself"
            path += f".{part}"
    return path


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this format"
    text = str(error["msg"])
    return text[:1].lower() + text[1:]


def _validate(
    model: type[_Model], value: object, path: str, errors: list[FieldError]
) -> _Model | None:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        errors.extend(
            FieldError(_problem_path(path, e["loc"]), _message(e), "INVALID_FIELD")
            for e in error.errors(include_url=False)
        )
        return None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _decode(data: bytes) -> dict[str, Any]:
    """The top-level object; raises ``InvalidInput`` when the bytes are no catalogue at all."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidInput.single(
            None,
            f"the file is {len(data):,} bytes; an import takes at most "
            f"{MAX_DOCUMENT_BYTES // 2**20} MiB",
            "TOO_LARGE",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput.single(
            None, f"not UTF-8 text (byte {error.start})", "INVALID_JSON"
        ) from error
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise InvalidInput.single(
            None,
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}",
            "INVALID_JSON",
        ) from error
    except (ValueError, RecursionError) as error:
        raise InvalidInput.single(None, f"invalid JSON: {error}", "INVALID_JSON") from error
    if not isinstance(value, dict):
        raise InvalidInput.single(
            None, "not a catalogue export: the file is not a JSON object", "WRONG_FORMAT"
        )
    found = value.get("format")
    if found != FORMAT:
        raise InvalidInput.single(
            "format",
            f"is {json.dumps(found, ensure_ascii=False)[:60]}, not {json.dumps(FORMAT)}: "
            "not a catalogue export",
            "WRONG_FORMAT",
        )
    version = value.get("version")
    if type(version) is not int or version != VERSION:
        raise InvalidInput.single(
            "version",
            f"is {json.dumps(version)[:20]}; this workbench reads version {VERSION} only",
            "UNSUPPORTED_VERSION",
        )
    return value


def _name(value: str, path: str, errors: list[FieldError]) -> str | None:
    try:
        return clean_name(value, path)
    except InvalidInput as error:
        errors.extend(error.errors)
        return None


def _check_groups(items: list[Any], errors: list[FieldError]) -> list[_Group]:
    groups: list[_Group] = []
    group_ids: dict[int, str] = {}
    group_names: dict[str, str] = {}
    category_ids: dict[int, str] = {}
    for index, item in enumerate(items):
        path = f"groups[{index}]"
        doc = _validate(GroupDocument, item, path, errors)
        if doc is None:
            continue
        name = _name(doc.name, f"{path}.name", errors)
        _unique(group_ids, doc.id, f"{path}.id", "id", errors)
        if name is not None:
            _unique(group_names, name.lower(), f"{path}.name", "name", errors)
        group = _Group(path, doc.id, name or doc.name, doc.position, [])
        names: dict[str, str] = {}
        for number, category in enumerate(doc.categories):
            cpath = f"{path}.categories[{number}]"
            cname = _name(category.name, f"{cpath}.name", errors)
            _unique(category_ids, category.id, f"{cpath}.id", "id", errors)
            if cname is not None:
                _unique(names, cname.lower(), f"{cpath}.name", "name", errors)
            group.categories.append(
                _Category(cpath, category.id, cname or category.name, category.position)
            )
        groups.append(group)
    return groups


def _unique(
    seen: dict[Any, str], key: object, path: str, what: str, errors: list[FieldError]
) -> None:
    first = seen.setdefault(key, path)
    if first != path:
        owner = first.rsplit(".", 1)[0]
        hint = " (compared case-insensitively)" if what in ("name", "identifier") else ""
        errors.append(
            FieldError(
                path,
                f"is also the {what} of {owner}{hint}",
                "DUPLICATE_" + what.upper().replace(" ", "_"),
            )
        )


def _base64(value: str, path: str, errors: list[FieldError]) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        errors.append(FieldError(path, "is not valid base64", "INVALID_BASE64"))
        return None


def _processed(data: bytes, path: str, errors: list[FieldError]) -> ProcessedIcon | None:
    """The image judged as an upload is (SPEC §2; ``resolvers.icons.process_icon``), or
    ``None`` with its problem in ``errors``."""
    try:
        return process_icon(data, path)
    except InvalidInput as error:
        errors.extend(error.errors)
        return None


def _check_icons(
    items: list[Any], named: set[str], errors: list[FieldError]
) -> dict[str, dict[str, Any]]:
    """The file's valid icons as ``icon_image`` rows by id (``path`` added for messages);
    ``named`` receives the id of every entry readable enough to have one. Both images are
    judged by the upload rules; the rendition is kept as it is (made again, it could differ
    with another Pillow, and the round trip would not be exact)."""
    icons: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        path = f"icons[{index}]"
        doc = _validate(IconDocument, item, path, errors)
        if doc is None:
            continue
        named.add(doc.id)
        before = len(errors)
        if not _SHA256_HEX.fullmatch(doc.id):
            errors.append(
                FieldError(
                    f"{path}.id",
                    "must be 64 lower-case hex digits: the SHA-256 of the original",
                    "INVALID_ICON_ID",
                )
            )
        _unique(seen, doc.id, f"{path}.id", "id", errors)
        original = _base64(doc.original, f"{path}.original", errors)
        rendition = _base64(doc.rendition48, f"{path}.rendition48", errors)
        if original is not None:
            _check_original(doc, original, path, errors)
        if rendition is not None:
            made = _processed(rendition, f"{path}.rendition48", errors)
            if made is not None and (made.media_type, made.width, made.height) != (
                "image/png",
                RENDITION_SIZE,
                RENDITION_SIZE,
            ):
                errors.append(
                    FieldError(
                        f"{path}.rendition48",
                        f"must be a {RENDITION_SIZE}x{RENDITION_SIZE} PNG image",
                        "INVALID_RENDITION",
                    )
                )
        if len(errors) == before and original is not None and rendition is not None:
            icons[doc.id] = {
                "path": path,
                "id": doc.id,
                "media_type": doc.media_type,
                "width": doc.width,
                "height": doc.height,
                "original": original,
                "rendition_48": rendition,
            }
    return icons


def _check_original(
    doc: IconDocument, original: bytes, path: str, errors: list[FieldError]
) -> None:
    digest = hashlib.sha256(original).hexdigest()
    if digest != doc.id:
        errors.append(
            FieldError(
                f"{path}.id",
                f"does not match the original, whose SHA-256 is {digest}",
                "ICON_HASH_MISMATCH",
            )
        )
    icon = _processed(original, f"{path}.original", errors)
    if icon is None:
        return
    if icon.media_type != doc.media_type:
        errors.append(
            FieldError(
                f"{path}.mediaType",
                f"is {doc.media_type}, but the original is {icon.media_type}",
                "INVALID_MEDIA_TYPE",
            )
        )
    if (doc.width, doc.height) != (icon.width, icon.height):
        errors.append(
            FieldError(
                f"{path}.width",
                f"width and height are {doc.width}x{doc.height}, the original is "
                f"{icon.width}x{icon.height}",
                "INVALID_ICON_SIZE",
            )
        )


def _draft_field(path: str, error: FieldError) -> FieldError:
    """A ``validate_draft`` error re-pathed to the file: ``input.pc.webUrl`` becomes
    ``apps[3].platforms.PC.webUrl``."""
    if error.code == "NO_PLATFORM":
        return FieldError(
            f"{path}.platforms", "must hold at least one of PC, ANDROID, IOS", error.code
        )
    parts = (error.field or "").split(".")
    if parts[0] == "input":
        parts = parts[1:]
    if parts and parts[0] in _PLATFORM_OF_FIELD:
        parts[0:1] = ["platforms", _PLATFORM_OF_FIELD[parts[0]].value]
    return FieldError(".".join([path, *parts]) if parts else path, error.message, error.code)


def _check_app(
    path: str, doc: AppDocument, category_ids: set[int] | None, errors: list[FieldError]
) -> _AppState | None:
    """The app's state as the file wants it, or ``None`` (and ``errors``) when a rule fails.
    ``category_ids``: the file's categories, ``None`` when a group was unreadable."""
    before = len(errors)
    builtin = doc.icon in BUILTIN_ICONS
    draft = AppDraft(
        name=doc.name,
        identifier=doc.identifier,
        kind=doc.kind,
        user_removable=doc.user_removable,
        audience_mode=doc.audience.mode,
        audience_ids=list(doc.audience.enterprise_ids),
        platforms={
            platform: PlatformDraft(
                launch_mode=settings.launch_mode,
                web_url=settings.web_url,
                run_path=settings.run_path,
                download_url=settings.download_url,
                embedded_browser=settings.embedded_browser,
                auto_login=settings.auto_login,
                login_params=settings.login_params,
            )
            for platform, settings in doc.platforms.items()
        },
        icon=doc.icon if builtin else None,  # uploads are checked below
    )
    app, platforms, audience, _, draft_errors = validate_draft(draft)
    errors.extend(_draft_field(path, error) for error in draft_errors)
    if not builtin and uploaded_icon_id(doc.icon) is None:
        errors.append(
            FieldError(
                f"{path}.icon",
                f"must be a built-in icon ({', '.join(BUILTIN_ICONS)}) or sha256:<64 hex digits>",
                "UNKNOWN_ICON",
            )
        )
    if category_ids is not None and doc.category_id not in category_ids:
        errors.append(
            FieldError(
                f"{path}.categoryId",
                f"category {doc.category_id} is not in the file's groups",
                "UNKNOWN_CATEGORY",
            )
        )
    if not _APP_KEY.fullmatch(doc.app_key):
        errors.append(
            FieldError(
                f"{path}.appKey",
                "must be 1 to 64 printable ASCII characters without spaces",
                "INVALID_APP_KEY",
            )
        )
    if doc.app_secret_hash is not None and not _SHA256_HEX.fullmatch(doc.app_secret_hash):
        errors.append(
            FieldError(
                f"{path}.appSecretHash",
                "must be null or 64 lower-case hex digits (a SHA-256)",
                "INVALID_SECRET_HASH",
            )
        )
    owner: int | None = None
    if doc.owner_cid is not None:
        try:
            owner = parse_id(doc.owner_cid, f"{path}.ownerCid")
        except InvalidInput as error:
            errors.extend(error.errors)
    if len(errors) > before:
        return None
    values = {
        "app_key": doc.app_key,
        "name": app.name,
        "identifier": app.identifier,
        "identifier_key": app.identifier_key,
        "kind": app.kind,
        "icon": doc.icon,
        "category_id": doc.category_id,
        "position": doc.position,
        "user_removable": doc.user_removable,
        "enabled": doc.enabled,
        "audience_mode": app.audience_mode,
        "owner_cid": owner,
        "app_secret_hash": doc.app_secret_hash,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }
    return _AppState(
        row=values,
        platforms={
            p: {name: getattr(platforms[p], name) for name in PLATFORM_SETTINGS}
            for p in Platform
            if p in platforms
        },
        audience=tuple(audience),
    )


def _identifier_key(doc: AppDocument) -> str | None:
    identifier = doc.identifier.strip()
    return identifier.lower() if IDENTIFIER.fullmatch(identifier) else None


def _check_apps(
    items: list[Any], category_ids: set[int] | None, errors: list[FieldError]
) -> list[_App]:
    apps: list[_App] = []
    ids: dict[int, str] = {}
    keys: dict[str, str] = {}
    identifiers: dict[str, str] = {}
    for index, item in enumerate(items):
        path = f"apps[{index}]"
        doc = _validate(AppDocument, item, path, errors)
        if doc is None:
            continue
        state = _check_app(path, doc, category_ids, errors)
        _unique(ids, doc.id, f"{path}.id", "id", errors)
        _unique(keys, doc.app_key, f"{path}.appKey", "app key", errors)
        key = _identifier_key(doc)
        if key is not None:
            _unique(identifiers, key, f"{path}.identifier", "identifier", errors)
        apps.append(_App(path, doc, state))
    return apps


def _parse(data: bytes) -> _Parsed:
    """Every check the file allows without the database; fatal problems (not JSON, not a
    catalogue, another version) raise ``InvalidInput`` at once, the rest are collected."""
    top = _decode(data)
    errors: list[FieldError] = [
        FieldError(key, "is not a field of this format", "INVALID_FIELD")
        for key in sorted(set(top) - {"format", "version", *_SECTIONS})
    ]
    sections: dict[str, list[Any]] = {}
    for key in _SECTIONS:
        value = top.get(key)
        if not isinstance(value, list):
            errors.append(
                FieldError(key, "is required" if value is None else "must be a list", "INVALID")
            )
            value = []
        sections[key] = value
    groups = _check_groups(sections["groups"], errors)
    # References into an unreadable part of the file are not reported: they would only echo
    # the problem already reported there.
    category_ids = (
        {c.id for g in groups for c in g.categories}
        if len(groups) == len(sections["groups"])
        else None
    )
    apps = _check_apps(sections["apps"], category_ids, errors)
    named: set[str] = set()
    icons = _check_icons(sections["icons"], named, errors)
    if len(apps) == len(sections["apps"]):
        used = {uploaded_icon_id(a.doc.icon) for a in apps}
        errors.extend(
            FieldError(icon["path"], "is used by no app of the file", "UNUSED_ICON")
            for icon_id, icon in icons.items()
            if icon_id not in used
        )
    return _Parsed(hashlib.sha256(data).hexdigest(), groups, apps, icons, named, errors)


def _problem_order(error: FieldError) -> tuple[int, int]:
    found = re.match(r"(groups|apps|icons)\[(\d+)\]", error.field or "")
    if found is None:
        return (-1, 0)
    return (_SECTIONS.index(found[1]), int(found[2]))


# --- import --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Counts:
    """Rows of one kind an import created, updated (to the file's values) or found unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        """``{"created": n, "updated": n, "unchanged": n}``."""
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, with ``dry_run``, would do): counts per kind, and ``notes`` on
    ids that differ from the file's. ``digest`` is the file's SHA-256 (hex)."""

    digest: str
    dry_run: bool
    groups: Counts = field(default_factory=Counts)
    categories: Counts = field(default_factory=Counts)
    apps: Counts = field(default_factory=Counts)
    icons: Counts = field(default_factory=Counts)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The report as the audit entry's ``after`` (JSON-serialisable)."""
        return {
            "sha256": self.digest,
            "groups": self.groups.as_dict(),
            "categories": self.categories.as_dict(),
            "apps": self.apps.as_dict(),
            "icons": self.icons.as_dict(),
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        """The report for a terminal: one line per kind, then the notes."""
        counts = (
            ("groups", self.groups),
            ("categories", self.categories),
            ("apps", self.apps),
            ("icons", self.icons),
        )
        return [
            f"{kind:<11} created {c.created:>5}  updated {c.updated:>5}  unchanged {c.unchanged:>5}"
            for kind, c in counts
        ] + self.notes


class _DryRun(Exception):
    """Rolls a dry run's transaction back, carrying its report out."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


async def import_catalogue(
    *, db: Database, principal: Principal, data: bytes, dry_run: bool = False
) -> ImportReport:
    """Import an export document (issue 3 item 9; rules in the module docstring) in one
    transaction, and record one audit entry (``catalogue.import``) with the report.

    ``dry_run`` runs every check and every write, then rolls back: the report says what an
    import would do. Raises ``PermissionDenied`` unless ``principal`` is a platform
    administrator, and ``InvalidInput`` with every problem found (paths like
    ``apps[3].platforms.PC.webUrl``) when anything is wrong, changing nothing.
    """
    if principal.role is not Role.PLATFORM_ADMIN:
        raise PermissionDenied("only platform administrators import a catalogue")
    parsed = await asyncio.to_thread(_parse, data)  # CPU-bound: icons are decoded
    report = ImportReport(digest=parsed.digest, dry_run=dry_run)
    try:
        async with db.write() as session:
            if not db.is_sqlite:
                # Validation and writes see one state: no administrator's change slips between.
                await session.execute(
                    text(f"LOCK TABLE {_LOCKED_TABLES} IN SHARE ROW EXCLUSIVE MODE")
                )
            await _apply(session, parsed, report)
            if dry_run:
                raise _DryRun(report)
            audit.record(
                session,
                actor=principal,
                action=audit.CATALOGUE_IMPORT,
                target_type=audit.TARGET_CATALOGUE,
                target_id=None,
                scope_cid=None,
                after=report.summary(),
            )
            if not db.is_sqlite:
                await _advance_sequences(session)
    except _DryRun as done:
        return done.report
    return report


@dataclass(slots=True)
class _Existing:
    """A group or category of the database; ``parent`` is a category's group."""

    id: int
    name: str
    position: int
    parent: int = 0


def _match(
    wanted: Sequence[_Group] | Sequence[_Category],
    existing: Mapping[int, _Existing],
) -> dict[int, int]:
    """File id -> database id of the rows that match: same id and name (case-insensitive),
    else the lowest unmatched id of that name."""
    matched: dict[int, int] = {}
    for item in wanted:
        row = existing.get(item.id)
        if row is not None and row.name.lower() == item.name.lower():
            matched[item.id] = row.id
    taken = set(matched.values())
    by_name: dict[str, list[int]] = {}
    for row in sorted(existing.values(), key=lambda r: r.id):
        by_name.setdefault(row.name.lower(), []).append(row.id)
    for item in wanted:
        if item.id in matched:
            continue
        free = [i for i in by_name.get(item.name.lower(), []) if i not in taken]
        if free:
            matched[item.id] = free[0]
            taken.add(free[0])
    return matched


def _new_ids(
    wanted: Sequence[_Group] | Sequence[_Category],
    matched: Mapping[int, int],
    used: set[int],
    kind: str,
    notes: list[str],
) -> dict[int, int]:
    """Ids for the rows to create: the file's when no row has it, else past every id in use
    (``used`` is updated)."""
    created: dict[int, int] = {}
    later = []
    for item in wanted:
        if item.id in matched:
            continue
        if item.id in used:
            later.append(item)
        else:
            created[item.id] = item.id
            used.add(item.id)
    for item in later:
        new_id = max(used, default=0) + 1
        created[item.id] = new_id
        used.add(new_id)
        notes.append(
            f"{item.path} {item.name}: created as {kind} {new_id} "
            f"(id {item.id} belongs to another {kind})"
        )
    return created


async def _apply(session: AsyncSession, parsed: _Parsed, report: ImportReport) -> None:
    """Check the file against the database, then write it. Raises ``InvalidInput`` with every
    problem (the file's own and those against the database) before writing anything."""
    tree = await catalogue.list_groups(session)
    apps_db = await _load_apps(session)
    icon_ids = set((await session.execute(select(icon_t.c.id))).scalars().all())
    errors = list(parsed.errors)
    errors.extend(_check_against_database(parsed, apps_db, icon_ids))
    if errors:
        errors.sort(key=_problem_order)
        raise InvalidInput(errors)
    category_ids = await _apply_groups(session, parsed.groups, tree, report)
    await _apply_icons(session, parsed.icons, icon_ids, report)
    await _apply_apps(session, parsed.apps, apps_db, category_ids, report)


async def _apply_groups(
    session: AsyncSession,
    groups: Sequence[_Group],
    tree: Sequence[tuple[AppGroup, Sequence[AppCategory]]],
    report: ImportReport,
) -> dict[int, int]:
    """Match, update or create the file's groups and categories; returns the database id of
    each file category id."""
    groups_db = {g.id: _Existing(g.id, g.name, g.position) for g, _ in tree if g.id is not None}
    categories_db = {
        c.id: _Existing(c.id, c.name, c.position, c.group_id)
        for _, categories in tree
        for c in categories
        if c.id is not None
    }
    group_match = _match(groups, groups_db)
    group_new = _new_ids(groups, group_match, set(groups_db), "group", report.notes)
    category_ids: dict[int, int] = {}
    category_used = set(categories_db)
    for group in groups:
        if group.id in group_match:
            group_id = group_match[group.id]
            await _update_named(session, group_t, groups_db[group_id], group, report.groups)
        else:
            group_id = group_new[group.id]
            report.groups.created += 1
            await session.execute(
                insert(group_t).values(
                    id=group_id, name=group.name, position=group.position, created_at=utcnow()
                )
            )
        siblings = {k: v for k, v in categories_db.items() if v.parent == group_id}
        matched = _match(group.categories, siblings)
        created = _new_ids(group.categories, matched, category_used, "category", report.notes)
        for category in group.categories:
            if category.id in matched:
                row = categories_db[matched[category.id]]
                await _update_named(session, category_t, row, category, report.categories)
                category_ids[category.id] = row.id
                continue
            category_ids[category.id] = created[category.id]
            report.categories.created += 1
            await session.execute(
                insert(category_t).values(
                    id=created[category.id],
                    group_id=group_id,
                    name=category.name,
                    position=category.position,
                    created_at=utcnow(),
                )
            )
    return category_ids


async def _apply_apps(
    session: AsyncSession,
    apps: Sequence[_App],
    apps_db: Mapping[int, _AppState],
    category_ids: Mapping[int, int],
    report: ImportReport,
) -> None:
    """Update the apps the database has (by identifier) and create the others; new rows are
    inserted in batches (executemany) at the end. Uploaded icons that updated apps no longer
    use are deleted when no other app uses them."""
    by_identifier = {state.row["identifier_key"]: i for i, state in apps_db.items()}
    new_apps: list[dict[str, Any]] = []
    new_platforms: list[dict[str, Any]] = []
    new_audience: list[dict[str, Any]] = []
    replaced: set[str] = set()
    for entry in apps:
        assert entry.state is not None  # every problem was raised before writing
        wanted = replace(
            entry.state,
            row={**entry.state.row, "category_id": category_ids[entry.doc.category_id]},
        )
        found = by_identifier.get(wanted.row["identifier_key"])
        current = None if found is None else apps_db[found]
        if found is None:
            app_id = entry.doc.id
            report.apps.created += 1
            new_apps.append({"id": app_id, **wanted.row})
        else:
            app_id = found
            if app_id != entry.doc.id:
                report.notes.append(
                    f"{entry.path} {wanted.row['identifier']}: kept database id {app_id} "
                    f"(the file says {entry.doc.id})"
                )
            if current == wanted:
                report.apps.unchanged += 1
                continue
            report.apps.updated += 1
            await session.execute(update(app_t).where(app_t.c.id == app_id).values(**wanted.row))
            if current is not None and current.row["icon"] != wanted.row["icon"]:
                replaced.add(current.row["icon"])
        if current is None or current.platforms != wanted.platforms:
            if current is not None:
                await session.execute(delete(platform_t).where(platform_t.c.app_id == app_id))
            new_platforms.extend(
                {"app_id": app_id, "platform": p.value, **settings}
                for p, settings in wanted.platforms.items()
            )
        if current is None or current.audience != wanted.audience:
            if current is not None:
                await session.execute(delete(audience_t).where(audience_t.c.app_id == app_id))
            new_audience.extend({"app_id": app_id, "cid": cid} for cid in wanted.audience)
    for table, rows in ((app_t, new_apps), (platform_t, new_platforms), (audience_t, new_audience)):
        if rows:
            await session.execute(insert(table), rows)
    for ref in sorted(replaced):
        # An uploaded icon lives as long as an app refers to it (storage.icons).
        if await delete_if_unreferenced(session, ref):
            report.notes.append(f"icon {ref}: deleted, no app uses it any more")


def _check_against_database(
    parsed: _Parsed, apps_db: Mapping[int, _AppState], icon_ids: set[str]
) -> list[FieldError]:
    """App keys and ids held by other apps of the database, and icons found nowhere."""
    errors: list[FieldError] = []
    by_identifier = {state.row["identifier_key"]: i for i, state in apps_db.items()}
    by_key = {state.row["app_key"]: i for i, state in apps_db.items()}
    for entry in parsed.apps:
        doc = entry.doc
        key = _identifier_key(doc)
        target = None if key is None else by_identifier.get(key)
        holder = by_key.get(doc.app_key)
        if holder is not None and holder != target:
            errors.append(
                FieldError(
                    f"{entry.path}.appKey",
                    f"is the app key of app {holder} ({apps_db[holder].row['identifier']}) "
                    "in the database",
                    "APP_KEY_TAKEN",
                )
            )
        if key is not None and target is None and doc.id in apps_db:
            errors.append(
                FieldError(
                    f"{entry.path}.id",
                    f"app id {doc.id} belongs to app {apps_db[doc.id].row['identifier']} "
                    "in the database",
                    "ID_TAKEN",
                )
            )
        uploaded = uploaded_icon_id(doc.icon)
        if uploaded is not None and uploaded not in parsed.named_icons and uploaded not in icon_ids:
            errors.append(
                FieldError(
                    f"{entry.path}.icon",
                    "names an icon that is neither in the file's icons nor in the database",
                    "UNKNOWN_ICON",
                )
            )
    return errors


async def _update_named(
    session: AsyncSession,
    table: Any,
    row: _Existing,
    wanted: _Group | _Category,
    counts: Counts,
) -> None:
    """Give a matched group or category the file's name and position, and count it."""
    if (row.name, row.position) == (wanted.name, wanted.position):
        counts.unchanged += 1
        return
    counts.updated += 1
    await session.execute(
        update(table).where(table.c.id == row.id).values(name=wanted.name, position=wanted.position)
    )


async def _apply_icons(
    session: AsyncSession,
    icons: Mapping[str, Mapping[str, Any]],
    existing: set[str],
    report: ImportReport,
) -> None:
    """Create the file's icons the database lacks. One that exists has the same original (the
    id is its hash); its other columns become the file's."""
    columns = ("media_type", "width", "height", "rendition_48")
    rows = []
    for icon_id, icon in icons.items():
        values = {name: icon[name] for name in columns}
        if icon_id not in existing:
            report.icons.created += 1
            rows.append(
                {"id": icon_id, "original": icon["original"], "created_at": utcnow(), **values}
            )
            continue
        stmt = select(*(icon_t.c[name] for name in columns)).where(icon_t.c.id == icon_id)
        current = (await session.execute(stmt)).mappings().one()
        if dict(current) == values:
            report.icons.unchanged += 1
        else:
            report.icons.updated += 1
            await session.execute(update(icon_t).where(icon_t.c.id == icon_id).values(**values))
    if rows:
        await session.execute(insert(icon_t), rows)


async def _advance_sequences(session: AsyncSession) -> None:
    """PostgreSQL: rows inserted with explicit ids leave their SERIAL sequence behind; move each
    past the highest id, never back (app ids are never reused, storage.models)."""
    for table in ("app_group", "app_category", "app"):
        sequence = (
            await session.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table})
        ).scalar_one()
        top = (
            await session.execute(
                text(
                    f"SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), "
                    "COALESCE(pg_sequence_last_value(CAST(:s AS regclass)), 0))"
                ),
                {"s": sequence},
            )
        ).scalar_one()
        if top > 0:
            await session.execute(
                text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": sequence, "v": top}
            )
