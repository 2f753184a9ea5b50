"""Bearer JWTs become principals; every bad token is refused with a reason (SPEC §7)."""

from __future__ import annotations

import time

import jwt
import pytest

from resolvers.errors import NotAuthenticated
from resolvers.identity import Principal, Role
from resolvers.tokens import TokenCodec

KEY = "k" * 64


def forged(claims: dict, key: str = KEY) -> str:
    """A token with exactly ``claims``."""
    return jwt.encode(claims, key, algorithm="HS256")


def claims(**overrides) -> dict:
    """Valid claims, with overrides (``None`` removes a claim)."""
    base = {
        "iss": "workbench",
        # Far enough ahead that a token built at collection time is still valid when its
        # parametrised test runs, minutes later on a loaded machine.
        "exp": int(time.time()) + 24 * 3600,
        "cid": "1001",
        "uid": "1034",
        "account": "zhang.san",
        "role": "user",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_round_trip():
    """An issued token verifies to the same identity."""
    codec = TokenCodec(KEY)
    token = codec.issue(cid=1001, uid=1034, role=Role.PLATFORM_ADMIN, account="li.si")
    assert codec.verify(token) == Principal(1001, 1034, "li.si", Role.PLATFORM_ADMIN)


def test_numeric_claims_and_vendor_app_id():
    """Ids may be JSON numbers; a vendor token carries its app id."""
    principal = TokenCodec(KEY).verify(forged(claims(cid=7, uid=8, role="vendor", app_id=77)))
    assert (principal.cid, principal.uid, principal.app_id, principal.role) == (
        7,
        8,
        77,
        Role.VENDOR,
    )


def test_bearer_header_forms():
    """'Bearer <t>' in any case of the scheme is accepted."""
    codec = TokenCodec(KEY)
    token = codec.issue(cid=1, uid=2)
    assert codec.from_header(f"bearer {token}").uid == 2
    assert codec.from_header(f"  Bearer   {token} ").uid == 2


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (forged(claims(exp=int(time.time()) - 120)), "expired"),
        (forged(claims(), key="x" * 64), "bad signature"),
        (forged(claims(exp=10**400)), "too far in the future"),
        (forged(claims(exp=int(time.time()) + 400 * 86400)), "too far in the future"),
        (forged(claims(exp="tomorrow")), "malformed"),
        (forged(claims(exp=None)), "exp"),
        (forged(claims(cid=None)), "cid"),
        (forged(claims(role=None)), "role"),
        (forged(claims(role="root")), "claims"),
        (forged(claims(cid="10a1")), "claims"),
        (forged(claims(uid="-5")), "claims"),
        (forged(claims(uid="1" * 20)), "claims"),
        (forged(claims(uid=True)), "claims"),
        (forged(claims(iss="someone-else")), "wrong issuer"),
        (forged(claims(role="vendor")), "app_id"),
        (jwt.encode(claims(), KEY, algorithm="HS512"), "invalid token"),
        ("not.a.token", "invalid token: malformed"),
        ("", "invalid token"),
    ],
)
def test_bad_tokens_are_refused(token, reason):
    """Expired, forged, incomplete or malformed tokens raise NotAuthenticated."""
    with pytest.raises(NotAuthenticated, match=reason):
        TokenCodec(KEY).verify(token)


def test_unsigned_token_is_refused():
    """alg=none tokens are never accepted."""
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(NotAuthenticated):
        TokenCodec(KEY).verify(token)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Token abc", "Basic dTpw"])
def test_bad_authorization_headers(header):
    """Missing or non-Bearer Authorization values are refused."""
    with pytest.raises(NotAuthenticated):
        TokenCodec(KEY).from_header(header)
