"""The demo end to end: payments' signed webhooks and shipping's polled feed reach GraphQL
subscribers over WebSocket (graphql-transport-ws)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from graftql.demo.data import PAYMENTS_BY_ID
from graftql.demo.runner import demo_config, demo_environment
from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials, build_apps
from graftql.server import create_app
from integration.helpers import demo_token, ws_url


class Demo:
    def __init__(self, services: dict[str, str], gateway: ServerThread, app: Any) -> None:
        self.services = services
        self.gateway = gateway
        self.app = app


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """A demo stack of its own (payment statuses change here; the session's stay as they are),
    with the shipping poller ticking every 0.2 s."""
    credentials = DemoCredentials.generate()
    with ExitStack() as stack:
        urls = {
            name: stack.enter_context(ServerThread(app)).url
            for name, app in build_apps(credentials).items()
        }
        environment = demo_environment(credentials, urls)
        environment["DEMO_INBOX_PATH"] = str(tmp_path / "inbox.db")
        config = demo_config(environment)
        polling = {
            name: source.model_copy(update={"interval": 0.2})
            for name, source in config.events.polling.items()
        }
        events = config.events.model_copy(update={"polling": polling})
        app = create_app(config.model_copy(update={"events": events}))
        gateway = stack.enter_context(ServerThread(app))
        httpx.put(
            f"{urls['payments']}/__webhooks", json={"url": f"{gateway.url}/webhooks/payments"}
        ).raise_for_status()
        yield Demo(urls, gateway, app)


async def subscribe(url: str, query: str, variables: dict[str, Any], *, as_: str) -> Any:
    """Subscribe as the demo's ``customer`` (Ada, c1) or ``staff``: the demo's subscriptions
    follow only what the caller may read."""
    ws = await websockets.connect(ws_url(url), subprotocols=["graphql-transport-ws"])
    init = {"Authorization": f"Bearer {demo_token(as_)}"}
    await ws.send(json.dumps({"type": "connection_init", "payload": init}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    payload = {"query": query, "variables": variables}
    await ws.send(json.dumps({"id": "s1", "type": "subscribe", "payload": payload}))
    return ws


async def subscribed(demo: Demo, topic: str) -> None:
    async with asyncio.timeout(5):
        while demo.app.state.bus.subscribers(topic) < 1:  # noqa: ASYNC110 - another loop's bus
            await asyncio.sleep(0.01)


PAYMENT = "subscription($c: ID!) { paymentUpdated(customerId: $c) { id status amount { amount } } }"
SHIPMENT = "subscription($o: ID!) { shipmentUpdated(orderId: $o) { status trackingNumber } }"


async def test_payment_webhook_reaches_a_subscriber_within_a_second_and_replays_do_not(
    demo: Demo,
) -> None:
    ws = await subscribe(demo.gateway.url, PAYMENT, {"c": "c1"}, as_="customer")
    try:
        await subscribed(demo, "payment.c1")
        async with httpx.AsyncClient(timeout=10) as client:
            started = time.monotonic()
            changed = await client.post(
                f"{demo.services['payments']}/__payments/pay_3HkQ9xWmA1/status",
                json={"status": "refunded"},
            )
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            elapsed = time.monotonic() - started
            assert changed.json()["delivered"] == 200
            assert message == {
                "id": "s1",
                "type": "next",
                "payload": {
                    "data": {
                        "paymentUpdated": {
                            "id": "pay_3HkQ9xWmA1",
                            "status": "REFUNDED",
                            "amount": {"amount": PAYMENTS_BY_ID["pay_3HkQ9xWmA1"].amount},
                        }
                    }
                },
            }
            assert elapsed < 1.0
            # The sender replays the same event, three times at once: acknowledged, not resent.
            replay = await client.post(
                f"{demo.services['payments']}/__webhooks/{changed.json()['event_id']}/replay",
                json={"times": 3, "concurrently": True},
            )
            assert replay.json() == {"delivered": [200, 200, 200]}
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
            # The query side sees the new status too.
            answer = await client.post(
                f"{demo.gateway.url}/graphql",
                json={"query": '{ order(id: "o1") { payment { status } } }'},
                headers={"Authorization": f"Bearer {demo_token('customer')}"},
            )
            assert answer.json() == {"data": {"order": {"payment": {"status": "REFUNDED"}}}}
    finally:
        await ws.close()


async def test_a_polled_shipment_change_reaches_its_subscriber(demo: Demo) -> None:
    ws = await subscribe(demo.gateway.url, SHIPMENT, {"o": "o8"}, as_="staff")  # c6's order
    try:
        await subscribed(demo, "shipment.o8")
        await asyncio.sleep(0.5)  # the poller's baseline is taken
        async with httpx.AsyncClient() as client:
            moved = await client.post(
                f"{demo.services['shipping']}/__shipments/o8/status", json={"status": "DELIVERED"}
            )
            assert moved.status_code == 200
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["payload"]["data"]["shipmentUpdated"]["status"] == "DELIVERED"
    finally:
        await ws.close()


def test_the_payments_control_routes_refuse_bad_input(demo: Demo) -> None:
    base = demo.services["payments"]
    assert (
        httpx.post(f"{base}/__payments/nope/status", json={"status": "failed"}).status_code == 404
    )
    assert (
        httpx.post(f"{base}/__payments/pay_3HkQ9xWmA1/status", json={"status": "x"}).status_code
        == 400
    )
    assert httpx.post(f"{base}/__webhooks/nope/replay", json={}).status_code == 404
    assert httpx.put(f"{base}/__webhooks", json={"url": "ftp://x"}).status_code == 400
