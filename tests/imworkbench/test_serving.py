"""Serving under uvicorn (issue 11 item 10): an idle keep-alive connection stays open longer
than clients and proxies keep theirs, and a request that reached the server when its idle
timeout fired is answered instead of being reset."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from imworkbench.settings import Settings
from tests.factories import TIMEOUT, running

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: workbench\r\n\r\n"
ANSWERED = b"HTTP/1.1 200 OK\r\n"


@asynccontextmanager
async def raw_connection(url: str) -> AsyncIterator[socket.socket]:
    """A plain non-blocking TCP connection to the server at ``url``."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        yield sock
    finally:
        sock.close()


async def answer(sock: socket.socket) -> bytes:
    """One response to ``/healthz`` (its headers and its small body), or what arrived before
    the server closed or reset the connection."""
    loop = asyncio.get_running_loop()
    received = b""
    async with asyncio.timeout(TIMEOUT):
        while not received.endswith(b'{"status":"ok"}'):
            try:
                chunk = await loop.sock_recv(sock, 65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


async def test_a_keep_alive_connection_idle_for_6_s_still_answers(settings: Settings):
    """A request sent after 6 s idle on a reused connection is answered: uvicorn's own idle
    timeout (5 s) closed the connection first and the request got no answer at all."""
    async with running(settings) as server, raw_connection(server.http_url) as sock:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, HEALTH)
        assert (await answer(sock)).startswith(ANSWERED)
        await asyncio.sleep(6)  # the scenario: a vendor's pooled connection, idle for 6 s
        await loop.sock_sendall(sock, HEALTH)
        assert (await answer(sock)).startswith(ANSWERED)


async def test_a_request_arriving_as_the_idle_timeout_fires_is_answered(settings: Settings):
    """The server's event loop is busy when the idle timeout falls due, and the client's next
    request arrives in the same loop turn, just before the timeout's callback runs: the
    request is answered, instead of the connection being closed with it unread (a reset)."""
    settings = settings.model_copy(update={"keep_alive_timeout": 1.0})
    async with running(settings) as server, raw_connection(server.http_url) as sock:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, HEALTH)
        assert (await answer(sock)).startswith(ANSWERED)
        answered_at = loop.time()

        def busy() -> None:  # the loop busy past the idle deadline
            time.sleep(1.0)

        def send_next() -> None:  # runs in that late loop turn, before the idle timeout's callback
            sock.send(HEALTH)
            time.sleep(0.05)  # loopback: the request is in the server's socket

        # when
        loop.call_at(answered_at + settings.keep_alive_timeout - 0.6, busy)
        loop.call_at(answered_at + settings.keep_alive_timeout - 0.3, send_next)
        # then
        assert (await answer(sock)).startswith(ANSWERED)
