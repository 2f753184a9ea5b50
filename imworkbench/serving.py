"""Running the service under uvicorn: the server options the service relies on, the garbage
collector of a serving process, graceful shutdown, and the app factory for worker processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import select
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from imworkbench.settings import Settings

if TYPE_CHECKING:
    from imworkbench.http.graphql_view import WorkbenchGraphQL

logger = logging.getLogger("workbench")

# Seconds to drain in-flight requests (and to close WebSockets) at shutdown.
SHUTDOWN_GRACE_S = 10.0


# The garbage collector in a serving process (tune_garbage_collector): young generation every
# 10,000 net allocations, older ones every 10 of those (issue 6: 50,000 made fan-outs a little
# faster but stalled the loop 20-90 ms every 1.4 s under 200 notices/s).
GC_THRESHOLDS = (10_000, 10, 10)


def _unread_bytes_waiting(transport: asyncio.BaseTransport) -> bool:
    # Whether the connection's socket has bytes (or an end of stream) the loop has not read.
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):  # already closed
        return False
    return bool(readable)


class KeepAliveHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (httptools, or h11 without it), except that the keep-alive
    idle timeout does not close a connection whose socket already holds the next request.

    Why (issue 11 item 10): asyncio runs the callbacks of one loop turn in order; when the loop
    was busy past the idle deadline and the client's next request arrived during that turn,
    uvicorn's timeout callback closed the socket with the request unread, which the kernel
    answers with a reset: a vendor's call got no answer at all. Skipping the close leaves the
    bytes to ``data_received`` on the next turn, which answers them and arms the timeout
    again after the response (an end of stream closes the connection there as well).
    """

    def timeout_keep_alive_handler(self) -> None:
        """Close the idle connection, unless its next request (or its end) already arrived."""
        if _unread_bytes_waiting(self.transport):
            return
        super().timeout_keep_alive_handler()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn settings the service relies on: no per-message deflate (about 64 KiB instead of
    about 316 KiB per connection, STYLE.md), a cap on WebSocket message size, server pings
    that drop clients gone without a close frame (interval + timeout), and idle keep-alive
    connections kept ``keep_alive_timeout`` seconds, never reset with a request unread
    (``KeepAliveHTTPProtocol``)."""
    return {
        "http": KeepAliveHTTPProtocol,
        "ws_per_message_deflate": False,
        "ws_max_size": settings.ws_max_message_bytes,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_S,
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise: only the
        # configured proxies may say who the client is.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or "",
    }


def tune_garbage_collector() -> None:
    """For a serving process, once started: move everything allocated so far (modules, the
    schema, SQLAlchemy's compiled caches) out of the collector's sight (``gc.freeze``) and
    collect the young generation every ``GC_THRESHOLDS[0]`` allocations instead of 700.

    Why (issue 6, BENCHMARKS.md): each badge event allocates a few hundred short-lived objects;
    with the default thresholds the collector ran every few events and its passes walked every
    live subscription's objects, taking half of the fan-out time with 1,000 clients. Much larger
    thresholds made each young collection long enough to show in notice latencies. Cycles are
    still collected, just in larger batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def install_graceful_shutdown(graphql: WorkbenchGraphQL) -> None:
    """On the first SIGTERM or SIGINT, close every WebSocket with 1001 (clients reconnect
    elsewhere) and only then let uvicorn's own handler stop accepting and drain in-flight
    requests; a second signal goes straight to uvicorn. Called in the lifespan, after uvicorn
    installed its handlers, and only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {
        int(sig): signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    closing = False

    def forward(sig: int, frame: FrameType | None) -> None:
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)

    async def graceful(sig: int) -> None:
        try:
            closed = await asyncio.wait_for(graphql.close_websockets(), SHUTDOWN_GRACE_S)
            logger.info("shutdown: closed %d WebSocket connection(s) with 1001", closed)
        except Exception:
            logger.exception("shutdown: closing WebSockets failed")
        forward(sig, None)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal closing
        if closing:
            forward(sig, frame)
            return
        closing = True
        # A fresh context: the signal may arrive while a request's (its request id) is current.
        loop.call_soon_threadsafe(
            lambda: loop.create_task(graceful(sig), context=contextvars.Context())
        )

    for sig in previous:
        signal.signal(sig, on_signal)
