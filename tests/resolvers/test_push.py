"""Mobile push (SPEC §4, §9; issue 4 items 5-6): devices, the outbox, the dispatcher and the
webhook gateway, tested end to end against a real local HTTP server standing in for the push
service; and the ``notifications`` subscription."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from imworkbench.settings import Settings
from storage.db import Database
from storage.models import PushState
from storage.push import outbox_counts
from tests.factories import (
    JWT_SECRET,
    SETNUM,
    TIMEOUT,
    TRANSPORT_WS,
    broker_url,
    create_app,
    free_socket,
    gql,
    push,
    running,
    ws_client,
)

WEBHOOK_SECRET = "push-webhook-secret-0123456789-abcdefghij"
REGISTER = """
mutation($p: Platform!, $t: String!) {
  registerDevice(platform: $p, pushToken: $t) { pushToken platform errors { field code } }
}
"""
UNREGISTER = """
mutation($t: String!) { unregisterDevice(pushToken: $t) { removed errors { field code } } }
"""


@dataclass
class PushService:
    """A real HTTP server recording the webhook's requests; answers ``statuses`` in turn
    (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)

    async def wait_for(self, count: int, seconds: float = TIMEOUT) -> None:
        """Wait until ``count`` pushes were delivered (answered 2xx)."""
        for _ in range(int(seconds * 50)):
            if len(self.delivered) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.delivered)} pushes delivered, wanted {count}")


@asynccontextmanager
async def push_service() -> AsyncIterator[PushService]:
    """Serve a ``PushService`` on a free loopback port."""
    sock = free_socket()
    service = PushService(url=f"http://127.0.0.1:{sock.getsockname()[1]}/push")

    async def receive(request: Request) -> Response:
        body = await request.body()
        service.received.append((body, dict(request.headers)))
        status = service.statuses.pop(0) if service.statuses else 200
        if status == 200:
            service.delivered.append(json.loads(body))
        return Response(status_code=status)

    app = Starlette(routes=[Route("/push", receive, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(int(TIMEOUT * 100)):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield service
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        sock.close()


@pytest.fixture
async def gateway() -> AsyncIterator[PushService]:
    """The stand-in push service."""
    async with push_service() as service:
        yield service


@pytest.fixture
def settings(database_url, tmp_path, gateway: PushService) -> Settings:
    """Settings with the webhook gateway, fast retries and a short coalescing window."""
    return Settings(
        database_url=database_url,
        broker_url=broker_url(),
        jwt_secret=JWT_SECRET,
        jwt_secret_file=tmp_path / "unused-secret",
        push_gateway="webhook",
        push_webhook_url=gateway.url,
        push_webhook_secret=WEBHOOK_SECRET,
        push_retry_base_seconds=0.05,
        push_coalesce_seconds=0.2,
        push_max_attempts=4,
    )


async def register(http, token: str, push_token: str, platform: str = "ANDROID") -> dict:
    """registerDevice's payload."""
    body = await gql(http, token, REGISTER, {"p": platform, "t": push_token})
    return body["data"]["registerDevice"]


async def counts(settings: Settings) -> dict[PushState, int]:
    """Outbox rows by state."""
    db = Database(settings.database_url)
    try:
        async with db.read() as session:
            return await outbox_counts(session)
    finally:
        await db.dispose()


async def test_registered_android_device_gets_the_signed_push(http, tokens, gateway):
    """Acceptance: the webhook receives the exact text, signed, with the badge."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Pushing", name="审批助手")
    assert (await register(http, tokens.user(), "android-token-1"))["errors"] == []
    # when
    await push(http, app["id"], ["1001,1034"])
    # then
    await gateway.wait_for(1)
    body, headers = gateway.received[0]
    assert json.loads(body) == {
        "platform": "ANDROID",
        "pushToken": "android-token-1",
        "cid": "1001",
        "uid": "1034",
        "appId": app["id"],
        "text": "您收到一条来自 “审批助手” 的消息。",
        "badge": 1,
    }
    expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-workbench-signature"] == f"sha256={expected}"
    assert headers["content-type"].startswith("application/json")


async def test_failures_are_retried_until_delivered(http, tokens, gateway, settings):
    """The service answers 500 twice; the push still arrives, once."""
    app = await create_app(http, tokens.admin(), identifier="Retried")
    await register(http, tokens.user(), "android-token-2")
    gateway.statuses = [500, 500]
    await push(http, app["id"], ["1001,1034"])
    await gateway.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(gateway.received) == 3
    assert len(gateway.delivered) == 1
    assert (await counts(settings))[PushState.SENT] == 1


async def test_restart_between_failure_and_retry_loses_nothing(tokens, gateway, settings):
    """The service fails once, the server restarts before the retry, and the push arrives
    exactly once after the restart."""
    slow_retry = settings.model_copy(update={"push_retry_base_seconds": 1.0})
    gateway.statuses = [500]
    async with running(slow_retry) as first, httpx.AsyncClient(base_url=first.http_url) as http:
        app = await create_app(http, tokens.admin(), identifier="Restarted")
        await register(http, tokens.user(), "android-token-3")
        await push(http, app["id"], ["1001,1034"])
        for _ in range(200):
            if gateway.received:
                break
            await asyncio.sleep(0.02)
        assert len(gateway.received) == 1  # the failure
    assert gateway.delivered == []
    async with running(slow_retry):
        await gateway.wait_for(1)
        await asyncio.sleep(0.5)
    assert len(gateway.delivered) == 1
    assert (await counts(settings))[PushState.SENT] == 1


async def test_read_on_pc_before_dispatch_sends_nothing(http, tokens, gateway, settings):
    """A notice read (setnum) before its push leaves is dropped, not sent."""
    slow = await create_app(http, tokens.admin(), identifier="ReadFirst")
    await register(http, tokens.user(), "android-token-4")
    await push(http, slow["id"], ["1001,1034"])
    await http.post(SETNUM, data={"appid": slow["id"], "cid": "1001", "uid": "1034"})
    for _ in range(100):
        if (await counts(settings))[PushState.DROPPED] == 1:
            break
        await asyncio.sleep(0.02)
    assert (await counts(settings))[PushState.DROPPED] == 1
    assert gateway.received == []


async def test_bursts_coalesce_into_one_push_with_the_latest_badge(http, tokens, gateway):
    """Three notices within the window make one push carrying badge 3."""
    app = await create_app(http, tokens.admin(), identifier="Bursty")
    await register(http, tokens.user(), "android-token-5")
    for _ in range(3):
        await push(http, app["id"], ["1001,1034"])
    await gateway.wait_for(1)
    await asyncio.sleep(0.4)
    assert [p["badge"] for p in gateway.delivered] == [3]


async def test_dead_letter_after_the_last_attempt(http, tokens, gateway, settings):
    """A push the service always refuses is DEAD after push_max_attempts (4) tries."""
    app = await create_app(http, tokens.admin(), identifier="Refused")
    await register(http, tokens.user(), "android-token-6")
    gateway.statuses = [503] * 10
    await push(http, app["id"], ["1001,1034"])
    for _ in range(250):
        if (await counts(settings))[PushState.DEAD] == 1:
            break
        await asyncio.sleep(0.02)
    assert (await counts(settings))[PushState.DEAD] == 1
    assert len(gateway.received) == 4


async def test_only_mobile_platforms_the_app_is_on_are_pushed(http, tokens, gateway, settings):
    """A PC-only app's notice pushes nothing to the phone; an IOS device gets IOS pushes."""
    pc_only = await create_app(http, tokens.admin(), identifier="PcOnly", android=None, ios=None)
    both = await create_app(http, tokens.admin(), identifier="Mobile")
    await register(http, tokens.user(), "ios-token-1", "IOS")
    await push(http, pc_only["id"], ["1001,1034"])
    await push(http, both["id"], ["1001,1034"])
    await gateway.wait_for(1)
    await asyncio.sleep(0.3)
    assert [(p["appId"], p["platform"]) for p in gateway.delivered] == [(both["id"], "IOS")]


async def test_unregistered_device_gets_nothing(http, tokens, gateway, settings):
    """After unregisterDevice, notices push nothing; another user cannot unregister it."""
    app = await create_app(http, tokens.admin(), identifier="Forgotten")
    await register(http, tokens.user(), "android-token-7")
    other = await gql(http, tokens.user(uid=5), UNREGISTER, {"t": "android-token-7"})
    assert other["data"]["unregisterDevice"] == {"removed": False, "errors": []}
    own = await gql(http, tokens.user(), UNREGISTER, {"t": "android-token-7"})
    assert own["data"]["unregisterDevice"] == {"removed": True, "errors": []}
    await push(http, app["id"], ["1001,1034"])
    await asyncio.sleep(0.5)
    assert gateway.received == []


@pytest.mark.parametrize(
    ("platform", "push_token", "field", "code"),
    [
        ("PC", "pc-token", "platform", "NOT_MOBILE"),
        ("ANDROID", "", "pushToken", "INVALID_PUSH_TOKEN"),
        ("ANDROID", "   ", "pushToken", "INVALID_PUSH_TOKEN"),
        ("ANDROID", "x" * 513, "pushToken", "INVALID_PUSH_TOKEN"),
        ("IOS", "tab\there", "pushToken", "INVALID_PUSH_TOKEN"),
    ],
)
async def test_bad_devices_are_refused(http, tokens, platform, push_token, field, code):
    """PC devices, empty, overlong or unprintable tokens are field errors."""
    payload = await register(http, tokens.user(), push_token, platform)
    assert payload["errors"] == [{"field": field, "code": code}]


async def test_vendors_register_no_devices(http, codec):
    """Device registration is for workbench users."""
    from resolvers.identity import Role

    token = codec.issue(cid=1001, uid=1, role=Role.VENDOR, app_id=1)
    body = await gql(http, token, REGISTER, {"p": "ANDROID", "t": "x"})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_notifications_subscription_has_the_same_text(server, http, tokens):
    """A connected client gets every notice with the push text, in order."""
    app = await create_app(http, tokens.admin(), identifier="Notified", name="日程会议")
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        await client.subscribe(
            "subscription { notifications { appId appName text unread version } }"
        )
        await asyncio.sleep(0.2)  # the subscription registers before the first notice
        await push(http, app["id"], ["1001,1034"])
        await push(http, app["id"], ["1001,1034", "1001,1078"])
        first = (await client.next_data())["notifications"]
        second = (await client.next_data())["notifications"]
    assert first == {
        "appId": app["id"],
        "appName": "日程会议",
        "text": "您收到一条来自 “日程会议” 的消息。",
        "unread": 1,
        "version": 1,
    }
    assert (second["unread"], second["version"]) == (2, 2)


async def test_a_device_changing_hands_takes_no_pending_push(http, tokens, gateway, settings):
    """A token registered by another user before the push leaves: the previous owner's
    notice is not sent to the new owner's phone."""
    app = await create_app(http, tokens.admin(), identifier="HandedOn")
    await register(http, tokens.user(uid=2001), "shared-phone")
    await push(http, app["id"], ["1001,2001"])
    await register(http, tokens.user(uid=2002), "shared-phone")
    await asyncio.sleep(0.8)
    assert gateway.received == []
