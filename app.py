"""ASGI application assembly: ``create_app(settings) -> Starlette``. No module-level state.

Routes: ``/graphql`` (HTTP + WebSocket), the legacy ``/OpenPlatform/integrate/*.php``
endpoints, built-in icons under ``/icons/``, GraphiQL's assets under ``/graphiql/``. The lifespan
opens the database, the broker, the process's catalogue watch and the push dispatcher, and hands
requests ``request.state.db``, ``.broker``, ``.watch``, ``.options`` (``ServiceOptions``) and
``.sealer`` (app secrets at rest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
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
from pubsub import create_broker
from push_gateway import create_gateway
from resolvers.catalogue_events import CatalogueWatch
from resolvers.icons import MAX_ICON_BYTES
from resolvers.options import ServiceOptions
from resolvers.push import Dispatcher
from resolvers.sealing import SecretSealer
from schema import build_schema
from settings import Settings
from storage.db import Database
from storage.migrate import require_current

STATIC = Path(__file__).parent / "static"


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
                    "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                }
            ]
        }
        await JSONResponse(body, status_code=413)(scope, receive, send)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn settings the service relies on: no per-message deflate (about 64 KiB instead of
    about 316 KiB per connection, STYLE.md) and a cap on WebSocket message size."""
    return {"ws_per_message_deflate": False, "ws_max_size": settings.ws_max_message_bytes}


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


def create_app(settings: Settings, *, check_migrations: bool = True) -> Starlette:
    """Build the service. ``check_migrations``: refuse to start on an out-of-date database."""
    service_key = settings.secret_key()
    codec = TokenCodec(service_key, issuer=settings.jwt_issuer)
    sealer = SecretSealer(service_key)
    options = service_options(settings)
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
        db = Database(settings.database_url)
        broker = create_broker(settings.broker_url)
        watch = CatalogueWatch(db, broker)
        dispatcher = Dispatcher(
            db,
            create_gateway(settings),
            max_attempts=settings.push_max_attempts,
            retry_base_s=settings.push_retry_base_seconds,
        )
        # Also on app.state, for operators' introspection and tests; requests use their state.
        app.state.db, app.state.broker, app.state.watch = db, broker, watch
        app.state.dispatcher = dispatcher
        try:
            if check_migrations:
                await require_current(db)
            await broker.start()
            await watch.start()
            await dispatcher.start()
            yield {
                "db": db,
                "broker": broker,
                "watch": watch,
                "options": options,
                "sealer": sealer,
            }
        finally:
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
        Mount("/icons", CachedStaticFiles(directory=STATIC / "icons"), name="icons"),
        Mount(
            "/graphiql",
            CachedStaticFiles(directory=STATIC / "graphiql"),
            name="graphiql",
        ),
    ]
    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
            expose_headers=["X-Error-Reason"],
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
