"""In-flight de-duplication against a real upstream: identical idempotent calls share one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from graftql.config import UpstreamConfig
from graftql.errors import UpstreamTimeout, UpstreamUnavailable
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import GraphQLUpstream, RestUpstream, deadline


def rest(url: str, **config: Any) -> RestUpstream:
    return RestUpstream("svc", UpstreamConfig(kind="rest", url=url, **config))


async def test_identical_concurrent_gets_share_one_call(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(Latency(0.2) + Respond(json={"n": 1}))
    upstream = rest(chaos.url)
    results = await asyncio.gather(*(upstream.get("/items", params={"a": 1}) for _ in range(10)))
    await upstream.aclose()
    assert results == [{"n": 1}] * 10
    assert chaos.total == 1
    assert upstream.flights.joined == 9 and len(upstream.flights) == 0


async def test_different_requests_are_not_shared(chaos: ChaosUpstream) -> None:
    chaos.route("GET /*", Latency(0.1) + Respond(json={}))  # /items and /other
    upstream = rest(chaos.url)
    await asyncio.gather(
        upstream.get("/items", params={"a": 1}),
        upstream.get("/items", params={"a": 2}),
        upstream.get("/other", params={"a": 1}),
        upstream.get("/items", params={"a": 1}, headers={"authorization": "Bearer user-a"}),
        upstream.get("/items", params={"a": 1}, headers={"authorization": "Bearer user-b"}),
    )
    await upstream.aclose()
    assert chaos.total == 5


async def test_non_idempotent_calls_and_dedup_off_are_never_shared(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("/*", Latency(0.1) + Respond(json={}))  # POST /orders and GET /items
    upstream = rest(chaos.url)
    await asyncio.gather(
        *(upstream.request("POST", "/orders", json_body={"x": 1}) for _ in range(3))
    )
    await upstream.aclose()
    off = rest(chaos.url, dedup=False)
    await asyncio.gather(*(off.get("/items") for _ in range(3)))
    await off.aclose()
    assert [r.method for r in chaos.requests] == ["POST"] * 3 + ["GET"] * 3


async def test_a_shared_failure_reaches_every_caller(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(Latency(0.2) + Respond(503, json={}))
    upstream = rest(chaos.url, retry={"attempts": 1})
    results = await asyncio.gather(
        *(upstream.get("/items") for _ in range(5)), return_exceptions=True
    )
    await upstream.aclose()
    assert chaos.total == 1
    assert all(isinstance(r, UpstreamUnavailable) for r in results)


async def test_a_caller_that_gives_up_does_not_cancel_the_others(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(Latency(0.3) + Respond(json={"ok": True}))
    upstream = rest(chaos.url)
    first = asyncio.ensure_future(upstream.get("/items"))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(upstream.get("/items"))
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second == {"ok": True}
    await upstream.aclose()
    assert first.cancelled() and chaos.total == 1


@pytest.mark.parametrize(
    ("document", "shared"),
    [
        ("query Q($id: ID!) { item(id: $id) { id } }", True),
        ("{ item(id: 1) { id } }", True),
        ("mutation M { pay(amount: 1) }", False),
    ],
)
async def test_graphql_queries_are_shared_mutations_never(
    chaos: ChaosUpstream, document: str, shared: bool
) -> None:
    chaos.route("POST /graphql", Latency(0.1) + Respond(json={"data": {"item": {"id": "1"}}}))
    config = UpstreamConfig(kind="graphql", url=f"{chaos.url}/graphql")
    upstream = GraphQLUpstream("svc", config)
    variables = {"id": "1"} if "$id" in document else None
    await asyncio.gather(*(upstream.execute(document, variables) for _ in range(4)))
    await upstream.aclose()
    assert chaos.total == (1 if shared else 4)


async def test_a_caller_joining_a_shared_call_waits_only_until_its_own_deadline(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /items").queue(Latency(0.6) + Respond(json={"ok": True}))
    upstream = rest(chaos.url)
    leader = asyncio.ensure_future(upstream.get("/items"))  # started without a deadline
    await asyncio.sleep(0.05)
    deadline.start(0.2)  # this test's own "request" has 0.2 s left
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="the request's deadline passed before svc answered"):
        await upstream.get("/items")
    assert time.monotonic() - started < 0.5
    assert await leader == {"ok": True}  # the shared call went on for the leader
    await upstream.aclose()
    assert chaos.total == 1
