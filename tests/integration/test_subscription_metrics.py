"""Subscription metrics over real clients: `graftql_subscriptions_active{transport}` is 1 while a
subscription runs and 0 once it completed, was stopped or its client went away;
`graftql_subscription_events_total{transport}` counts exactly the events sent; WebSocket
connections are counted by protocol. Queries over the same transports count nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import strawberry
import websockets

from graftql import GatewaySchema
from integration.helpers import Samples, scrape, serve, value, ws_url

ACTIVE = "graftql_subscriptions_active"
EVENTS = "graftql_subscription_events_total"
CONNECTIONS = "graftql_websocket_connections"


@strawberry.type
class Query:
    hello: str = "hello"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, count: int = 2, hold: bool = False) -> AsyncIterator[int]:
        for tick in range(count):
            yield tick
        if hold:  # stays subscribed until the client stops or leaves
            await asyncio.Event().wait()


SCHEMA = GatewaySchema(query=Query, subscription=Subscription)


@contextmanager
def gateway() -> Iterator[str]:
    with serve(SCHEMA) as server:
        yield server.url


async def settled(url: str, expected: dict[tuple[str, str, str], float]) -> Samples:
    """Scrape until every (metric, label, value) is as expected (the server counts right
    after it sent, so a client can be a moment ahead); then the exact values are asserted."""
    deadline = time.monotonic() + 10
    while True:
        samples = await asyncio.to_thread(scrape, url)
        seen = {key: value(samples, key[0], **{key[1]: key[2]}) for key in expected}
        if seen == expected or time.monotonic() > deadline:
            assert seen == expected
            return samples
        await asyncio.sleep(0.05)


def ws(name: str) -> tuple[str, str, str]:
    labels = {ACTIVE: "transport", EVENTS: "transport", CONNECTIONS: "protocol"}
    value = "websocket" if name != CONNECTIONS else "graphql-transport-ws"
    return (name, labels[name], value)


async def receive(socket: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket.recv(), 10))
    return message


def test_graphql_transport_ws_subscriptions_are_counted_while_they_run() -> None:
    with gateway() as url:
        before = scrape(url)
        assert value(before, ACTIVE, transport="websocket") == 0
        assert value(before, ACTIVE, transport="sse") == 0
        assert value(before, EVENTS, transport="websocket") == 0
        assert value(before, CONNECTIONS, protocol="graphql-transport-ws") == 0

        async def scenario() -> None:
            protocols: Any = ["graphql-transport-ws"]
            async with websockets.connect(ws_url(url), subprotocols=protocols) as socket:
                await socket.send(json.dumps({"type": "connection_init"}))
                assert await receive(socket) == {"type": "connection_ack"}
                query = "subscription { ticks(count: 3, hold: true) }"
                await socket.send(
                    json.dumps({"id": "a", "type": "subscribe", "payload": {"query": query}})
                )
                for tick in range(3):
                    assert await receive(socket) == {
                        "id": "a",
                        "type": "next",
                        "payload": {"data": {"ticks": tick}},
                    }
                await settled(url, {ws(ACTIVE): 1, ws(EVENTS): 3, ws(CONNECTIONS): 1})
                # A query on the same connection is no subscription and sends no event of one.
                await socket.send(
                    json.dumps({"id": "q", "type": "subscribe", "payload": {"query": "{ hello }"}})
                )
                assert (await receive(socket))["type"] == "next"
                assert await receive(socket) == {"id": "q", "type": "complete"}
                # The client completes (stops) the subscription.
                await socket.send(json.dumps({"id": "a", "type": "complete"}))
                await settled(url, {ws(ACTIVE): 0, ws(EVENTS): 3, ws(CONNECTIONS): 1})
                # One that completes by itself.
                await socket.send(
                    json.dumps(
                        {
                            "id": "b",
                            "type": "subscribe",
                            "payload": {"query": "subscription { ticks(count: 2) }"},
                        }
                    )
                )
                assert [(await receive(socket))["type"] for _ in range(3)] == [
                    "next",
                    "next",
                    "complete",
                ]
                await settled(url, {ws(ACTIVE): 0, ws(EVENTS): 5})
                # One still running when the client goes away.
                await socket.send(
                    json.dumps(
                        {
                            "id": "c",
                            "type": "subscribe",
                            "payload": {"query": "subscription { ticks(count: 1, hold: true) }"},
                        }
                    )
                )
                assert (await receive(socket))["type"] == "next"
                await settled(url, {ws(ACTIVE): 1, ws(EVENTS): 6})
            await settled(url, {ws(ACTIVE): 0, ws(EVENTS): 6, ws(CONNECTIONS): 0})

        asyncio.run(scenario())
        after = scrape(url)
    assert value(after, ACTIVE, transport="sse") == 0
    assert value(after, EVENTS, transport="sse") == 0


def test_legacy_graphql_ws_subscriptions_are_counted_too() -> None:
    with gateway() as url:

        async def scenario() -> None:
            protocols: Any = ["graphql-ws"]
            legacy = (CONNECTIONS, "protocol", "graphql-ws")
            async with websockets.connect(ws_url(url), subprotocols=protocols) as socket:
                await socket.send(json.dumps({"type": "connection_init"}))
                assert (await receive(socket))["type"] == "connection_ack"
                query = "subscription { ticks(count: 2, hold: true) }"
                await socket.send(
                    json.dumps({"id": "1", "type": "start", "payload": {"query": query}})
                )
                messages = []
                while len(messages) < 2:
                    message = await receive(socket)
                    if message["type"] == "data":
                        messages.append(message)
                await settled(url, {ws(ACTIVE): 1, ws(EVENTS): 2, legacy: 1})
                await socket.send(json.dumps({"id": "1", "type": "stop"}))
                await settled(url, {ws(ACTIVE): 0, ws(EVENTS): 2, legacy: 1})
            await settled(url, {ws(ACTIVE): 0, legacy: 0, ws(CONNECTIONS): 0})

        asyncio.run(scenario())


SSE_ACTIVE = (ACTIVE, "transport", "sse")
SSE_EVENTS = (EVENTS, "transport", "sse")


def test_sse_subscriptions_are_counted_while_their_stream_is_open() -> None:
    with gateway() as url:

        async def scenario() -> None:
            headers = {"accept": "text/event-stream"}
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                query = {"query": "subscription { ticks(count: 2, hold: true) }"}
                async with client.stream(
                    "POST", "/graphql/stream", json=query, headers=headers
                ) as response:
                    assert response.status_code == 200
                    # Read without leaving the iteration: an abandoned line iterator would
                    # close the response (httpx), and the stream must stay open here.
                    lines = response.aiter_lines()
                    events = 0
                    while events < 2:
                        if await lines.__anext__() == "event: next":
                            events += 1
                    await settled(url, {SSE_ACTIVE: 1, SSE_EVENTS: 2})
                # The client closed the stream: the subscription ends with it.
                await settled(url, {SSE_ACTIVE: 0, SSE_EVENTS: 2})

                # Completes by itself: three events, then complete.
                query = {"query": "subscription { ticks(count: 3) }"}
                finished = await client.post("/graphql/stream", json=query, headers=headers)
                assert finished.text.count("event: next") == 3
                assert finished.text.endswith("event: complete\ndata:\n\n")
                await settled(url, {SSE_ACTIVE: 0, SSE_EVENTS: 5})

                # A query over SSE streams one result that is not a subscription event.
                answered = await client.post(
                    "/graphql/stream", json={"query": "{ hello }"}, headers=headers
                )
                assert answered.text.count("event: next") == 1
                samples = await settled(url, {SSE_ACTIVE: 0, SSE_EVENTS: 5})
                assert value(samples, EVENTS, transport="websocket") == 0

        asyncio.run(scenario())
