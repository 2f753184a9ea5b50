"""The optional ``nonce`` of signed legacy mode (issue 11 item 11; SPEC §8).

Without it, two identical legitimate calls in the same second have the same ``sign`` and the
second is refused as a replay (unchanged, for old callers). With it, the nonce is signed like
every parameter, each call's nonce is accepted once per app within the replay window, and a
malformed nonce (empty, over 64 characters, outside ``A-Z a-z 0-9 - . _ ~``) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import text

from imworkbench.settings import Settings
from storage.db import Database
from tests.factories import CREATE_APP, PUSH, Tokens, gql, web

SUCCESS = b'{"Result":true}'
PUSH_FAILURE = b'{"Result":false,"MsgNo":-51007}'
FORM = {"content-type": "application/x-www-form-urlencoded"}
NONCE_RULE = "nonce must be 1 to 64 letters, digits or - . _ ~"


def signed(params: dict[str, str], secret: str, when: int | None = None) -> dict[str, str]:
    """``params`` with ``timestamp`` and the HMAC ``sign`` of SPEC §8 over all of them."""
    with_time = {**params, "timestamp": str(int(time.time()) if when is None else when)}
    message = "&".join(f"{k}={with_time[k]}" for k in sorted(with_time)).encode()
    sign = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {**with_time, "sign": sign}


async def new_app(http: httpx.AsyncClient, tokens: Tokens, *, signed_mode: bool) -> dict[str, Any]:
    """An app on PC, in signed legacy mode or open; its id and secret."""
    app_input = {"name": "签名应用", "identifier": "NonceApp", "pc": web()}
    if signed_mode:
        app_input["legacySigned"] = True
    body = await gql(http, tokens.admin(), CREATE_APP, {"input": app_input})
    payload = body["data"]["createApp"]
    assert payload["errors"] == [], payload
    return {"id": payload["app"]["id"], "secret": payload["appSecret"]}


def notice(app_id: str, **extra: str) -> dict[str, str]:
    """A pushappnotice for user 1001/1034."""
    return {"fromcid": "1001", "fromuid": "1", "appid": app_id, "users": '["1001,1034"]', **extra}


@pytest.fixture
async def db(settings: Settings) -> Any:
    """Direct access to the test database."""
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def unread(db: Database, app_id: str) -> int:
    """User 1001/1034's unread count of ``app_id`` (0 without a row)."""
    async with db.read() as session:
        row = await session.execute(
            text("SELECT unread FROM app_badge WHERE app_id = :a AND cid = 1001 AND uid = 1034"),
            {"a": int(app_id)},
        )
        return row.scalar() or 0


async def test_identical_calls_in_one_second_pass_with_distinct_nonces(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """Two otherwise identical calls with the same timestamp and different nonces both count."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    now = int(time.time())
    # when
    first = await http.post(PUSH, data=signed(notice(app["id"], nonce="a-1"), app["secret"], now))
    second = await http.post(PUSH, data=signed(notice(app["id"], nonce="a-2"), app["secret"], now))
    # then
    assert (first.content, second.content) == (SUCCESS, SUCCESS)
    assert await unread(db, app["id"]) == 2


async def test_a_replay_with_a_nonce_is_refused(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """The same call again is refused, and so is its nonce with a new timestamp (a retry that
    may already have been applied): a nonce is used once."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    call = signed(notice(app["id"], nonce="msg-42"), app["secret"])
    assert (await http.post(PUSH, data=call)).content == SUCCESS
    # when
    replay = await http.post(PUSH, data=call)
    retried = await http.post(
        PUSH, data=signed(notice(app["id"], nonce="msg-42"), app["secret"], int(time.time()) - 2)
    )
    # then
    assert replay.content == retried.content == PUSH_FAILURE
    assert replay.headers["x-error-reason"] == "this nonce was already used (replay)"
    assert retried.headers["x-error-reason"] == "this nonce was already used (replay)"
    assert await unread(db, app["id"]) == 1


async def test_without_a_nonce_old_callers_keep_the_replay_rule(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """Without a nonce an identical call in the same second is a replay, as before; calls in
    different seconds pass."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    now = int(time.time())
    assert (await http.post(PUSH, data=signed(notice(app["id"]), app["secret"], now))).content == (
        SUCCESS
    )
    # when
    again = await http.post(PUSH, data=signed(notice(app["id"]), app["secret"], now))
    later = await http.post(PUSH, data=signed(notice(app["id"]), app["secret"], now - 1))
    # then
    assert again.content == PUSH_FAILURE
    assert again.headers["x-error-reason"] == "this sign was already used (replay)"
    assert later.content == SUCCESS
    assert await unread(db, app["id"]) == 2


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="blank"),
        pytest.param("n" * 65, id="too-long"),
        pytest.param("你好", id="non-ascii"),
        pytest.param("a b", id="space"),
        pytest.param("a&b=c", id="separators"),
        pytest.param("nonce\n", id="newline"),
    ],
)
async def test_a_malformed_nonce_is_refused(
    http: httpx.AsyncClient, tokens: Tokens, db: Database, nonce: str
) -> None:
    """A correctly signed call with a malformed nonce is refused and counts no one."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    # when
    response = await http.post(PUSH, data=signed(notice(app["id"], nonce=nonce), app["secret"]))
    # then
    assert response.content == PUSH_FAILURE
    assert response.headers["x-error-reason"] == NONCE_RULE
    assert await unread(db, app["id"]) == 0


async def test_the_longest_nonce_is_accepted(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """64 characters of every allowed kind are a nonce."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    nonce = ("Az09-._~" * 8)[:64]
    # when
    response = await http.post(PUSH, data=signed(notice(app["id"], nonce=nonce), app["secret"]))
    # then
    assert response.content == SUCCESS, response.headers.get("x-error-reason")


async def test_the_nonce_is_signed(http: httpx.AsyncClient, tokens: Tokens, db: Database) -> None:
    """Changing the nonce of a signed call breaks its sign."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    call = signed(notice(app["id"], nonce="one"), app["secret"])
    # when
    response = await http.post(PUSH, data={**call, "nonce": "two"})
    # then
    assert response.headers["x-error-reason"] == "sign does not match"


@pytest.mark.parametrize("nonce", ["", "n" * 65, "你好"])
async def test_open_apps_ignore_the_nonce(
    http: httpx.AsyncClient, tokens: Tokens, db: Database, nonce: str
) -> None:
    """An app left open ignores ``nonce`` as it ignores ``timestamp`` and ``sign`` (the seed)."""
    # given
    app = await new_app(http, tokens, signed_mode=False)
    # when
    response = await http.post(PUSH, data=notice(app["id"], nonce=nonce))
    # then
    assert response.content == SUCCESS


async def test_a_refused_call_does_not_use_up_its_nonce(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """A signed call refused after its access check (here: a malformed ``users``) changes
    nothing, so its nonce stays free: the corrected call with the same nonce counts once, and
    a replay of that one is refused."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    broken = notice(app["id"], nonce="order-42")
    broken["users"] = '["1001,1034"'
    refused = await http.post(PUSH, data=signed(broken, app["secret"]))
    assert (refused.content, refused.headers["x-error-reason"]) == (
        PUSH_FAILURE,
        "users is not a JSON array",
    )
    # when
    corrected = signed(notice(app["id"], nonce="order-42"), app["secret"])
    accepted = await http.post(PUSH, data=corrected)
    replayed = await http.post(PUSH, data=corrected)
    # then
    assert accepted.content == SUCCESS, accepted.headers.get("x-error-reason")
    assert replayed.headers["x-error-reason"] == "this nonce was already used (replay)"
    assert await unread(db, app["id"]) == 1


async def test_a_refused_call_does_not_use_up_its_sign(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """Without a nonce, a call refused after its access check leaves its ``sign`` unrecorded:
    the refusal is repeated for the same reason, not turned into a replay."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    broken = notice(app["id"])
    broken["users"] = '["1001,1034", "nope"]'
    call = signed(broken, app["secret"])
    # when
    first = await http.post(PUSH, data=call)
    second = await http.post(PUSH, data=call)
    # then
    assert first.headers["x-error-reason"] == second.headers["x-error-reason"]
    assert "replay" not in second.headers["x-error-reason"]
    assert await unread(db, app["id"]) == 0


@pytest.mark.parametrize("name", ["nonce", "timestamp", "sign"])
async def test_a_parameter_of_the_signature_given_twice_is_refused_for_that(
    http: httpx.AsyncClient, tokens: Tokens, db: Database, name: str
) -> None:
    """``nonce``, ``timestamp`` or ``sign`` sent twice (each value signed) is refused with
    that reason, not as a sign that does not match, and counts no one."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    now = int(time.time())
    params = notice(app["id"], nonce="twice-1")
    with_time = {**params, "timestamp": str(now)}
    pairs = sorted(with_time.items())
    second = {"nonce": "twice-2", "timestamp": str(now - 1), "sign": "0" * 64}[name]
    if name != "sign":
        pairs = sorted([*pairs, (name, second)])
    message = "&".join(f"{k}={v}" for k, v in pairs).encode()
    sign = hmac.new(app["secret"].encode(), message, hashlib.sha256).hexdigest()
    pairs.append(("sign", sign))
    if name == "sign":
        pairs.append(("sign", second))
    # when
    response = await http.post(PUSH, content=urlencode(pairs), headers=FORM)
    # then
    assert response.content == PUSH_FAILURE
    assert response.headers["x-error-reason"] == f"{name} given more than once"
    assert await unread(db, app["id"]) == 0


async def test_a_signature_parameter_in_query_and_body_is_given_twice(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """A ``nonce`` in the query string and another in the body is given twice too."""
    # given
    app = await new_app(http, tokens, signed_mode=True)
    call = signed(notice(app["id"], nonce="in-body"), app["secret"])
    # when
    response = await http.post(PUSH, params={"nonce": "in-query"}, data=call)
    # then
    assert response.headers["x-error-reason"] == "nonce given more than once"
    assert await unread(db, app["id"]) == 0


async def test_open_apps_ignore_repeated_signature_parameters(
    http: httpx.AsyncClient, tokens: Tokens
) -> None:
    """An app left open ignores ``nonce``, ``timestamp`` and ``sign``, repeated or not."""
    # given
    app = await new_app(http, tokens, signed_mode=False)
    pairs = [*notice(app["id"]).items(), ("nonce", "a"), ("nonce", "b"), ("sign", "x")]
    # when
    response = await http.post(PUSH, content=urlencode([*pairs, ("sign", "y")]), headers=FORM)
    # then
    assert response.content == SUCCESS
