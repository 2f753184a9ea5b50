"""All tables (SQLModel), in one place. SPEC §2 names the fields; the seed's back-office form is
their origin.

Identifiers of enterprises and users (``cid``, ``uid``) are 64-bit integers. App ids use the
database's auto-increment integer and are never reused (SQLite ``AUTOINCREMENT``; a PostgreSQL
sequence), which lets live subscribers recognise an app created after they started.

Enumerations are stored as short strings, checked by ``CHECK`` constraints; the Python enums below
are the single source of their values.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlmodel import Field, SQLModel

DEFAULT_GROUP_ID = 1
DEFAULT_CATEGORY_ID = 1
# App, group and category ids are 32-bit INTEGER columns. A larger id is a valid id by SPEC §2's
# syntax but names no row, and PostgreSQL refuses to compare one with such a column: queries
# answer "not found" for it without asking the database.
MAX_ROW_ID = 2**31 - 1


class Platform(enum.StrEnum):
    """Client platforms (SPEC §2 "应用添加至")."""

    PC = "PC"
    ANDROID = "ANDROID"
    IOS = "IOS"


class LaunchMode(enum.StrEnum):
    """How a platform launches an app: a web page or a native program (seed "WEB" / "应用")."""

    WEB = "WEB"
    NATIVE = "NATIVE"


class AppKind(enum.StrEnum):
    """The seed's 应用类型: 企业, 系统, 自定义."""

    ENTERPRISE = "ENTERPRISE"
    SYSTEM = "SYSTEM"
    CUSTOM = "CUSTOM"


class AudienceMode(enum.StrEnum):
    """The seed's 投放: all enterprises minus a hidden list, or selected enterprises only."""

    ALL = "ALL"
    SELECTED = "SELECTED"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    listed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({listed})"


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _timestamp() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, default=utcnow)


class AppGroup(SQLModel, table=True):
    """A workbench group (应用分组), ordered by ``position`` then ``id``."""

    __tablename__ = "app_group"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    name: str = Field(sa_column=Column(String(40), nullable=False))
    position: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class AppCategory(SQLModel, table=True):
    """A category (应用分类) inside one group, ordered by ``position`` then ``id``."""

    __tablename__ = "app_category"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    group_id: int = Field(
        sa_column=Column(Integer, ForeignKey("app_group.id", ondelete="RESTRICT"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(40), nullable=False))
    position: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class App(SQLModel, table=True):
    """An integrated app (集成应用). ``identifier_key`` is the lower-cased identifier, unique."""

    __tablename__ = "app"
    __table_args__ = (
        CheckConstraint(_in("kind", AppKind), name="ck_app_kind"),
        CheckConstraint(_in("audience_mode", AudienceMode), name="ck_app_audience_mode"),
        Index("ix_app_category_position", "category_id", "position"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    app_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(64), nullable=False))
    identifier: str = Field(sa_column=Column(String(20), nullable=False))
    identifier_key: str = Field(sa_column=Column(String(20), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    icon: str = Field(sa_column=Column(String(128), nullable=False))
    category_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("app_category.id", ondelete="RESTRICT"), nullable=False
        )
    )
    position: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    user_removable: bool = True
    enabled: bool = True
    audience_mode: str = Field(sa_column=Column(String(16), nullable=False))
    owner_cid: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    app_secret_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # The secret sealed (AES-GCM, ``resolvers.sealing``) for verifying signed legacy calls,
    # which need the secret itself; ``None`` for apps created offline without a key.
    app_secret_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # After rotateAppSecret the previous secret keeps working until this time (SPEC §8).
    previous_secret_hash: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True)
    )
    previous_secret_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Signed legacy mode (SPEC §8): timestamp + sign required on the legacy endpoints.
    legacy_signed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, default=False)
    )
    # Comma-separated IP addresses or CIDR networks allowed to call the legacy endpoints and
    # the vendor API for this app; ``None``: any address.
    ip_allowlist: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class AppAudience(SQLModel, table=True):
    """Enterprise ids of an app's audience: hidden ones (mode ALL) or selected ones (SELECTED)."""

    __tablename__ = "app_audience"

    app_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("app.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        )
    )
    cid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))


class AppPlatform(SQLModel, table=True):
    """One platform's launch settings of an app; no row means "not on that platform"."""

    __tablename__ = "app_platform"
    __table_args__ = (
        CheckConstraint(_in("platform", Platform), name="ck_app_platform_platform"),
        CheckConstraint(_in("launch_mode", LaunchMode), name="ck_app_platform_launch_mode"),
    )

    app_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("app.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        )
    )
    platform: str = Field(sa_column=Column(String(8), primary_key=True, nullable=False))
    launch_mode: str = Field(sa_column=Column(String(8), nullable=False))
    web_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    run_path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    download_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    embedded_browser: bool = True
    auto_login: bool = False
    login_params: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AppBadge(SQLModel, table=True):
    """Unread count of one app for one user (SPEC §4); ``unread`` is never negative."""

    __tablename__ = "app_badge"
    __table_args__ = (
        CheckConstraint("unread >= 0", name="ck_app_badge_unread"),
        Index("ix_app_badge_app", "app_id"),
    )

    cid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    app_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("app.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        )
    )
    unread: int = Field(sa_column=Column(Integer, nullable=False))


class UserBadgeState(SQLModel, table=True):
    """A user's workbench badge and the version of their whole badge state (SPEC §4).

    Every transaction that changes a user's badges locks this row first, so one user's changes
    are serialised and ``version`` orders them.
    """

    __tablename__ = "user_badge_state"
    __table_args__ = (CheckConstraint("unseen_count >= 0", name="ck_user_badge_state_unseen"),)

    cid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    unseen_count: int = Field(sa_column=Column(Integer, nullable=False))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))


class AppRemoval(SQLModel, table=True):
    """An app a user removed from their own workbench (only when ``user_removable``)."""

    __tablename__ = "app_removal"
    __table_args__ = (Index("ix_app_removal_app", "app_id"),)

    cid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    app_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("app.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        )
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class IconImage(SQLModel, table=True):
    """An uploaded app icon (SPEC §2 ``icon``), content-addressed: ``id`` is the hex SHA-256 of
    ``original``, the file exactly as uploaded (GIF, JPEG or PNG, at most 1 MiB), and
    ``rendition_48`` a 48x48 PNG made from it. Apps refer to it as ``sha256:<id>``; a row no app
    refers to is deleted with the last reference."""

    __tablename__ = "icon_image"

    id: str = Field(sa_column=Column(String(64), primary_key=True, nullable=False))
    media_type: str = Field(sa_column=Column(String(16), nullable=False))
    width: int = Field(sa_column=Column(Integer, nullable=False))
    height: int = Field(sa_column=Column(Integer, nullable=False))
    original: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    rendition_48: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class AuditEntry(SQLModel, table=True):
    """One administrative change (issue 3 "audit log"): who (``actor_*``), when (``at``), what
    (``action`` on ``target_type`` ``target_id``) and the values before and after, as JSON
    objects (``None`` for a creation's before and a deletion's after).

    ``scope_cid`` is the enterprise the change concerns (an enterprise admin's own, or the owner
    of an ENTERPRISE app); enterprise administrators read only their enterprise's entries.
    """

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_scope", "scope_cid", "id"),
        Index("ix_audit_entry_target", "target_type", "target_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    actor_cid: int = Field(sa_column=Column(BigInteger, nullable=False))
    actor_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    actor_role: str = Field(sa_column=Column(String(24), nullable=False))
    action: str = Field(sa_column=Column(String(40), nullable=False))
    target_type: str = Field(sa_column=Column(String(16), nullable=False))
    target_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    scope_cid: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    before: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    after: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class SsoTicket(SQLModel, table=True):
    """A one-time SSO ticket (SPEC §5, §8): only its SHA-256 is stored; it names the app and
    the user it was issued for and verifies once, before ``expires_at``."""

    __tablename__ = "sso_ticket"
    __table_args__ = (Index("ix_sso_ticket_expires", "expires_at"),)

    ticket_hash: str = Field(sa_column=Column(String(64), primary_key=True, nullable=False))
    app_id: int = Field(
        sa_column=Column(Integer, ForeignKey("app.id", ondelete="CASCADE"), nullable=False)
    )
    cid: int = Field(sa_column=Column(BigInteger, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    account: str = Field(sa_column=Column(String(128), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LegacySignature(SQLModel, table=True):
    """A ``sign`` already accepted for an app in signed legacy mode, kept until its timestamp
    leaves the 300 s window, so a replayed request is refused (SPEC §8)."""

    __tablename__ = "legacy_signature"
    __table_args__ = (Index("ix_legacy_signature_expires", "expires_at"),)

    app_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("app.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    sign: str = Field(sa_column=Column(String(64), primary_key=True, nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class IdempotencyRecord(SQLModel, table=True):
    """The first result of a vendor call with an idempotency key, replayed for 24 h (SPEC §8)."""

    __tablename__ = "idempotency_record"
    __table_args__ = (Index("ix_idempotency_record_created", "created_at"),)

    app_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("app.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    key: str = Field(sa_column=Column(String(128), primary_key=True, nullable=False))
    result: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class VendorBadgeVersion(SQLModel, table=True):
    """The last ``setAppBadge`` version applied for one app and user (SPEC §8)."""

    __tablename__ = "vendor_badge_version"

    app_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("app.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    cid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, primary_key=True, nullable=False))
    version: int = Field(sa_column=Column(BigInteger, nullable=False))


class Device(SQLModel, table=True):
    """A mobile device registered for push notifications (SPEC §9); a push token belongs to
    one user at a time (registering it again moves it)."""

    __tablename__ = "device"
    __table_args__ = (
        CheckConstraint(_in("platform", Platform), name="ck_device_platform"),
        Index("ix_device_user", "cid", "uid"),
    )

    push_token: str = Field(sa_column=Column(String(512), primary_key=True, nullable=False))
    platform: str = Field(sa_column=Column(String(8), nullable=False))
    cid: int = Field(sa_column=Column(BigInteger, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class PushState(enum.StrEnum):
    """Where a push outbox row is: waiting (``PENDING``, possibly leased by a dispatcher),
    delivered (``SENT``), not needed any more (``DROPPED``: read meanwhile), or given up after
    the last retry (``DEAD``)."""

    PENDING = "PENDING"
    SENT = "SENT"
    DROPPED = "DROPPED"
    DEAD = "DEAD"


class PushOutbox(SQLModel, table=True):
    """One push notification to one device (SPEC §4, §9), written in the transaction of the
    notice that caused it and sent by the dispatcher; ``lease_until`` marks a row a dispatcher
    is sending, so that one deployment sends it once even with several processes."""

    __tablename__ = "push_outbox"
    __table_args__ = (
        CheckConstraint(_in("state", PushState), name="ck_push_outbox_state"),
        Index("ix_push_outbox_due", "state", "next_attempt_at"),
        Index("ix_push_outbox_device_app", "push_token", "app_id", "state"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    cid: int = Field(sa_column=Column(BigInteger, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    app_id: int = Field(
        sa_column=Column(Integer, ForeignKey("app.id", ondelete="CASCADE"), nullable=False)
    )
    platform: str = Field(sa_column=Column(String(8), nullable=False))
    push_token: str = Field(sa_column=Column(String(512), nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    state: str = Field(sa_column=Column(String(8), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    lease_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


metadata = SQLModel.metadata
