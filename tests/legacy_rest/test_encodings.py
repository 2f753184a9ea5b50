"""Bytes that are not UTF-8 in legacy calls (issue 11 item 11): an old PHP page sends GBK.

The endpoints read only ids, keys, tickets and numbers, none of which can hold such bytes. So
a parameter the endpoint reads is refused by name when it is not UTF-8, and any other parameter
(a GBK ``memo``, as PHP pages send) is ignored like every parameter the endpoint does not read;
in signed mode it is still covered by ``sign``, byte for byte. Nothing is decoded as another
charset, nothing is replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from imworkbench.settings import Settings
from storage.db import Database
from tests.factories import CREATE_APP, GETAPPID, PUSH, SETNUM, Tokens, create_app, gql, web

SUCCESS = b'{"Result":true}'
PUSH_FAILURE = b'{"Result":false,"MsgNo":-51007}'
FORM = {"content-type": "application/x-www-form-urlencoded"}
GBK = "你好".encode("gbk")  # b"\xc4\xe3\xba\xc3": not UTF-8
GBK_ESCAPED = "".join(f"%{byte:02X}" for byte in GBK).encode()
USERS = b"%5B%221001%2C1034%22%5D"


def multipart(fields: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart/form-data body (boundary ``B``) of ``fields`` as raw bytes."""
    parts = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % field
        for field in fields
    )
    return parts + b"--B--\r\n"


@pytest.fixture
async def app(http: httpx.AsyncClient, tokens: Tokens) -> dict[str, Any]:
    """An enabled app on every platform, audience ALL."""
    return await create_app(http, tokens.admin(), identifier="EncodingApp")


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


@pytest.mark.parametrize(
    ("query", "content", "content_type"),
    [
        pytest.param(b"", b"memo=" + GBK_ESCAPED, FORM["content-type"], id="escaped"),
        pytest.param(b"", b"memo=" + GBK, FORM["content-type"], id="raw"),
        pytest.param(b"", GBK_ESCAPED + b"=1", FORM["content-type"], id="in-a-name"),
        pytest.param(b"memo=" + GBK_ESCAPED, b"", FORM["content-type"], id="query-string"),
        pytest.param(b"", b"", "multipart/form-data; boundary=B", id="multipart"),
    ],
)
async def test_a_gbk_field_the_endpoint_does_not_read_is_ignored(
    http: httpx.AsyncClient,
    db: Database,
    app: dict[str, Any],
    query: bytes,
    content: bytes,
    content_type: str,
) -> None:
    """A GBK ``memo`` anywhere (escaped, raw, in a name, in the query, in multipart) does not
    fail the notice: it is counted as if the memo were not there."""
    # given
    fields = f"fromcid=1001&fromuid=187&appid={app['id']}&users=".encode() + USERS
    if content_type.startswith("multipart"):
        body = multipart(
            [
                (b"fromcid", b"1001"),
                (b"fromuid", b"187"),
                (b"appid", app["id"].encode()),
                (b"users", b'["1001,1034"]'),
                (b"memo", GBK),
            ]
        )
    else:
        body = fields + b"&" + content if content else fields
    url = PUSH + ("?" + query.decode() if query else "")
    # when
    response = await http.post(url, content=body, headers={"content-type": content_type})
    # then
    assert response.content == SUCCESS, response.headers.get("x-error-reason")
    assert await unread(db, app["id"]) == 1


@pytest.mark.parametrize(
    ("path", "fields", "name"),
    [
        pytest.param(
            PUSH, b"fromcid=1001&fromuid=187&appid=%C4%E3&users=" + USERS, "appid", id="appid"
        ),
        pytest.param(
            PUSH,
            b"fromcid=1001&fromuid=187&appid={app}&users=%5B%22" + GBK_ESCAPED + b"%22%5D",
            "users",
            id="users-json",
        ),
        pytest.param(
            PUSH,
            b"fromcid=1001&fromuid=187&appid={app}&users[]=1001,1034&users[]=" + GBK,
            "users",
            id="users-jquery",
        ),
        pytest.param(
            PUSH,
            b"fromcid=" + GBK + b"&fromuid=187&appid={app}&users=" + USERS,
            "fromcid",
            id="raw",
        ),
        pytest.param(SETNUM, b"appid={app}&cid=1001&uid=1034&num=%C4", "num", id="setnum-num"),
        pytest.param(GETAPPID, b"appkey=%FF", "appkey", id="getappid-appkey"),
    ],
)
async def test_a_read_field_that_is_not_utf8_is_refused_by_name(
    http: httpx.AsyncClient, db: Database, app: dict[str, Any], path: str, fields: bytes, name: str
) -> None:
    """A parameter the endpoint reads that holds non-UTF-8 bytes fails the call, naming it;
    nothing is counted."""
    # given
    body = fields.replace(b"{app}", app["id"].encode())
    # when
    response = await http.post(path, content=body, headers=FORM)
    # then
    assert response.content.startswith(b'{"Result":false')
    assert response.headers["x-error-reason"] == f"{name} is not valid UTF-8"
    assert await unread(db, app["id"]) == 0


async def test_a_signed_call_covers_a_gbk_field_byte_for_byte(
    http: httpx.AsyncClient, tokens: Tokens, db: Database
) -> None:
    """In signed mode the sign over the raw bytes of a GBK ``memo`` verifies (PHP's
    ``hash_hmac`` signs bytes); the same call with another memo does not."""
    # given
    body = await gql(
        http,
        tokens.admin(),
        CREATE_APP,
        {
            "input": {
                "name": "签名应用",
                "identifier": "SignedGbk",
                "pc": web(),
                "legacySigned": True,
            }
        },
    )
    created = body["data"]["createApp"]
    app_id, secret = created["app"]["id"], created["appSecret"]
    params = {
        b"appid": app_id.encode(),
        b"fromcid": b"1001",
        b"fromuid": b"187",
        b"memo": GBK,
        b"timestamp": str(int(time.time())).encode(),
        b"users": json.dumps(["1001,1034"]).encode(),
    }
    message = b"&".join(name + b"=" + params[name] for name in sorted(params))
    sign = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()

    def encoded(memo: bytes) -> bytes:
        sent = {**params, b"memo": memo, b"sign": sign}
        escaped = {k: b"".join(b"%%%02X" % byte for byte in v) for k, v in sent.items()}
        return b"&".join(k + b"=" + v for k, v in escaped.items())

    # when
    tampered = await http.post(PUSH, content=encoded(GBK[:2]), headers=FORM)
    response = await http.post(PUSH, content=encoded(GBK), headers=FORM)
    # then
    assert tampered.headers["x-error-reason"] == "sign does not match"
    assert response.content == SUCCESS, response.headers.get("x-error-reason")
