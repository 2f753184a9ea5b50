"""The app catalogue: creating, changing, disabling and deleting apps, with every rule of
SPEC §2 checked at once (issue 3 items 1-2).

Validation returns all field errors of one input together (``InvalidInput.errors``), with field
paths as the GraphQL input spells them (``input.name``, ``input.android.webUrl``), so a form can
show them all. Nothing is written unless the whole input is valid.

Every change is written with its audit entry (``resolvers.audit``) in one transaction; once it
has committed, the app's id is announced to live clients (``resolvers.catalogue_events``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers import audit
from resolvers.addresses import parse_allowlist
from resolvers.broker import Broker
from resolvers.catalogue_events import publish_change
from resolvers.errors import AppNotFound, FieldError, InvalidInput, PermissionDenied
from resolvers.icons import AsyncReader, ProcessedIcon, process_icon, read_upload
from resolvers.identity import Principal, Role, parse_id
from resolvers.pagination import Page, decode_cursor, encode_cursor, page_size
from resolvers.sealing import SecretSealer
from resolvers.text import has_control, has_letter_or_digit, name_units
from storage import catalogue
from storage import icons as icon_store
from storage.db import Database
from storage.models import (
    DEFAULT_CATEGORY_ID,
    App,
    AppKind,
    AppPlatform,
    AudienceMode,
    LaunchMode,
    Platform,
    utcnow,
)

BUILTIN_ICONS = ("app", "chat", "calendar", "mail", "document", "chart")
DEFAULT_ICON = "app"
NAME_MIN_UNITS = 4
NAME_MAX_UNITS = 20
MAX_URL_LENGTH = 2048
MAX_AUDIENCE = 10_000
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,19}")
# A login template: optional leading & or ?, then name=value pairs joined by &. Values may be
# empty (the legacy positional form) or hold placeholders such as {account} (SPEC §5).
LOGIN_PARAMS = re.compile(r"[&?]?[A-Za-z0-9_.\-]+=[^&=#\s]*(&[A-Za-z0-9_.\-]+=[^&=#\s]*)*")
# The placeholders a login template may hold (SPEC §5); any other brace is a typo.
BRACES = re.compile(r"\{(?:account|cid|uid|ticket)\}")
# Two apps' identifiers may not differ only in case (SPEC §2); the unique index decides races.
IDENTIFIER_TAKEN = FieldError(
    "input.identifier", "is already used by another app (case-insensitive)", "IDENTIFIER_TAKEN"
)
PLATFORM_FIELDS = {Platform.PC: "pc", Platform.ANDROID: "android", Platform.IOS: "ios"}


@dataclass(slots=True)
class PlatformDraft:
    """One platform's settings as submitted (SPEC §7 ``PlatformSettingsInput``)."""

    launch_mode: LaunchMode
    web_url: str | None = None
    run_path: str | None = None
    download_url: str | None = None
    embedded_browser: bool = True
    auto_login: bool = False
    login_params: str | None = None


@dataclass(slots=True)
class AppDraft:
    """A new app as submitted (SPEC §7 ``AppInput``); ids still unparsed strings."""

    name: str
    identifier: str
    kind: AppKind = AppKind.CUSTOM
    category_id: str | None = None
    user_removable: bool = True
    audience_mode: AudienceMode = AudienceMode.ALL
    audience_ids: list[str] = field(default_factory=list)
    platforms: dict[Platform, PlatformDraft] = field(default_factory=dict)
    icon: str | None = None
    legacy_signed: bool = False
    ip_allowlist: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedApp:
    """An app just written, with its platform settings, audience ids and the vendor's
    ``app_secret`` in clear: shown once, only its SHA-256 is stored (SPEC §8)."""

    app: App
    platforms: dict[Platform, AppPlatform]
    audience: list[int]
    app_secret: str


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of an app secret; a 256-bit random secret needs no slow hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_http_url(value: str | None, path: str, errors: list[FieldError]) -> str | None:
    text = (value or "").strip()
    if not text:
        errors.append(FieldError(path, "is required", "REQUIRED"))
        return None
    if (
        len(text) > MAX_URL_LENGTH
        or has_control(text)
        or any(c.isspace() or c == "\\" for c in text)
    ):
        errors.append(
            FieldError(
                path,
                "must be a URL without spaces or backslashes, at most 2048 characters",
                "INVALID_URL",
            )
        )
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError:
        errors.append(FieldError(path, "is not a well-formed URL", "INVALID_URL"))
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        errors.append(FieldError(path, "must be an absolute http(s) URL", "INVALID_URL"))
        return None
    return text


def _check_platform(
    platform: Platform, draft: PlatformDraft, errors: list[FieldError]
) -> AppPlatform:
    path = f"input.{PLATFORM_FIELDS[platform]}"
    # app_id is set by create_app once the app row has its id.
    row = AppPlatform(  # type: ignore[call-arg]
        platform=platform.value,
        launch_mode=draft.launch_mode.value,
        # As given, also on PC and for NATIVE, where launches ignore it (SPEC §2: the in-app
        # browser is for ANDROID/IOS WEB apps): the input's default is true (SPEC §7), so a
        # refusal would refuse every input that leaves it out, and rewriting it to false made
        # the stored settings differ from what the administrator sent (issue 11 item 11).
        embedded_browser=draft.embedded_browser,
        auto_login=draft.auto_login,
    )
    if draft.launch_mode is LaunchMode.WEB:
        row.web_url = _check_http_url(draft.web_url, f"{path}.webUrl", errors)
    else:
        run_path = (draft.run_path or "").strip()
        if not run_path:
            errors.append(FieldError(f"{path}.runPath", "is required for NATIVE", "REQUIRED"))
        elif len(run_path) > MAX_URL_LENGTH or has_control(run_path):
            errors.append(
                FieldError(
                    f"{path}.runPath",
                    "must be at most 2048 characters, no control characters",
                    "INVALID_RUN_PATH",
                )
            )
        else:
            row.run_path = run_path
        row.download_url = _check_http_url(draft.download_url, f"{path}.downloadUrl", errors)
    params = (draft.login_params or "").strip()
    if draft.auto_login and platform is Platform.PC:
        errors.append(
            FieldError(
                f"{path}.autoLogin",
                "auto-login is for ANDROID and IOS only",
                "UNSUPPORTED",
            )
        )
    elif draft.auto_login and not params:
        errors.append(FieldError(f"{path}.loginParams", "is required with autoLogin", "REQUIRED"))
    elif params and not draft.auto_login:
        errors.append(
            FieldError(f"{path}.loginParams", "is allowed only with autoLogin", "NOT_ALLOWED")
        )
    elif params:
        if (
            len(params) > 512
            or has_control(params)
            or not LOGIN_PARAMS.fullmatch(params)
            or "{" in BRACES.sub("", params)
            or "}" in BRACES.sub("", params)
        ):
            errors.append(
                FieldError(
                    f"{path}.loginParams",
                    "must look like &account=&password= or &u={account}&t={ticket} "
                    "(placeholders: {account}, {cid}, {uid}, {ticket})",
                    "INVALID_LOGIN_PARAMS",
                )
            )
        else:
            row.login_params = params
    return row


def _check_audience(draft: AppDraft, errors: list[FieldError]) -> list[int]:
    ids: list[int] = []
    if len(draft.audience_ids) > MAX_AUDIENCE:
        errors.append(
            FieldError(
                "input.audience.enterpriseIds",
                f"at most {MAX_AUDIENCE} ids",
                "TOO_MANY",
            )
        )
        return ids
    first_index: dict[int, int] = {}
    repeated: dict[int, int] = {}  # id -> index of its first repetition
    for index, raw in enumerate(draft.audience_ids):
        path = f"input.audience.enterpriseIds[{index}]"
        try:
            cid = parse_id(raw.strip(), path)
        except InvalidInput as error:
            errors.extend(error.errors)
            continue
        ids.append(cid)
        if first_index.setdefault(cid, index) != index:
            repeated.setdefault(cid, index)
    # A repeated id is refused, not stored once (issue 11 M5: no silent coercion); "1001" and
    # "01001" are one id.
    errors.extend(
        FieldError(
            "input.audience.enterpriseIds",
            f"lists enterprise {cid} more than once (entries {first_index[cid]} and {again})",
            "DUPLICATE_ID",
        )
        for cid, again in repeated.items()
    )
    if draft.audience_mode is AudienceMode.SELECTED and not draft.audience_ids:
        errors.append(
            FieldError(
                "input.audience.enterpriseIds",
                "select at least one enterprise",
                "REQUIRED",
            )
        )
    return sorted(set(ids))


def validate_draft(
    draft: AppDraft,
) -> tuple[App, dict[Platform, AppPlatform], list[int], int | None, list[FieldError]]:
    """Check every stateless rule of SPEC §2; returns the rows to write and all errors found."""
    errors: list[FieldError] = []
    name = draft.name.strip()
    if has_control(name):
        errors.append(
            FieldError("input.name", "must not contain control characters", "INVALID_NAME")
        )
    elif not NAME_MIN_UNITS <= name_units(name) <= NAME_MAX_UNITS:
        errors.append(
            FieldError(
                "input.name",
                "must be 4 to 20 units wide (ASCII 1, other characters 2): "
                "2 to 10 Chinese characters",
                "NAME_LENGTH",
            )
        )
    elif not has_letter_or_digit(name):
        errors.append(FieldError("input.name", "must contain a letter or digit", "INVALID_NAME"))
    identifier = draft.identifier.strip()
    if not IDENTIFIER.fullmatch(identifier):
        errors.append(
            FieldError(
                "input.identifier",
                "must be 4 to 20 letters, digits or _, starting with a letter",
                "INVALID_IDENTIFIER",
            )
        )
    icon = (draft.icon or DEFAULT_ICON).strip()
    if icon not in BUILTIN_ICONS and icon_store.uploaded_icon_id(icon) is None:
        errors.append(
            FieldError(
                "input.icon",
                f"must be one of {', '.join(BUILTIN_ICONS)}, or an uploaded icon's id (sha256:...)",
                "UNKNOWN_ICON",
            )
        )
    category_id: int | None = None
    if draft.category_id is not None:
        try:
            category_id = parse_id(draft.category_id.strip(), "input.categoryId")
        except InvalidInput as error:
            errors.extend(error.errors)
    if not draft.platforms:
        errors.append(
            FieldError(None, "choose at least one platform: pc, android or ios", "NO_PLATFORM")
        )
    platforms = {p: _check_platform(p, d, errors) for p, d in draft.platforms.items()}
    audience = _check_audience(draft, errors)
    allowlist = None
    try:
        allowlist = parse_allowlist(draft.ip_allowlist)
    except InvalidInput as error:
        errors.extend(error.errors)
    app = App(
        app_key="",
        name=name,
        identifier=identifier,
        identifier_key=identifier.lower(),
        kind=draft.kind.value,
        icon=icon,
        category_id=category_id or DEFAULT_CATEGORY_ID,
        user_removable=draft.user_removable,
        audience_mode=draft.audience_mode.value,
        legacy_signed=draft.legacy_signed,
        ip_allowlist=allowlist,
    )
    return app, platforms, audience, category_id, errors


def administers(principal: Principal | None, app: App) -> bool:
    """Whether ``principal`` administers ``app``: any app for platform admins, the ENTERPRISE
    apps they created for enterprise admins (SPEC §7; issue 3 "roles")."""
    if principal is None:
        return False
    if principal.role is Role.PLATFORM_ADMIN:
        return True
    return principal.role is Role.ENTERPRISE_ADMIN and app.owner_cid == principal.cid


async def administered_app(*, db: Database, principal: Principal, app_id: int) -> App:
    """The app, for one of its administrators. Raises ``PermissionDenied`` for users and
    vendors, and ``AppNotFound`` when the app does not exist or the caller does not administer
    it (an enterprise admin learns nothing of other enterprises' apps)."""
    if not principal.is_admin:
        raise PermissionDenied("only administrators may manage apps")
    async with db.read() as session:
        app = await catalogue.get_app(session, app_id)
    if app is None or not administers(principal, app):
        raise AppNotFound(app_id)
    return app


async def find_administered_app(*, db: Database, principal: Principal, app_id: int) -> App | None:
    """``administered_app``, with ``None`` where it raises ``AppNotFound``: the ``app`` query
    answers null for an app that is absent or not the caller's (still ``PermissionDenied`` for
    users and vendors)."""
    try:
        return await administered_app(db=db, principal=principal, app_id=app_id)
    except AppNotFound:
        return None


async def rotate_app_key(*, db: Database, principal: Principal, app_id: int) -> App:
    """Give the app a fresh random app key; the old one stops resolving at once (getappid).

    Same authorisation and errors as ``administered_app``. Audited (the keys masked).
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None:  # deleted meanwhile
            raise AppNotFound(app_id)
        before = {"appKey": f"…{app.app_key[-4:]}"}
        app.app_key = secrets.token_hex(16)
        app.updated_at = utcnow()
        _record(
            session,
            principal,
            audit.APP_ROTATE_KEY,
            app,
            before,
            {"appKey": f"…{app.app_key[-4:]}"},
        )
    return app


def _own_audience(principal: Principal, mode: AudienceMode, ids: list[str]) -> bool:
    # Whether an audience is exactly the principal's own enterprise: SELECTED [cid].
    if mode is not AudienceMode.SELECTED or not ids:
        return False
    try:
        return {parse_id(raw.strip(), "input.audience") for raw in ids} == {principal.cid}
    except InvalidInput:
        return False


def _forbidden_audience(principal: Principal) -> FieldError:
    return FieldError(
        "input.audience",
        "an enterprise administrator's apps are shown to their own enterprise only: "
        f"leave the audience out or give SELECTED [{principal.cid}]",
        "FORBIDDEN_AUDIENCE",
    )


def _authorise(principal: Principal, draft: AppDraft) -> list[FieldError]:
    """Raise ``PermissionDenied`` unless an administrator; the field errors of what this
    administrator may not create (reported with the input's other errors)."""
    if principal.role is Role.PLATFORM_ADMIN:
        return []
    if principal.role is Role.ENTERPRISE_ADMIN:
        if draft.kind is not AppKind.ENTERPRISE:
            return [
                FieldError(
                    "input.kind",
                    "enterprise administrators create ENTERPRISE apps only",
                    "FORBIDDEN_KIND",
                )
            ]
        return []
    raise PermissionDenied("only administrators may create apps")


async def _check_references(
    session: AsyncSession, app: App, category_id: int | None, errors: list[FieldError]
) -> None:
    # The stateful rules of an app draft: its category and uploaded icon exist.
    if (
        category_id is not None
        and await catalogue.category_with_group(session, category_id) is None
    ):
        errors.append(
            FieldError(
                "input.categoryId",
                f"category {category_id} does not exist",
                "UNKNOWN_CATEGORY",
            )
        )
    icon_id = icon_store.uploaded_icon_id(app.icon)
    if icon_id is not None and await icon_store.get_icon(session, icon_id, lock=True) is None:
        errors.append(FieldError("input.icon", "no uploaded icon has this id", "UNKNOWN_ICON"))


async def _app_state(
    session: AsyncSession, app_id: int
) -> tuple[dict[Platform, AppPlatform], list[int]]:
    platforms = (await catalogue.platform_settings(session, [app_id]))[app_id]
    audience = (await catalogue.audience_ids(session, [app_id]))[app_id]
    return platforms, audience


def _record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    app: App,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    if before is not None and after is not None:
        before, after = audit.changed_fields(before, after)
    audit.record(
        session,
        actor=principal,
        action=action,
        target_type=audit.TARGET_APP,
        target_id=app.id,
        scope_cid=app.owner_cid,
        before=before,
        after=after,
    )


async def create_app(
    *,
    db: Database,
    principal: Principal,
    draft: AppDraft,
    broker: Broker | None = None,
    sealer: SecretSealer | None = None,
) -> CreatedApp:
    """Create an app (SPEC §7 ``createApp``).

    Platform administrators create any app; enterprise administrators only ``ENTERPRISE`` apps,
    shown to their own enterprise: the default audience (``ALL``, none hidden) means
    ``SELECTED [their cid]`` for them, and any other audience than that is refused
    (``FORBIDDEN_AUDIENCE``), never narrowed silently. Raises ``PermissionDenied`` for other
    roles and ``InvalidInput`` with every broken rule together (including a taken identifier, an
    unknown category, or another kind than ``ENTERPRISE`` from an enterprise administrator).
    The new app goes last in its category, with a fresh random app key and app secret (its
    SHA-256 stored, and with a ``sealer`` a sealed copy for signed legacy mode). The creation
    is audited; with a ``broker`` (the server; offline tools pass none) live clients learn.
    """
    role_errors = _authorise(principal, draft)
    if principal.role is Role.ENTERPRISE_ADMIN:
        if draft.audience_mode is AudienceMode.ALL and not draft.audience_ids:
            # The input's default audience (SPEC §7), which an absent one is too: for an
            # enterprise administrator it means their own enterprise.
            draft.audience_mode = AudienceMode.SELECTED
            draft.audience_ids = [str(principal.cid)]
        elif not _own_audience(principal, draft.audience_mode, draft.audience_ids):
            role_errors.append(_forbidden_audience(principal))
    app, platforms, audience, category_id, errors = validate_draft(draft)
    errors = role_errors + errors
    try:
        async with db.write() as session:
            await _check_references(session, app, category_id, errors)
            if (
                app.identifier_key
                and IDENTIFIER.fullmatch(app.identifier)
                and await catalogue.identifier_taken(session, app.identifier)
            ):
                errors.append(IDENTIFIER_TAKEN)
            if errors:
                raise InvalidInput(errors)
            app.app_key = secrets.token_hex(16)
            app_secret = secrets.token_urlsafe(32)
            app.app_secret_hash = hash_secret(app_secret)
            app.position = await catalogue.next_app_position(session, app.category_id)
            if principal.role is Role.ENTERPRISE_ADMIN:
                app.owner_cid = principal.cid
            app_id = await catalogue.add_app(session, app=app)
            if sealer is not None:
                app.app_secret_sealed = sealer.seal(app_secret, app_id=app_id)
            await catalogue.add_app_settings(
                session, app_id=app_id, platforms=platforms.values(), audience=audience
            )
            after = audit.app_snapshot(app, platforms, audience)
            _record(session, principal, audit.APP_CREATE, app, None, after)
    except IntegrityError as error:
        # Two concurrent creations with one identifier on PostgreSQL: the unique index decides.
        raise InvalidInput([IDENTIFIER_TAKEN]) from error
    if broker is not None:
        await publish_change(broker, (app_id,))
    return CreatedApp(app=app, platforms=platforms, audience=audience, app_secret=app_secret)


async def resolve_app_key(*, db: Database, app_key: str) -> int:
    """The id of the enabled app whose app key is ``app_key`` (seed §三.1 getappid).

    Raises ``AppNotFound`` for an unknown key or a disabled app.
    """
    async with db.read() as session:
        app_id = await catalogue.app_id_for_key(session, app_key)
    if app_id is None:
        raise AppNotFound(app_key, "no enabled app has this app key")
    return app_id


async def move_app(
    *,
    db: Database,
    broker: Broker,
    principal: Principal,
    app_id: int,
    category_id: int,
    position: int | None,
) -> App:
    """Put the app in category ``category_id`` at index ``position`` (0-based; ``None`` or past
    the end: last), renumbering that category's apps (issue 3 ``moveApp``).

    Same authorisation as ``administered_app``; raises ``InvalidInput`` for an unknown category
    or a negative position.
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    if position is not None and position < 0:
        raise InvalidInput.single("position", "must not be negative", "NEGATIVE_POSITION")
    async with db.write() as session:
        if await catalogue.category_with_group(session, category_id) is None:
            raise InvalidInput.single(
                "categoryId", f"category {category_id} does not exist", "UNKNOWN_CATEGORY"
            )
        app = await catalogue.get_app(session, app_id)
        if app is None:  # deleted meanwhile
            raise AppNotFound(app_id)
        before = {"categoryId": app.category_id, "position": app.position}
        siblings = [
            a for a in await catalogue.apps_in_category(session, category_id) if a.id != app_id
        ]
        index = len(siblings) if position is None else min(position, len(siblings))
        siblings.insert(index, app)
        app.category_id = category_id
        app.updated_at = utcnow()
        for number, sibling in enumerate(siblings):
            sibling.position = number
        after = {"categoryId": app.category_id, "position": app.position}
        audit.record(
            session,
            actor=principal,
            action=audit.APP_MOVE,
            target_type=audit.TARGET_APP,
            target_id=app_id,
            scope_cid=app.owner_cid,
            before=before,
            after=after,
        )
    await publish_change(broker, (app_id,))
    return app


@dataclass(slots=True)
class AppPatch:
    """A partial change of an app (issue 3 ``updateApp``): ``None`` leaves a field as it is.

    ``platforms`` holds only the platforms the input names: a draft replaces that platform's
    settings, ``None`` takes the app off the platform. ``audience_ids`` is used only with
    ``audience_mode``.
    """

    name: str | None = None
    identifier: str | None = None
    kind: AppKind | None = None
    category_id: str | None = None
    user_removable: bool | None = None
    audience_mode: AudienceMode | None = None
    audience_ids: list[str] = field(default_factory=list)
    platforms: dict[Platform, PlatformDraft | None] = field(default_factory=dict)
    icon: str | None = None
    legacy_signed: bool | None = None
    ip_allowlist: str | None = None


class _Unchanged(Exception):
    """Raised inside ``update_app``'s transaction to roll back a patch that changes nothing."""


def _draft_of(app: App, platforms: dict[Platform, AppPlatform], audience: list[int]) -> AppDraft:
    return AppDraft(
        name=app.name,
        identifier=app.identifier,
        kind=AppKind(app.kind),
        category_id=str(app.category_id),
        user_removable=app.user_removable,
        audience_mode=AudienceMode(app.audience_mode),
        audience_ids=[str(cid) for cid in audience],
        platforms={
            p: PlatformDraft(
                launch_mode=LaunchMode(row.launch_mode),
                web_url=row.web_url,
                run_path=row.run_path,
                download_url=row.download_url,
                embedded_browser=row.embedded_browser,
                auto_login=row.auto_login,
                login_params=row.login_params,
            )
            for p, row in platforms.items()
        },
        icon=app.icon,
        legacy_signed=app.legacy_signed,
        ip_allowlist=app.ip_allowlist,
    )


def _apply_patch(draft: AppDraft, patch: AppPatch) -> AppDraft:
    if patch.name is not None:
        draft.name = patch.name
    if patch.identifier is not None:
        draft.identifier = patch.identifier
    if patch.kind is not None:
        draft.kind = patch.kind
    if patch.category_id is not None:
        draft.category_id = patch.category_id
    if patch.user_removable is not None:
        draft.user_removable = patch.user_removable
    if patch.audience_mode is not None:
        draft.audience_mode = patch.audience_mode
        draft.audience_ids = list(patch.audience_ids)
    for platform, settings in patch.platforms.items():
        if settings is None:
            draft.platforms.pop(platform, None)
        else:
            draft.platforms[platform] = settings
    if patch.icon is not None:
        draft.icon = patch.icon
    if patch.legacy_signed is not None:
        draft.legacy_signed = patch.legacy_signed
    if patch.ip_allowlist is not None:
        draft.ip_allowlist = patch.ip_allowlist
    return draft


async def update_app(
    *, db: Database, broker: Broker, principal: Principal, app_id: int, patch: AppPatch
) -> App:
    """Change the fields ``patch`` names, keeping the others (issue 3 ``updateApp``).

    The app as it would become is checked against every rule of ``create_app`` at once
    (``InvalidInput``, paths ``input.*``); an enterprise administrator keeps the app an
    ``ENTERPRISE`` app for their own enterprise (an audience other than ``SELECTED [their
    cid]`` is refused with ``FORBIDDEN_AUDIENCE``). A new category
    puts the app last in it. Same authorisation and errors as ``administered_app``. Audited
    with the changed fields before and after; live clients are told.
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    role_errors: list[FieldError] = []
    if principal.role is Role.ENTERPRISE_ADMIN:
        if patch.kind is not None and patch.kind is not AppKind.ENTERPRISE:
            role_errors.append(
                FieldError(
                    "input.kind",
                    "enterprise administrators manage ENTERPRISE apps only",
                    "FORBIDDEN_KIND",
                )
            )
        if patch.audience_mode is not None and not _own_audience(
            principal, patch.audience_mode, patch.audience_ids
        ):
            role_errors.append(_forbidden_audience(principal))
            patch.audience_mode = None
    try:
        async with db.write() as session:
            app = await catalogue.get_app(session, app_id)
            if app is None:  # deleted meanwhile
                raise AppNotFound(app_id)
            platforms, audience = await _app_state(session, app_id)
            for loaded in platforms.values():  # replaced below by rows with the same keys
                session.expunge(loaded)
            before = audit.app_snapshot(app, platforms, audience)
            draft = _apply_patch(_draft_of(app, platforms, audience), patch)
            new, new_platforms, new_audience, category_id, errors = validate_draft(draft)
            errors = role_errors + errors
            await _check_references(
                session, new, category_id if patch.category_id is not None else None, errors
            )
            if (
                new.identifier_key != app.identifier_key
                and IDENTIFIER.fullmatch(new.identifier)
                and await catalogue.identifier_taken(session, new.identifier)
            ):
                errors.append(IDENTIFIER_TAKEN)
            if errors:
                raise InvalidInput(errors)
            old_icon = app.icon
            if new.category_id != app.category_id:
                app.position = await catalogue.next_app_position(session, new.category_id)
            for name in (
                "name",
                "identifier",
                "identifier_key",
                "kind",
                "icon",
                "category_id",
                "user_removable",
                "audience_mode",
                "legacy_signed",
                "ip_allowlist",
            ):
                setattr(app, name, getattr(new, name))
            app.updated_at = utcnow()
            await catalogue.replace_app_settings(
                session, app_id=app_id, platforms=new_platforms.values(), audience=new_audience
            )
            if old_icon != app.icon:
                await icon_store.delete_if_unreferenced(session, old_icon)
            after = audit.app_snapshot(app, new_platforms, new_audience)
            if before == after:  # nothing to record, nobody to tell: roll back
                raise _Unchanged
            _record(session, principal, audit.APP_UPDATE, app, before, after)
    except _Unchanged:  # the rollback expired the row: read it again
        return await administered_app(db=db, principal=principal, app_id=app_id)
    except IntegrityError as error:
        raise InvalidInput([IDENTIFIER_TAKEN]) from error
    await publish_change(broker, (app_id,))
    return app


async def set_app_enabled(
    *, db: Database, broker: Broker, principal: Principal, app_id: int, enabled: bool
) -> App:
    """Enable or disable an app (issue 3 ``enableApp`` / ``disableApp``). A disabled app is on
    no workbench and refuses vendors' calls (SPEC §3, §6); its badges and users' removals are
    kept for when it returns. Idempotent; audited when it changes something; live clients are
    told. Same authorisation and errors as ``administered_app``.
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None:
            raise AppNotFound(app_id)
        if app.enabled == enabled:
            return app
        app.enabled = enabled
        app.updated_at = utcnow()
        action = audit.APP_ENABLE if enabled else audit.APP_DISABLE
        _record(session, principal, action, app, {"enabled": not enabled}, {"enabled": enabled})
    await publish_change(broker, (app_id,))
    return app


async def delete_app(*, db: Database, broker: Broker, principal: Principal, app_id: int) -> App:
    """Delete an app for good (issue 3 ``deleteApp``): its platforms, audience, every user's
    badge and removal of it, and its uploaded icon when no other app uses it, go with it.
    Its id is never reused. Live clients drop it (their badge totals shrink at once).

    Same authorisation and errors as ``administered_app``; audited with the app as it was.
    Returns the deleted row.
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None:
            raise AppNotFound(app_id)
        platforms, audience = await _app_state(session, app_id)
        before = audit.app_snapshot(app, platforms, audience)
        # Badges, removals, platforms and audience go by ON DELETE CASCADE.
        await catalogue.delete_app(session, app_id=app_id)
        session.expunge(app)
        await icon_store.delete_if_unreferenced(session, app.icon)
        _record(session, principal, audit.APP_DELETE, app, before, None)
    await publish_change(broker, (app_id,))
    return app


MAX_SEARCH_LENGTH = 100


async def list_apps(
    *,
    db: Database,
    principal: Principal,
    where: catalogue.AppFilter,
    first: int | None,
    after: str | None,
) -> Page[App]:
    """The apps an administrator manages, matching ``where``, by id, one page at a time
    (issue 3 ``apps``). An enterprise administrator sees only their own apps.

    Raises ``PermissionDenied`` for users and vendors, ``InvalidInput`` for a bad page size,
    cursor or a search over ``MAX_SEARCH_LENGTH`` characters.
    """
    if not principal.is_admin:
        raise PermissionDenied("only administrators may list apps")
    limit = page_size(first)
    after_id = decode_cursor("app", after)
    if where.search is not None and len(where.search) > MAX_SEARCH_LENGTH:
        raise InvalidInput.single(
            "filter.search", f"at most {MAX_SEARCH_LENGTH} characters", "TOO_LONG"
        )
    if where.search is not None and has_control(where.search):
        raise InvalidInput.single(
            "filter.search", "must not contain control characters", "INVALID_SEARCH"
        )
    if principal.role is Role.ENTERPRISE_ADMIN:
        where = replace(where, owner_cid=principal.cid)
    search = (where.search or "").strip()
    where = replace(where, search=search or None)
    async with db.read() as session:
        rows, total = await catalogue.find_apps(session, where, after_id=after_id, limit=limit + 1)
    page = rows[:limit]
    return Page(
        rows=page,
        cursors=[encode_cursor("app", app.id or 0) for app in page],
        has_next_page=len(rows) > limit,
        total_count=total,
    )


async def set_app_icon(
    *, db: Database, broker: Broker, principal: Principal, app_id: int, icon: ProcessedIcon
) -> App:
    """Give the app an uploaded icon (issue 3 item 4), already checked by
    ``resolvers.icons.process_icon``. The image is stored once per content (apps uploading
    the same bytes share it); the app's previous uploaded icon goes when no app uses it.

    Same authorisation and errors as ``administered_app``; audited; live clients are told.
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None:
            raise AppNotFound(app_id)
        old = app.icon
        stored = await icon_store.save_icon(session, icon)
        app.icon = icon_store.icon_ref(stored.id)
        app.updated_at = utcnow()
        if old != app.icon:
            await icon_store.delete_if_unreferenced(session, old)
        _record(session, principal, audit.APP_SET_ICON, app, {"icon": old}, {"icon": app.icon})
    await publish_change(broker, (app_id,))
    return app


async def upload_app_icon(
    *, db: Database, broker: Broker, principal: Principal, app_id: int, upload: object
) -> App:
    """Give the app the icon in ``upload`` (``setAppIcon``, issue 3 item 4): the caller's right
    to the app is checked first, then that ``upload`` is a file that can be read (an
    ``AsyncReader``; GraphQL's ``Upload`` scalar lets any variable value through), then the
    image (``resolvers.icons``, in a worker thread), and the app keeps it (``set_app_icon``).

    Raises what ``administered_app`` raises, and ``InvalidInput`` on ``icon`` (``NOT_A_FILE``,
    or the codes of ``read_upload`` and ``process_icon``).
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    if not callable(getattr(upload, "read", None)):
        raise InvalidInput.single("icon", "must be a file sent as a multipart upload", "NOT_A_FILE")
    data = await read_upload(cast(AsyncReader, upload), field="icon")
    processed = await asyncio.to_thread(process_icon, data, "icon")
    return await set_app_icon(
        db=db, broker=broker, principal=principal, app_id=app_id, icon=processed
    )
