"""Breaker and rate limit shared by several replicas through a real Redis (127.0.0.1:6379).

Each "replica" is its own ``Upstreams`` with its own ``SharedState`` (its own Redis connections
and subscriber), exactly as two gateway processes would have; they share only Redis and the
chaos upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import strawberry

from graftql import GatewaySchema
from graftql.config import parse_config
from graftql.errors import CircuitOpen, UpstreamUnavailable
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import Upstreams
from integration.helpers import (
    REDIS,
    RedisProxy,
    assert_within_rate,
    delete_keys,
    serve,
    unique_prefix,
)

Replica = Callable[..., Upstreams]


@pytest.fixture
async def replicas(chaos: ChaosUpstream) -> AsyncIterator[Replica]:
    """Make gateway replicas over one chaos upstream ``svc``; all share a fresh key prefix."""
    prefix = unique_prefix()
    made: list[Upstreams] = []

    def replica(redis_url: str = REDIS, **svc: Any) -> Upstreams:
        config = parse_config(
            {
                "schema": "tests:unused",
                "redis": {"url": redis_url, "key_prefix": prefix},
                "upstreams": {"svc": {"kind": "rest", "url": chaos.url, **svc}},
            }
        )
        made.append(Upstreams.from_config(config))
        return made[-1]

    yield replica
    for upstreams in made:
        await upstreams.aclose()
    await delete_keys(prefix)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for another replica's announcement to arrive (a Redis round trip, not a guess)."""
    async with asyncio.timeout(2.0):
        while not condition():  # noqa: ASYNC110 - the state lives in another replica's task
            await asyncio.sleep(0.005)


BREAKER = {
    "retry": {"attempts": 1},
    "breaker": {"shared": True, "minimum_calls": 4, "failure_rate": 0.5, "open_for": 0.6},
}


async def test_a_replica_that_trips_the_breaker_protects_the_others(
    replicas: Replica, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /items", Respond(503, json={}))
    a, b = replicas(**BREAKER), replicas(**BREAKER)
    for i in range(4):
        with pytest.raises(UpstreamUnavailable):
            await a.rest("svc").get("/items", params={"i": i})
    assert a["svc"].breaker is not None and a["svc"].breaker.state == "open"
    # b never called the upstream and never saw a failure, yet fails fast.
    with pytest.raises(CircuitOpen, match="svc is failing"):
        await b.rest("svc").get("/items")
    assert chaos.total == 4
    # A replica that starts now reads the stored state before its first call.
    c = replicas(**BREAKER)
    with pytest.raises(CircuitOpen):
        await c.rest("svc").get("/items")
    assert chaos.total == 4


async def test_half_open_sends_one_probe_in_all_and_its_success_closes_every_replica(
    replicas: Replica, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /items", Respond(503, json={}))
    a, b = replicas(**BREAKER), replicas(**BREAKER)
    await b.start()  # b listens from the start, as a served gateway does
    for i in range(4):
        with pytest.raises(UpstreamUnavailable):
            await a.rest("svc").get("/items", params={"i": i})
    breaker_b = b["svc"].breaker
    assert breaker_b is not None
    await eventually(lambda: breaker_b.state == "open")
    await asyncio.sleep(0.65)  # open_for: both replicas are half-open now
    assert breaker_b.state == "half_open"
    # The upstream is healthy again, and slow: the probe is in flight while the others ask.
    chaos.route("GET /probe", Latency(0.2) + Respond(json={}))
    results = await asyncio.gather(
        *(
            replica.rest("svc").get("/probe", params={"n": n})
            for n in range(3)
            for replica in (a, b)
        ),
        return_exceptions=True,
    )
    assert chaos.total == 5  # exactly one probe reached the upstream
    assert sum(isinstance(r, CircuitOpen) for r in results) == 5
    breaker_a = a["svc"].breaker
    assert breaker_a is not None
    await eventually(lambda: breaker_a.state == "closed" and breaker_b.state == "closed")
    chaos.route("GET /after", Respond(json={}))
    assert await b.rest("svc").get("/after") == {}


async def test_probes_sent_by_different_replicas_close_every_replica_together(
    replicas: Replica, chaos: ChaosUpstream
) -> None:
    """half_open_probes: 2, one probe from each replica: neither has two successes of its own,
    yet together they are the two the breaker asked for (counted in Redis)."""
    chaos.route("GET /items", Respond(503, json={}))
    two_probes = {**BREAKER, "breaker": {**BREAKER["breaker"], "half_open_probes": 2}}
    a, b = replicas(**two_probes), replicas(**two_probes)
    await b.start()
    for i in range(4):
        with pytest.raises(UpstreamUnavailable):
            await a.rest("svc").get("/items", params={"i": i})
    breaker_a, breaker_b = a["svc"].breaker, b["svc"].breaker
    assert breaker_a is not None and breaker_b is not None
    await eventually(lambda: breaker_b.state == "open")
    await asyncio.sleep(0.65)
    chaos.route("GET /probe", Respond(json={}))
    assert await a.rest("svc").get("/probe") == {}
    assert breaker_a.state == "half_open"  # one of two probes
    assert await b.rest("svc").get("/probe") == {}
    assert breaker_b.state == "closed"  # the second probe, from the other replica
    await eventually(lambda: breaker_a.state == "closed")
    assert chaos.total == 6


async def test_a_failed_probe_reopens_every_replica(
    replicas: Replica, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /*", Respond(503, json={}))  # /items and /probe
    a, b = replicas(**BREAKER), replicas(**BREAKER)
    await b.start()
    for i in range(4):
        with pytest.raises(UpstreamUnavailable):
            await a.rest("svc").get("/items", params={"i": i})
    breaker_a, breaker_b = a["svc"].breaker, b["svc"].breaker
    assert breaker_a is not None and breaker_b is not None
    await eventually(lambda: breaker_b.state == "open")
    await asyncio.sleep(0.65)
    with pytest.raises(UpstreamUnavailable):  # b's probe fails
        await b.rest("svc").get("/probe")
    assert breaker_b.state == "open"
    await eventually(lambda: breaker_a.state == "open")
    with pytest.raises(CircuitOpen):
        await a.rest("svc").get("/items")
    assert chaos.total == 5


async def test_two_replicas_share_one_rate_limit(replicas: Replica, chaos: ChaosUpstream) -> None:
    chaos.route("GET /items", Respond(json={}))
    limit = {"dedup": False, "rate_limit": {"rate": 25, "burst": 2, "shared": True}}
    a, b = replicas(**limit), replicas(**limit)
    started = time.monotonic()
    await asyncio.gather(
        *(
            replica.rest("svc").get("/items", params={"i": i})
            for i in range(15)
            for replica in (a, b)
        )
    )
    elapsed = time.monotonic() - started
    assert chaos.total == 30
    # Two local buckets would let 50/s through; one shared bucket keeps both to 25/s.
    assert_within_rate([r.at for r in chaos.requests], rate=25, burst=2)
    assert elapsed >= (30 - 2) / 25 - 0.05


async def test_a_shared_limit_refuses_what_cannot_start_before_the_deadline(
    replicas: Replica, chaos: ChaosUpstream
) -> None:
    from graftql.errors import UpstreamRateLimited
    from graftql.upstreams import deadline

    chaos.route("GET /*", Respond(json={}))  # /first (and /second, were it sent)
    limit = {"dedup": False, "rate_limit": {"rate": 2, "burst": 1, "shared": True}}
    a, b = replicas(**limit), replicas(**limit)
    await a.rest("svc").get("/first")  # takes the only token for the next 0.5 s
    token = deadline.start(0.2)
    try:
        with pytest.raises(UpstreamRateLimited):
            await b.rest("svc").get("/second")
    finally:
        deadline.reset(token)
    assert chaos.total == 1


async def test_without_redis_each_replica_keeps_its_own_policies(
    replicas: Replica, chaos: ChaosUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    chaos.route("GET /i", Respond(json={}))
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    upstreams = replicas(
        nowhere,
        dedup=False,
        rate_limit={"rate": 40, "burst": 1, "shared": True},
        **BREAKER,
    )
    with caplog.at_level(logging.WARNING, logger="graftql.upstreams"):
        await asyncio.gather(*(upstreams.rest("svc").get("/i", params={"i": i}) for i in range(8)))
    assert chaos.total == 8
    assert_within_rate([r.at for r in chaos.requests], rate=40, burst=1)  # the local bucket
    warnings = [r.getMessage() for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per call
    assert warnings[0] == (
        "redis unavailable (take a rate-limit token: ConnectionError); "
        "shared policies fall back to this replica's own"
    )
    chaos.route("GET /fail", Respond(503, json={}))
    for i in range(8):  # 8 failures after 8 successes: half of the window
        with pytest.raises(UpstreamUnavailable):
            await upstreams.rest("svc").get("/fail", params={"i": i})
    with pytest.raises(CircuitOpen):  # the local breaker still works
        await upstreams.rest("svc").get("/fail")


async def test_a_hanging_redis_costs_one_timeout_not_one_per_call(
    replicas: Replica, chaos: ChaosUpstream, unanswered_port: int
) -> None:
    """Redis that accepts no connection (a full accept queue): the first command waits
    ``redis.timeout``; later calls skip Redis for a while instead of waiting again."""
    chaos.route("GET /i", Respond(json={}))
    upstreams = replicas(
        f"redis://127.0.0.1:{unanswered_port}/0",
        dedup=False,
        rate_limit={"rate": 1000, "burst": 10, "shared": True},
    )
    started = time.monotonic()
    for i in range(10):
        await upstreams.rest("svc").get("/i", params={"i": i})
    elapsed = time.monotonic() - started
    assert chaos.total == 10
    assert 0.25 <= elapsed < 0.8  # one redis.timeout (0.25 s), not ten


async def test_a_replica_catches_up_after_losing_redis(
    replicas: Replica, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /items", Respond(503, json={}))
    proxy = RedisProxy()
    await proxy.start()
    a = replicas(**BREAKER)
    b = replicas(f"redis://127.0.0.1:{proxy.port}/0", **BREAKER)
    await b.start()
    await proxy.cut()  # b no longer hears anything
    for i in range(4):
        with pytest.raises(UpstreamUnavailable):
            await a.rest("svc").get("/items", params={"i": i})
    breaker_b = b["svc"].breaker
    assert breaker_b is not None
    await asyncio.sleep(0.05)
    assert breaker_b.state == "closed"  # the announcement was lost with the connection
    await proxy.start()  # Redis is reachable again, on the same port
    # b listens again (first retry after 0.1 s) and reads the stored state on resubscribing.
    await eventually(lambda: breaker_b.state == "open")
    with pytest.raises(CircuitOpen):
        await b.rest("svc").get("/items")
    assert chaos.total == 4
    await proxy.cut()


@pytest.mark.parametrize(("redis_url", "shown"), [(REDIS, "up"), ("redis://127.0.0.1:1/0", "down")])
def test_readyz_shows_redis_without_depending_on_it(
    chaos: ChaosUpstream, redis_url: str, shown: str
) -> None:
    chaos.route("GET /", Respond(json={}))  # the readiness probe of svc
    svc = {"kind": "rest", "url": chaos.url, "breaker": {"shared": True}}
    with serve(
        GatewaySchema(query=Query), upstreams={"svc": svc}, blocks={"redis": {"url": redis_url}}
    ) as server:
        ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["redis"] == shown
    assert ready.json()["upstreams"]["svc"]["breaker"] == "closed"


@strawberry.type
class Query:
    hello: str = "world"


async def test_shared_bucket_arithmetic() -> None:
    """The Lua token bucket: ``burst`` tokens at once, then one per 1/rate seconds; a wait
    beyond the budget is refused and takes nothing."""
    from graftql.config import RateLimitConfig, RedisConfig
    from graftql.upstreams.limits import Rejected
    from graftql.upstreams.shared import SharedState

    prefix = unique_prefix()
    shared = SharedState(RedisConfig(key_prefix=prefix))
    config = RateLimitConfig(rate=10, burst=3)
    try:
        waits = [await shared.reserve("svc", config, None) for _ in range(5)]
        assert waits[:3] == [0.0, 0.0, 0.0]
        assert waits[3] == pytest.approx(0.1, abs=0.01)
        assert waits[4] == pytest.approx(0.2, abs=0.01)
        with pytest.raises(Rejected) as refused:
            await shared.reserve("svc", config, 0.25)
        assert refused.value.wait == pytest.approx(0.3, abs=0.01)
        # The refusal took nothing: the next caller with room waits the same 0.3 s.
        assert await shared.reserve("svc", config, 1.0) == pytest.approx(0.3, abs=0.01)
    finally:
        await shared._client.delete(f"{prefix}rate:svc")
        await shared.aclose()
