"""The GraphQL endpoint: Strawberry's ASGI view with our authentication and HTTP semantics.

- HTTP: every operation needs ``Authorization: Bearer <JWT>``; without a valid one the answer is
  401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3) before anything executes. The one
  exception is a document of nothing but ``appAccessToken`` mutations, sent with no
  ``Authorization`` header at all: that is how a vendor gets its first token (SPEC §8). A GET
  for HTML gets the locally served GraphiQL page. Bodies Strawberry cannot parse are 400.
- GraphQL over HTTP media types: a client that accepts ``application/graphql-response+json``
  gets it, with status 400 when the request failed before execution (no ``data``), as the
  GraphQL-over-HTTP draft specifies; ``application/json`` clients get 200 as before.
- WebSocket (``graphql-transport-ws`` and ``graphql-ws``): see ``graphql_ws``; this view
  authenticates a connection from the ``connection_init`` payload (``{"Authorization":
  "Bearer ..."}``) or the handshake header.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, cast

from cross_web import HTTPException
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from imworkbench.http.websocket import (
    GraphQLTransportWSHandler,
    GraphQLWSHandler,
    WebSocketAdapter,
    arm_expiry,
)
from imworkbench.logs import current_request_id
from resolvers.errors import NotAuthenticated
from resolvers.identity import Principal
from resolvers.tokens import TokenCodec
from schema.context import Context, Loaders

GRAPHQL_RESPONSE = "application/graphql-response+json"
TOKEN_EXCHANGE_MAX_TOKENS = 200
GRAPHIQL_HTML = (Path(__file__).parents[1] / "static" / "graphiql" / "index.html").read_text


def _wants_graphql_response(accept: str) -> bool:
    return GRAPHQL_RESPONSE in accept.lower()


def _is_request_error(result: Any) -> bool:
    # Parse and validation errors stop a request before execution: no data, and no error has a
    # path. A field error that nulls the whole result still has its path (a 200 answer).
    if not isinstance(result, dict) or result.get("data") is not None:
        return False
    errors = result.get("errors") or []
    return all(isinstance(e, dict) and not e.get("path") for e in errors)


async def _token_exchange_only(request: Request) -> bool:
    # A vendor without a token may call appAccessToken (SPEC §8) and nothing else: a JSON POST
    # whose document holds only mutations selecting only appAccessToken (and __typename).
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method != "POST" or content_type != "application/json":
        return False
    try:
        data = json.loads(await request.body())
        query = data.get("query") if isinstance(data, dict) else None
        if not isinstance(query, str):
            return False
        document = parse(query, no_location=True, max_tokens=TOKEN_EXCHANGE_MAX_TOKENS)
    except (ValueError, GraphQLError, RecursionError):
        return False
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode) or (
            definition.operation is not OperationType.MUTATION
        ):
            return False
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode) or selection.name.value not in (
                "appAccessToken",
                "__typename",
            ):
                return False
    return True


class WorkbenchGraphQL(GraphQL[Context, None]):
    """The ``/graphql`` endpoint (SPEC §7); see the module docstring for its rules."""

    graphql_ws_handler_class = GraphQLWSHandler
    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    websocket_adapter_class = WebSocketAdapter

    def __init__(
        self, schema: Any, *, codec: TokenCodec, public_url: str | None = None, **options: Any
    ) -> None:
        # Strawberry's own IDE page loads its scripts from a CDN; ours is served locally.
        super().__init__(schema, graphql_ide=None, **options)
        self.codec = codec
        self.public_url = public_url
        # The ASGI send callable of every open WebSocket, to close them at shutdown.
        self._open: set[Send] = set()

    @property
    def open_websockets(self) -> int:
        """How many WebSocket connections are open."""
        return len(self._open)

    async def close_websockets(self, code: int = 1001, reason: str = "server shutting down") -> int:
        """Close every open WebSocket with ``code`` (1001 "going away": clients reconnect,
        through the load balancer, to another process); returns how many were closed. Their
        handlers then end, and each subscription's cleanup runs."""
        closing = list(self._open)
        for send in closing:
            with contextlib.suppress(Exception):  # already closing or gone
                await send({"type": "websocket.close", "code": code, "reason": reason})
        return len(closing)

    async def parse_http_body(self, request: Any) -> Any:
        """Strawberry's parsing, with bodies it cannot take apart (JSON ``null`` or a number,
        nesting past Python's recursion limit, integers past its digit limit, invalid UTF-8)
        answered as 400 instead of an internal error."""
        try:
            return await super().parse_http_body(request)
        except (HTTPException, json.JSONDecodeError):
            raise
        except (
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            IndexError,
            RecursionError,
        ) as error:
            raise HTTPException(400, "Unable to parse the request body") from error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            meter = scope.get("state", {}).get("meter")
            if meter is not None:
                meter.websocket_opened()
            self._open.add(send)
            try:
                await super().__call__(scope, receive, send)
            finally:
                self._open.discard(send)
                if meter is not None:
                    meter.websocket_closed()
            return
        request = Request(scope, receive)
        if self._is_graphiql_request(request):
            await HTMLResponse(GRAPHIQL_HTML())(scope, receive, send)
            return
        if request.method == "OPTIONS":
            await Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})(
                scope, receive, send
            )
            return
        principal: Principal | None
        try:
            principal = self.codec.from_header(request.headers.get("authorization"))
        except NotAuthenticated as error:
            if request.headers.get("authorization") or not await _token_exchange_only(request):
                await self._unauthorised(error, request)(scope, receive, send)
                return
            principal = None
        context = self._context(request, principal)
        try:
            response = await self._run_http(request, context)
        finally:
            # Uploaded files are spooled (to disk past 1 MiB); close them with the request.
            await request.close()
        await response(scope, receive, send)

    async def _run_http(self, request: Request, context: Context) -> Response:
        try:
            response = await self.run(request, context=context)
        except HTTPException as error:
            extensions = {"code": "BAD_REQUEST", "requestId": current_request_id()}
            return JSONResponse(
                {"errors": [{"message": error.reason, "extensions": extensions}]},
                status_code=error.status_code,
            )
        accept = request.headers.get("accept", "")
        if response.media_type != "application/json":
            return response
        body = bytes(response.body)
        status = response.status_code
        decoded: Any = None
        if b'"errors"' in body:
            # Errors carry the request id, to find the request's log lines (issue 5).
            decoded = json.loads(body)
            request_id = current_request_id()
            errors = decoded.get("errors") if isinstance(decoded, dict) else None
            for entry in errors if isinstance(errors, list) else []:
                if isinstance(entry, dict) and request_id is not None:
                    entry.setdefault("extensions", {})["requestId"] = request_id
        if not _wants_graphql_response(accept):
            if decoded is None:
                return response
            return self._replace_body(response, json.dumps(decoded).encode(), status, None)
        if status == 200:
            decoded = json.loads(body) if decoded is None else decoded
            if _is_request_error(decoded):
                # GraphQL over HTTP §7.1.2: a request error has no data entry and a 4xx status.
                decoded.pop("data", None)
                status = 400
            body = json.dumps(decoded).encode()
        elif decoded is not None:
            body = json.dumps(decoded).encode()
        return self._replace_body(response, body, status, GRAPHQL_RESPONSE)

    @staticmethod
    def _replace_body(
        response: Response, body: bytes, status: int, media_type: str | None
    ) -> Response:
        if media_type is None:
            media_type = response.media_type
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        return Response(body, status_code=status, media_type=media_type, headers=headers)

    @staticmethod
    def _is_graphiql_request(request: Request) -> bool:
        return (
            request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
            and "query" not in request.query_params
        )

    @staticmethod
    def _unauthorised(error: NotAuthenticated, request: Request) -> Response:
        media = (
            GRAPHQL_RESPONSE
            if _wants_graphql_response(request.headers.get("accept", ""))
            else "application/json"
        )
        extensions = {"code": error.code, "requestId": current_request_id()}
        body = {"errors": [{"message": error.message, "extensions": extensions}]}
        return Response(
            json.dumps(body),
            status_code=401,
            media_type=media,
            headers={"WWW-Authenticate": 'Bearer realm="workbench"'},
        )

    def _context(self, request: Request | WebSocket, principal: Any) -> Context:
        base = self.public_url or str(request.base_url).rstrip("/")
        if base.startswith("ws"):
            base = "http" + base[2:]
        state = request.state
        return Context(
            db=state.db,
            broker=state.broker,
            hub=state.hub,
            watch=state.watch,
            options=state.options,
            sealer=state.sealer,
            meter=state.meter,
            codec=self.codec,
            base_url=base,
            loaders=Loaders(state.db),
            principal=principal,
            request=request,
        )

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        """Connection-scoped context for WebSockets (HTTP contexts are built in ``__call__``)."""
        context = self._context(request, None)
        context.response = response
        return context

    def authenticate_ws(self, context: Context, payload: dict[str, Any] | None) -> Principal:
        """The principal of a WebSocket: the init payload's Authorization, else the handshake
        header. Raises ``NotAuthenticated``."""
        value = None
        if payload:
            value = payload.get("Authorization") or payload.get("authorization")
            if value is not None and not isinstance(value, str):
                raise NotAuthenticated("Authorization in connection_init must be a string")
        if value is None:
            value = context.request.headers.get("authorization")
        return self.codec.from_header(value)

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """graphql-transport-ws init: authenticate or reject (close 4403)."""
        if context.principal is None:  # graphql-ws authenticates in GraphQLWSHandler
            try:
                context.principal = self.authenticate_ws(context, context.connection_params)
            except NotAuthenticated as error:
                raise ConnectionRejectionError({"message": error.message}) from error
            arm_expiry(context)
        return cast("UnsetType", UNSET)
