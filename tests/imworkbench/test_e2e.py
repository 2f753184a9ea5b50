"""Issue 2's acceptance scenario against a real ``workbench serve`` process (SPEC §4, §6, §7)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.factories import (
    JWT_SECRET,
    LEGACY_WS,
    TIMEOUT,
    TRANSPORT_WS,
    badge_subscription,
    free_socket,
    gql,
)

BIN = Path(sys.executable).parent
CREATE = """
mutation {
  createApp(input: {
    name: "差旅报销", identifier: "TravelExpense",
    pc: {launchMode: WEB, webUrl: "https://travel.example.com/"},
    android: {launchMode: WEB, webUrl: "https://travel.example.com/m"}
  }) { app { id appKey } errors { message } }
}
"""
OPEN_WORKBENCH = "mutation { openWorkbench { unseenCount } }"
OPEN_APP = "mutation($id: ID!) { openApp(appId: $id, platform: PC) { mode url embeddedBrowser } }"


def workbench(*args: str, env: dict[str, str]) -> str:
    """Run the ``workbench`` command; returns its standard output."""
    done = subprocess.run(
        [str(BIN / "workbench"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 12,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment of the service process: its own database and a known secret."""
    return {
        **os.environ,
        "WORKBENCH_DATABASE_URL": database_url,
        "WORKBENCH_JWT_SECRET": JWT_SECRET,
        "WORKBENCH_JWT_SECRET_FILE": str(tmp_path / "secret"),
    }


@contextmanager
def serving(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A ``workbench serve`` process on a free port (its output in ``serve.log``); yields its
    base URL."""
    workbench("migrate", env=env)
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "workbench"), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(int(TIMEOUT * 20)):
            try:
                httpx.get(url + "/graphql", headers={"Accept": "text/html"}, timeout=0.5)
                break
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(TIMEOUT * 2)
        log.close()


@pytest.fixture
def service(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A ``workbench serve`` process on a free port; yields its base URL."""
    with serving(env, tmp_path) as url:
        yield url


@pytest.mark.parametrize(("level", "logged"), [("INFO", True), ("WARNING", False)])
def test_log_level_warning_also_drops_the_access_log(env, tmp_path, level, logged):
    """WORKBENCH_LOG_LEVEL=WARNING silences uvicorn's per-request access log too; INFO keeps
    it."""
    # given
    with serving({**env, "WORKBENCH_LOG_LEVEL": level}, tmp_path) as url:
        # when
        assert httpx.get(url + "/healthz", timeout=TIMEOUT).status_code == 200
    # then
    output = (tmp_path / "serve.log").read_text()
    assert ('"GET /healthz HTTP/1.1" 200' in output) is logged, output


@pytest.fixture
async def client(service: str) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client of the service process."""
    async with httpx.AsyncClient(base_url=service, timeout=TIMEOUT) as http:
        yield http


@pytest.mark.parametrize(
    ("pc_protocol", "phone_protocol"), [(TRANSPORT_WS, LEGACY_WS), (LEGACY_WS, TRANSPORT_WS)]
)
async def test_acceptance_scenario(service, client, env, pc_protocol, phone_protocol):
    """Vendor notice to PC and phone at once; openWorkbench, openApp and setnum stay in sync."""
    # given: tokens from the CLI, an app made through GraphQL, its id from getappid
    user = workbench("token", "--cid", "1001", "--uid", "1034", env=env)
    admin = workbench("token", "--cid", "1", "--uid", "1", "--role", "platform_admin", env=env)
    created = (await gql(client, admin, CREATE))["data"]["createApp"]
    assert created["errors"] == []
    key, app_id = created["app"]["appKey"], created["app"]["id"]
    got = await client.get("/OpenPlatform/integrate/getappid.php", params={"appkey": key})
    assert got.content == b'{"Result":true,"MsgNo":{"app_id":"%s"}}' % app_id.encode()
    ws_url = service.replace("http", "ws") + "/graphql"
    async with (
        badge_subscription(ws_url, pc_protocol, user, "PC") as pc,
        badge_subscription(ws_url, phone_protocol, user, "ANDROID") as phone,
    ):
        for device in (pc, phone):
            assert (await device.next_data())["badges"]["cause"] == "SNAPSHOT"
        # when: the seed's own pushappnotice request (names with trailing spaces)
        pushed = await client.post(
            "/OpenPlatform/integrate/pushappnotice.php",
            data={
                "fromcid ": "1001",
                "fromuid ": "187",
                "appid ": app_id,
                "users ": ' ["1001,1034","1001,1078"]',
            },
        )
        # then: both devices see unread 1 and unseenCount 1
        assert pushed.content == b'{"Result":true}'
        for device in (pc, phone):
            notice = (await device.next_data())["badges"]
            assert notice["cause"] == "NOTICE"
            assert notice["badges"] == [{"appId": app_id, "unread": 1}]
            assert notice["unseenCount"] == 1
        # when: the PC opens the workbench, then the app
        assert (await gql(client, user, OPEN_WORKBENCH))["data"]["openWorkbench"][
            "unseenCount"
        ] == 0
        for device in (pc, phone):
            assert (await device.next_data())["badges"]["unseenCount"] == 0
        launched = await gql(client, user, OPEN_APP, {"id": app_id})
        assert launched["data"]["openApp"] == {
            "mode": "WEB",
            "url": "https://travel.example.com/",
            "embeddedBrowser": False,
        }
        # then: the phone's app badge is cleared too
        for device in (pc, phone):
            assert (await device.next_data())["badges"]["badges"] == [
                {"appId": app_id, "unread": 0}
            ]
        # when: two more notices, then setnum 1 and setnum 5
        for _ in range(2):
            await client.post(
                "/OpenPlatform/integrate/pushappnotice.php",
                data={
                    "fromcid": "1001",
                    "fromuid": "187",
                    "appid": app_id,
                    "users": '["1001,1034"]',
                },
            )
        for _ in range(2):
            await phone.next_data()
        counts = []
        for num in ("1", "5"):
            done = await client.post(
                "/OpenPlatform/integrate/setnum.php",
                data={"appid ": app_id, "cid ": "1001", "uid ": "1034", "num ": num},
            )
            assert done.content == b'{"Result":true}'
            counts.append((await phone.next_data())["badges"]["badges"][0]["unread"])
        # then: it decrements, never below zero
        assert counts == [1, 0]


def test_serve_refuses_an_unmigrated_database(tmp_path):
    """`workbench serve` on an empty database exits 1 and says to run `workbench migrate`."""
    env = {
        **os.environ,
        "WORKBENCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        "WORKBENCH_JWT_SECRET": JWT_SECRET,
    }
    done = subprocess.run(
        [str(BIN / "workbench"), "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 12,
    )
    assert done.returncode == 1
    assert "workbench migrate" in done.stderr
