"""The GraphQL endpoint: Strawberry's ASGI view with our authentication and HTTP semantics.

- HTTP: every operation needs ``Authorization: Bearer <JWT>``; without a valid one the answer is
  401 with ``WWW-Authenticate: Bearer`` (RFC 6750 §3) before anything executes. The one
  exception is a document the schema may run without credentials (``WorkbenchSchema.public``:
  ``appAccessToken`` mutations, SPEC §8), sent with no ``Authorization`` header at all. A GET
  for HTML gets the locally served GraphiQL page. Bodies Strawberry cannot parse are 400.
- GraphQL over HTTP media types: a client that accepts ``application/graphql-response+json``
  gets it, with status 400 when the request failed before execution (no ``data``), as the
  GraphQL-over-HTTP draft specifies; ``application/json`` clients get 200 as before.
- Uploads (``setAppIcon``): the GraphQL multipart request, read strictly by
  ``imworkbench.http.uploads``; a malformed one is a GraphQL error body, 400 or 413.
- Errors carry the request id (``extensions.requestId``), to find the request's log lines.
- WebSocket (``graphql-transport-ws`` and ``graphql-ws``): see ``imworkbench.http.websocket``;
  ``on_ws_connect`` authenticates a connection for both protocols.

Strawberry's hooks do the work: ``get_context`` (authentication, the context),
``process_result`` (request ids), ``create_response`` (the media type and its status),
``render_graphql_ide``, ``on_ws_connect`` and the WebSocket handler classes. ``__call__`` only
answers what never reaches Strawberry's pipeline (OPTIONS, the IDE page) and speaks JSON where
Strawberry's ASGI app answers its ``HTTPException`` in plain text.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, cast

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from imworkbench.http.uploads import MultipartRefusal, read_operations
from imworkbench.http.websocket import (
    GraphQLTransportWSHandler,
    GraphQLWSHandler,
    MessageRate,
    WebSocketAdapter,
    authenticate_connection,
)
from imworkbench.logs import current_request_id
from resolvers.errors import NotAuthenticated
from resolvers.identity import Principal
from resolvers.tokens import TokenCodec
from schema import WorkbenchSchema
from schema.context import Context, Loaders

GRAPHQL_RESPONSE = "application/graphql-response+json"
GRAPHIQL_HTML = (Path(__file__).parents[1] / "static" / "graphiql" / "index.html").read_text


class Unauthenticated(HTTPException):
    """No valid bearer token (401): ``code`` and ``reason`` are the GraphQL error's."""

    def __init__(self, error: NotAuthenticated) -> None:
        super().__init__(401, error.message)
        self.code = error.code


def _wants_graphql_response(request: Request) -> bool:
    return GRAPHQL_RESPONSE in request.headers.get("accept", "").lower()


def _is_request_error(data: object) -> bool:
    # Parse and validation errors stop a request before execution: no data, and no error has a
    # path. A field error that nulls the whole result still has its path (a 200 answer).
    if not isinstance(data, dict) or data.get("data") is not None:
        return False
    errors = data.get("errors") or []
    return all(isinstance(e, dict) and not e.get("path") for e in errors)


async def _public_request(request: Request, schema: WorkbenchSchema) -> bool:
    # A JSON POST whose document the schema runs without credentials. Starlette keeps the
    # body, so Strawberry reads it again without a second receive; the document goes through
    # the schema's parse cache, so the executor does not parse it again.
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method != "POST" or content_type != "application/json":
        return False
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):
        return False
    query = data.get("query") if isinstance(data, dict) else None
    return isinstance(query, str) and schema.public(query)


async def authenticate_request(
    request: Request, codec: TokenCodec, schema: WorkbenchSchema
) -> Principal | None:
    """HTTP bearer authentication (SPEC §7, RFC 6750): the principal of the ``Authorization``
    header, or ``None`` for a request without one whose document the schema runs without
    credentials (SPEC §8). Raises ``Unauthenticated`` (401) otherwise."""
    header = request.headers.get("authorization")
    try:
        return codec.from_header(header)
    except NotAuthenticated as error:
        if not header and await _public_request(request, schema):
            return None
        raise Unauthenticated(error) from error


class WorkbenchGraphQL(GraphQL[Context, None]):
    """The ``/graphql`` endpoint (SPEC §7); see the module docstring for its rules."""

    graphql_ws_handler_class = GraphQLWSHandler
    graphql_transport_ws_handler_class = GraphQLTransportWSHandler
    websocket_adapter_class = WebSocketAdapter
    schema: WorkbenchSchema

    def __init__(
        self,
        schema: WorkbenchSchema,
        *,
        codec: TokenCodec,
        public_url: str | None = None,
        message_rate: MessageRate | None = None,
        **options: Any,
    ) -> None:
        # Strawberry's own IDE page loads its scripts from a CDN; ours is served locally.
        super().__init__(schema, graphql_ide=None, **options)
        self.codec = codec
        self.public_url = public_url
        # What one WebSocket connection may send (``WebSocketAdapter``); None: no limit.
        self.message_rate = message_rate
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: WebSockets counted and run by Strawberry; HTTP through Strawberry's
        pipeline, with OPTIONS and the IDE page answered first and ``HTTPException`` (400,
        401, 405) as a GraphQL error body."""
        if scope["type"] != "http":
            await self._serve_websocket(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response
        if request.method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": "GET, POST, OPTIONS"})
        elif self._is_graphiql_request(request):
            response = await self.render_graphql_ide(request)
        else:
            try:
                response = await self.run(request)
            except HTTPException as error:
                response = _error_response(request, error)
            finally:
                # Uploaded files are spooled (to disk past 1 MiB); close them with the request.
                await request.close()
        await response(scope, receive, send)

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
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

    async def parse_multipart(self, request: Any) -> Any:
        """A GraphQL multipart request (uploads), read strictly: every malformed one is a
        ``MultipartRefusal`` (400 or 413), answered as a GraphQL error body
        (``imworkbench.http.uploads``)."""
        return await read_operations(request)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        """The context of an HTTP request, authenticated (``authenticate_request``; raises
        ``Unauthenticated``), or of a WebSocket connection, authenticated later by
        ``on_ws_connect``. An HTTP client accepting ``application/graphql-response+json`` has
        it negotiated onto the sub-response, for ``create_response``."""
        principal = None
        if isinstance(request, Request):
            principal = await authenticate_request(request, self.codec, self.schema)
            if _wants_graphql_response(request):
                response.media_type = GRAPHQL_RESPONSE
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
            response=response,
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL page, its assets served locally (``/graphiql/``), no token needed."""
        return HTMLResponse(GRAPHIQL_HTML())

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Strawberry's result, each error's ``extensions`` with the request's id added."""
        data = process_result(result)
        request_id = current_request_id()
        errors = data.get("errors")
        if errors and request_id is not None:
            data["errors"] = [_with_request_id(error, request_id) for error in errors]
        return data

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Strawberry's response, in ``application/graphql-response+json`` when negotiated
        (``get_context``): then a request error has no ``data`` and status 400 (GraphQL over
        HTTP §7.1.2)."""
        negotiated = sub_response.media_type == GRAPHQL_RESPONSE
        request_error = negotiated and _is_request_error(response_data)
        if request_error:
            cast("dict[str, Any]", response_data).pop("data", None)
        response = super().create_response(response_data, sub_response)
        if negotiated:
            response.headers["content-type"] = GRAPHQL_RESPONSE
            if request_error and response.status_code == 200:
                response.status_code = 400
        return response

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """``connection_init`` on either protocol: authenticate or refuse (close 4403)."""
        authenticate_connection(context)
        return cast("UnsetType", UNSET)

    @staticmethod
    def _is_graphiql_request(request: Request) -> bool:
        return (
            request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
            and "query" not in request.query_params
        )


def _with_request_id(error: object, request_id: str) -> object:
    # A copy: the formatted error shares its extensions dict with the GraphQLError.
    if not isinstance(error, dict):
        return error
    return {**error, "extensions": {**(error.get("extensions") or {}), "requestId": request_id}}


def _error_response(request: Request, error: HTTPException) -> Response:
    extensions = {
        "code": error.code
        if isinstance(error, Unauthenticated | MultipartRefusal)
        else "BAD_REQUEST",
        "requestId": current_request_id(),
    }
    body = {"errors": [{"message": error.reason, "extensions": extensions}]}
    if not isinstance(error, Unauthenticated):
        return JSONResponse(body, status_code=error.status_code)
    return Response(
        json.dumps(body),
        status_code=401,
        media_type=GRAPHQL_RESPONSE if _wants_graphql_response(request) else "application/json",
        headers={"WWW-Authenticate": 'Bearer realm="workbench"'},
    )
