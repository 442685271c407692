"""Retries, deadlines and the circuit breaker against a chaos upstream over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import strawberry

from graftql import Context, Fallback, GatewaySchema, LoaderRegistry
from graftql.config import BreakerConfig, UpstreamConfig, parse_config
from graftql.demo.servers import ServerThread
from graftql.errors import (
    CircuitOpen,
    ConfigError,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from graftql.server import create_app
from graftql.testing import ChaosUpstream, Hang, Latency, Respond, RetryAfter
from graftql.upstreams import GraphQLUpstream, RestUpstream, Upstreams, deadline, events
from graftql.upstreams.breaker import CircuitBreaker
from integration.helpers import assert_within_rate, graphql, serve, ws_connected


def rest(url: str, **settings: Any) -> RestUpstream:
    return RestUpstream(
        "svc", UpstreamConfig.model_validate({"kind": "rest", "url": url, **settings})
    )


async def test_idempotent_call_is_retried_up_to_the_limit(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(Respond(503, json={}), times=5)
    upstream = rest(chaos.url, retry={"attempts": 3, "base_delay": 0.01})
    with pytest.raises(UpstreamUnavailable):
        await upstream.get("/items")
    await upstream.aclose()
    assert chaos.total == 3


async def test_a_retry_that_succeeds_answers_normally(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(
        Respond(503, json={}), Respond(502, json={}), Respond(json={"ok": True})
    )
    upstream = rest(chaos.url, retry={"attempts": 3, "base_delay": 0.01})
    assert await upstream.get("/items") == {"ok": True}
    await upstream.aclose()
    assert chaos.total == 3


@pytest.mark.parametrize("status", [500, 400, 404, 401])
async def test_other_statuses_are_not_retried(chaos: ChaosUpstream, status: int) -> None:
    chaos.route("GET /items").queue(Respond(status, json={}), times=3)
    upstream = rest(chaos.url, retry={"attempts": 3, "base_delay": 0.01})
    with pytest.raises(Exception):  # noqa: B017 - the class depends on the status
        await upstream.get("/items")
    await upstream.aclose()
    assert chaos.total == 1


async def test_a_mutation_that_failed_after_sending_is_not_retried(chaos: ChaosUpstream) -> None:
    chaos.route("POST /graphql").queue(Respond(503, json={}), times=3)
    config = UpstreamConfig(kind="graphql", url=f"{chaos.url}/graphql", retry={"attempts": 3})
    upstream = GraphQLUpstream("pay", config)
    with pytest.raises(UpstreamUnavailable):
        await upstream.execute("mutation { refund(id: 1) }")
    await upstream.aclose()
    assert chaos.total == 1


async def test_post_with_an_idempotency_key_is_retried_with_the_same_key(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("POST /payments").queue(Respond(503, json={}), Respond(json={"id": "pay_1"}))
    upstream = rest(
        chaos.url,
        retry={"attempts": 3, "base_delay": 0.01, "idempotency_key_header": "Idempotency-Key"},
    )
    assert await upstream.request("POST", "/payments", json_body={"amount": 1}) == {"id": "pay_1"}
    await upstream.aclose()
    keys = [r.headers.get("idempotency-key") for r in chaos.requests]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


async def test_retry_after_delays_the_next_attempt(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(RetryAfter(429, 2), Respond(json={"ok": True}))
    upstream = rest(chaos.url, retry={"attempts": 2})
    assert await upstream.get("/items") == {"ok": True}
    await upstream.aclose()
    first, second = chaos.requests
    assert second.at - first.at >= 2.0


async def test_100_failing_calls_stay_within_the_retry_budget(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items", Respond(503, json={}))
    upstream = rest(
        chaos.url,
        dedup=False,
        breaker={"enabled": False},
        retry={"attempts": 3, "base_delay": 0.01, "budget": 0.2},
    )
    results = await asyncio.gather(
        *(upstream.get("/items", params={"i": i}) for i in range(100)), return_exceptions=True
    )
    await upstream.aclose()
    assert all(isinstance(r, UpstreamUnavailable) for r in results)
    # 100 first attempts, plus at most 20 % of them and a floor of 3 as retries (not 200).
    assert 100 < chaos.total <= 100 + 20 + 3


async def test_breaker_opens_fails_fast_probes_and_closes(chaos: ChaosUpstream) -> None:
    items = chaos.route("GET /items", Respond(503, json={}))
    clock = [1000.0]
    upstream = rest(chaos.url, retry={"attempts": 1})
    upstream.breaker = CircuitBreaker(
        BreakerConfig(minimum_calls=5, failure_rate=0.5, open_for=30), clock=lambda: clock[0]
    )
    for i in range(5):
        with pytest.raises(UpstreamUnavailable):
            await upstream.get("/items", params={"i": i})
    assert upstream.breaker.state == "open"
    with pytest.raises(CircuitOpen, match="svc is failing; calls are paused for 30s"):
        await upstream.get("/items")
    assert chaos.total == 5  # failing fast: no request went out
    clock[0] += 30
    items.always(Respond(json={}))
    assert await upstream.get("/items") == {}  # the probe
    # mypy keeps the "open" narrowed by the assert above; the probe has changed it since.
    assert upstream.breaker.state == "closed"  # type: ignore[comparison-overlap]
    await upstream.aclose()
    assert chaos.total == 6


@strawberry.type
class Query:
    @strawberry.field
    async def slow(self, info: strawberry.Info[Context, None]) -> str | None:
        body = await info.context.upstreams.rest("svc").get("/slow")
        return str(body)

    @strawberry.field
    def fast(self) -> str:
        return "here"


@pytest.fixture
def gateway_with_deadline(chaos: ChaosUpstream) -> Iterator[str]:
    with serve(
        GatewaySchema(query=Query),
        upstreams={"svc": {"kind": "rest", "url": chaos.url, "timeout": 10}},
        request_timeout=1,
        operation_timeouts={"Patient": 2.5},
    ) as server:
        yield server.url


def test_a_hung_upstream_answers_at_the_request_deadline(
    gateway_with_deadline: str, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /slow", Hang())
    started = time.monotonic()
    body = graphql(gateway_with_deadline, "{ slow fast }")
    elapsed = time.monotonic() - started
    assert body["data"] == {"slow": None, "fast": "here"}
    [error] = body["errors"]
    assert error["message"] == "the request's deadline passed before svc answered"
    assert error["extensions"] == {"code": "UPSTREAM_TIMEOUT", "upstream": "svc"}
    assert 1.0 <= elapsed < 3.0  # the 1 s deadline, not the upstream's 10 s timeout


def test_a_named_operation_gets_its_own_deadline(
    gateway_with_deadline: str, chaos: ChaosUpstream
) -> None:
    slow = chaos.route("GET /slow").queue(Hang())
    started = time.monotonic()
    body = graphql(gateway_with_deadline, "query Patient { slow }")
    elapsed = time.monotonic() - started
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    assert 2.5 <= elapsed < 4.0  # operation_timeouts.Patient, not request_timeout's 1 s
    slow.queue(Latency(1.5) + Respond(json={"ok": 1}))
    assert graphql(gateway_with_deadline, "query Patient { slow }") == {
        "data": {"slow": "{'ok': 1}"}
    }


async def test_a_websocket_query_has_the_same_deadline(
    gateway_with_deadline: str, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /slow", Hang())
    async with ws_connected(gateway_with_deadline) as ws:
        started = time.monotonic()
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": "{ slow fast }"}}
        await ws.send(json.dumps(subscribe))
        message = json.loads(await asyncio.wait_for(ws.recv(), 4))
        elapsed = time.monotonic() - started
    assert message["payload"]["data"] == {"slow": None, "fast": "here"}
    assert message["payload"]["errors"][0]["extensions"] == {
        "code": "UPSTREAM_TIMEOUT",
        "upstream": "svc",
    }
    assert 1.0 <= elapsed < 3.0


def test_operation_timeouts_are_validated() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"schema": "m:s", "server": {"operation_timeouts": {"Export": -1}}})
    assert caught.value.errors == [
        ("server.operation_timeouts.Export", "input should be greater than 0")
    ]


def test_retry_after_beyond_the_deadline_fails_fast(
    gateway_with_deadline: str, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /slow").queue(RetryAfter(503, 30))
    started = time.monotonic()
    body = graphql(gateway_with_deadline, "{ slow }")
    assert time.monotonic() - started < 1.0  # no waiting for a retry that cannot finish in time
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert chaos.total == 1


def test_readyz_shows_the_breaker(gateway_with_deadline: str) -> None:
    report = httpx.get(f"{gateway_with_deadline}/readyz").json()
    assert report["upstreams"]["svc"]["breaker"] == "closed"


async def test_rate_limit_spaces_calls_to_the_upstream(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items", Respond(json={}))
    upstream = rest(chaos.url, dedup=False, rate_limit={"rate": 40, "burst": 1})
    await asyncio.gather(*(upstream.get("/items", params={"i": i}) for i in range(20)))
    await upstream.aclose()
    assert chaos.total == 20
    assert_within_rate([r.at for r in chaos.requests], rate=40, burst=1)


async def test_a_low_upstream_quota_spaces_calls_until_its_reset(chaos: ChaosUpstream) -> None:
    quota = {"x-ratelimit-remaining": "3", "x-ratelimit-reset": "1", "x-ratelimit-limit": "20"}
    chaos.route("GET /*", Respond(json={}, headers=quota))  # /first and /items
    upstream = rest(chaos.url, dedup=False)
    await upstream.get("/first")  # the upstream says: 3 calls left in the next second
    await asyncio.gather(*(upstream.get("/items", params={"i": i}) for i in range(3)))
    await upstream.aclose()
    arrivals = [r.at for r in chaos.requests[1:]]
    # Spread over the window (about 1/3 s apart) instead of spent at once.
    assert_within_rate(arrivals, rate=3, burst=1, jitter=0.05)
    assert upstream.rate.quota() == {
        "remaining": 3,
        "limit": 20,
        "reset_in": pytest.approx(1, abs=0.1),
    }


def test_readyz_shows_the_upstreams_quota(gateway_with_deadline: str, chaos: ChaosUpstream) -> None:
    chaos.route("GET /slow").queue(Respond(json={}, headers={"ratelimit": '"default";r=42;t=30'}))
    graphql(gateway_with_deadline, "{ slow }")
    report = httpx.get(f"{gateway_with_deadline}/readyz").json()
    assert report["upstreams"]["svc"]["quota"] == {
        "remaining": 42,
        "reset_in": pytest.approx(30, abs=1),
    }


async def test_bulkhead_caps_calls_in_flight_and_rejects_beyond_its_queue(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /items", Latency(0.3) + Respond(json={}))
    upstream = rest(
        chaos.url,
        dedup=False,
        retry={"attempts": 3},
        bulkhead={"max_concurrent": 2, "max_queue": 1},
    )
    results = await asyncio.gather(
        *(upstream.get("/items", params={"i": i}) for i in range(5)), return_exceptions=True
    )
    await upstream.aclose()
    refused = [r for r in results if isinstance(r, UpstreamUnavailable)]
    assert len(refused) == 2 and chaos.total == 3  # refusals are not retried
    assert str(refused[0]) == "too many calls to svc are already waiting"
    assert upstream.breaker is not None and upstream.breaker.state == "closed"


async def test_an_answer_over_the_size_cap_is_a_bad_response(chaos: ChaosUpstream) -> None:
    big = b'{"big": "' + b"x" * 5000 + b'"}'
    chaos.route("GET /items").queue(Respond(200, big, content_type="application/json"))
    upstream = rest(chaos.url, max_response_bytes=1024)
    with pytest.raises(UpstreamBadResponse, match="svc answered with more than 1024 bytes"):
        await upstream.get("/items")
    await upstream.aclose()


async def test_policies_report_what_they_did(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(Respond(503, json={})).always(Respond(json={}))
    seen: list[tuple[str, str, dict[str, Any]]] = []
    events.listen(lambda *event: seen.append(event))
    try:
        upstream = rest(chaos.url, retry={"attempts": 2, "base_delay": 0.01})
        await upstream.get("/items")
        await upstream.aclose()
    finally:
        events._listeners.clear()
    failed, (name, upstream_name, fields), succeeded, call = seen
    # One call as its caller saw it (what explain lists), after its attempts.
    assert call[:2] == ("call", "svc")
    assert {k: v for k, v in call[2].items() if k != "seconds"} == {
        "method": "GET",
        "target": "/items",
        "attempts": 2,
        "joined": False,
        "outcome": "ok",
    }
    assert (name, upstream_name, fields["attempt"], fields["reason"]) == (
        "retry",
        "svc",
        1,
        "UPSTREAM_UNAVAILABLE",
    )
    assert 0 <= fields["delay"] <= 0.01
    # Every attempt, with its outcome and duration (what the metrics will count).
    for event, attempt, outcome, status in (
        (failed, 1, "UPSTREAM_UNAVAILABLE", 503),
        (succeeded, 2, "ok", 200),
    ):
        assert event[:2] == ("attempt", "svc")
        assert {k: v for k, v in event[2].items() if k != "seconds"} == {
            "attempt": attempt,
            "method": "GET",
            "outcome": outcome,
            "status": status,
        }
        assert 0 < event[2]["seconds"] < 1


def test_a_slow_upstream_behind_a_bulkhead_does_not_delay_the_others(
    chaos: ChaosUpstream,
) -> None:
    """20 clients pile onto a hung upstream whose bulkhead holds 2 calls and queues 2: the
    other 16 are refused at once, and a query to another upstream is answered at once."""
    chaos.route("GET /slow", Hang())
    chaos.route("GET /fast", Respond(json={"ok": True}))
    config = parse_config(
        {
            "schema": "tests:unused",
            "server": {"request_timeout": 3},
            "upstreams": {
                "slow": {
                    "kind": "rest",
                    "url": chaos.url,
                    "dedup": False,
                    "bulkhead": {"max_concurrent": 2, "max_queue": 2},
                    "retry": {"attempts": 1},
                },
                "fast": {"kind": "rest", "url": chaos.url},
            },
        }
    )

    # One client for all threads: a client per request would spend the time measured here
    # building its TLS context.
    client = httpx.Client(limits=httpx.Limits(max_connections=30), timeout=10)

    def timed(url: str) -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        response = client.post(f"{url}/graphql", json={"query": "{ slow }"})
        return time.monotonic() - started, response.json()

    with ServerThread(create_app(config, GatewaySchema(query=TwoUpstreams))) as server:
        with ThreadPoolExecutor(20) as pool:
            piled = [pool.submit(timed, server.url) for _ in range(20)]
            chaos.wait_for_requests(2, timeout=5)  # both slots are taken by hung calls
            started = time.monotonic()
            assert graphql(server.url, "{ fast }") == {"data": {"fast": "{'ok': True}"}}
            fast_took = time.monotonic() - started
            answers = [future.result() for future in piled]
    client.close()
    assert fast_took < 0.5
    waiting = "too many calls to slow are already waiting"
    # Sorted by outcome, not by time, so a slow machine cannot blur the two groups.
    refused = [took for took, body in answers if body["errors"][0]["message"] == waiting]
    assert len(refused) == 16  # the queue was full: refused at once
    assert all(took < 2.5 for took in refused)
    # 2 hung in the slots and 2 queued for one: all 4 end at the 3 s deadline, no later.
    late = [
        (took, body["errors"][0]["extensions"]["code"])
        for took, body in answers
        if body["errors"][0]["message"] != waiting
    ]
    assert len(late) == 4
    assert all(2.9 <= took < 4 for took, _ in late)
    assert {code for _, code in late} <= {"UPSTREAM_TIMEOUT", "UPSTREAM_UNAVAILABLE"}
    # The 2 slots' hung calls, plus the queued calls that got a slot with a few ms of their
    # own deadline left (their requests arrived a little later): never more than the 4 let in.
    assert 2 <= chaos.count("GET /slow") <= 4


@strawberry.type
class TwoUpstreams:
    @strawberry.field
    async def slow(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("slow").get("/slow"))

    @strawberry.field
    async def fast(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("fast").get("/fast"))


async def test_a_loader_fallback_serves_a_value_instead_of_the_error(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /prices", Respond(503, json={}))
    registry = LoaderRegistry()

    @registry.loader("prices", fallback=lambda key, error: {"id": key, "price": None})
    async def prices(ctx: Context, ids: list[str]) -> list[Any]:
        return list(await ctx.upstreams.rest("svc").get("/prices", params={"ids": ",".join(ids)}))

    upstreams = Upstreams({"svc": rest(chaos.url, retry={"attempts": 1})})
    context = Context(request=None, response=None, upstreams=upstreams, registry=registry)  # type: ignore[arg-type]
    assert await context.loaders["prices"].load_many(["a", "b"]) == [
        {"id": "a", "price": None},
        {"id": "b", "price": None},
    ]
    await upstreams.aclose()


@strawberry.type
class Banner:
    text: str


@strawberry.type
class DegradedQuery:
    @strawberry.field(extensions=[Fallback(Banner(text="Welcome"))])
    async def banner(self, info: strawberry.Info[Context, None]) -> Banner:
        body = await info.context.upstreams.rest("svc").get("/banner")
        return Banner(text=body["text"])

    @strawberry.field(extensions=[Fallback([], codes={"CIRCUIT_OPEN"})])
    async def picks(self, info: strawberry.Info[Context, None]) -> list[str] | None:
        return list(await info.context.upstreams.rest("svc").get("/picks"))

    @strawberry.field(extensions=[Fallback("never")])
    async def broken(self) -> str | None:
        raise RuntimeError("a bug, not an upstream failure")


def test_a_field_fallback_serves_its_value_only_for_upstream_failures(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /*", Respond(503, json={}))  # /banner and /picks
    upstreams = {"svc": {"kind": "rest", "url": chaos.url}}
    seen: list[tuple[str, str, dict[str, Any]]] = []
    events.listen(lambda *event: seen.append(event))
    try:
        with serve(GatewaySchema(query=DegradedQuery), upstreams=upstreams) as server:
            body = graphql(server.url, "{ banner { text } picks broken }")
    finally:
        events._listeners.clear()
    assert body["data"] == {"banner": {"text": "Welcome"}, "picks": None, "broken": None}
    codes = sorted((e["path"][0], e.get("extensions", {}).get("code")) for e in body["errors"])
    # picks falls back only when the breaker is open; a 503 stays an error. A bug stays a bug.
    assert codes == [("broken", None), ("picks", "UPSTREAM_UNAVAILABLE")]
    assert [(name, fields["field"]) for name, _, fields in seen if name == "fallback"] == [
        ("fallback", "banner")
    ]


async def test_a_compressed_answer_is_capped_unpacked_without_unpacking_it_all(
    chaos: ChaosUpstream,
) -> None:
    # 50 MB of zeros in about 50 KB of gzip: small enough on the wire, refused once 200 KB
    # are unpacked, and never unpacked whole (memory stays far below 50 MB).
    bomb = gzip.compress(b"0" * 50_000_000)
    assert len(bomb) < 100_000
    headers = {"Content-Encoding": "gzip"}
    chaos.route("GET /bomb").always(
        Respond(200, bomb, content_type="application/json", headers=headers)
    )
    small = gzip.compress(b'{"ok": true}')
    chaos.route("GET /small").always(
        Respond(200, small, content_type="application/json", headers=headers)
    )
    chaos.route("GET /garbled").always(
        Respond(200, b"not gzip at all", content_type="application/json", headers=headers)
    )
    upstream = rest(chaos.url, max_response_bytes=200_000)
    try:
        tracemalloc.start()
        with pytest.raises(UpstreamBadResponse, match="svc answered with more than 200000 bytes"):
            await upstream.get("/bomb")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 5_000_000
        assert await upstream.get("/small") == {"ok": True}
        with pytest.raises(UpstreamBadResponse, match="Content-Encoding does not match"):
            await upstream.get("/garbled")
    finally:
        tracemalloc.stop()
        await upstream.aclose()


async def test_a_call_whose_deadline_ran_out_before_its_turn_is_a_timeout(
    chaos: ChaosUpstream,
) -> None:
    """Out of time before the rate limit's step (it queued in the bulkhead, say): a timeout,
    never UPSTREAM_RATE_LIMITED, and nothing is sent."""
    chaos.route("GET /items", Respond(json={}))
    upstream = rest(chaos.url, dedup=False)
    token = deadline.start(0)
    try:
        with pytest.raises(UpstreamTimeout, match="deadline passed before svc answered"):
            await upstream.get("/items")
    finally:
        deadline.reset(token)
        await upstream.aclose()
    assert chaos.total == 0
