"""GraphQL over WebSocket: strawberry's two protocol handlers with graftql's rules on top.

Both protocols (``graphql-transport-ws``, and the legacy ``graphql-ws`` of
subscriptions-transport-ws) get:

- **A per-connection cap** (``server.websocket.max_subscriptions``): an operation started
  while that many run on the connection gets an ``error`` message for its id, code
  ``SUBSCRIPTION_LIMIT``, and the connection stays open. Neither protocol has a close code
  for it (4429 is "too many initialisation requests"), and closing would end the client's
  other subscriptions too.
- **A connection_init timeout**: no ``connection_init`` within
  ``server.websocket.connection_init_timeout`` closes the socket with 4408.
- **Keep-alive**: a ``ping`` (graphql-transport-ws; clients answer ``pong``) or ``ka``
  (graphql-ws) every ``server.websocket.keep_alive`` seconds once acknowledged.
- **Malformed messages**: graphql-transport-ws closes with 4400 and the reason, as its
  protocol says; graphql-ws answers an ``error`` message and stays open, as its server did.
- **Internal failures** of the connection handling (a bug, a crashing auth hook) close with
  4500 ``Internal server error``: nothing of the exception reaches the client; the log has
  it. A failing *operation* is not one of those: its error is a GraphQL error in its own
  ``next``/``data`` message, masked in production like every unexpected error.

The legacy protocol runs queries and mutations too (``start`` with any operation, one
``data`` then ``complete``), as subscriptions-transport-ws did; strawberry's handler answers
them "queries are not allowed", which breaks clients that send everything over one socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any, Protocol, cast

from graphql import GraphQLError
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    OperationMessage,
    StartMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from graftql.config import WebSocketConfig
from graftql.resolvers import Context
from graftql.schema.subscriptions import delivered

__all__ = [
    "SUBSCRIPTION_LIMIT",
    "ConnectionObserver",
    "LegacyGraphQLWS",
    "TransportWS",
    "message_problem",
]

logger = logging.getLogger("graftql.server")

SUBSCRIPTION_LIMIT = "SUBSCRIPTION_LIMIT"
INTERNAL_ERROR = (4500, "Internal server error")

# Each field of a subscribe (start) payload with the type it must have when given.
_PAYLOAD_FIELDS: tuple[tuple[str, type, str], ...] = (
    ("variables", dict, "an object"),
    ("operationName", str, "a string"),
    ("extensions", dict, "an object"),
)


def message_problem(message: object, start: str) -> str | None:
    """Why ``message`` is not a well-formed protocol message, or None. ``start`` is the type
    that carries an operation (``subscribe``, or ``start`` in graphql-ws)."""
    if not isinstance(message, dict):
        return "a message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "a message must have a string 'type'"
    if kind in (start, "complete", "stop"):
        ident = message.get("id")
        if not isinstance(ident, str) or not ident:
            return f"a '{kind}' message must have a non-empty string 'id'"
    if kind == start:
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return f"a '{kind}' message must have an object 'payload'"
        if not isinstance(payload.get("query"), str):
            return f"a '{kind}' payload must have a string 'query'"
        for key, expected, described in _PAYLOAD_FIELDS:
            value = payload.get(key)
            if value is not None and not isinstance(value, expected):
                return f"a '{kind}' payload's '{key}' must be {described}"
    return None


class ConnectionObserver(Protocol):
    """Told when a WebSocket connection is accepted and when it ends (the metrics)."""

    def websocket_opened(self, protocol: str) -> None: ...

    def websocket_closed(self, protocol: str) -> None: ...


async def _observed(handler: Any, protocol: str, handle: Callable[[], Awaitable[None]]) -> None:
    observer: ConnectionObserver | None = getattr(handler.view, "connection_observer", None)
    if observer is None:
        await handle()
        return
    observer.websocket_opened(protocol)
    try:
        await handle()
    finally:
        observer.websocket_closed(protocol)


async def _closed_on_failure(websocket: AsyncWebSocketAdapter, handling: Awaitable[None]) -> None:
    """Await ``handling`` (a message); if the connection handling itself fails, close the
    socket with 4500: the log has the exception, the client nothing of it."""
    try:
        await handling
    except WebSocketDisconnected:
        raise
    except Exception:
        logger.exception("WebSocket connection failed (closed with 4500)")
        await websocket.close(*INTERNAL_ERROR)


def _settings(view: Any) -> WebSocketConfig:
    settings = getattr(view, "websocket_settings", None)
    return settings if isinstance(settings, WebSocketConfig) else WebSocketConfig()


def _limit_error(cap: int) -> GraphQLError:
    return GraphQLError(
        f"at most {cap} operations may run at once on one connection; complete one first",
        extensions={"code": SUBSCRIPTION_LIMIT},
    )


class TransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md)."""

    _keep_alive_task: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        await _observed(self, "graphql-transport-ws", super().handle)

    async def send_message(self, message: Message) -> None:
        await super().send_message(message)
        if message["type"] == "next":
            delivered()  # counts only in a subscription's task (schema/subscriptions.py)

    async def handle_message(self, message: Message) -> None:
        problem = message_problem(message, "subscribe")
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await _closed_on_failure(self.websocket, super().handle_message(message))

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        interval = _settings(self.view).keep_alive
        if self.connection_acknowledged and interval and self._keep_alive_task is None:
            self._keep_alive_task = asyncio.create_task(self._keep_alive(interval))

    async def _keep_alive(self, interval: float) -> None:
        with suppress(WebSocketDisconnected, RuntimeError):
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        cap = _settings(self.view).max_subscriptions
        if (
            self.connection_acknowledged
            and message["id"] not in self.operations
            and len(self.operations) >= cap
        ):
            error = _limit_error(cap)
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        # strawberry closes the socket (4400) for a syntax error or an unknown operationName;
        # an invalid document is that operation's problem: an ``error`` message for its id.
        return None

    async def shutdown(self) -> None:
        if self._keep_alive_task is not None:
            self._keep_alive_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._keep_alive_task
        await super().shutdown()


class LegacyGraphQLWS(BaseGraphQLWSHandler[Context, None]):
    """The legacy graphql-ws protocol of subscriptions-transport-ws (``start``/``data``/
    ``stop``, ``ka`` keep-alives)."""

    async def handle(self) -> None:
        timer = asyncio.create_task(self._init_timeout())
        try:
            await _observed(self, "graphql-ws", super().handle)
        finally:
            timer.cancel()
            with suppress(asyncio.CancelledError):
                await timer

    async def _init_timeout(self) -> None:
        await asyncio.sleep(_settings(self.view).connection_init_timeout)
        if not self.connection_acknowledged:
            with suppress(Exception):
                await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: Any) -> None:
        if self.connection_acknowledged:  # strawberry would ack again and start a 2nd ka loop
            await self.websocket.close(code=4429, reason="Too many initialisation requests")
            return
        await super().handle_connection_init(message)

    async def handle_message(self, message: OperationMessage) -> None:
        problem = message_problem(message, "start")
        if problem is not None:
            raw = cast("Mapping[str, object]", message) if isinstance(message, dict) else {}
            ident = raw.get("id")
            error: dict[str, Any] = {"type": "error", "payload": {"message": problem}}
            if isinstance(ident, str):
                error["id"] = ident
            await self.websocket.send_json(error)
            return
        await _closed_on_failure(self.websocket, super().handle_message(message))

    async def handle_start(self, message: StartMessage) -> None:
        cap = _settings(self.view).max_subscriptions
        ident = message["id"]
        if self.connection_acknowledged and ident not in self.tasks and len(self.tasks) >= cap:
            await self.websocket.send_json(
                {"type": "error", "id": ident, "payload": _limit_error(cap).formatted}
            )
            return
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # strawberry's, with ``stream`` instead of ``subscribe``: queries and mutations run
        # too (one ``data``, then ``complete``), as the protocol has it.
        try:
            source = await self.schema.stream(
                query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=self.context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = source
            first = True
            async for result in source:
                if first and isinstance(result, PreExecutionError):
                    assert result.errors
                    await self.websocket.send_json(
                        {
                            "type": "error",
                            "id": operation_id,
                            "payload": result.errors[0].formatted,
                        }
                    )
                    return
                first = False
                if not isinstance(result, ExecutionResult):  # @defer/@stream: no wire form
                    error = GraphQLError("incremental delivery is not supported over graphql-ws")
                    await self.websocket.send_json(
                        {"type": "error", "id": operation_id, "payload": error.formatted}
                    )
                    return
                await self.send_data_message(result, operation_id)
                delivered()  # counts only in a subscription's task (schema/subscriptions.py)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            with suppress(Exception):
                await self.send_message({"type": "complete", "id": operation_id})
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)
