"""Helpers for the event tests: signing deliveries, a gateway with webhook sources, reading
what reached a bus subscriber inside the gateway's own event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import orjson
import strawberry
from strawberry.scalars import JSON

from graftql import GatewaySchema
from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from graftql.events import EventBus
from graftql.resolvers import Context
from graftql.server import create_app

SECRET = "whsec_" + base64.b64encode(b"graftql test secret 0123456789").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"graftql previous secret").decode()


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(
        self, info: strawberry.Info[Context, None], topic: str
    ) -> AsyncGenerator[JSON, None]:
        async with info.context.bus.subscribe(topic) as subscription:
            async for event in subscription:
                yield event


SCHEMA = GatewaySchema(query=Query, subscription=Subscription)


def standard_headers(
    body: bytes, msg_id: str, *, secret: str = SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Headers as a Standard Webhooks sender writes them (the spec's algorithm, by hand)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "content-type": "application/json",
    }


def payment_body(payment_id: str, status: str, customer: str = "c1", **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "type": "payment.updated",
            "data": {"id": payment_id, "customerId": customer, "status": status, **extra},
        }
    )


def source(**override: Any) -> dict[str, Any]:
    return {
        "scheme": "standard",
        "secrets": ["${WH_SECRET}", "${WH_OLD_SECRET}"],
        "topic": "payment.{data.customerId}",
        **override,
    }


def gateway_config(tmp: str, webhooks: Mapping[str, Any], **top: Any) -> Any:
    events = top.pop("events", {})
    events.setdefault("inbox", {}).setdefault("path", os.path.join(tmp, "inbox.sqlite3"))
    events["inbox"].setdefault("retry_delay", 0.05)
    return parse_config(
        {"schema": "tests:unused", "webhooks": dict(webhooks), "events": events, **top},
        environ={"WH_SECRET": SECRET, "WH_OLD_SECRET": OLD_SECRET},
    )


class Collector:
    """Subscribes to ``topic`` on a bus that lives in a ServerThread's loop."""

    def __init__(self, server: ServerThread, bus: EventBus, topic: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop = server._loop  # type: ignore[assignment]
        self._ready = threading.Event()

        async def run() -> None:
            async with bus.subscribe(topic) as subscription:
                self._ready.set()
                async for event in subscription:
                    self.events.append(event)

        self._future: Future[None] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        assert self._ready.wait(5), "the subscription did not start"

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.events

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._future.cancel)


@contextmanager
def running(config: Any, **kwargs: Any) -> Iterator[tuple[ServerThread, Any]]:
    app = create_app(config, SCHEMA, **kwargs)
    with ServerThread(app) as server:
        yield server, app
