"""/metrics: every failure driven through the chaos upstream, and the exact change it makes.

Each test scrapes before and after and compares: the counters of one gateway process are
cumulative, so a difference is what that one scenario did.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import strawberry

from graftql import Context, Fallback, GatewaySchema
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import events
from integration.helpers import Samples, scrape, serve, value, ws_connected


class Scrapes:
    """``before`` at the start; ``change(name, **labels)`` scrapes again and subtracts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.before = scrape(url)
        self.after: Samples = {}

    def rescrape(self) -> Samples:
        self.after = scrape(self.url)
        return self.after

    def change(self, name: str, **labels: str) -> float:
        after = self.after or self.rescrape()
        return value(after, name, **labels) - value(self.before, name, **labels)

    def changed(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every graftql series that changed (histogram buckets and _created left out)."""
        after = self.after or self.rescrape()
        keys = set(after) | set(self.before)
        return {
            key: after.get(key, 0.0) - self.before.get(key, 0.0)
            for key in keys
            if key[0].startswith("graftql_")
            and not key[0].endswith(("_bucket", "_created", "_sum"))
            and after.get(key, 0.0) != self.before.get(key, 0.0)
        }


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def post(url: str, query: str, **headers: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None], i: int = 0) -> str | None:
        params = {"i": i} if i else None
        return str(await info.context.upstreams.rest("svc").get("/item", params=params))

    @strawberry.field(extensions=[Fallback("welcome")])
    async def banner(self, info: strawberry.Info[Context, None]) -> str:
        return str(await info.context.upstreams.rest("svc").get("/banner"))

    @strawberry.field
    def hello(self) -> str:
        return "hello"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> bool:
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, count: int = 2) -> AsyncIterator[int]:
        for tick in range(count):
            yield tick


SCHEMA = GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription)


@contextmanager
def gateway(chaos: ChaosUpstream, **svc: Any) -> Iterator[str]:
    settings = {"kind": "rest", "url": chaos.url, "retry": {"base_delay": 0.01}, **svc}
    with serve(SCHEMA, upstreams={"svc": settings}) as server:
        yield server.url


REQUESTS = "graftql_upstream_requests_total"
OPERATIONS = "graftql_operations_total"


def test_a_503_then_success_counts_both_attempts_and_one_retry(chaos: ChaosUpstream) -> None:
    chaos.route("GET /item").queue(Respond(503, json={})).always(Respond(json={"ok": 1}))
    with gateway(chaos, retry={"attempts": 3, "base_delay": 0.01}) as url:
        scrapes = Scrapes(url)
        assert post(url, "{ item }") == {"data": {"item": "{'ok': 1}"}}
        assert scrapes.changed() == {
            series(REQUESTS, upstream="svc", method="GET", outcome="UPSTREAM_UNAVAILABLE"): 1,
            series(REQUESTS, upstream="svc", method="GET", outcome="ok"): 1,
            series(
                "graftql_upstream_retries_total", upstream="svc", reason="UPSTREAM_UNAVAILABLE"
            ): 1,
            series("graftql_upstream_request_duration_seconds_count", upstream="svc"): 2,
            series(OPERATIONS, type="query", outcome="ok"): 1,
            series("graftql_operation_duration_seconds_count", type="query"): 1,
        }
        # Every attempt took at least as long as the chaos upstream needed to answer.
        assert scrapes.change("graftql_upstream_request_duration_seconds_sum", upstream="svc") > 0


def test_breaker_opens_fails_fast_and_turns_half_open_without_an_event(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("GET /item", Respond(503, json={}))
    breaker = {"minimum_calls": 2, "failure_rate": 0.5, "open_for": 0.5}
    with gateway(chaos, retry={"attempts": 1}, breaker=breaker) as url:
        scrapes = Scrapes(url)
        assert value(scrapes.before, "graftql_upstream_breaker_state", upstream="svc") == 0
        for _ in range(2):
            assert post(url, "{ item }")["errors"][0]["extensions"]["code"] == (
                "UPSTREAM_UNAVAILABLE"
            )
        answer = post(url, "{ item }")  # fails fast: nothing is sent
        assert answer["errors"][0]["extensions"]["code"] == "CIRCUIT_OPEN"
        assert chaos.count("GET /item") == 2
        after = scrapes.rescrape()
        assert value(after, "graftql_upstream_breaker_state", upstream="svc") == 2
        assert scrapes.changed() == {
            series("graftql_upstream_breaker_state", upstream="svc"): 2,
            series("graftql_upstream_breaker_transitions_total", upstream="svc", state="open"): 1,
            series(REQUESTS, upstream="svc", method="GET", outcome="UPSTREAM_UNAVAILABLE"): 2,
            series(REQUESTS, upstream="svc", method="GET", outcome="CIRCUIT_OPEN"): 1,
            series("graftql_upstream_request_duration_seconds_count", upstream="svc"): 3,
            series(OPERATIONS, type="query", outcome="error"): 3,
            series("graftql_operation_duration_seconds_count", type="query"): 3,
        }
        # open_for later, with no call at all, the scrape itself sees it half-open.
        time.sleep(0.6)
        later = scrape(url)
        assert value(later, "graftql_upstream_breaker_state", upstream="svc") == 1
        transitions = "graftql_upstream_breaker_transitions_total"
        assert value(later, transitions, upstream="svc", state="half_open") == 1
        assert value(later, transitions, upstream="svc", state="open") == 1


def test_a_bulkhead_refusal_is_counted_as_a_rejection(chaos: ChaosUpstream) -> None:
    chaos.route("GET /item", Latency(0.3) + Respond(json={}))
    bulkhead = {"max_concurrent": 1, "max_queue": 0}
    with gateway(chaos, dedup=False, retry={"attempts": 3}, bulkhead=bulkhead) as url:
        scrapes = Scrapes(url)
        answer = post(url, "{ a: item(i: 1) b: item(i: 2) }")
        assert [e["message"] for e in answer["errors"]] == [
            "too many calls to svc are already waiting"
        ]
        assert scrapes.changed() == {
            series("graftql_upstream_rejections_total", upstream="svc", by="bulkhead"): 1,
            # The refused call is one attempt (never retried), the admitted one the other.
            series(REQUESTS, upstream="svc", method="GET", outcome="UPSTREAM_UNAVAILABLE"): 1,
            series(REQUESTS, upstream="svc", method="GET", outcome="ok"): 1,
            series("graftql_upstream_request_duration_seconds_count", upstream="svc"): 2,
            series(OPERATIONS, type="query", outcome="error"): 1,
            series("graftql_operation_duration_seconds_count", type="query"): 1,
        }


def test_rate_limit_waits_add_up_and_a_refusal_is_a_rejection(chaos: ChaosUpstream) -> None:
    chaos.route("GET /item", Respond(json={}))
    with gateway(chaos, dedup=False, rate_limit={"rate": 5, "burst": 1}) as url:
        scrapes = Scrapes(url)
        post(url, "{ a: item(i: 1) b: item(i: 2) c: item(i: 3) }")
        # One token at once, then one every 0.2 s: the second call waits 0.2 s, the third 0.4.
        waited = scrapes.change("graftql_upstream_rate_limit_wait_seconds_total", upstream="svc")
        assert waited == pytest.approx(0.6, abs=0.05)
        assert scrapes.change(REQUESTS, upstream="svc", method="GET", outcome="ok") == 3
    with gateway(chaos, dedup=False, rate_limit={"rate": 0.01, "burst": 1}) as url:
        scrapes = Scrapes(url)
        answer = post(url, "{ a: item(i: 1) b: item(i: 2) }")  # the second needs 100 s: refused
        assert answer["errors"][0]["extensions"]["code"] == "UPSTREAM_RATE_LIMITED"
        rejections = "graftql_upstream_rejections_total"
        assert scrapes.change(rejections, upstream="svc", by="rate_limit") == 1
        assert scrapes.change("graftql_upstream_rate_limit_wait_seconds_total", upstream="svc") == 0


def test_a_fallback_is_counted(chaos: ChaosUpstream) -> None:
    chaos.route("GET /banner", Respond(503, json={}))
    with gateway(chaos, retry={"attempts": 1}) as url:
        scrapes = Scrapes(url)
        assert post(url, "{ banner }") == {"data": {"banner": "welcome"}}
        assert scrapes.change("graftql_upstream_fallbacks_total", upstream="svc") == 1
        # The operation answered without errors: the fallback hid the failure from the client.
        assert scrapes.change(OPERATIONS, type="query", outcome="ok") == 1


def test_a_dedup_join_is_counted_and_only_one_request_goes_out(chaos: ChaosUpstream) -> None:
    chaos.route("GET /item", Latency(0.1) + Respond(json={"ok": 1}))
    with gateway(chaos) as url:
        scrapes = Scrapes(url)
        answer = post(url, "{ a: item b: item }")  # two identical calls at once
        assert answer == {"data": {"a": "{'ok': 1}", "b": "{'ok': 1}"}}
        assert chaos.count("GET /item") == 1
        assert scrapes.changed() == {
            series("graftql_upstream_dedup_joins_total", upstream="svc"): 1,
            series(REQUESTS, upstream="svc", method="GET", outcome="ok"): 1,
            series("graftql_upstream_request_duration_seconds_count", upstream="svc"): 1,
            series(OPERATIONS, type="query", outcome="ok"): 1,
            series("graftql_operation_duration_seconds_count", type="query"): 1,
        }


def test_quota_remaining_is_what_the_upstream_last_said(chaos: ChaosUpstream) -> None:
    chaos.route("GET /item").queue(
        Respond(json={}, headers={"x-ratelimit-remaining": "42", "x-ratelimit-limit": "100"}),
        Respond(json={}, headers={"ratelimit": '"default";r=41;t=30'}),
    )
    with gateway(chaos, dedup=False) as url:
        before = scrape(url)
        assert ("graftql_upstream_quota_remaining", frozenset({("upstream", "svc")})) not in before
        post(url, "{ item(i: 1) }")
        first = scrape(url)
        assert value(first, "graftql_upstream_quota_remaining", upstream="svc") == 42
        assert value(first, "graftql_upstream_quota_limit", upstream="svc") == 100
        post(url, "{ item(i: 2) }")
        assert value(scrape(url), "graftql_upstream_quota_remaining", upstream="svc") == 41


def test_token_fetches_and_failures_are_counted(chaos: ChaosUpstream) -> None:
    chaos.route("POST /oauth/token").queue(
        Respond(json={"access_token": "t1", "expires_in": 3600}),
        Respond(401, json={"error": "invalid_client"}),
    )
    # The first token works once; then the API says 401, the token is fetched again, refused.
    chaos.route("GET /item").queue(Respond(json={}), Respond(401, json={}))
    auth = {
        "type": "oauth2_client_credentials",
        "token_url": f"{chaos.url}/oauth/token",
        "client_id": "gw",
        "client_secret": "${METRICS_TEST_SECRET}",
    }
    settings = {"kind": "rest", "url": chaos.url, "auth": auth, "dedup": False}
    environ = {"METRICS_TEST_SECRET": "client-secret-value"}
    with serve(SCHEMA, upstreams={"svc": settings}, environ=environ) as server:
        scrapes = Scrapes(server.url)
        assert post(server.url, "{ item(i: 1) }") == {"data": {"item": "{}"}}
        failed = post(server.url, "{ item(i: 2) }")
        assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_AUTH_FAILED"
        fetches = "graftql_upstream_token_fetches_total"
        assert scrapes.change(fetches, upstream="svc", outcome="fetched") == 1
        assert scrapes.change(fetches, upstream="svc", outcome="failed") == 1
        assert scrapes.change(REQUESTS, upstream="svc", method="GET", outcome="ok") == 1
        failed_attempts = scrapes.change(
            REQUESTS, upstream="svc", method="GET", outcome="UPSTREAM_AUTH_FAILED"
        )
        assert failed_attempts == 1


def test_operations_are_counted_once_each_over_http_and_websocket(chaos: ChaosUpstream) -> None:
    with gateway(chaos) as url:
        scrapes = Scrapes(url)
        post(url, "{ hello }")
        post(url, "mutation { touch }")
        post(url, "{ nope }")  # does not validate
        post(url, "{")  # does not parse: its type is unknown
        get = httpx.get(f"{url}/graphql", params={"query": "mutation { touch }"})
        assert get.status_code == 405  # a mutation over GET runs nothing

        async def over_websocket() -> list[dict[str, Any]]:
            async with ws_connected(url) as ws:
                received = []
                for op, query in (("1", "{ hello }"), ("2", "subscription { ticks }")):
                    payload = {"query": query}
                    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                        received.append(message)
                        if message["type"] in ("complete", "error"):
                            break
                return received

        messages = asyncio.run(over_websocket())
        assert [m["type"] for m in messages] == ["next", "complete"] + ["next"] * 2 + ["complete"]
        # The server sees the socket close a moment after the client: wait for that.
        connections = "graftql_websocket_connections"
        deadline = time.monotonic() + 10
        while value(scrape(url), connections, protocol="graphql-transport-ws") != 0:
            assert time.monotonic() < deadline, "the connection is still counted as open"
            time.sleep(0.02)
        assert scrapes.changed() == {
            series(OPERATIONS, type="query", outcome="ok"): 2,  # one over HTTP, one over WS
            series(OPERATIONS, type="query", outcome="request_error"): 1,
            series(OPERATIONS, type="mutation", outcome="ok"): 1,
            series(OPERATIONS, type="mutation", outcome="request_error"): 1,
            series(OPERATIONS, type="unknown", outcome="request_error"): 1,
            series(OPERATIONS, type="subscription", outcome="ok"): 1,
            series("graftql_operation_duration_seconds_count", type="query"): 3,
            series("graftql_operation_duration_seconds_count", type="mutation"): 2,
            series("graftql_operation_duration_seconds_count", type="unknown"): 1,
            series("graftql_operation_duration_seconds_count", type="subscription"): 1,
            # The subscription's two events (the query's result is none); it ended: active 0.
            series("graftql_subscription_events_total", transport="websocket"): 2,
        }


def test_events_of_upstreams_not_in_the_configuration_are_not_counted(
    chaos: ChaosUpstream,
) -> None:
    with gateway(chaos) as url:
        scrapes = Scrapes(url)
        events.emit("attempt", "elsewhere", method="GET", outcome="ok", status=200, seconds=0.1)
        events.emit("retry", "svc", attempt=1, delay=0.0, reason="UPSTREAM_TIMEOUT")
        assert scrapes.changed() == {
            series("graftql_upstream_retries_total", upstream="svc", reason="UPSTREAM_TIMEOUT"): 1
        }


def test_metrics_can_be_turned_off(chaos: ChaosUpstream) -> None:
    settings = {"kind": "rest", "url": chaos.url}
    with serve(SCHEMA, upstreams={"svc": settings}, metrics=False) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        assert post(server.url, "{ hello }") == {"data": {"hello": "hello"}}
