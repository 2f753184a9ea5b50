"""Running the service under uvicorn: the server options the service relies on, the garbage
collector of a serving process, graceful shutdown, and the app factory for worker processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

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


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn settings the service relies on: no per-message deflate (about 64 KiB instead of
    about 316 KiB per connection, STYLE.md), a cap on WebSocket message size, and server pings
    that drop clients gone without a close frame (interval + timeout)."""
    return {
        "ws_per_message_deflate": False,
        "ws_max_size": settings.ws_max_message_bytes,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
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
