"""ASGI application assembly: ``create_app(settings) -> Starlette``. No module-level state.

Routes: ``/graphql`` (HTTP + WebSocket), the legacy ``/OpenPlatform/integrate/*.php``
endpoints, built-in icons under ``/icons/``, GraphiQL's assets under ``/graphiql/``. The lifespan
opens the database, the broker, the process's catalogue watch and the push dispatcher, and hands
requests ``request.state.db``, ``.broker``, ``.watch``, ``.options`` (``ServiceOptions``) and
``.sealer`` (app secrets at rest).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth import TokenCodec
from graphql_view import WorkbenchGraphQL
from icon_http import icon_routes
from legacy_rest import legacy_routes, normalise_legacy_path
from logs import RequestIdMiddleware, configure_logging, current_request_id
from observability import (
    InstrumentedBroker,
    Meter,
    Metrics,
    MetricsMiddleware,
    observability_routes,
)
from pubsub import create_broker
from push_gateway import create_gateway
from resolvers.catalogue_events import CatalogueWatch
from resolvers.icons import MAX_ICON_BYTES
from resolvers.notices import NoticeBatcher
from resolvers.options import ServiceOptions
from resolvers.push import Dispatcher
from resolvers.sealing import SecretSealer
from schema import build_schema
from settings import Settings
from storage.db import Database
from storage.migrate import require_current

STATIC = Path(__file__).parent / "static"
# Seconds to drain in-flight requests (and to close WebSockets) at shutdown.
SHUTDOWN_GRACE_S = 10.0
# The garbage collector in a serving process (tune_garbage_collector): young generation every
# 10,000 net allocations, older ones every 10 of those (issue 6: 50,000 made fan-outs a little
# faster but stalled the loop 20-90 ms every 1.4 s under 200 notices/s).
GC_THRESHOLDS = (10_000, 10, 10)
logger = logging.getLogger("workbench")


class LegacyPathMiddleware:
    """Serves the legacy endpoints at their paths with stray spaces too (SPEC §6)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(("/ ", "/%20", "/OpenPlatform")):
            normalised = normalise_legacy_path(scope["path"])
            if normalised is not None and normalised != scope["path"]:
                scope = {**scope, "path": normalised, "raw_path": normalised.encode()}
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuses HTTP request bodies over ``limit`` bytes on ``paths`` with 413, before the
    application parses them: by ``Content-Length`` when declared, else while streaming.
    ``multipart_limit`` (default ``limit``) applies to ``multipart/form-data`` bodies: an
    upload of a 1 MiB icon plus the form's other parts."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        paths: tuple[str, ...],
        multipart_limit: int | None = None,
    ) -> None:
        self.app = app
        self.default_limit = limit
        self.multipart_limit = multipart_limit or limit
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        limit = (
            self.multipart_limit if content_type == b"multipart/form-data" else self.default_limit
        )
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(limit, scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(limit, scope, receive, send)

    @staticmethod
    async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "errors": [
                {
                    "message": f"request body over {limit} bytes",
                    "extensions": {
                        "code": "PAYLOAD_TOO_LARGE",
                        "requestId": current_request_id(),
                    },
                }
            ]
        }
        await JSONResponse(body, status_code=413)(scope, receive, send)


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


class CachedStaticFiles(StaticFiles):
    """Static files with a long cache lifetime (icons and versioned GraphiQL assets)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=86400"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def service_options(settings: Settings) -> ServiceOptions:
    """The options resolvers take from ``settings``."""
    return ServiceOptions(
        ticket_ttl_s=settings.sso_ticket_ttl_seconds,
        secret_grace_s=settings.app_secret_grace_seconds,
        vendor_token_ttl_s=settings.vendor_token_ttl_seconds,
        push_coalesce_s=settings.push_coalesce_seconds,
    )


def app_from_environment() -> Starlette:
    """The app with settings from the environment: the factory ``workbench serve --workers``
    hands each uvicorn worker process."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, handle_signals=True)


def create_app(
    settings: Settings, *, check_migrations: bool = True, handle_signals: bool = False
) -> Starlette:
    """Build the service. ``check_migrations``: refuse to start on an out-of-date database;
    ``handle_signals``: close WebSockets with 1001 on SIGTERM/SIGINT (``workbench serve``)."""
    service_key = settings.secret_key()
    codec = TokenCodec(service_key, issuer=settings.jwt_issuer)
    sealer = SecretSealer(service_key)
    options = service_options(settings)
    metrics = Metrics()
    meter = Meter(metrics)
    schema = build_schema(
        max_depth=settings.query_max_depth,
        max_tokens=settings.query_max_tokens,
        max_aliases=settings.query_max_aliases,
        debug=settings.debug,
    )
    graphql = WorkbenchGraphQL(
        schema,
        codec=codec,
        public_url=settings.public_url,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=settings.cors_origins,
        # Uploads (setAppIcon) as the GraphQL multipart request spec. CSRF-safe: every
        # request needs a bearer token, which a cross-site form cannot send.
        multipart_uploads_enabled=True,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        broker = InstrumentedBroker(create_broker(settings.broker_url), metrics)
        watch = CatalogueWatch(db, broker)
        notices = NoticeBatcher(db, broker, coalesce_s=options.push_coalesce_s)
        dispatcher = Dispatcher(
            db,
            create_gateway(settings),
            max_attempts=settings.push_max_attempts,
            retry_base_s=settings.push_retry_base_seconds,
        )
        # Also on app.state, for operators' introspection and tests; requests use their state.
        app.state.db, app.state.broker, app.state.watch = db, broker, watch
        app.state.dispatcher, app.state.metrics = dispatcher, metrics
        try:
            if check_migrations:
                await require_current(db)
            await broker.start()
            await watch.start()
            await dispatcher.start()
            await notices.start()
            if handle_signals:
                install_graceful_shutdown(graphql)
                tune_garbage_collector()
            yield {
                "db": db,
                "broker": broker,
                "watch": watch,
                "notices": notices,
                "options": options,
                "sealer": sealer,
                "meter": meter,
            }
        finally:
            logger.info(
                "shutdown: %d subscription(s) started, %d cleaned up, %d live",
                meter.started,
                meter.ended,
                meter.live,
            )
            await notices.close()
            await dispatcher.close()
            await watch.close()
            await broker.close()
            await db.dispose()

    async def home(_request: Request) -> Response:
        return RedirectResponse("/graphql")

    routes = [
        Route("/", home),
        Route("/graphql", graphql, methods=["GET", "POST", "OPTIONS"]),
        WebSocketRoute("/graphql", graphql),
        *legacy_routes(max_body_bytes=settings.legacy_max_body_bytes),
        *icon_routes(),
        *observability_routes(),
        Mount("/icons", CachedStaticFiles(directory=STATIC / "icons"), name="icons"),
        Mount(
            "/graphiql",
            CachedStaticFiles(directory=STATIC / "graphiql"),
            name="graphiql",
        ),
    ]
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-Id"],
            expose_headers=["X-Error-Reason", "X-Request-Id"],
            max_age=86400,
        ),
        Middleware(LegacyPathMiddleware),
        Middleware(
            BodySizeLimitMiddleware,
            limit=settings.graphql_max_body_bytes,
            multipart_limit=max(settings.graphql_max_body_bytes, MAX_ICON_BYTES + 64 * 1024),
            paths=("/graphql",),
        ),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan, debug=settings.debug)
