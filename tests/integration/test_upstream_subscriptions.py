"""Upstream subscriptions against the demo catalog's real graphql-transport-ws server: the
demo's ``priceChanged`` proxied with the catalog's credentials, one upstream subscription
shared by every client watching the same product, reconnecting after the upstream drops the
connection, and the failures a client sees (credentials refused, upstream gone)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from graftql.config import parse_config
from graftql.demo.servers import ServerThread, bind_loopback
from graftql.demo.services import catalog
from graftql.errors import UpstreamUnavailable
from graftql.server import create_app
from graftql.upstreams import GraphQLUpstream, UpstreamGraphQLErrors
from integration.helpers import ws_url

TOKEN = "catalog-subscription-token"
WAIT = 10.0
PRICE = 'subscription { priceChanged(productId: "p1") { productId price { amount currency } } }'


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with ServerThread(catalog.create_app(token=TOKEN)) as server:
        yield server.url


GATEWAYS: dict[str, Any] = {}  # a running gateway's WebSocket URL -> its app


def gateway_subscribers(url: str) -> int:
    """Gateway subscriptions reading the catalog's upstream subscriptions now."""
    count: int = GATEWAYS[url].state.upstreams["catalog"].subscriptions.subscribers
    return count


@contextmanager
def gateway(catalog_url: str, token: str = TOKEN, **subscriptions: Any) -> Iterator[str]:
    config = parse_config(
        {
            "schema": "graftql.demo.schema:schema",
            "upstreams": {
                "catalog": {
                    "kind": "graphql",
                    "url": f"{catalog_url}/graphql",
                    "auth": {"type": "bearer", "token": "${CATALOG_TOKEN}"},
                    "subscriptions": {"reconnect_initial": 0.05, **subscriptions},
                }
            },
        },
        environ={"CATALOG_TOKEN": token},
    )
    app = create_app(config)
    with ServerThread(app) as server:
        url = ws_url(server.url)
        GATEWAYS[url] = app
        try:
            yield url
        finally:
            del GATEWAYS[url]


@asynccontextmanager
async def client(url: str) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        yield ws


async def receive(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if message["type"] != "ping":
            return message


def status(catalog_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{catalog_url}/__subscriptions").json()
    return body


async def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def drop(catalog_url: str) -> int:
    dropped: int = httpx.post(f"{catalog_url}/__subscriptions/drop").json()["dropped"]
    return dropped


def publish(catalog_url: str, amount: int, product: str = "p1") -> int:
    body = {"productId": product, "amount": amount}
    response = httpx.post(f"{catalog_url}/__prices", json=body)
    assert response.status_code == 200, response.text
    delivered: int = response.json()["delivered"]
    return delivered


def change(amount: int) -> dict[str, Any]:
    return {"priceChanged": {"productId": "p1", "price": {"amount": amount, "currency": "EUR"}}}


async def test_a_price_change_reaches_every_client_through_one_upstream_subscription(
    upstream: str,
) -> None:
    with gateway(upstream) as url:
        async with client(url) as first, client(url) as second:
            for ws in (first, second):
                await ws.send(
                    json.dumps({"id": "p", "type": "subscribe", "payload": {"query": PRICE}})
                )
            await until(lambda: gateway_subscribers(url) == 2, "both clients to subscribe")
            await until(lambda: status(upstream)["subscriptions"] == 1, "the upstream subscription")
            # Two clients, one upstream subscription, one connection; the catalog's token went
            # in the handshake's Authorization header.
            assert status(upstream)["connections"] == 1
            assert status(upstream)["credentials"][-1] == "header"
            assert publish(upstream, 1234) == 1
            for ws in (first, second):
                assert await receive(ws) == {
                    "id": "p",
                    "type": "next",
                    "payload": {"data": change(1234)},
                }
            # One client leaves: the other still receives.
            await first.send(json.dumps({"id": "p", "type": "complete"}))
            assert publish(upstream, 1300) == 1
            assert (await receive(second))["payload"] == {"data": change(1300)}
        # The last client left: the upstream subscription is closed.
        await until(lambda: status(upstream)["subscriptions"] == 0, "the upstream to be released")


async def test_the_gateway_reconnects_and_resubscribes_when_the_upstream_drops(
    upstream: str,
) -> None:
    with gateway(upstream) as url:
        async with client(url) as ws:
            await ws.send(json.dumps({"id": "p", "type": "subscribe", "payload": {"query": PRICE}}))
            await until(lambda: status(upstream)["subscriptions"] == 1, "the upstream subscription")
            opened = status(upstream)["opened"]
            assert drop(upstream) >= 1
            await until(
                lambda: (
                    (now := status(upstream))["opened"] > opened
                    and now["connections"] == 1
                    and now["subscriptions"] == 1
                ),
                "the gateway to reconnect and subscribe again",
            )
            assert publish(upstream, 999) == 1
            assert await receive(ws) == {
                "id": "p",
                "type": "next",
                "payload": {"data": change(999)},
            }


async def test_refused_credentials_are_upstream_auth_failed_without_retrying(
    upstream: str,
) -> None:
    with gateway(upstream, token="wrong") as url:
        async with client(url) as ws:
            await ws.send(json.dumps({"id": "p", "type": "subscribe", "payload": {"query": PRICE}}))
            failed = await receive(ws)
            assert failed["type"] == "next"
            [error] = failed["payload"]["errors"]
            assert error["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"
            assert error["extensions"]["upstream"] == "catalog"
            assert "wrong" not in json.dumps(failed)
            assert await receive(ws) == {"id": "p", "type": "complete"}


async def test_an_unreachable_upstream_is_unavailable_after_the_reconnect_attempts() -> None:
    closed = bind_loopback()
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with gateway(f"http://127.0.0.1:{port}", reconnect_attempts=3, reconnect_initial=0.01) as url:
        async with client(url) as ws:
            await ws.send(json.dumps({"id": "p", "type": "subscribe", "payload": {"query": PRICE}}))
            failed = await receive(ws)
            [error] = failed["payload"]["errors"]
            assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
            assert await receive(ws) == {"id": "p", "type": "complete"}


async def test_an_operation_the_upstream_refuses_is_upstream_bad_response(upstream: str) -> None:
    config = parse_config(
        {
            "schema": "x:y",
            "upstreams": {
                "catalog": {
                    "kind": "graphql",
                    "url": f"{upstream}/graphql",
                    "auth": {"type": "bearer", "token": "${CATALOG_TOKEN}"},
                }
            },
        },
        environ={"CATALOG_TOKEN": TOKEN},
    )
    catalog_upstream = GraphQLUpstream("catalog", config.upstreams["catalog"])
    try:
        events = catalog_upstream.subscribe("subscription { nope }")
        with pytest.raises(UpstreamGraphQLErrors) as refused:
            await anext(events)
        assert refused.value.code == "UPSTREAM_BAD_RESPONSE"
        assert "nope" in refused.value.detail
        assert catalog_upstream.subscriptions.active == 0
        # A valid one, then closing the iterator releases the upstream subscription.
        events = catalog_upstream.subscribe(
            "subscription ($p: ID!) { priceChanged(productId: $p) { productId } }", {"p": "p2"}
        )
        waiting = asyncio.ensure_future(anext(events))
        await until(lambda: status(upstream)["subscriptions"] == 1, "the upstream subscription")
        assert publish(upstream, 5, "p2") == 1
        assert await waiting == {"priceChanged": {"productId": "p2"}}
        await events.aclose()
        await until(lambda: status(upstream)["subscriptions"] == 0, "the upstream to be released")
    finally:
        await catalog_upstream.aclose()


async def test_closing_the_upstream_ends_its_subscribers(upstream: str) -> None:
    config = parse_config(
        {
            "schema": "x:y",
            "upstreams": {
                "catalog": {
                    "kind": "graphql",
                    "url": f"{upstream}/graphql",
                    "auth": {"type": "bearer", "token": "${CATALOG_TOKEN}"},
                }
            },
        },
        environ={"CATALOG_TOKEN": TOKEN},
    )
    catalog_upstream = GraphQLUpstream("catalog", config.upstreams["catalog"])
    events = catalog_upstream.subscribe(
        "subscription ($p: ID!) { priceChanged(productId: $p) { productId } }", {"p": "p3"}
    )
    waiting = asyncio.ensure_future(anext(events))
    await until(lambda: catalog_upstream.subscriptions.active == 1, "the upstream subscription")
    await catalog_upstream.aclose()
    with pytest.raises(UpstreamUnavailable, match="shutting down"):
        await asyncio.wait_for(waiting, WAIT)
    await until(lambda: status(upstream)["subscriptions"] == 0, "the upstream to be released")
