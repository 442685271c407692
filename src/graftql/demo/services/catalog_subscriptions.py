"""The catalog's GraphQL subscriptions: ``priceChanged(productId)`` over WebSocket.

A small graphql-transport-ws server on graphql-core (the catalog shares no code with the
gateway, as a real upstream would not). The bearer token is accepted in the handshake's
``Authorization`` header or in the ``connection_init`` payload (``Authorization``); without
it the connection is closed with 4403. Price changes are made through the control routes:

- ``POST /__prices`` ``{"productId": "p1", "amount": 1234}``: publish a price change; answers
  how many subscriptions it reached.
- ``GET /__subscriptions``: connections open and opened in all, subscriptions open, and where
  each connection's credentials came from (``header`` or ``payload``).
- ``POST /__subscriptions/drop``: close every connection (1012, service restart), to show a
  gateway reconnecting.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult, GraphQLSchema, subscribe
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from graftql.demo.data import CURRENCY, PRODUCTS_BY_ID
from graftql.demo.services.common import JSONObject

__all__ = ["PriceFeed", "subscription_routes"]

PROTOCOL = "graphql-transport-ws"


class PriceFeed:
    """Price changes, fanned out to the open ``priceChanged`` subscriptions."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Queue[JSONObject]]] = defaultdict(set)
        self.sockets: set[WebSocket] = set()
        self.opened = 0
        self.credentials: list[str] = []

    def publish(self, product_id: str, amount: int) -> int:
        change: JSONObject = {
            "productId": product_id,
            "price": {"amount": amount, "currency": CURRENCY},
        }
        watchers = self._watchers.get(product_id, set())
        for queue in watchers:
            queue.put_nowait(change)
        return len(watchers)

    @property
    def subscriptions(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    async def watch(self, product_id: str) -> AsyncIterator[JSONObject]:
        queue: asyncio.Queue[JSONObject] = asyncio.Queue()
        self._watchers[product_id].add(queue)
        try:
            while True:
                yield {"priceChanged": await queue.get()}
        finally:
            self._watchers[product_id].discard(queue)


def install(schema: GraphQLSchema, feed: PriceFeed) -> None:
    subscription = schema.subscription_type
    assert subscription is not None

    def subscribe_price(_root: object, _info: object, productId: str) -> Any:
        return feed.watch(productId)

    subscription.fields["priceChanged"].subscribe = subscribe_price
    subscription.fields["priceChanged"].resolve = lambda event, _info, **_args: event[
        "priceChanged"
    ]


def subscription_routes(
    schema: GraphQLSchema,
    feed: PriceFeed,
    *,
    token: bytes,
    documents: Any,
) -> tuple[WebSocketRoute, list[Route]]:
    """The WebSocket route (``/graphql``) and the control routes."""

    def authorized(value: object) -> bool:
        if not isinstance(value, str):
            return False
        scheme, _, credentials = value.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode("latin-1"), token
        )

    async def endpoint(ws: WebSocket) -> None:
        if PROTOCOL not in ws.scope.get("subprotocols", []):
            await ws.close(code=4406)
            return
        await ws.accept(subprotocol=PROTOCOL)
        feed.sockets.add(ws)
        feed.opened += 1
        operations: dict[str, asyncio.Task[None]] = {}
        by_header = authorized(ws.headers.get("authorization"))
        try:
            await _serve(ws, schema, documents, operations, by_header, authorized, feed)
        except WebSocketDisconnect:
            pass
        finally:
            tasks = list(operations.values())
            for task in tasks:
                task.cancel()
            # Its subscriptions are gone before the connection stops counting as open.
            await asyncio.gather(*tasks, return_exceptions=True)
            feed.sockets.discard(ws)

    async def prices(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            product_id, amount = body["productId"], body["amount"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "send {productId, amount}"}, status_code=400)
        if product_id not in PRODUCTS_BY_ID or not isinstance(amount, int) or amount < 0:
            return JSONResponse({"error": "unknown product or bad amount"}, status_code=400)
        return JSONResponse({"delivered": feed.publish(product_id, amount)})

    async def status(_: Request) -> Response:
        return JSONResponse(
            {
                "connections": len(feed.sockets),
                "opened": feed.opened,
                "subscriptions": feed.subscriptions,
                "credentials": feed.credentials,
            }
        )

    async def drop(_: Request) -> Response:
        sockets = list(feed.sockets)
        for ws in sockets:
            with suppress(Exception):
                await ws.close(code=1012, reason="service restart")
        return JSONResponse({"dropped": len(sockets)})

    return WebSocketRoute("/graphql", endpoint), [
        Route("/__prices", prices, methods=["POST"]),
        Route("/__subscriptions", status, methods=["GET"]),
        Route("/__subscriptions/drop", drop, methods=["POST"]),
    ]


async def _serve(
    ws: WebSocket,
    schema: GraphQLSchema,
    documents: Any,
    operations: dict[str, asyncio.Task[None]],
    by_header: bool,
    authorized: Callable[[object], bool],
    feed: PriceFeed,
) -> None:
    acknowledged = False
    while True:
        message = json.loads(await ws.receive_text())
        kind = message.get("type")
        if kind == "connection_init":
            payload = message.get("payload") or {}
            by_payload = authorized(payload.get("Authorization") or payload.get("authorization"))
            if not (by_header or by_payload):
                await ws.close(code=4403, reason="Forbidden")
                return
            feed.credentials.append("header" if by_header else "payload")
            acknowledged = True
            await ws.send_text(json.dumps({"type": "connection_ack"}))
        elif kind == "ping":
            await ws.send_text(json.dumps({"type": "pong"}))
        elif kind == "subscribe":
            if not acknowledged:
                await ws.close(code=4401, reason="Unauthorized")
                return
            op = message["id"]
            payload = message["payload"]
            operations[op] = asyncio.create_task(
                _run(ws, schema, documents, op, payload, operations)
            )
        elif kind == "complete":
            task = operations.pop(message.get("id"), None)
            if task is not None:
                task.cancel()


async def _run(
    ws: WebSocket,
    schema: GraphQLSchema,
    documents: Any,
    op: str,
    payload: JSONObject,
    operations: dict[str, asyncio.Task[None]],
) -> None:
    document, errors = documents.get(payload.get("query") or "")
    if document is None:
        formatted = [error.formatted for error in errors]
        await ws.send_text(json.dumps({"id": op, "type": "error", "payload": formatted}))
        operations.pop(op, None)
        return
    stream: Any = subscribe(schema, document, variable_values=payload.get("variables"))
    if isawaitable(stream):
        stream = await stream
    if isinstance(stream, ExecutionResult):
        formatted = [error.formatted for error in stream.errors or ()]
        await ws.send_text(json.dumps({"id": op, "type": "error", "payload": formatted}))
        operations.pop(op, None)
        return
    try:
        async for result in stream:
            await ws.send_text(json.dumps({"id": op, "type": "next", "payload": result.formatted}))
        await ws.send_text(json.dumps({"id": op, "type": "complete"}))
    finally:
        operations.pop(op, None)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with suppress(Exception):
                await aclose()
