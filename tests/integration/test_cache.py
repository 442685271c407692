"""The upstream response cache against a real chaos upstream, with the in-memory backend and
with the real Redis on 127.0.0.1:6379 (the same tests, parametrized).

Time is an injected clock moved by hand: no test sleeps for a TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from graftql.config import parse_config
from graftql.errors import UpstreamBadResponse, UpstreamNotFound, UpstreamUnavailable
from graftql.testing import Call, ChaosUpstream, Hang, Latency, Respond
from graftql.testing._http import ReceivedRequest
from graftql.upstreams import ResponseCache, Upstreams, caller, events
from graftql.upstreams.cache_store import Entry
from integration.helpers import (
    REDIS,
    RedisProxy,
    delete_keys,
    echo_authorization,
    require_redis,
    unique_prefix,
)


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Make = Callable[..., Upstreams]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_redis()
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make(chaos: ChaosUpstream, backend: str, clock: Clock) -> AsyncIterator[Make]:
    """Gateways' upstreams over one chaos upstream ``svc`` (kind ``rest`` unless given), with
    ``cache`` as its cache block; all share a fresh Redis key prefix and the test's clock."""
    prefix = unique_prefix()
    made: list[Upstreams] = []

    def make(cache: dict[str, Any] | None = None, **svc: Any) -> Upstreams:
        svc.setdefault("kind", "rest")
        svc.setdefault("retry", {"attempts": 1})
        config = parse_config(
            {
                "schema": "tests:unused",
                "redis": {"url": svc.pop("redis_url", REDIS), "key_prefix": prefix},
                "cache": {"backend": backend},
                "upstreams": {
                    "svc": {"url": chaos.url + svc.pop("path", ""), "cache": cache or {}, **svc}
                },
            }
        )
        upstreams = Upstreams.from_config(config)
        cache_of(upstreams).use_clock(clock)
        made.append(upstreams)
        return upstreams

    yield make
    for upstreams in made:
        await upstreams.aclose()
    with contextlib.suppress(OSError):
        await delete_keys(prefix)


def cache_of(upstreams: Upstreams) -> ResponseCache:
    cache = upstreams["svc"].cache
    assert cache is not None
    return cache


@pytest.fixture
def outcomes() -> Iterator[list[str]]:
    """The ``cache`` events' outcomes, in order."""
    seen: list[str] = []

    def listener(event: str, upstream: str, fields: dict[str, Any]) -> None:
        if event == "cache":
            seen.append(fields["outcome"])

    events.listen(listener)
    yield seen
    events.unlisten(listener)


# -- isolation ---------------------------------------------------------------------------------


async def test_with_service_credentials_the_second_call_is_a_hit(
    make: Make, chaos: ChaosUpstream, outcomes: list[str]
) -> None:
    chaos.route("GET /items", Respond(json={"n": 1}))
    upstreams = make(
        auth={"type": "bearer", "token": "${SVC_TOKEN:-service-token}"},
    )
    svc = upstreams.rest("svc")
    assert await svc.get("/items") == {"n": 1}
    assert await svc.get("/items") == {"n": 1}
    assert chaos.total == 1
    assert chaos.requests[0].headers["authorization"] == "Bearer service-token"
    assert outcomes == ["miss", "hit"]


async def test_the_upstreams_own_configured_key_header_is_service_scope(
    make: Make, chaos: ChaosUpstream, outcomes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential in the upstream's static ``headers:`` is the gateway's, the same for every
    caller: it does not make the entry per credential (but a per-call one does)."""
    monkeypatch.setenv("SVC_KEY", "the-service-key")
    chaos.route("GET /items", Respond(json={}))
    svc = make(headers={"X-Api-Key": "${SVC_KEY}"}).rest("svc")
    await svc.get("/items")
    await svc.get("/items")
    await svc.get("/items", headers={"X-Api-Key": "a-users-key"})
    assert [r.headers["x-api-key"] for r in chaos.requests] == ["the-service-key", "a-users-key"]
    assert outcomes == ["miss", "hit", "miss"]


async def test_a_forwarded_credential_keeps_each_users_answer_their_own(
    make: Make, chaos: ChaosUpstream, outcomes: list[str]
) -> None:
    chaos.route("GET /me", Call(echo_authorization))
    svc = make().rest("svc")
    a = await svc.get("/me", headers={"Authorization": "Bearer user-a"})
    b = await svc.get("/me", headers={"Authorization": "Bearer user-b"})
    assert a == {"for": "Bearer user-a"}
    assert b == {"for": "Bearer user-b"}
    assert [r.headers["authorization"] for r in chaos.requests] == [
        "Bearer user-a",
        "Bearer user-b",
    ]
    # Each user's own entry is a hit for that user.
    assert await svc.get("/me", headers={"Authorization": "Bearer user-a"}) == a
    assert chaos.total == 2
    assert outcomes == ["miss", "miss", "hit"]


async def test_cookies_and_api_keys_from_the_caller_are_per_credential_too(
    make: Make, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /me", Respond(json={}))
    svc = make().rest("svc")
    for headers in ({"Cookie": "s=1"}, {"Cookie": "s=2"}, {"X-Api-Key": "k1"}, {"X-Api-Key": "k2"}):
        await svc.get("/me", headers=headers)
    assert chaos.total == 4


async def test_scope_principal_keys_on_the_callers_principal(
    make: Make, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /me", Respond(json={}))
    svc = make({"scope": "principal"}).rest("svc")
    for principal in ("p1", "p2", "p1"):
        token = caller.start(caller.Caller(principal=principal))
        try:
            await svc.get("/me")
        finally:
            caller.reset(token)
    assert chaos.total == 2


async def test_a_credential_forwarded_inside_the_pipeline_is_never_stored_for_everyone(
    make: Make, chaos: ChaosUpstream
) -> None:
    """An auth flow that copies the client's Authorization onto the request after the key was
    made: the answer is that user's, so it must not be stored at service scope."""

    class Forward(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Any:
            who = caller.current()
            assert who is not None
            request.headers["Authorization"] = who.headers["authorization"]
            yield request

    chaos.route("GET /me", Call(echo_authorization))
    upstreams = make()
    svc = upstreams.rest("svc")
    svc.auth = Forward()
    answers = []
    for user in ("user-a-token", "user-b-token"):
        token = caller.start(caller.Caller(headers={"authorization": f"Bearer {user}"}))
        try:
            answers.append(await svc.get("/me"))
        finally:
            caller.reset(token)
    assert answers == [{"for": "Bearer user-a-token"}, {"for": "Bearer user-b-token"}]
    assert chaos.total == 2


async def test_a_renamed_forwarded_credential_is_per_credential_scope(
    make: Make, chaos: ChaosUpstream, outcomes: list[str]
) -> None:
    """``auth: forward`` may carry the client's credential in a header whose name looks like
    nothing secret (``x-visitor``): it is still the client's, so a ``private`` answer is kept
    per credential and never shared."""
    chaos.route(
        "GET /me",
        Call(
            lambda r: Respond(
                json={"for": r.headers.get("x-visitor")},
                headers={"Cache-Control": "private, max-age=60"},
            )
        ),
    )
    svc = make(auth={"type": "forward", "headers": ["x-visitor"]}).rest("svc")
    answers = []
    for session in ("alice-session", "bob-session", "alice-session"):
        token = caller.start(caller.Caller(headers={"x-visitor": session}))
        try:
            answers.append(await svc.get("/me"))
        finally:
            caller.reset(token)
    assert answers == [{"for": "alice-session"}, {"for": "bob-session"}, {"for": "alice-session"}]
    assert [r.headers["x-visitor"] for r in chaos.requests] == ["alice-session", "bob-session"]
    assert outcomes == ["miss", "miss", "hit"]


# -- Cache-Control -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cache_control", ["no-store", "private", "private, max-age=60", "no-cache"]
)
async def test_no_store_private_and_unvalidatable_no_cache_are_not_cached(
    make: Make, chaos: ChaosUpstream, cache_control: str
) -> None:
    chaos.route("GET /items", Respond(json={}, headers={"Cache-Control": cache_control}))
    svc = make().rest("svc")
    await svc.get("/items")
    await svc.get("/items")
    assert chaos.total == 2


async def test_set_cookie_answers_and_large_ones_are_not_shared(
    make: Make, chaos: ChaosUpstream
) -> None:
    chaos.route("GET /session", Respond(json={}, headers={"Set-Cookie": "sid=abc"}))
    chaos.route("GET /big", Respond(json={"x": "y" * 100}))
    svc = make({"max_entry_bytes": 50}).rest("svc")
    for _ in range(2):
        await svc.get("/session")
        await svc.get("/big")
    assert chaos.counts == {"GET /session": 2, "GET /big": 2}


async def test_private_answers_are_cached_per_credential(make: Make, chaos: ChaosUpstream) -> None:
    chaos.route("GET /me", Respond(json={}, headers={"Cache-Control": "private, max-age=60"}))
    svc = make().rest("svc")
    await svc.get("/me", headers={"Authorization": "Bearer a"})
    await svc.get("/me", headers={"Authorization": "Bearer a"})
    assert chaos.total == 1


async def test_max_age_and_s_maxage_decide_freshness(
    make: Make, chaos: ChaosUpstream, clock: Clock
) -> None:
    chaos.route("GET /a", Respond(json={}, headers={"Cache-Control": "max-age=5"}))
    chaos.route("GET /b", Respond(json={}, headers={"Cache-Control": "max-age=5, s-maxage=100"}))
    svc = make({"ttl": 1000}).rest("svc")
    for path in ("/a", "/b"):
        await svc.get(path)
    clock.advance(10)
    for path in ("/a", "/b"):
        await svc.get(path)
    assert chaos.counts == {"GET /a": 2, "GET /b": 1}


async def test_the_configured_ttl_applies_when_the_upstream_says_nothing(
    make: Make, chaos: ChaosUpstream, clock: Clock
) -> None:
    chaos.route("GET /a", Respond(json={}))
    svc = make({"ttl": 30}).rest("svc")
    await svc.get("/a")
    clock.advance(29)
    await svc.get("/a")
    assert chaos.total == 1
    clock.advance(2)
    await svc.get("/a")
    assert chaos.total == 2


async def test_etag_revalidation_sends_if_none_match_and_serves_on_304(
    make: Make, chaos: ChaosUpstream, outcomes: list[str]
) -> None:
    route = chaos.route("GET /items")
    route.queue(Respond(json={"v": 1}, headers={"ETag": '"v1"', "Cache-Control": "no-cache"}))
    route.queue(Respond(304, headers={"ETag": '"v1"'}))
    svc = make().rest("svc")
    assert await svc.get("/items") == {"v": 1}
    assert await svc.get("/items") == {"v": 1}
    first, second = chaos.requests
    assert "if-none-match" not in first.headers
    assert second.headers["if-none-match"] == '"v1"'
    assert outcomes == ["miss", "revalidated"]


async def test_last_modified_revalidation_sends_if_modified_since(
    make: Make, chaos: ChaosUpstream, clock: Clock
) -> None:
    stamp = "Wed, 21 Oct 2026 07:28:00 GMT"
    route = chaos.route("GET /items")
    route.queue(Respond(json={"v": 1}, headers={"Last-Modified": stamp}))
    route.queue(Respond(304))
    route.queue(Respond(json={"v": 2}, headers={"Last-Modified": stamp}))
    svc = make({"ttl": 10}).rest("svc")
    assert await svc.get("/items") == {"v": 1}
    clock.advance(11)
    assert await svc.get("/items") == {"v": 1}  # 304: the stored body
    assert await svc.get("/items") == {"v": 1}  # fresh again for 10 s: no call
    clock.advance(11)
    assert await svc.get("/items") == {"v": 2}  # changed: a 200 replaces it
    assert [r.headers.get("if-modified-since") for r in chaos.requests] == [None, stamp, stamp]


async def test_vary_star_is_not_cached(make: Make, chaos: ChaosUpstream) -> None:
    chaos.route("GET /items", Respond(json={}, headers={"Vary": "*"}))
    svc = make().rest("svc")
    await svc.get("/items")
    await svc.get("/items")
    assert chaos.total == 2


# -- stale -------------------------------------------------------------------------------------


async def test_stale_if_error_serves_the_last_good_answer_until_its_window_ends(
    make: Make, chaos: ChaosUpstream, clock: Clock, outcomes: list[str]
) -> None:
    route = chaos.route("GET /items")
    route.queue(Respond(json={"good": True}))
    route.always(Respond(503, json={}))
    upstreams = make(
        {"ttl": 10, "stale_if_error": 60},
        breaker={"minimum_calls": 1, "failure_rate": 0.5, "open_for": 1000},
    )
    svc = upstreams.rest("svc")
    assert await svc.get("/items") == {"good": True}
    clock.advance(20)  # stale now
    assert await svc.get("/items") == {"good": True}  # the upstream answered 503
    assert upstreams["svc"].breaker is not None
    assert upstreams["svc"].breaker.state == "open"
    assert await svc.get("/items") == {"good": True}  # the breaker refused the call
    assert chaos.total == 2
    clock.advance(60)  # 80 s old: 10 fresh + 60 stale-if-error have passed
    with pytest.raises(Exception) as failed:
        await svc.get("/items")
    assert getattr(failed.value, "code", None) == "CIRCUIT_OPEN"
    assert outcomes == ["miss", "stale", "stale", "miss"]


async def test_stale_if_error_covers_a_timeout(
    make: Make, chaos: ChaosUpstream, clock: Clock, outcomes: list[str]
) -> None:
    route = chaos.route("GET /items")
    route.queue(Respond(json={"good": True}))
    route.always(Hang())
    svc = make({"ttl": 10, "stale_if_error": 60}, timeout=0.2).rest("svc")
    assert await svc.get("/items") == {"good": True}
    clock.advance(30)
    assert await svc.get("/items") == {"good": True}
    assert outcomes == ["miss", "stale"]


async def test_stale_if_error_does_not_hide_a_404(
    make: Make, chaos: ChaosUpstream, clock: Clock
) -> None:
    route = chaos.route("GET /items")
    route.queue(Respond(json={}))
    route.always(Respond(404, json={}))
    svc = make({"ttl": 1, "stale_if_error": 60}).rest("svc")
    await svc.get("/items")
    clock.advance(5)
    with pytest.raises(UpstreamNotFound):
        await svc.get("/items")


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(
    make: Make, chaos: ChaosUpstream, clock: Clock, outcomes: list[str]
) -> None:
    route = chaos.route("GET /items")
    route.queue(Respond(json={"v": 1}))
    # Slow, so that every caller below has its answer before the refresh has the new one.
    route.always(Latency(1.0) + Respond(json={"v": 2}))
    upstreams = make({"ttl": 10, "stale_while_revalidate": 30})
    svc = upstreams.rest("svc")
    assert await svc.get("/items") == {"v": 1}
    clock.advance(15)
    stale = await asyncio.gather(*(svc.get("/items") for _ in range(5)))
    assert stale == [{"v": 1}] * 5
    cache = cache_of(upstreams)
    await asyncio.gather(*cache._tasks)  # the one background refresh
    assert chaos.total == 2
    assert await svc.get("/items") == {"v": 2}
    assert chaos.total == 2
    assert outcomes == ["miss", *["stale"] * 5, "hit"]


async def test_must_revalidate_forbids_serving_stale(
    make: Make, chaos: ChaosUpstream, clock: Clock
) -> None:
    route = chaos.route("GET /items")
    route.queue(Respond(json={}, headers={"Cache-Control": "max-age=5, must-revalidate"}))
    route.always(Respond(503, json={}))
    svc = make({"stale_if_error": 600}).rest("svc")
    await svc.get("/items")
    clock.advance(6)
    with pytest.raises(UpstreamUnavailable):
        await svc.get("/items")


# -- what is never cached ----------------------------------------------------------------------


async def test_errors_and_writes_are_never_cached(make: Make, chaos: ChaosUpstream) -> None:
    chaos.route("GET /broken").queue(Respond(500, json={})).always(Respond(json={"ok": True}))
    chaos.route("GET /missing", Respond(404, json={}))
    chaos.route("POST /orders", Respond(json={"id": 1}))
    chaos.route("PUT /orders/1", Respond(json={"id": 1}))
    svc = make().rest("svc")
    with pytest.raises(UpstreamBadResponse):
        await svc.get("/broken")
    assert await svc.get("/broken") == {"ok": True}  # the 500 was not kept
    for _ in range(2):
        with pytest.raises(UpstreamNotFound):
            await svc.get("/missing")
    for _ in range(2):
        await svc.request("POST", "/orders", json_body={"x": 1})
        await svc.request("PUT", "/orders/1", json_body={"x": 1})
    assert chaos.counts == {
        "GET /broken": 2,
        "GET /missing": 2,
        "POST /orders": 2,
        "PUT /orders/1": 2,
    }


async def test_graphql_queries_are_cached_mutations_and_errors_are_not(
    make: Make, chaos: ChaosUpstream
) -> None:
    def answer(request: ReceivedRequest) -> Respond:
        query = request.json()["query"]
        if "broken" in query:
            return Respond(json={"data": None, "errors": [{"message": "no"}]})
        return Respond(json={"data": {"n": len(query)}})

    chaos.route("POST /graphql", Call(answer))
    gql = make(kind="graphql", path="/graphql").graphql("svc")
    for _ in range(2):
        await gql.execute("{ a }")
        await gql.execute("mutation { m }")
        with pytest.raises(UpstreamBadResponse):
            await gql.execute("{ broken }")
    queries = [r.json()["query"] for r in chaos.requests]
    assert queries.count("{ a }") == 1
    assert queries.count("mutation { m }") == 2
    assert queries.count("{ broken }") == 2


# -- tags and endpoints ------------------------------------------------------------------------


async def test_a_write_invalidates_its_endpoints_tags(make: Make, chaos: ChaosUpstream) -> None:
    chaos.route("GET /products/*", Respond(json={}))
    chaos.route("GET /other", Respond(json={}))
    chaos.route("POST /products/*", Respond(json={}))
    upstreams = make(
        endpoints=[
            {"match": "GET /products/*", "cache": {"tags": ["products"]}},
            {"match": "POST /products/*", "cache": {"tags": ["products"]}},
        ]
    )
    svc = upstreams.rest("svc")
    for _ in range(2):
        await svc.get("/products/{id}", id="p1")
        await svc.get("/other")
    await svc.request("POST", "/products/{id}", {"id": "p1"}, json_body={"name": "new"})
    await svc.get("/products/{id}", id="p1")  # invalidated: asks again
    await svc.get("/other")  # untagged: still a hit
    await upstreams.invalidate("products")  # as a resolver or a webhook would
    await svc.get("/products/{id}", id="p1")
    assert chaos.counts == {"GET /products/*": 3, "GET /other": 1, "POST /products/*": 1}


async def test_a_graphql_mutation_invalidates_the_queries_it_names(
    make: Make, chaos: ChaosUpstream
) -> None:
    chaos.route("POST /graphql", Respond(json={"data": {"x": 1}}))
    upstreams = make(
        kind="graphql",
        path="/graphql",
        endpoints=[
            {"match": "query Products", "cache": {"tags": ["products"]}},
            {"match": "mutation *", "cache": {"tags": ["products"]}},
        ],
    )
    gql = upstreams.graphql("svc")
    for _ in range(2):
        await gql.execute("query Products { x }")
        await gql.execute("query Other { x }")
    await gql.execute("mutation Rename { x }")
    await gql.execute("query Products { x }")
    await gql.execute("query Other { x }")
    queries = [r.json()["query"] for r in chaos.requests]
    assert queries == [
        "query Products { x }",
        "query Other { x }",
        "mutation Rename { x }",
        "query Products { x }",
    ]


async def test_an_endpoint_can_change_the_ttl_or_turn_caching_off(
    make: Make, chaos: ChaosUpstream, clock: Clock
) -> None:
    chaos.route("GET /*", Respond(json={}))
    svc = make(
        {"ttl": 100},
        endpoints=[
            {"match": "GET /live", "cache": {"enabled": False}},
            {"match": "GET /short", "cache": {"ttl": 5}},
        ],
    ).rest("svc")
    for _ in range(2):
        for path in ("/live", "/short", "/long"):
            await svc.get(path)
    clock.advance(10)
    for path in ("/short", "/long"):
        await svc.get(path)
    paths = [r.path for r in chaos.requests]
    assert paths.count("/live") == 2
    assert paths.count("/short") == 2
    assert paths.count("/long") == 1


async def test_an_upstream_can_cache_only_some_endpoints(make: Make, chaos: ChaosUpstream) -> None:
    chaos.route("GET /*", Respond(json={}))
    svc = make({"enabled": False}, endpoints=[{"match": "GET /cached", "cache": {"ttl": 60}}]).rest(
        "svc"
    )
    for _ in range(2):
        await svc.get("/cached")
        await svc.get("/other")
    assert [r.path for r in chaos.requests] == ["/cached", "/other", "/other"]


# -- the memory bound --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory"])  # Redis is bounded by its own maxmemory
async def test_the_memory_backend_keeps_at_most_max_entries(
    make: Make, chaos: ChaosUpstream, backend: str
) -> None:
    chaos.route("GET /*", Respond(json={"x": "y" * 100}))
    svc = make({"max_entries": 2}).rest("svc")
    for path in ("/a", "/b", "/a", "/c", "/a", "/b"):  # /b is evicted by /c: least recent
        await svc.get(path)
    assert [r.path for r in chaos.requests] == ["/a", "/b", "/c", "/b"]


def test_the_memory_backend_keeps_at_most_max_bytes() -> None:
    from graftql.upstreams.cache_store import Entry, MemoryBackend

    backend = MemoryBackend(max_entries=100, max_bytes=3000, clock=lambda: 0.0)
    entry = Entry(200, [], b"x" * 1000, 0.0, 60.0, 0.0, 0.0, False)

    async def fill() -> None:
        for n in range(5):
            await backend.put(f"k{n}", entry, 60)

    asyncio.run(fill())
    assert len(backend) == 2 and backend.bytes <= 3000


# -- Redis trouble -----------------------------------------------------------------------------


async def test_without_redis_calls_bypass_the_cache_and_succeed(
    chaos: ChaosUpstream, clock: Clock, outcomes: list[str]
) -> None:
    require_redis()

    chaos.route("GET /items", Respond(json={"ok": True}))
    proxy = RedisProxy()
    await proxy.start()
    config = parse_config(
        {
            "schema": "tests:unused",
            "redis": {"url": f"redis://127.0.0.1:{proxy.port}/0", "key_prefix": unique_prefix()},
            "upstreams": {"svc": {"kind": "rest", "url": chaos.url, "cache": {"backend": "redis"}}},
        }
    )
    upstreams = Upstreams.from_config(config)
    try:
        svc = upstreams.rest("svc")
        assert await svc.get("/items") == {"ok": True}
        assert await svc.get("/items") == {"ok": True}
        assert chaos.total == 1
        assert await upstreams.cache_status() == "ok"
        await proxy.cut()
        assert await svc.get("/items") == {"ok": True}
        assert await svc.get("/items") == {"ok": True}
        assert chaos.total == 3
        assert outcomes == ["miss", "hit", "bypass", "bypass"]
        assert await upstreams.cache_status() == "degraded"
    finally:
        await upstreams.aclose()


async def test_a_hanging_redis_costs_one_timeout_then_calls_bypass_it(
    chaos: ChaosUpstream,
    outcomes: list[str],
    caplog: pytest.LogCaptureFixture,
    unanswered_port: int,
) -> None:
    """Redis that accepts no connection (a full accept queue): the first lookup waits
    ``redis.timeout``, then calls skip Redis for a while instead of waiting again."""
    chaos.route("GET /i", Respond(json={}))
    config = parse_config(
        {
            "schema": "tests:unused",
            "redis": {"url": f"redis://127.0.0.1:{unanswered_port}/0", "timeout": 0.25},
            "upstreams": {"svc": {"kind": "rest", "url": chaos.url, "cache": {"backend": "redis"}}},
        }
    )
    upstreams = Upstreams.from_config(config)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="graftql.upstreams"):
            for i in range(10):
                await upstreams.rest("svc").get("/i", params={"i": i})
        elapsed = time.monotonic() - started
    finally:
        await upstreams.aclose()
    assert chaos.total == 10
    assert outcomes == ["bypass"] * 10
    assert 0.25 <= elapsed < 1.5  # one redis.timeout (0.25 s), not ten (2.5 s)
    warnings = [r.getMessage() for r in caplog.records if "response cache" in r.getMessage()]
    assert warnings == [  # once, not once per call
        "redis unavailable (read the response cache: TimeoutError); "
        "upstream calls bypass the response cache"
    ]


async def test_an_unreadable_redis_entry_is_a_miss(chaos: ChaosUpstream) -> None:
    require_redis()
    chaos.route("GET /items", Respond(json={"ok": True}))
    prefix = unique_prefix()
    config = parse_config(
        {
            "schema": "tests:unused",
            "redis": {"key_prefix": prefix},
            "upstreams": {"svc": {"kind": "rest", "url": chaos.url, "cache": {"backend": "redis"}}},
        }
    )
    upstreams = Upstreams.from_config(config)
    client = aioredis.Redis.from_url(REDIS)
    try:
        await upstreams.rest("svc").get("/items")
        keys = [key async for key in client.scan_iter(match=f"{prefix}cache:*")]
        assert len(keys) == 1
        await client.set(keys[0], b"\xff\x00 not an entry")
        assert await upstreams.rest("svc").get("/items") == {"ok": True}
        assert chaos.total == 2
        assert Entry.loads(await client.get(keys[0]))  # the fresh answer replaced it
    finally:
        await upstreams.aclose()
        await client.delete(*[key async for key in client.scan_iter(match=f"{prefix}*")])
        await client.aclose()
