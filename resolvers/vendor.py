"""The vendor API beyond the legacy endpoints (SPEC §8; issue 4 item 3): app secrets, the
exchange of a secret for a vendor token, notices with idempotency keys, absolute badges with
versions, and the access rules of the legacy endpoints (signed mode, IP allowlist).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers import audit
from resolvers.addresses import address_allowed
from resolvers.apps import administered_app, hash_secret
from resolvers.badges import distinct_recipients
from resolvers.broker import Broker
from resolvers.errors import (
    AppNotFound,
    InvalidInput,
    NotAuthenticated,
    PermissionDenied,
    WorkbenchError,
)
from resolvers.identity import Principal, Role
from resolvers.messages import BadgeCause, BadgeChange, user_channel
from resolvers.notices import apply_notice
from resolvers.sealing import SealBroken, SecretSealer
from resolvers.tokens import TokenCodec
from storage import badges as store
from storage import catalogue, idempotency, legacy_signatures, vendor_badge_versions
from storage.db import Database
from storage.models import MAX_ROW_ID, App, utcnow

logger = logging.getLogger("workbench.vendor")

IDEMPOTENCY_WINDOW = timedelta(hours=24)
SIGN_WINDOW_S = 300
MAX_IDEMPOTENCY_KEY = 128
_VERSION = re.compile(r"[0-9]{1,19}")
_SIGN = re.compile(r"[0-9a-fA-F]{64}")
# A signed call's optional nonce: URL-unreserved characters (RFC 3986 §2.3), so that it reads
# the same encoded or not, at most 64 of them.
_NONCE = re.compile(r"[A-Za-z0-9._~-]{1,64}")


class AccessRefused(WorkbenchError):
    """A legacy call refused by the app's access rules (signature, replay, address)."""

    code = "ACCESS_REFUSED"


class StaleVersion(WorkbenchError):
    """``setAppBadge`` with a version not greater than the last one applied (SPEC §8): the
    version and count in force for user ``(cid, uid)``."""

    code = "STALE_VERSION"

    def __init__(self, current_version: int, unread: int, *, cid: int, uid: int) -> None:
        super().__init__(f"version must be greater than {current_version}")
        self.current_version = current_version
        self.unread = unread
        self.cid = cid
        self.uid = uid


# --- secrets and tokens ---------------------------------------------------------------------


def new_secret() -> str:
    """A fresh app secret: 256 random bits, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


async def rotate_app_secret(
    *,
    db: Database,
    principal: Principal,
    app_id: int,
    grace_s: int,
    sealer: SecretSealer | None,
) -> tuple[App, str]:
    """Give the app a new secret, returned once (SPEC §8 ``rotateAppSecret``); the previous
    one keeps working for ``grace_s`` seconds, then only the new one does. Same authorisation
    and errors as ``administered_app``; audited (without secrets)."""
    await administered_app(db=db, principal=principal, app_id=app_id)
    secret = new_secret()
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None:
            raise AppNotFound(app_id)
        now = utcnow()
        app.previous_secret_hash = app.app_secret_hash
        app.previous_secret_sealed = app.app_secret_sealed
        app.previous_secret_expires_at = now + timedelta(seconds=grace_s)
        app.app_secret_hash = hash_secret(secret)
        app.app_secret_sealed = None if sealer is None else sealer.seal(secret, app_id=app_id)
        app.updated_at = now
        audit.record(
            session,
            actor=principal,
            action=audit.APP_ROTATE_SECRET,
            target_type=audit.TARGET_APP,
            target_id=app_id,
            scope_cid=app.owner_cid,
            before=None,
            after={"previousSecretValidUntil": app.previous_secret_expires_at.isoformat()},
        )
    return app, secret


def _previous_valid(app: App, now: datetime) -> bool:
    expires = app.previous_secret_expires_at
    if expires is None:
        return False
    if expires.tzinfo is None:  # SQLite keeps no zone; stored values are UTC
        expires = expires.replace(tzinfo=now.tzinfo)
    return now < expires


async def authenticate_app(*, db: Database, app_id: int, app_secret: str) -> App:
    """The enabled app whose current secret (or previous one, within its grace period) is
    ``app_secret`` (SPEC §8 ``appAccessToken``). Raises ``NotAuthenticated`` with one message
    for an unknown app, a disabled one, or a wrong secret."""
    refused = NotAuthenticated("app id or app secret is wrong")
    if not 0 < app_id <= MAX_ROW_ID or len(app_secret) > 256:
        raise refused
    async with db.read() as session:
        app = await catalogue.get_app(session, app_id)
    if app is None or not app.enabled or app.app_secret_hash is None:
        raise refused
    digest = hash_secret(app_secret)
    if hmac.compare_digest(digest, app.app_secret_hash):
        return app
    previous = app.previous_secret_hash
    if previous and _previous_valid(app, utcnow()) and hmac.compare_digest(digest, previous):
        return app
    logger.info("appAccessToken refused for app %s: wrong secret", app_id)
    raise refused


async def issue_access_token(
    *, db: Database, codec: TokenCodec, app_id: int, app_secret: str, ttl_s: int
) -> str:
    """A vendor access token for app ``app_id`` valid ``ttl_s`` seconds (SPEC §8
    ``appAccessToken``), once ``authenticate_app`` accepts the secret; raises what it raises."""
    app = await authenticate_app(db=db, app_id=app_id, app_secret=app_secret)
    assert app.id is not None
    return codec.issue(
        cid=0, uid=0, role=Role.VENDOR, account=f"app{app.id}", app_id=app.id, ttl_seconds=ttl_s
    )


def vendor_app(principal: Principal) -> int:
    """The app of a vendor token; raises ``PermissionDenied`` for any other caller."""
    if principal.role is not Role.VENDOR or principal.app_id is None:
        raise PermissionDenied("this field needs a vendor token (appAccessToken)")
    return principal.app_id


# --- notices with idempotency keys ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What a vendor notice did for one recipient: ``applied``, or skipped with ``reason``."""

    cid: int
    uid: int
    applied: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VendorNoticeOutcome:
    """A vendor notice's results, one per distinct recipient in ``(cid, uid)`` order;
    ``replayed`` when an earlier call with the same idempotency key answered them."""

    results: list[RecipientResult]
    replayed: bool


async def vendor_push_notice(
    *,
    db: Database,
    broker: Broker,
    app_id: int,
    recipients: Sequence[tuple[int, int]],
    idempotency_key: str | None,
    coalesce_s: float,
) -> VendorNoticeOutcome:
    """One notice of the vendor's app for each recipient (SPEC §8 ``pushAppNotice``), with a
    result per recipient. With ``idempotency_key``, a repeat within 24 h applies nothing and
    returns the first call's results; the key and the notice commit together.

    Raises ``InvalidInput`` for an empty list or a bad key, ``TooManyRecipients``, and
    ``AppNotFound`` for a disabled app.
    """
    if not recipients:
        raise InvalidInput.single("recipients", "name at least one user", "REQUIRED")
    key = None if idempotency_key is None else idempotency_key.strip()
    if key is not None and (not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable()):
        raise InvalidInput.single(
            "idempotencyKey",
            f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
            "INVALID_IDEMPOTENCY_KEY",
        )
    users = distinct_recipients(recipients)
    async with db.write() as session:
        if key is not None:
            stored = await _claim_key(session, app_id=app_id, key=key)
            if stored is not None:
                return VendorNoticeOutcome(results=stored, replayed=True)
        outcome, messages = await apply_notice(
            session, app_id=app_id, users=users, coalesce_s=coalesce_s
        )
        skipped = dict(outcome.skipped)
        results = [
            RecipientResult(cid, uid, (cid, uid) not in skipped, skipped.get((cid, uid)))
            for cid, uid in users
        ]
        if key is not None:
            encoded = json.dumps([[r.cid, r.uid, r.applied, r.reason] for r in results])
            await idempotency.store_result(session, app_id=app_id, key=key, result=encoded)
    await broker.publish(messages)
    return VendorNoticeOutcome(results=results, replayed=False)


async def _claim_key(
    session: AsyncSession, *, app_id: int, key: str
) -> list[RecipientResult] | None:
    # Insert the key (empty result for now); if it exists and is fresh, its results.
    now = utcnow()
    stored = await idempotency.claim_key(
        session, app_id=app_id, key=key, now=now, fresh_after=now - IDEMPOTENCY_WINDOW
    )
    if stored is None:
        return None
    return [RecipientResult(c, u, a, r) for c, u, a, r in json.loads(stored)]


# --- absolute badges --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadgeSet:
    """The result of ``setAppBadge``: the app's count for the user and the version applied."""

    cid: int
    uid: int
    unread: int
    version: int


def parse_version(raw: str) -> int:
    """A ``setAppBadge`` version: a decimal string of 1 to 19 digits (e.g. a Unix time in
    milliseconds), at most 2**63-1. Raises ``InvalidInput``."""
    text = raw.strip()
    if not _VERSION.fullmatch(text) or int(text) > 2**63 - 1:
        raise InvalidInput.single(
            "version", "must be a decimal number of 1 to 19 digits", "INVALID_VERSION"
        )
    return int(text)


async def set_app_badge(
    *,
    db: Database,
    broker: Broker,
    app_id: int,
    cid: int,
    uid: int,
    unread: int,
    version: int,
) -> BadgeSet:
    """Set the vendor app's unread count for one user to ``unread`` (SPEC §8 ``setAppBadge``,
    cause SET), if ``version`` is greater than the last version applied for this user and
    app. Raises ``StaleVersion`` (with the current count) otherwise, ``InvalidInput`` for a
    negative or 32-bit-overflowing count or a user outside the app's audience, and
    ``AppNotFound`` for a disabled app.
    """
    if not 0 <= unread <= store.MAX_COUNT:
        raise InvalidInput.single("unread", f"must be 0 to {store.MAX_COUNT}", "INVALID_COUNT")
    async with db.write() as session:
        app = await catalogue.get_app(session, app_id)
        if app is None or not app.enabled:
            raise AppNotFound(app_id)
        if cid not in await catalogue.admitted_enterprises(session, app_id=app_id, cids={cid}):
            raise InvalidInput.single(
                "user.cid", "this enterprise is outside the app's audience", "NOT_IN_AUDIENCE"
            )
        row = await vendor_badge_versions.lock_version(session, app_id=app_id, cid=cid, uid=uid)
        if version <= row:
            current = (await store.read_unread(session, cid=cid, uid=uid)).get(app_id, 0)
            raise StaleVersion(row, current, cid=cid, uid=uid)
        await vendor_badge_versions.set_version(
            session, app_id=app_id, cid=cid, uid=uid, version=version
        )
        changed = await store.set_unread(session, cid=cid, uid=uid, app_id=app_id, unread=unread)
    if changed is not None:
        state, count, _ = changed
        message = BadgeChange(BadgeCause.SET, state.version, state.unseen, ((app_id, count),))
        await broker.publish(((user_channel(cid, uid), message.encode()),))
    return BadgeSet(cid=cid, uid=uid, unread=unread, version=version)


# --- access rules of the legacy endpoints ----------------------------------------------------


def canonical_params(pairs: Sequence[tuple[str, str]]) -> bytes:
    """What a legacy ``sign`` covers (SPEC §8): every parameter but ``sign``, sorted by name
    (an array's values, named ``name[]``, in the order sent), as ``name=value`` joined by
    ``&``; names trimmed of spaces, values exactly as received (not URL-encoded), UTF-8; bytes
    that are not UTF-8, carried as lone surrogates (``surrogateescape``), as the bytes sent."""
    kept = sorted((p for p in pairs if p[0] != "sign"), key=lambda p: p[0])
    return "&".join(f"{name}={value}" for name, value in kept).encode("utf-8", "surrogateescape")


def _secrets_for_signing(app: App, sealer: SecretSealer | None, now: datetime) -> list[str]:
    found = []
    assert app.id is not None
    for sealed, usable in (
        (app.app_secret_sealed, True),
        (app.previous_secret_sealed, _previous_valid(app, now)),
    ):
        if sealed and usable and sealer is not None:
            try:
                found.append(sealer.open(sealed, app_id=app.id))
            except SealBroken:
                logger.warning("app %s: a sealed secret does not open; rotate it", app.id)
    return found


async def check_legacy_access(
    *,
    db: Database,
    app: App,
    params: Sequence[tuple[str, str]],
    client_ip: str | None,
    sealer: SecretSealer | None,
    repeated: Collection[str] = (),
) -> str | None:
    """Apply app ``app``'s legacy access rules to one call (SPEC §8): its IP allowlist, and in
    signed mode a ``timestamp`` within 300 s and a fresh, correct ``sign``. Raises
    ``AccessRefused`` with the reason (for the log and ``X-Error-Reason``); an open app with no
    allowlist passes at once. Returns what was recorded against replays (the ``sign``, or the
    nonce's hash; ``None`` for an unsigned app), for ``release_replay_record`` when the call is
    then refused without changing anything.

    A signed call may carry a ``nonce`` (1 to 64 of ``A-Z a-z 0-9 - . _ ~``; issue 11), signed
    like every parameter. Without one, a call is refused when its ``sign`` was already accepted
    (so two identical calls in one second are one call, as before). With one, it is refused
    when that nonce was already accepted for the app within the replay window, whatever the
    timestamp: a retry of a call whose answer was lost cannot apply it twice.

    ``repeated``: the names the call sent more than once as plain values (``params`` holds
    the last). A signed call with ``timestamp``, ``sign`` or ``nonce`` among them is refused
    as such ("nonce given more than once"): which value counts would be a guess, and the
    ``sign`` the caller computed over both values could only be reported as not matching.
    """
    if not address_allowed(app.ip_allowlist, client_ip):
        raise AccessRefused(f"address {client_ip} is not allowed for this app")
    if not app.legacy_signed:
        return None
    for name in ("timestamp", "sign", "nonce"):
        if name in repeated:
            raise AccessRefused(f"{name} given more than once")
    plain = dict(params)
    raw_time = (plain.get("timestamp") or "").strip()
    sign = (plain.get("sign") or "").strip().lower()
    if not raw_time or not sign:
        raise AccessRefused("this app requires timestamp and sign")
    if not raw_time.isascii() or not raw_time.isdigit() or len(raw_time) > 12:
        raise AccessRefused("timestamp must be Unix seconds")
    if abs(time.time() - int(raw_time)) > SIGN_WINDOW_S:
        raise AccessRefused("timestamp is outside the 300 s window")
    if not _SIGN.fullmatch(sign):
        raise AccessRefused("sign must be 64 hex digits")
    nonce = plain.get("nonce")
    if nonce is not None and not _NONCE.fullmatch(nonce):
        raise AccessRefused("nonce must be 1 to 64 letters, digits or - . _ ~")
    now = utcnow()
    message = canonical_params(params)
    keys = _secrets_for_signing(app, sealer, now)
    if not any(
        hmac.compare_digest(hmac.new(k.encode(), message, hashlib.sha256).hexdigest(), sign)
        for k in keys
    ):
        raise AccessRefused("sign does not match")
    assert app.id is not None
    # A nonce is recorded in the same table as a sign would be, as a hash of the same shape
    # (64 hex digits) that no HMAC of a call will equal.
    used = sign if nonce is None else hashlib.sha256(b"nonce:" + nonce.encode()).hexdigest()
    async with db.write() as session:
        fresh = await legacy_signatures.record_signature(
            session,
            app_id=app.id,
            sign=used,
            now=now,
            expires_at=now + timedelta(seconds=2 * SIGN_WINDOW_S),
        )
    if not fresh:
        raise AccessRefused(
            f"this {'sign' if nonce is None else 'nonce'} was already used (replay)"
        )
    return used


async def release_replay_record(*, db: Database, app_id: int, recorded: str) -> None:
    """Forget ``recorded`` (what ``check_legacy_access`` returned) for app ``app_id``: the call
    it admitted was refused before it changed anything (bad input, a refused or busy write), so
    the same ``sign`` or ``nonce`` may be sent again and is not a replay (issue 11: a refusal
    changes nothing)."""
    async with db.write() as session:
        await legacy_signatures.forget_signature(session, app_id=app_id, sign=recorded)
