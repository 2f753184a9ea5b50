"""ASGI middleware of the service: request ids, the legacy paths' stray spaces, and body size
limits applied before any parser runs; and the request headers CORS allows (Starlette's
``CORSMiddleware`` does the rest, configured in ``imworkbench.app``)."""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imworkbench.logs import REQUEST_ID_HEADER, SANE_REQUEST_ID, current_request_id, request_id_var
from legacy_rest import normalise_legacy_path

# The request headers a cross-origin caller may send (SPEC §6: vendors call from browser
# JavaScript). Besides the API's own (Authorization, Content-Type, Accept, X-Request-Id): what
# common browser libraries add by themselves, since a preflight that asks for one header not
# listed fails as a whole (400), and the vendor's call with it. jQuery, Prototype and MooTools
# add X-Requested-With to same-origin-style calls (and many pages set it globally through
# ``$.ajaxSetup``), often with Cache-Control and Pragma to defeat old caches; Apollo Client
# sends its client name and version, and Apollo's CSRF prevention asks for
# apollo-require-preflight. None of them carries a credential, and CORS here never allows
# credentials (cookies), so allowing them grants a cross-site page nothing more.
CORS_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "X-Request-Id",
    "X-Requested-With",
    "Cache-Control",
    "Pragma",
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
)


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


class RequestIdMiddleware:
    """Gives every HTTP request and WebSocket connection a request id (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = offered if SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def with_header(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, with_header)
        finally:
            request_id_var.reset(token)
