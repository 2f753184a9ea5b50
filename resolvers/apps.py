"""The app catalogue: creating apps with every rule of SPEC §2 checked at once.

Validation returns all field errors of one input together (``InvalidInput.errors``), with field
paths as the GraphQL input spells them (``input.name``, ``input.android.webUrl``), so a form can
show them all. Nothing is written unless the whole input is valid.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError

from resolvers.errors import AppNotFound, FieldError, InvalidInput, PermissionDenied
from resolvers.identity import Principal, Role, parse_id
from resolvers.text import has_control, has_letter_or_digit, name_units
from storage import catalogue
from storage.db import Database
from storage.models import (
    DEFAULT_CATEGORY_ID,
    App,
    AppAudience,
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
        embedded_browser=draft.embedded_browser if platform is not Platform.PC else False,
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
        if len(params) > 512 or has_control(params) or not LOGIN_PARAMS.fullmatch(params):
            errors.append(
                FieldError(
                    f"{path}.loginParams",
                    "must look like &account=&password=",
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
    for index, raw in enumerate(draft.audience_ids):
        path = f"input.audience.enterpriseIds[{index}]"
        try:
            ids.append(parse_id(raw.strip(), path))
        except InvalidInput as error:
            errors.extend(error.errors)
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
    icon = draft.icon or DEFAULT_ICON
    if icon not in BUILTIN_ICONS:
        errors.append(
            FieldError(
                "input.icon",
                f"must be one of {', '.join(BUILTIN_ICONS)}",
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


async def rotate_app_key(*, db: Database, principal: Principal, app_id: int) -> App:
    """Give the app a fresh random app key; the old one stops resolving at once (getappid).

    Same authorisation and errors as ``administered_app``.
    """
    await administered_app(db=db, principal=principal, app_id=app_id)
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None:  # deleted meanwhile
            raise AppNotFound(app_id)
        app.app_key = secrets.token_hex(16)
        app.updated_at = utcnow()
    return app


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


async def create_app(*, db: Database, principal: Principal, draft: AppDraft) -> CreatedApp:
    """Create an app (SPEC §7 ``createApp``).

    Platform administrators create any app; enterprise administrators only ``ENTERPRISE`` apps,
    whose audience is forced to their own enterprise. Raises ``PermissionDenied`` for other
    roles and ``InvalidInput`` with every broken rule together (including a taken identifier, an
    unknown category, or another kind than ``ENTERPRISE`` from an enterprise administrator).
    The new app goes last in its category, with a fresh random app key.
    """
    role_errors = _authorise(principal, draft)
    if principal.role is Role.ENTERPRISE_ADMIN:
        draft.audience_mode = AudienceMode.SELECTED
        draft.audience_ids = [str(principal.cid)]
    app, platforms, audience, category_id, errors = validate_draft(draft)
    errors = role_errors + errors
    try:
        async with db.write() as session:
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
            if (
                app.identifier_key
                and IDENTIFIER.fullmatch(app.identifier)
                and await catalogue.identifier_taken(session, app.identifier)
            ):
                errors.append(
                    FieldError(
                        "input.identifier",
                        "is already used by another app (case-insensitive)",
                        "IDENTIFIER_TAKEN",
                    )
                )
            if errors:
                raise InvalidInput(errors)
            app.app_key = secrets.token_hex(16)
            app_secret = secrets.token_urlsafe(32)
            app.app_secret_hash = hash_secret(app_secret)
            app.position = await catalogue.next_app_position(session, app.category_id)
            if principal.role is Role.ENTERPRISE_ADMIN:
                app.owner_cid = principal.cid
            session.add(app)
            await session.flush()
            assert app.id is not None
            for row in platforms.values():
                row.app_id = app.id
                session.add(row)
            session.add_all(AppAudience(app_id=app.id, cid=cid) for cid in audience)
            await session.flush()
    except IntegrityError as error:
        # Two concurrent creations with one identifier on PostgreSQL: the unique index decides.
        raise InvalidInput.single(
            "input.identifier",
            "is already used by another app (case-insensitive)",
            "IDENTIFIER_TAKEN",
        ) from error
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
    *, db: Database, principal: Principal, app_id: int, category_id: int, position: int | None
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
        siblings = [
            a for a in await catalogue.apps_in_category(session, category_id) if a.id != app_id
        ]
        index = len(siblings) if position is None else min(position, len(siblings))
        siblings.insert(index, app)
        app.category_id = category_id
        app.updated_at = utcnow()
        for number, sibling in enumerate(siblings):
            sibling.position = number
    return app
