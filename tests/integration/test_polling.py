"""Polling sources against a real HTTP upstream (the chaos upstream), through RestUpstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from graftql.config import parse_config
from graftql.events import MemoryBus
from graftql.events.polling import PollingSource
from graftql.testing import ChaosUpstream, Respond
from graftql.upstreams import Upstreams


def config(url: str, **source: Any) -> Any:
    return parse_config(
        {
            "schema": "tests:unused",
            "upstreams": {"ship": {"kind": "rest", "url": url, "retry": {"attempts": 2}}},
            "events": {
                "polling": {
                    "shipments": {
                        "upstream": "ship",
                        "path": "/shipments",
                        "items": "items",
                        "key": "orderId",
                        "topic": "shipment.{orderId}",
                        **source,
                    }
                }
            },
        }
    )


@pytest.fixture
async def upstreams(chaos: ChaosUpstream) -> AsyncIterator[Upstreams]:
    made = Upstreams.from_config(config(chaos.url))
    yield made
    await made.aclose()


def listing(*items: dict[str, Any]) -> Respond:
    return Respond(200, json={"items": list(items)})


async def drain(subscription: Any) -> list[dict[str, Any]]:
    out = []
    while not subscription._queue.empty():
        out.append(await subscription.get())
    return out


async def test_changes_are_published_after_the_baseline(
    chaos: ChaosUpstream, upstreams: Upstreams
) -> None:
    route = chaos.route("GET /shipments")
    route.queue(
        listing({"orderId": "o1", "status": "packed"}, {"orderId": "o2", "status": "packed"}),
        listing({"orderId": "o1", "status": "shipped"}, {"orderId": "o2", "status": "packed"}),
        listing({"orderId": "o1", "status": "shipped"}, {"orderId": "o3", "status": "new"}),
    )
    bus = MemoryBus()
    cfg = config(chaos.url).events.polling["shipments"]
    source = PollingSource("shipments", cfg, upstreams.rest("ship"), bus)
    async with bus.subscribe("shipment.o1") as o1, bus.subscribe("shipment.o2") as o2:
        async with bus.subscribe("shipment.o3") as o3:
            assert await source.poll_once() == 0  # the baseline publishes nothing
            assert await source.poll_once() == 1
            assert await drain(o1) == [
                {
                    "source": "shipments",
                    "key": "o1",
                    "change": "changed",
                    "data": {"orderId": "o1", "status": "shipped"},
                }
            ]
            assert await source.poll_once() == 2
            assert [e["change"] for e in await drain(o2)] == ["removed"]
            assert [e["change"] for e in await drain(o3)] == ["added"]
            assert await drain(o1) == []


async def test_a_failed_fetch_keeps_the_last_state_and_goes_through_the_retry_policy(
    chaos: ChaosUpstream, upstreams: Upstreams
) -> None:
    route = chaos.route("GET /shipments")
    route.queue(
        listing({"orderId": "o1", "status": "packed"}),
        Respond(503),
        Respond(503),  # both attempts of one poll (retry.attempts: 2)
        listing({"orderId": "o1", "status": "shipped"}),
    )
    bus = MemoryBus()
    cfg = config(chaos.url).events.polling["shipments"]
    source = PollingSource("shipments", cfg, upstreams.rest("ship"), bus)
    async with bus.subscribe("shipment.o1") as o1:
        await source.poll_once()
        assert await source.poll_once() == 0
        assert source.failures == 1
        assert chaos.count("GET /shipments") == 3
        assert await source.poll_once() == 1
        assert [e["data"]["status"] for e in await drain(o1)] == ["shipped"]


async def test_the_loop_waits_the_configured_interval_between_polls(
    chaos: ChaosUpstream, upstreams: Upstreams
) -> None:
    chaos.route("GET /shipments", listing({"orderId": "o1", "status": "a"}))
    waits: list[float] = []
    enough = asyncio.Event()

    async def sleep(seconds: float) -> None:  # the injected clock: no real waiting
        waits.append(seconds)
        if len(waits) == 3:
            enough.set()
        await asyncio.sleep(0)

    cfg = config(chaos.url, interval=7.5).events.polling["shipments"]
    source = PollingSource("shipments", cfg, upstreams.rest("ship"), MemoryBus(), sleep=sleep)
    await source.start()
    async with asyncio.timeout(5):
        await enough.wait()
    await source.aclose()
    assert waits[:3] == [7.5, 7.5, 7.5]
    assert chaos.count("GET /shipments") >= 3


def test_a_polling_source_must_name_a_rest_upstream() -> None:
    from graftql.errors import ConfigError

    with pytest.raises(ConfigError, match="not a configured REST upstream"):
        parse_config(
            {
                "schema": "tests:unused",
                "events": {"polling": {"s": {"upstream": "nope", "path": "/x", "topic": "t"}}},
            }
        )
