"""The event bus: in memory and over a real Redis (two buses stand for two replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from graftql.events import MemoryBus, RedisBus, SlowConsumer
from integration.helpers import REDIS


@pytest.fixture
async def redis_buses(redis_prefix: str) -> AsyncIterator[Callable[..., RedisBus]]:
    made: list[RedisBus] = []

    def make(**kwargs: object) -> RedisBus:
        bus = RedisBus(REDIS, key_prefix=redis_prefix, **kwargs)  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.aclose()


async def test_memory_bus_delivers_to_each_subscriber_of_the_topic() -> None:
    bus = MemoryBus()
    async with bus.subscribe("a") as first, bus.subscribe("a") as second, bus.subscribe("b") as b:
        await bus.publish("a", {"n": 1})
        assert await first.get() == {"n": 1}
        assert await second.get() == {"n": 1}
        await bus.publish("b", {"n": 2})
        assert await b.get() == {"n": 2}
        assert b._queue.empty()
    assert bus.subscribers("a") == 0


async def test_each_subscriber_gets_its_own_copy() -> None:
    bus = MemoryBus()
    async with bus.subscribe("t") as one, bus.subscribe("t") as two:
        await bus.publish("t", {"items": [1]})
        mine = await one.get()
        mine["items"].append(2)
        assert await two.get() == {"items": [1]}


async def test_slow_consumer_drop_oldest_keeps_the_newest_and_counts() -> None:
    bus = MemoryBus(queue_size=3)
    async with bus.subscribe("t") as slow:
        for n in range(5):
            await bus.publish("t", {"n": n})  # never waits for the subscriber
        assert slow.dropped == 2
        assert [await slow.get() for _ in range(3)] == [{"n": 2}, {"n": 3}, {"n": 4}]


async def test_slow_consumer_disconnect_ends_the_subscription() -> None:
    bus = MemoryBus(queue_size=2, slow_consumer="disconnect")
    async with bus.subscribe("t") as slow:
        for n in range(3):
            await bus.publish("t", {"n": n})
        with pytest.raises(SlowConsumer):
            async for _ in slow:
                pass
        await asyncio.sleep(0)  # the detach task
        assert bus.subscribers("t") == 0


async def test_closing_a_subscription_ends_its_iteration() -> None:
    bus = MemoryBus()
    subscription = bus.subscribe("t")
    await subscription.__aenter__()
    received: list[dict[str, object]] = []

    async def read() -> None:
        async for event in subscription:
            received.append(event)

    reader = asyncio.create_task(read())
    await bus.publish("t", {"n": 1})
    await asyncio.sleep(0.01)
    await subscription.aclose()
    async with asyncio.timeout(1):
        await reader
    assert received == [{"n": 1}]


async def test_redis_bus_reaches_the_other_replica_exactly_once(
    redis_buses: Callable[..., RedisBus],
) -> None:
    a, b = redis_buses(), redis_buses()
    await a.start()
    await b.start()
    async with b.subscribe("pay:1") as on_b, a.subscribe("pay:1") as on_a:
        for n in range(20):
            await a.publish("pay:1", {"n": n})
        got_b = [await asyncio.wait_for(on_b.get(), 2) for _ in range(20)]
        got_a = [await asyncio.wait_for(on_a.get(), 2) for _ in range(20)]
        assert got_b == got_a == [{"n": n} for n in range(20)]
        await asyncio.sleep(0.2)
        assert on_a._queue.empty() and on_b._queue.empty()  # nothing twice


async def test_redis_bus_publish_without_redis_raises_bus_unavailable() -> None:
    from graftql.events import BusUnavailable

    bus = RedisBus("redis://127.0.0.1:1/0", publish_timeout=0.5)
    try:
        with pytest.raises(BusUnavailable):
            await bus.publish("t", {"n": 1})
    finally:
        await bus.aclose()


async def test_redis_bus_resubscribes_after_client_kill(
    redis_buses: Callable[..., RedisBus], redis_prefix: str
) -> None:
    """CLIENT KILL of the bus's own connections (found by their client name): the hub
    reconnects, subscribes again, and later events arrive."""
    publisher, listener = redis_buses(), redis_buses()
    await listener.start()
    admin = aioredis.Redis.from_url(REDIS)
    try:
        async with listener.subscribe("t") as events:
            await publisher.publish("t", {"n": 0})
            assert await asyncio.wait_for(events.get(), 2) == {"n": 0}
            killed = 0
            for client in await admin.client_list():
                if client.get("name") == listener.client_name:
                    killed += await admin.client_kill_filter(_id=client["id"])
            assert killed >= 1
            async with asyncio.timeout(5):
                while listener.reconnects == 0 or listener.subscribers("t") == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                # Published until one arrives: the hub subscribes again within its backoff.
                while True:
                    await publisher.publish("t", {"n": 1})
                    try:
                        event = await asyncio.wait_for(events.get(), 0.2)
                        break
                    except TimeoutError:
                        continue
            assert event == {"n": 1}
            assert events.gaps == 1
    finally:
        await admin.aclose()


async def test_redis_bus_resubscribing_while_unsubscribing_stays_subscribed(
    redis_buses: Callable[..., RedisBus],
) -> None:
    """The last subscriber leaves and a new one arrives at once: the topic stays subscribed."""
    bus = redis_buses()
    await bus.start()
    for n in range(20):
        first = bus.subscribe("t")
        await first.__aenter__()
        second = bus.subscribe("t")
        await asyncio.gather(first.aclose(), second.__aenter__())
        await bus.publish("t", {"n": n})
        assert await asyncio.wait_for(second.get(), 2) == {"n": n}
        await second.aclose()


async def test_a_client_dropped_as_too_slow_gets_a_coded_error_not_an_internal_one() -> None:
    """In production (errors masked), the subscription's error still says what happened."""
    import strawberry
    from starlette.requests import Request

    from graftql import Context, GatewaySchema
    from graftql.config import parse_config
    from graftql.upstreams import Upstreams

    bus = MemoryBus(queue_size=1, slow_consumer="disconnect")

    @strawberry.type
    class Query:
        ok: bool = True

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def ticks(self, info: strawberry.Info[Context, None]) -> AsyncIterator[int]:
            async with info.context.bus.subscribe("t") as events:
                for n in range(3):  # fall behind before reading anything
                    await bus.publish("t", {"n": n})
                async for event in events:
                    yield int(event["n"])

    config = parse_config({"schema": "x:y", "server": {"env": "production"}})
    schema = GatewaySchema(query=Query, subscription=Subscription).build(config.server)
    request = Request({"type": "http", "headers": [], "method": "POST", "path": "/"})
    context = Context(request=request, response=None, upstreams=Upstreams({}), bus=bus)
    stream = await schema.subscribe("subscription { ticks }", context_value=context)
    results = [result async for result in stream]  # type: ignore[union-attr]
    assert [e.extensions["code"] for r in results for e in r.errors or []] == [
        "SUBSCRIPTION_TOO_SLOW"
    ]
