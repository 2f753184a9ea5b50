"""GraphQL over WebSocket: both subprotocols, hardened (SPEC §7; issue 2 "protocol safety").

On top of Strawberry's handlers:

- Authentication at ``connection_init`` (payload ``Authorization`` or the handshake header) by
  one function, ``authenticate_connection``, which the view's ``on_ws_connect`` calls for both
  protocols; refusal closes with 4403 on both (Strawberry's graphql-ws would close 1011).
- A token that expires on a live connection closes it with 4401.
- Every message is checked for shape before Strawberry sees it (object with a string ``type``;
  string ``id``; ``payload`` an object whose ``query`` is a string, ``variables`` and
  ``extensions`` objects, ``operationName`` a string): anything else closes with 4400 instead
  of crashing the connection. Frames too deeply nested to decode count as non-JSON.
- graphql-ws gets what graphql-transport-ws has: the init timeout (4408), one init only (4429),
  and a clear error for a query or mutation, which that protocol cannot run.
- A client that leaves while a result is on its way ends its operation quietly (no ERROR log),
  and so does a send that finds the connection closed by uvicorn itself (a ping timeout).
- Each connection may send ``MessageRate`` messages (a burst, then a rate per second: settings
  ``ws_message_burst`` and ``ws_messages_per_second``); the first message past it closes the
  connection with 4429 and a reason saying so, on both protocols (issue 11 item 2).
- An operation refused before execution (a syntax error, a document over the token, nesting,
  depth or alias limits, a validation error) is answered with an ``error`` message on both
  protocols, with the errors HTTP gives; the connection stays open (issue 11 item 1).

Which operations run compiled is the schema's business (``WorkbenchSchema``): this module
knows no field by name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage,
    OperationMessage,
)

from resolvers.errors import NotAuthenticated
from resolvers.tokens import LEEWAY_SECONDS
from schema.context import Context

logger = logging.getLogger("workbench.graphql")

EXPIRED_CLOSE_CODE = 4401
INVALID_CLOSE_CODE = 4400
FORBIDDEN_CLOSE_CODE = 4403
# Both protocols' "too many" close code (graphql-transport-ws: a second init); here also a
# connection over its message rate.
TOO_MANY_CLOSE_CODE = 4429
# graphql-ws's answer to a frame that is not JSON (subscriptions-transport-ws, "GQL_CONNECTION_
# ERROR"), in graphql-transport-ws's words for it (which closes 4400 instead).
NOT_JSON_ERROR = {
    "type": "connection_error",
    "payload": {"message": "WebSocket message must be valid JSON"},
}
SUBSCRIPTIONS_ONLY = (
    "graphql-ws runs subscriptions only; "
    "send queries and mutations over HTTP or graphql-transport-ws"
)
# extensions.code of the schema's refusal of an operation type the transport does not run.
OPERATION_NOT_ALLOWED = "OPERATION_NOT_ALLOWED"
# The longest a timer may sleep: asyncio refuses larger delays; a token living longer than
# this is refused by auth anyway.
MAX_TIMER_SECONDS = 366 * 86400
_OPTIONAL_OBJECT = (dict, type(None))
_OPTIONAL_STRING = (str, type(None))


def message_problem(message: object, operations: tuple[str, ...]) -> str | None:
    """Why ``message`` is malformed, or ``None`` when its shape is fine.

    ``operations`` are the message types that start an operation (``subscribe`` / ``start``);
    ``complete`` and ``stop`` need a string id too.
    """
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "a message needs a string type"
    if kind in ("connection_init", "ping", "pong") and not isinstance(
        message.get("payload"), _OPTIONAL_OBJECT
    ):
        return "payload must be an object"
    if kind in (*operations, "complete", "stop"):
        op_id = message.get("id")
        if not isinstance(op_id, str) or not op_id or len(op_id) > 128:
            return "id must be a string of 1 to 128 characters"
    if kind in operations:
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return "payload must be an object"
        if not isinstance(payload.get("query"), str):
            return "payload.query must be a string"
        if not isinstance(payload.get("variables"), _OPTIONAL_OBJECT):
            return "payload.variables must be an object"
        if not isinstance(payload.get("extensions"), _OPTIONAL_OBJECT):
            return "payload.extensions must be an object"
        if not isinstance(payload.get("operationName"), _OPTIONAL_STRING):
            return "payload.operationName must be a string"
    return None


@dataclass(frozen=True, slots=True)
class MessageRate:
    """How many messages one connection may send: ``per_second`` sustained, ``burst`` at once
    (a token bucket holding ``burst`` tokens, refilled at ``per_second``)."""

    per_second: float
    burst: int

    @property
    def refusal(self) -> str:
        """The close reason of a connection over the rate (at most 123 bytes, RFC 6455)."""
        return f"Too many messages: more than {self.burst} at once or {self.per_second:g}/s"


class MessageBucket:
    """One connection's token bucket for ``MessageRate``; time from the monotonic clock."""

    def __init__(self, rate: MessageRate) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Count one message; ``False`` when it is over the rate."""
        now = time.monotonic()
        refilled = self.tokens + (now - self.stamp) * self.rate.per_second
        self.tokens, self.stamp = min(float(self.rate.burst), refilled), now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's adapter, treating frames that cannot be decoded at all (too deeply nested,
    integers past Python's digit limit) as non-JSON instead of crashing (graphql-ws answers
    each with ``NOT_JSON_ERROR``), and closing a connection whose messages exceed the view's
    ``message_rate`` (``MessageRate``) with 4429: every text frame counts, decodable or not,
    before anything else is done with it."""

    def __init__(self, view: Any, request: WebSocket, response: WebSocket) -> None:
        super().__init__(view, request, response)
        rate = getattr(view, "message_rate", None)
        self.bucket = MessageBucket(rate) if isinstance(rate, MessageRate) else None

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        """Decoded frames; see the class docstring."""
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if self.bucket is not None and not self.bucket.take():
                    await self.close(TOO_MANY_CLOSE_CODE, self.bucket.rate.refusal)
                    return
                try:
                    decoded = self.view.decode_json(text)
                except (ValueError, RecursionError) as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
                    # graphql-ws (the only caller that ignores them) answers as the protocol's
                    # reference server does, and goes on; Strawberry would say nothing.
                    await self.send_json(NOT_JSON_ERROR)
                    continue
                yield decoded
        except KeyError as error:
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass

    async def send_json(self, message: Mapping[str, object]) -> None:
        """Send ``message``; a connection that is closed, by the client or by the server
        itself, raises ``WebSocketDisconnected``, which ends the operation quietly.

        uvicorn closes a connection on its own (a ping timeout, a protocol error) and tells
        the app only once the TCP connection is gone: a send in between raises RuntimeError
        ("Unexpected ASGI message 'websocket.send', after sending 'websocket.close'"), which
        Strawberry logged as an operation's failure (issue 11 item 8). Starlette lets a send
        through only on an accepted connection we have not closed, and refuses one after our
        own close with RuntimeError too, so past the handshake a RuntimeError from sending
        means the connection is closed. Encoding stays outside: its errors are real."""
        encoded = self.view.encode_json(message)
        try:
            if isinstance(encoded, bytes):
                await self.ws.send_bytes(encoded)
            else:
                await self.ws.send_text(encoded)
        except WebSocketDisconnect as error:
            raise WebSocketDisconnected from error
        except RuntimeError as error:
            if self.ws.application_state == WebSocketState.CONNECTING:
                raise  # never accepted: a fault of ours
            raise WebSocketDisconnected from error

    async def close(self, code: int, reason: str) -> None:
        """Close the socket; closing a closed socket does nothing (Strawberry's graphql-ws
        handler closes a refused connection once more, see ``GraphQLWSHandler``)."""
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        await self.ws.close(code=code, reason=reason)


async def _close_later(websocket: Any, delay: float, code: int, reason: str) -> None:
    await asyncio.sleep(min(max(delay, 0), MAX_TIMER_SECONDS))
    with suppress(Exception):  # already closed: nothing to do
        await websocket.close(code=code, reason=reason)


def arm_expiry(context: Context) -> None:
    """Close the connection with 4401 when the principal's token expires (SPEC §7: an expired
    token never sees data). ``disarm_expiry`` cancels it when the connection ends first."""
    disarm_expiry(context)
    principal = context.principal
    if principal is None or principal.expires_at is None:
        return
    delay = principal.expires_at + LEEWAY_SECONDS - time.time()
    context.extra["expiry"] = asyncio.create_task(
        _close_later(context.response, delay, EXPIRED_CLOSE_CODE, "Token expired")
    )


def disarm_expiry(context: Context) -> None:
    """Cancel the expiry timer of a finished connection."""
    task = context.extra.pop("expiry", None)
    if task is not None:
        task.cancel()


def authenticate_connection(context: Context) -> None:
    """Authenticate a WebSocket at ``connection_init``, for both protocols (the view's
    ``on_ws_connect``): the principal of the init payload's ``Authorization``, else of the
    handshake's header (``Context.connection_principal``), with its expiry armed. Raises
    ``ConnectionRejectionError`` (``{"message": why}``), which closes the socket with 4403."""
    try:
        context.principal = context.connection_principal()
    except NotAuthenticated as error:
        raise ConnectionRejectionError({"message": error.message}) from error
    arm_expiry(context)


class GraphQLTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """``graphql-transport-ws`` with message shapes checked and token expiry enforced."""

    async def handle(self) -> None:
        """Run the protocol; stop the expiry timer when the connection ends."""
        try:
            await super().handle()
        finally:
            disarm_expiry(self.context)

    async def handle_message(self, message: Any) -> None:
        """Close malformed messages with 4400; pass the rest to Strawberry."""
        problem = message_problem(message, ("subscribe",))
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_task_exception(self, error: Exception) -> None:
        """Log an operation's unexpected failure; a client that left while a result was on
        its way is not one (a storm test saw hundreds of such log lines)."""
        if isinstance(error, WebSocketDisconnected):
            return
        await super().handle_task_exception(error)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        """Strawberry closes the connection (4400) on a document that does not parse; the
        protocol answers every error before execution with an ``error`` message, which ends
        only that operation, so a syntax error (over the token or nesting limit included) is
        answered like a validation error, with HTTP's errors (issue 11 item 1). A request
        that selects no single operation (an unknown ``operationName``, several operations
        and no name) never gets here: the schema answers it first (``WorkbenchSchema``)."""
        if isinstance(error, GraphQLSyntaxError):
            return None
        return BaseGraphQLTransportWSHandler._get_pre_execution_close_reason(error)


class GraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """Legacy ``graphql-ws``: see the module docstring for what it adds."""

    async def handle(self) -> None:
        """Run the protocol with an init timeout; stop the timers when the connection ends."""
        timeout = self.view.connection_init_wait_timeout.total_seconds()
        waiting = asyncio.create_task(self._close_unless_acknowledged(timeout))
        try:
            await super().handle()
        finally:
            waiting.cancel()
            disarm_expiry(self.context)

    async def _close_unless_acknowledged(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if not self.connection_acknowledged:
            with suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_message(self, message: Any) -> None:
        """Close malformed messages with 4400; pass the rest to Strawberry."""
        problem = message_problem(message, ("start",))
        if problem is not None:
            await self.websocket.close(code=INVALID_CLOSE_CODE, reason=problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """A second init closes 4429; the first is Strawberry's, which authenticates through
        the view's ``on_ws_connect``."""
        if self.connection_acknowledged:
            await self.websocket.close(
                code=TOO_MANY_CLOSE_CODE, reason="Too many initialisation requests"
            )
            return
        await super().handle_connection_init(message)

    async def send_message(self, message: OperationMessage) -> None:
        """Send ``message``, with two corrections of Strawberry's graphql-ws: the refusal of a
        query or mutation (this protocol only subscribes) says what to use instead, and a
        refused init (``connection_error``) closes with 4403, as graphql-transport-ws does
        (Strawberry closes 1011, "internal error", next; the adapter ignores that close)."""
        if message["type"] == "error" and _refused_operation_type(message.get("payload")):
            message = {
                "type": "error",
                "id": message["id"],
                "payload": {"message": SUBSCRIPTIONS_ONLY},
            }
        await super().send_message(message)
        if message["type"] == "connection_error":
            await self.websocket.close(code=FORBIDDEN_CLOSE_CODE, reason="Forbidden")

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Run one operation; a client that left while a result was on its way ends it
        quietly (Strawberry would leave the task's exception unretrieved)."""
        with suppress(WebSocketDisconnected):
            await super().handle_async_results(operation_id, query, operation_name, variables)


def _refused_operation_type(payload: object) -> bool:
    extensions = payload.get("extensions") if isinstance(payload, dict) else None
    return isinstance(extensions, dict) and extensions.get("code") == OPERATION_NOT_ALLOWED
