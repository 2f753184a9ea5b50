"""Legacy bodies sent to cost the server (issue 11 item 4): cheap limits (recipient count,
unknown app, body size) are checked before expensive work, and percent-escape bodies are decoded
without the standard library's per-escape objects.

The order of the checks is observed through the reason a refusal gives: a list that is too long
is refused for its length although a later entry is malformed, an unknown app is refused
although its ``users`` is malformed. Speed itself is measured by ``benchmarks`` (legacy-flood).
A multipart body cut before its closing boundary is refused as such (issue 11 M3).
"""

from __future__ import annotations

import json
import logging
import tracemalloc
from typing import Any

import httpx
import pytest

from imworkbench.settings import Settings
from legacy_rest import MAX_BODY_BYTES
from tests.factories import GETAPPID, PUSH, Tokens, create_app

PUSH_FAILURE = b'{"Result":false,"MsgNo":-51007}'
GETAPPID_FAILURE = b'{"Result":false,"MsgNo":-51001}'
FORM = {"content-type": "application/x-www-form-urlencoded"}
LONGEST_ID = str(2**63 - 1)  # 19 digits, the largest id (SPEC §2)


def assert_refused(response: httpx.Response, body: bytes, reason: str) -> None:
    """HTTP 200, exactly the failure ``body``, and ``reason`` in ``X-Error-Reason``."""
    assert response.status_code == 200
    assert response.content == body
    assert reason in response.headers["x-error-reason"], response.headers["x-error-reason"]


def raw_push_body(app_id: str, users: str) -> bytes:
    """A pushappnotice form body with ``users`` sent unescaped (as PHP's parser accepts)."""
    return f"fromcid=1001&fromuid=187&appid={app_id}&users={users}".encode()


@pytest.fixture
async def app(http: httpx.AsyncClient, tokens: Tokens) -> dict[str, Any]:
    """An enabled app on every platform, audience ALL."""
    return await create_app(http, tokens.admin(), identifier="HostileApp")


async def test_an_overlong_json_users_list_is_refused_for_its_length(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """75,000 entries are refused for their count (over 20,000) before entry 60,000
    (malformed) is read."""
    # given
    entries = ["1,1"] * 75_000
    entries[60_000] = "x,1"
    users = json.dumps(entries, separators=(",", ":"))
    # when
    response = await http.post(PUSH, content=raw_push_body(app["id"], users), headers=FORM)
    # then
    assert_refused(response, PUSH_FAILURE, "users lists more than 20000 entries")


async def test_an_overlong_list_of_numbers_is_refused_for_its_length(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """25,000 numbers (one comma each) are refused for their count, not entry by entry."""
    # given
    users = json.dumps(list(range(25_000)), separators=(",", ":"))
    # when
    response = await http.post(PUSH, content=raw_push_body(app["id"], users), headers=FORM)
    # then
    assert_refused(response, PUSH_FAILURE, "users lists 25000 entries, more than 20000")


async def test_an_overlong_jquery_users_list_is_refused_for_its_length(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """25,000 ``users[]`` fields are refused for their count before any field is decoded."""
    # given
    entries = ["1,1"] * 25_000
    entries[12_000] = "x,1"
    body = raw_push_body(app["id"], "x").replace(b"&users=x", b"")
    body += b"".join(b"&users[]=" + entry.encode() for entry in entries)
    # when
    response = await http.post(PUSH, content=body, headers=FORM)
    # then
    assert_refused(response, PUSH_FAILURE, "more than 20000 fields")


@pytest.mark.parametrize(
    "users",
    [
        pytest.param("[" * 50_000, id="not-json"),
        pytest.param(json.dumps(["x,1"] * 20_000), id="malformed-entries"),
    ],
)
async def test_an_unknown_app_is_refused_before_users_is_read(
    http: httpx.AsyncClient, app: dict[str, Any], users: str
) -> None:
    """A notice for an app that does not exist is refused as such, whatever ``users`` holds."""
    # given
    unknown = str(int(app["id"]) + 1000)
    # when
    response = await http.post(PUSH, content=raw_push_body(unknown, users), headers=FORM)
    # then
    assert_refused(response, PUSH_FAILURE, f"app {unknown} not found")


async def test_the_longest_ten_thousand_recipient_notice_fits_the_body_cap(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """10,000 recipients with 19-digit ids, jQuery-encoded (the most bytes a legitimate notice
    needs), fit under the default body cap and are accepted."""
    # given
    form: dict[str, Any] = {
        "fromcid": LONGEST_ID,
        "fromuid": LONGEST_ID,
        "appid": app["id"],
        "users[]": [f"{LONGEST_ID},{LONGEST_ID[:-5]}{n:05d}" for n in range(10_000)],
    }
    # when
    response = await http.post(PUSH, data=form)
    # then
    assert len(response.request.content) <= MAX_BODY_BYTES
    assert response.content == b'{"Result":true}', response.headers.get("x-error-reason")


def test_the_default_body_cap_is_what_ten_thousand_recipients_need() -> None:
    """The legacy body cap defaults to the size computed for 10,000 recipients, not 1 MiB."""
    assert Settings.model_fields["legacy_max_body_bytes"].default == MAX_BODY_BYTES < 1024 * 1024


async def test_a_body_of_percent_escapes_is_decoded_in_little_memory(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A cap-sized body of percent-escapes is answered while the process allocates at most a
    several times the body's size at once (the standard decoder made ~75 bytes per byte)."""
    # given
    head = f"appkey={app['appKey']}&pad=".encode()
    body = head + b"%41" * ((MAX_BODY_BYTES - len(head)) // 3)
    # when
    tracemalloc.start()
    try:
        response = await http.post(GETAPPID, content=body, headers=FORM)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then
    assert response.content == b'{"Result":true,"MsgNo":{"app_id":"%s"}}' % app["id"].encode()
    assert peak < 16 * len(body), peak


async def test_hostile_bodies_log_no_error(
    http: httpx.AsyncClient, app: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Overlong lists, unknown apps and escape floods are client mistakes: no ERROR line."""
    # given
    caplog.set_level(logging.INFO)
    bodies = [
        raw_push_body(app["id"], json.dumps(["1,1"] * 25_000)),
        raw_push_body("999999", "[" * 50_000),
        b"appkey=" + b"%FF" * 1000,
    ]
    # when
    for body in bodies:
        response = await http.post(PUSH, content=body, headers=FORM)
        assert response.content == PUSH_FAILURE
    # then
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_multipart_body_of_many_tiny_parts_is_refused_at_the_field_limit(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """A cap-sized multipart body of ~12,000 empty parts is refused once it passes 2,000
    fields (the pure-Python multipart parser costs ~10 µs a part)."""
    # given
    part = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n\r\n'
    head = b'--B\r\nContent-Disposition: form-data; name="appkey"\r\n\r\n%s\r\n' % (
        app["appKey"].encode()
    )
    body = head + part * ((MAX_BODY_BYTES - len(head) - 7) // len(part)) + b"--B--\r\n"
    # when
    response = await http.post(
        GETAPPID, content=body, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    # then
    assert_refused(response, GETAPPID_FAILURE, "more than 2000 fields")


async def test_a_multipart_body_of_two_thousand_fields_is_read(
    http: httpx.AsyncClient, app: dict[str, Any]
) -> None:
    """Up to 2,000 multipart fields are read (an app key and 1,999 others)."""
    # given
    part = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n\r\n'
    head = b'--B\r\nContent-Disposition: form-data; name="appkey"\r\n\r\n%s\r\n' % (
        app["appKey"].encode()
    )
    body = head + part * 1_999 + b"--B--\r\n"
    # when
    response = await http.post(
        GETAPPID, content=body, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    # then
    assert response.content == b'{"Result":true,"MsgNo":{"app_id":"%s"}}' % app["id"].encode()


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(b"--B--\r\n", id="before-the-closing-boundary"),
        pytest.param(b'1034"]\r\n--B--\r\n', id="inside-the-users-field"),
        pytest.param(b'name="users"\r\n\r\n["1001,1034"]\r\n--B--\r\n', id="inside-a-part-header"),
    ],
)
async def test_a_truncated_multipart_body_is_refused_as_truncated(
    http: httpx.AsyncClient, app: dict[str, Any], caplog: pytest.LogCaptureFixture, cut: bytes
) -> None:
    """A multipart body that ends before its closing boundary is refused for that, not for a
    parameter the cut happened to lose, with no ERROR log line."""
    # given
    fields = {"fromcid": "1001", "fromuid": "187", "appid": app["id"], "users": '["1001,1034"]'}
    whole = (
        b"".join(
            b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (name.encode(), value.encode())
            for name, value in fields.items()
        )
        + b"--B--\r\n"
    )
    assert whole.endswith(cut)
    caplog.set_level(logging.DEBUG)
    # when
    response = await http.post(
        PUSH,
        content=whole[: -len(cut)],
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    # then
    assert_refused(response, PUSH_FAILURE, "the multipart body is malformed or truncated")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
