"""Every check of an import, before anything is written: the file on its own (``parse``: its
shape, each app against SPEC §2, names, references, uniqueness, icons), then against the
database (``check_against_database``). Problems are collected, so that an import reports all of
them at once; only a file that is no catalogue at all (too large, not JSON, another format or
version) is refused at its first problem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resolvers.addresses import parse_allowlist
from resolvers.apps import (
    BUILTIN_ICONS,
    IDENTIFIER,
    PLATFORM_FIELDS,
    AppDraft,
    PlatformDraft,
    validate_draft,
)
from resolvers.errors import FieldError, InvalidInput
from resolvers.groups import clean_name
from resolvers.identity import parse_id
from resolvers.sealing import NONCE_BYTES, PREFIX
from resolvers.transfer.document import (
    FORMAT,
    MAX_DOCUMENT_BYTES,
    SECTIONS,
    SHA256_HEX,
    VERSION,
    AppDocument,
    GroupDocument,
)
from resolvers.transfer.icon_checks import check_icons
from resolvers.transfer.problems import unique, validated
from resolvers.transfer.state import PLATFORM_SETTINGS, AppState
from storage.icons import uploaded_icon_id
from storage.models import Platform

_APP_KEY = re.compile(r"[\x21-\x7e]{1,64}")  # printable ASCII, no spaces; the column's width
_PLATFORM_OF_FIELD = {name: platform for platform, name in PLATFORM_FIELDS.items()}
# A sealed secret (resolvers.sealing): the prefix, then URL-safe base64 of the nonce, the
# ciphertext and the 16-byte GCM tag.
_SEALED = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]+={0,2}")
_SEALED_MIN_BYTES = NONCE_BYTES + 16


@dataclass(slots=True)
class Category:
    """A category of the file, at ``path``; ``name`` cleaned when it was valid."""

    path: str
    id: int
    name: str
    position: int


@dataclass(slots=True)
class Group:
    """A group of the file, at ``path``, with its categories in the file's order."""

    path: str
    id: int
    name: str
    position: int
    categories: list[Category]


@dataclass(slots=True)
class App:
    """An app of the file; ``state`` is ``None`` when a rule of SPEC §2 failed (its other
    fields are still checked against the database)."""

    path: str
    doc: AppDocument
    state: AppState | None


@dataclass(slots=True)
class Parsed:
    """The file after every check that needs no database: ``digest`` its SHA-256 (hex),
    ``icons`` the valid icons as ``icon_image`` rows by id, ``errors`` the problems found."""

    digest: str
    groups: list[Group]
    apps: list[App]
    icons: dict[str, dict[str, Any]]
    named_icons: set[str]  # ids of every icon entry, valid or not
    errors: list[FieldError]


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


def _check_groups(items: list[Any], errors: list[FieldError]) -> list[Group]:
    groups: list[Group] = []
    group_ids: dict[int, str] = {}
    group_names: dict[str, str] = {}
    category_ids: dict[int, str] = {}
    for index, item in enumerate(items):
        path = f"groups[{index}]"
        doc = validated(GroupDocument, item, path, errors)
        if doc is None:
            continue
        name = _name(doc.name, f"{path}.name", errors)
        unique(group_ids, doc.id, f"{path}.id", "id", errors)
        if name is not None:
            unique(group_names, name.lower(), f"{path}.name", "name", errors)
        group = Group(path, doc.id, name or doc.name, doc.position, [])
        names: dict[str, str] = {}
        for number, category in enumerate(doc.categories):
            cpath = f"{path}.categories[{number}]"
            cname = _name(category.name, f"{cpath}.name", errors)
            unique(category_ids, category.id, f"{cpath}.id", "id", errors)
            if cname is not None:
                unique(names, cname.lower(), f"{cpath}.name", "name", errors)
            group.categories.append(
                Category(cpath, category.id, cname or category.name, category.position)
            )
        groups.append(group)
    return groups


def _is_sealed(value: str) -> bool:
    """Whether ``value`` has the form of a sealed secret (whether it opens is not known here:
    that needs the service key of the site that sealed it)."""
    if not _SEALED.fullmatch(value):
        return False
    try:
        raw = base64.b64decode(value[len(PREFIX) :], altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= _SEALED_MIN_BYTES


def _check_secrets(path: str, doc: AppDocument, errors: list[FieldError]) -> None:
    """The hashes and sealed forms of the app's secrets, current and previous."""
    for key, value, sealed in (
        ("appSecretHash", doc.app_secret_hash, False),
        ("appSecretSealed", doc.app_secret_sealed, True),
        ("previousSecretHash", doc.previous_secret_hash, False),
        ("previousSecretSealed", doc.previous_secret_sealed, True),
    ):
        if value is None:
            continue
        if sealed and not _is_sealed(value):
            errors.append(
                FieldError(
                    f"{path}.{key}",
                    f"must be null or a sealed secret: {PREFIX} then URL-safe base64",
                    "INVALID_SEALED_SECRET",
                )
            )
        if not sealed and not SHA256_HEX.fullmatch(value):
            errors.append(
                FieldError(
                    f"{path}.{key}",
                    "must be null or 64 lower-case hex digits (a SHA-256)",
                    "INVALID_SECRET_HASH",
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
) -> AppState | None:
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
    _check_secrets(path, doc, errors)
    allowlist: str | None = None
    try:
        allowlist = parse_allowlist(doc.ip_allowlist, f"{path}.ipAllowlist")
    except InvalidInput as error:
        errors.extend(error.errors)
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
        "legacy_signed": doc.legacy_signed,
        "ip_allowlist": allowlist,
        "app_secret_sealed": doc.app_secret_sealed,
        "previous_secret_hash": doc.previous_secret_hash,
        "previous_secret_sealed": doc.previous_secret_sealed,
        "previous_secret_expires_at": doc.previous_secret_expires_at,
    }
    return AppState(
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
) -> list[App]:
    apps: list[App] = []
    ids: dict[int, str] = {}
    keys: dict[str, str] = {}
    identifiers: dict[str, str] = {}
    for index, item in enumerate(items):
        path = f"apps[{index}]"
        doc = validated(AppDocument, item, path, errors)
        if doc is None:
            continue
        state = _check_app(path, doc, category_ids, errors)
        unique(ids, doc.id, f"{path}.id", "id", errors)
        unique(keys, doc.app_key, f"{path}.appKey", "app key", errors)
        key = _identifier_key(doc)
        if key is not None:
            unique(identifiers, key, f"{path}.identifier", "identifier", errors)
        apps.append(App(path, doc, state))
    return apps


def parse(data: bytes) -> Parsed:
    """Every check the file allows without the database; fatal problems (not JSON, not a
    catalogue, another version) raise ``InvalidInput`` at once, the rest are collected."""
    top = _decode(data)
    errors: list[FieldError] = [
        FieldError(key, "is not a field of this format", "INVALID_FIELD")
        for key in sorted(set(top) - {"format", "version", *SECTIONS})
    ]
    sections: dict[str, list[Any]] = {}
    for key in SECTIONS:
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
    icons = check_icons(sections["icons"], named, errors)
    if len(apps) == len(sections["apps"]):
        used = {uploaded_icon_id(a.doc.icon) for a in apps}
        errors.extend(
            FieldError(icon["path"], "is used by no app of the file", "UNUSED_ICON")
            for icon_id, icon in icons.items()
            if icon_id not in used
        )
    return Parsed(hashlib.sha256(data).hexdigest(), groups, apps, icons, named, errors)


def check_against_database(
    parsed: Parsed, apps_db: Mapping[int, AppState], icon_ids: set[str]
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
