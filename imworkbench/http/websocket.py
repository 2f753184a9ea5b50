"""GraphQL over WebSocket: both subprotocols, hardened (SPEC §7; issue 2 "protocol safety").

On top of Strawberry's handlers:

- Authentication at ``connection_init`` (payload ``Authorization`` or the handshake header);
  refusal closes with 4403 on both protocols (Strawberry's graphql-ws would close 1011).
- A token that expires on a live connection closes it with 4401.
- Every message is checked for shape before Strawberry sees it (object with a string ``type``;
  string ``id``; ``payload`` an object whose ``query`` is a string, ``variables`` and
  ``extensions`` objects, ``operationName`` a string): anything else closes with 4400 instead
  of crashing the connection. Frames too deeply nested to decode count as non-JSON.
- graphql-ws gets what graphql-transport-ws has: the init timeout (4408), one init only (4429),
  and a clear error for a query or mutation, which that protocol cannot run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import suppress
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ConnectionInitMessage

from resolvers.errors import NotAuthenticated
from resolvers.identity import Principal
from resolvers.tokens import LEEWAY_SECONDS
from schema.badges import badge_stream
from schema.compiled import badges_plan
from schema.context import USER_ROLES, Context
from schema.plain_documents import Plan

logger = logging.getLogger("workbench.graphql")

EXPIRED_CLOSE_CODE = 4401
INVALID_CLOSE_CODE = 4400
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


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's adapter, treating frames that cannot be decoded at all (too deeply nested,
    integers past Python's digit limit) as non-JSON instead of crashing."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        """Decoded frames; see the class docstring."""
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                try:
                    decoded = self.view.decode_json(text)
                except (ValueError, RecursionError) as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
                    continue
                yield decoded
        except KeyError as error:
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass


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

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """A plain ``badges`` subscription runs compiled (``schema.compiled``); any other
        operation, or a caller not authenticated as a user, runs through Strawberry."""
        limits = getattr(self.schema, "limits", None)
        plan = (
            None
            if limits is None
            else badges_plan(operation.query, operation.variables, operation.operation_name, limits)
        )
        principal = self.context.principal
        if plan is None or principal is None or principal.role not in USER_ROLES:
            await super().run_operation(operation)
            return
        await self._run_badges(operation, plan, principal)

    async def _run_badges(
        self, operation: Operation[Context, None], plan: Plan, principal: Principal
    ) -> None:
        context = self.context
        events = badge_stream(context, principal, plan.platform).events()
        context.meter.subscription_started("badges")
        outcome = "ok"
        try:
            async for event in events:
                await operation.send_operation_message(
                    {"id": operation.id, "type": "next", "payload": {"data": plan.data(event)}}
                )
        except WebSocketDisconnected:
            return  # the client left while an event was on its way: nothing to report
        except Exception as error:  # as Strawberry: one masked error result, then complete
            outcome = "error"
            logger.error("unexpected error in badges: %r", error, exc_info=error)
            message = str(error) if getattr(self.view, "debug", False) else "Unexpected error."
            with suppress(Exception):
                await operation.send_operation_message(
                    {
                        "id": operation.id,
                        "type": "next",
                        "payload": {"data": None, "errors": [{"message": message}]},
                    }
                )
        finally:
            await events.aclose()
            context.meter.subscription_ended("badges")
            context.meter.operation("subscription", outcome)
        with suppress(Exception):
            await operation.send_operation_message({"id": operation.id, "type": "complete"})


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
        """Authenticate before acknowledging: refusal sends ``connection_error`` and closes
        4403; a second init closes 4429."""
        if self.connection_acknowledged:
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        payload = message.get("payload")
        try:
            self.context.principal = self.view.authenticate_ws(  # type: ignore[attr-defined]
                self.context, payload if isinstance(payload, dict) else None
            )
        except NotAuthenticated as error:
            await self.send_message(
                {"type": "connection_error", "payload": {"message": error.message}}
            )
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        arm_expiry(self.context)
        await super().handle_connection_init(message)

    async def handle_start(self, message: Any) -> None:
        """Start a subscription; a query or mutation gets an error message (this protocol
        only streams subscriptions)."""
        if self.connection_acknowledged:
            problem = _not_a_subscription(message["payload"])
            if problem is not None:
                await self.send_message(
                    {"type": "error", "id": message["id"], "payload": {"message": problem}}
                )
                return
        await super().handle_start(message)


def _not_a_subscription(payload: Mapping[str, Any]) -> str | None:
    try:
        document = parse(payload["query"], max_tokens=10_000)
    except GraphQLError:
        return None  # Strawberry reports syntax errors itself
    name = payload.get("operationName")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [d for d in operations if name is None or (d.name and d.name.value == name)]
    if len(chosen) == 1 and chosen[0].operation is not OperationType.SUBSCRIPTION:
        return (
            "graphql-ws runs subscriptions only; "
            "send queries and mutations over HTTP or graphql-transport-ws"
        )
    return None
