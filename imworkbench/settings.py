"""Service configuration, read from ``WORKBENCH_*`` environment variables (SPEC §10).

Nothing is read at import time: ``Settings()`` reads the environment when it is built, and tests
build ``Settings(...)`` with explicit values instead.

Every variable, its default and its rule:

- ``WORKBENCH_DATABASE_URL``: ``sqlite+aiosqlite:///./workbench.db``; SQLite
  (``sqlite+aiosqlite://``) or PostgreSQL (``postgresql+asyncpg://``).
- ``WORKBENCH_DB_POOL_SIZE`` (10), ``WORKBENCH_DB_MAX_OVERFLOW`` (20),
  ``WORKBENCH_DB_STATEMENT_TIMEOUT_MS`` (30000; 0: none): PostgreSQL pool and statement limit.
- ``WORKBENCH_DB_BUSY_TIMEOUT_MS`` (30000; 1..3600000): how long a write waits for another
  writer's lock (SQLite busy timeout, PostgreSQL ``lock_timeout``); then "database busy".
- ``WORKBENCH_BROKER_URL``: ``memory://`` (one process) or ``redis://host:6379/0`` (several
  processes; ``?namespace=name`` separates deployments sharing one Redis, default ``wb``).
- ``WORKBENCH_JWT_SECRET``: unset, meaning generated once into ``WORKBENCH_JWT_SECRET_FILE``
  (``.workbench/jwt_secret``); at least 32 characters.
- ``WORKBENCH_CORS_ORIGINS``: ``*``; comma-separated or a JSON list.
- ``WORKBENCH_HOST`` / ``WORKBENCH_PORT``: ``127.0.0.1`` / ``8000`` (1..65535).
- ``WORKBENCH_PUBLIC_URL``: unset; the service's external base URL (``https://im.example.com``)
  for absolute links such as icon URLs; unset, they follow the request's own URL.
- ``WORKBENCH_FORWARDED_ALLOW_IPS``: empty; the reverse proxies (e.g. ``127.0.0.1``) whose
  ``X-Forwarded-For`` is trusted for the client's address; empty trusts none.
- ``WORKBENCH_DEBUG``: ``false``; ``true`` shows unexpected errors' messages to clients.
- ``WORKBENCH_INTROSPECTION``: ``authenticated``; who may introspect the GraphQL schema
  (``__schema``, ``__type``) and see "Did you mean ...?" suggestions in errors: ``everyone``
  (callers without a token too), ``authenticated`` (any valid token), ``administrators``
  (platform and enterprise administrators) or ``nobody``.
- ``WORKBENCH_LOG_FORMAT``: ``console`` (readable lines) or ``json`` (one object per line, for
  production); ``WORKBENCH_LOG_LEVEL``: ``INFO`` (``DEBUG``, ``WARNING``, ``ERROR``).
- ``WORKBENCH_MULTI_INSTANCE``: ``false``; ``true`` declares several processes or machines
  (refused with ``memory://``).
- SSO and vendors (SPEC §5, §8): ``WORKBENCH_SSO_TICKET_TTL_SECONDS`` (300; 10..3600),
  ``WORKBENCH_APP_SECRET_GRACE_SECONDS`` (86400; how long a rotated-out app secret still works,
  0..2592000), ``WORKBENCH_VENDOR_TOKEN_TTL_SECONDS`` (7200; 60..86400).
- Push (SPEC §9): ``WORKBENCH_PUSH_GATEWAY`` (``log`` or ``webhook``),
  ``WORKBENCH_PUSH_WEBHOOK_URL`` and ``WORKBENCH_PUSH_WEBHOOK_SECRET`` (both required for
  ``webhook``; the secret 32+ characters), ``WORKBENCH_PUSH_MAX_ATTEMPTS`` (8; then the row is
  dead-lettered), ``WORKBENCH_PUSH_RETRY_BASE_SECONDS`` (2; doubled per failure, capped at 300),
  ``WORKBENCH_PUSH_COALESCE_SECONDS`` (0.5; notices for one device and app within it make one
  push).
- Limits: ``WORKBENCH_LEGACY_MAX_BODY_BYTES`` (641 KiB: what 10,000 recipients need,
  ``legacy_rest.params.MAX_BODY_BYTES``), ``WORKBENCH_GRAPHQL_MAX_BODY_BYTES`` (1 MiB),
  ``WORKBENCH_WS_MAX_MESSAGE_BYTES`` (64 KiB), ``WORKBENCH_WS_CONNECTION_INIT_TIMEOUT``,
  ``WORKBENCH_WS_PING_INTERVAL`` / ``WORKBENCH_WS_PING_TIMEOUT`` (20 s each),
  ``WORKBENCH_MAX_SUBSCRIPTIONS_PER_CONNECTION``, ``WORKBENCH_QUERY_MAX_DEPTH``,
  ``WORKBENCH_QUERY_MAX_TOKENS``, ``WORKBENCH_QUERY_MAX_ALIASES``.
- ``WORKBENCH_KEEP_ALIVE_TIMEOUT`` (75 s; 1..3600): how long an idle HTTP keep-alive
  connection stays open; longer than proxies' and clients' own (docs/deploy.md).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10


def check_secret(secret: str) -> None:
    """Refuse an HS256 key that is too short or too uniform to resist guessing.

    At least 32 characters (RFC 7518 §3.2 asks for 256 bits) of which at least 10 distinct and
    none of them white space at the ends. Raises ``ValueError``.
    """
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters (RFC 7518 §3.2)")
    if secret != secret.strip() or len(set(secret)) < MIN_SECRET_DISTINCT:
        raise ValueError(
            f"must not be padded with spaces and needs {MIN_SECRET_DISTINCT} distinct characters"
        )


class Settings(BaseSettings):
    """All settings of one service process; see the module docstring for the variables."""

    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="forbid")

    database_url: str = "sqlite+aiosqlite:///./workbench.db"
    # PostgreSQL connection pool per process, and the longest a statement may run.
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=20, ge=0, le=500)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0, le=3_600_000)
    # How long a write waits for another writer's lock (SQLite busy timeout, PostgreSQL
    # lock_timeout) before failing as "database busy".
    db_busy_timeout_ms: int = Field(default=30_000, ge=1, le=3_600_000)
    broker_url: str = "memory://"
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path = Path(".workbench/jwt_secret")
    jwt_issuer: str = "workbench"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    host: str = "127.0.0.1"
    public_url: str | None = None
    # Addresses of reverse proxies whose X-Forwarded-For / -Proto headers are believed
    # (comma-separated IPs or networks, "*" for any); empty: no proxy headers are trusted,
    # so a client cannot pose as another address (IP allowlists, logs).
    forwarded_allow_ips: str = ""
    port: int = Field(default=8000, ge=1, le=65535)
    debug: bool = False
    # Who may introspect the schema and get suggestions (issue 11 item 3; schema.introspection).
    introspection: Literal["everyone", "authenticated", "administrators", "nobody"] = (
        "authenticated"
    )
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Protocol safety limits (issue 2, "protocol safety from the start").
    # legacy_rest.params.MAX_BODY_BYTES (kept equal by a test): 10,000 recipients' worth.
    legacy_max_body_bytes: int = Field(default=656_384, ge=1024, le=64 * 1024 * 1024)
    graphql_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    ws_max_message_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    ws_connection_init_timeout: float = Field(default=10.0, gt=0, le=300)
    # Server pings on every WebSocket; a client that does not answer within the timeout is
    # dropped, freeing its subscriptions (issue 5 "dead clients").
    ws_ping_interval: float = Field(default=20.0, gt=0, le=600)
    ws_ping_timeout: float = Field(default=20.0, gt=0, le=600)
    # Seconds an idle HTTP keep-alive connection stays open (issue 11 item 10): longer than
    # clients and proxies keep theirs (nginx and AWS ALB 60 s), so they close first.
    keep_alive_timeout: float = Field(default=75.0, ge=1, le=3600)
    max_subscriptions_per_connection: int = Field(default=20, ge=1, le=1000)
    # Messages one WebSocket connection may send: a sustained rate per second and a burst
    # (token bucket); past it the connection is closed with 4429 (issue 11 item 2).
    ws_messages_per_second: float = Field(default=20.0, gt=0, le=100_000)
    ws_message_burst: int = Field(default=100, ge=1, le=100_000)
    query_max_depth: int = Field(default=12, ge=2, le=100)
    query_max_tokens: int = Field(default=2000, ge=50, le=100_000)
    query_max_aliases: int = Field(default=30, ge=1, le=10_000)

    # Declares that several processes serve this deployment (issue 5): needs a shared broker.
    multi_instance: bool = False

    # Single sign-on and vendor credentials (issue 4).
    sso_ticket_ttl_seconds: int = Field(default=300, ge=10, le=3600)
    app_secret_grace_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)
    vendor_token_ttl_seconds: int = Field(default=7200, ge=60, le=86_400)

    # Push notifications (issue 4, SPEC §9).
    push_gateway: Literal["log", "webhook"] = "log"
    push_webhook_url: str | None = None
    push_webhook_secret: SecretStr | None = None
    push_max_attempts: int = Field(default=8, ge=1, le=50)
    push_retry_base_seconds: float = Field(default=2.0, ge=0.01, le=3600)
    push_coalesce_seconds: float = Field(default=0.5, ge=0, le=60)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                f"(got {value.split('://', 1)[0]!r})"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if value == "memory://":
            return value
        if not re.fullmatch(r"rediss?://[^\s/?#]*(/[0-9]{0,2})?(\?[^\s#]*)?", value):
            raise ValueError(
                "must be memory:// (one process) or redis://[user:password@]host[:port][/db]"
                f"[?namespace=name] (got {value.split('://', 1)[0]!r}://...)"
            )
        return value

    @field_validator("push_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", value):
            raise ValueError("must be an absolute http(s) URL such as https://push.example.com/")
        return value

    @field_validator("push_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _shared_broker(self) -> Settings:
        if self.multi_instance and self.broker_url == "memory://":
            raise ValueError(
                "WORKBENCH_MULTI_INSTANCE=true needs WORKBENCH_BROKER_URL=redis://...: with "
                "memory:// each process would see only its own clients' events"
            )
        return self

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if self.push_gateway == "webhook" and (
            self.push_webhook_url is None or self.push_webhook_secret is None
        ):
            raise ValueError(
                "WORKBENCH_PUSH_GATEWAY=webhook needs WORKBENCH_PUSH_WEBHOOK_URL and "
                "WORKBENCH_PUSH_WEBHOOK_SECRET"
            )
        return self

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value())
        return value

    @field_validator("host")
    @classmethod
    def _host_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name an interface, e.g. 127.0.0.1 (empty would mean all)")
        return value.strip()

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or len(value.split("/")[2]) == 0:
            raise ValueError("must be an absolute http(s) URL such as https://im.example.com")
        return value.rstrip("/")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    decoded = json.loads(text)
                except ValueError as error:
                    raise ValueError(f"not a JSON list: {error}") from error
                if not isinstance(decoded, list) or not all(isinstance(o, str) for o in decoded):
                    raise ValueError("must be a JSON list of strings")
                return decoded
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: use * or scheme://host[:port], no path"
                )
        return value

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str]) -> list[str]:
        """``WORKBENCH_*`` names in ``environ`` that configure nothing, each with a suggestion.

        ``WORKBENCH_TEST_*`` (the test suite's own) are not settings and are ignored.
        """
        known = {f"WORKBENCH_{name.upper()}" for name in cls.model_fields}
        problems = []
        for name in sorted(environ):
            upper = name.upper()
            if not upper.startswith("WORKBENCH_") or upper.startswith("WORKBENCH_TEST_"):
                continue
            if upper not in known:
                close = difflib.get_close_matches(upper, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(f"{name}: unknown setting{hint}")
        return problems

    def secret_key(self) -> str:
        """Return the JWT signing key (HS256).

        The configured ``jwt_secret`` when set; otherwise the key kept in ``jwt_secret_file``,
        created with 256 random bits and mode 0600 on first use, so that ``workbench serve`` and
        ``workbench token`` run from the same folder agree without any configuration.

        Raises ``ValueError`` when the kept file cannot be read, is not a regular file, grants
        any permission to group or others (so ``/etc/passwd`` is never a key), or holds a key that
        ``check_secret`` refuses.
        """
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.jwt_secret_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process created it first
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise ValueError(f"{path}: not a regular file")
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ValueError(
                    f"{path}: readable by others (mode {stat.S_IMODE(mode):o}); "
                    "a signing key must be private: chmod 600"
                )
            key = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{path}: cannot read the key: {error}") from error
        try:
            check_secret(key)
        except ValueError as error:
            raise ValueError(f"{path}: the key {error}") from None
        return key
