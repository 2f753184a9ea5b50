"""ASGI application assembly: ``create_app(settings) -> Starlette``. No module-level state.

Routes: ``/graphql`` (HTTP + WebSocket), the legacy ``/OpenPlatform/integrate/*.php``
endpoints, built-in icons under ``/icons/``, GraphiQL's assets under ``/graphiql/``. The lifespan
opens the database, the broker, the process's message hub (one broker listener per channel,
decoding each message once for the live streams) and catalogue watch, and the push dispatcher,
and hands requests ``request.state.db``, ``.broker``, ``.hub``, ``.watch``, ``.options``
(``ServiceOptions``) and ``.sealer`` (app secrets at rest).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from imworkbench.brokers import InstrumentedBroker, create_broker
from imworkbench.http.graphql_view import WorkbenchGraphQL
from imworkbench.http.health import Meter, Metrics, MetricsMiddleware, observability_routes
from imworkbench.http.icons import icon_routes
from imworkbench.http.middleware import (
    CORS_ALLOWED_HEADERS,
    BodySizeLimitMiddleware,
    LegacyPathMiddleware,
    RequestIdMiddleware,
)
from imworkbench.http.websocket import MessageRate
from imworkbench.logs import configure_logging, quiet_client_mistakes
from imworkbench.push_gateways import create_gateway
from imworkbench.serving import install_graceful_shutdown, tune_garbage_collector
from imworkbench.settings import Settings
from legacy_rest import legacy_routes
from resolvers.icons import MAX_ICON_BYTES
from resolvers.notices import NoticeBatcher
from resolvers.options import ServiceOptions
from resolvers.push import Dispatcher
from resolvers.sealing import SecretSealer
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from resolvers.tokens import TokenCodec
from schema import build_schema
from schema.introspection import IntrospectionPolicy
from storage.db import Database
from storage.migrate import require_current

STATIC = Path(__file__).parent / "static"
logger = logging.getLogger("workbench")


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
        introspection=IntrospectionPolicy(settings.introspection),
    )
    graphql = WorkbenchGraphQL(
        schema,
        codec=codec,
        public_url=settings.public_url,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        message_rate=MessageRate(settings.ws_messages_per_second, settings.ws_message_burst),
        allowed_origins=settings.cors_origins,
        # Uploads (setAppIcon) as the GraphQL multipart request spec. CSRF-safe: every
        # request needs a bearer token, which a cross-site form cannot send.
        multipart_uploads_enabled=True,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        quiet_client_mistakes()
        db = Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            busy_timeout_ms=settings.db_busy_timeout_ms,
        )
        broker = InstrumentedBroker(create_broker(settings.broker_url), metrics)
        hub = Hub(broker)
        watch = CatalogueWatch(db, hub)
        notices = NoticeBatcher(db, broker, coalesce_s=options.push_coalesce_s)
        dispatcher = Dispatcher(
            db,
            create_gateway(settings),
            max_attempts=settings.push_max_attempts,
            retry_base_s=settings.push_retry_base_seconds,
        )
        # Also on app.state, for operators' introspection and tests; requests use their state.
        app.state.db, app.state.broker, app.state.hub, app.state.watch = db, broker, hub, watch
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
                "hub": hub,
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
            allow_headers=list(CORS_ALLOWED_HEADERS),
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


def app_from_environment() -> Starlette:
    """The app with settings from the environment: the factory ``workbench serve --workers``
    hands each uvicorn worker process."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, handle_signals=True)
