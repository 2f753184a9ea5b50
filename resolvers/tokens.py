"""Authentication only: a bearer JWT becomes a ``Principal`` (SPEC §7). Used by the GraphQL
view for HTTP and WebSocket connections alike, and by ``workbench token`` to mint tokens; the
legacy endpoints authenticate vendors by app key and signature instead (``resolvers.vendor``).

Tokens are HS256 JWTs (RFC 7519) signed with ``Settings.secret_key()``. Claims: ``cid``,
``uid`` (decimal ids, as numbers or strings), ``account``, ``role`` (``user``,
``enterprise_admin``, ``platform_admin``, ``vendor``), ``exp`` (required), ``app_id`` (vendors).
"""

from __future__ import annotations

import time
from typing import Any

import jwt

from resolvers.errors import InvalidInput, NotAuthenticated
from resolvers.identity import Principal, Role, parse_id

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
DEFAULT_TTL_SECONDS = 12 * 3600
# Tokens living longer than a year are refused: no issuer of ours needs them, and a bounded
# expiry keeps the WebSocket expiry timer finite.
MAX_LIFETIME_SECONDS = 366 * 86400


class TokenCodec:
    """Signs and verifies workbench tokens with one key (``key``: the HS256 secret)."""

    def __init__(self, key: str, *, issuer: str = "workbench") -> None:
        self._key = key
        self._issuer = issuer

    def issue(
        self,
        *,
        cid: int,
        uid: int,
        role: Role = Role.USER,
        account: str | None = None,
        app_id: int | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> str:
        """A signed token for the given identity, valid ``ttl_seconds`` from now."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "iat": now,
            "exp": now + ttl_seconds,
            "cid": str(cid),
            "uid": str(uid),
            "account": account or f"user{uid}",
            "role": role.value,
        }
        if app_id is not None:
            claims["app_id"] = str(app_id)
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token. Raises ``NotAuthenticated`` with the reason."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "cid", "uid", "role"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise NotAuthenticated("token expired") from error
        except jwt.MissingRequiredClaimError as error:
            raise NotAuthenticated(f"invalid token: missing claim {error.claim}") from error
        except jwt.InvalidSignatureError as error:
            raise NotAuthenticated("invalid token: bad signature") from error
        except jwt.InvalidIssuerError as error:
            raise NotAuthenticated("invalid token: wrong issuer") from error
        except jwt.InvalidTokenError as error:
            # The library's own text may quote decoder internals: keep the reason generic.
            raise NotAuthenticated("invalid token: malformed") from error
        if not isinstance(claims["exp"], int) or claims["exp"] > time.time() + MAX_LIFETIME_SECONDS:
            raise NotAuthenticated("invalid token: expires too far in the future")
        try:
            role = Role(claims["role"])
            cid = parse_id(claims["cid"], "cid")
            uid = parse_id(claims["uid"], "uid")
            app_id = (
                parse_id(claims["app_id"], "app_id") if claims.get("app_id") is not None else None
            )
        except (ValueError, InvalidInput) as error:
            raise NotAuthenticated(f"invalid token claims: {error}") from error
        if role is Role.VENDOR and app_id is None:
            raise NotAuthenticated("invalid token claims: a vendor token needs app_id")
        account = claims.get("account")
        if not isinstance(account, str) or not account:
            account = str(uid)
        return Principal(
            cid=cid,
            uid=uid,
            account=account,
            role=role,
            app_id=app_id,
            expires_at=int(claims["exp"]),
        )

    def from_header(self, value: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <token>`` value (RFC 6750 §2.1)."""
        if not value:
            raise NotAuthenticated("missing Authorization: Bearer token")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Authorization must be 'Bearer <token>'")
        return self.verify(token.strip())
