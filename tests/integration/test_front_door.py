"""The front door over real sockets: inbound rate limits (HTTP, batches, WebSocket,
X-Forwarded-For, shared through Redis), CORS, and the WebSocket Origin check.

The limits are slow on purpose (three operations at once, then one every 10 s), so a test
never races the refill: it counts what got through and reads the exact Retry-After.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import strawberry
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from graftql import GatewaySchema
from graftql.config import RateLimitConfig, RedisConfig
from graftql.upstreams import SharedState
from graftql.upstreams.limits import Rejected
from integration.helpers import REDIS, serve, ws_connected

EXECUTED: list[str] = []
LIMIT = {"rate": 0.1, "burst": 3}  # 3 at once, then one every 10 s: Retry-After is 10
QUERY = {"query": "{ hello }"}
PROTOCOLS = [Subprotocol("graphql-transport-ws")]


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        EXECUTED.append("hello")
        return "world"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def launch(self) -> str:
        EXECUTED.append("launch")
        return "launched"


@contextmanager
def gateway(redis: dict[str, Any] | None = None, **server: Any) -> Iterator[str]:
    blocks = {"redis": redis} if redis is not None else None
    schema = GatewaySchema(query=Query, mutation=Mutation)
    with serve(schema, blocks=blocks, **server) as thread:
        yield thread.url


@pytest.fixture(autouse=True)
def _forget() -> None:
    EXECUTED.clear()


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/graphql", json=body, headers=headers)


def assert_rate_limited(response: httpx.Response, retry_after: int = 10) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(retry_after)
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED"}
    assert error["message"] == (
        f"too many operations from this client; retry after {retry_after} seconds"
    )


# -- rate limits over HTTP ---------------------------------------------------------------------


def test_the_operation_after_the_burst_is_429_with_retry_after_and_does_not_run() -> None:
    with gateway(rate_limit=LIMIT) as url:
        for _ in range(2):
            assert post(url, QUERY).json() == {"data": {"hello": "world"}}
        assert httpx.get(f"{url}/graphql", params={"query": "{ hello }"}).status_code == 200
        assert EXECUTED == ["hello"] * 3
        assert_rate_limited(post(url, QUERY))
        assert_rate_limited(post(url, {"query": "mutation { launch }"}))
        assert_rate_limited(httpx.get(f"{url}/graphql", params={"query": "{ hello }"}))
        # What is refused is not parsed either: a broken document gets the same answer.
        assert_rate_limited(post(url, {"query": "{ hello"}))
        assert EXECUTED == ["hello"] * 3


def test_without_server_rate_limit_nothing_is_counted() -> None:
    with gateway() as url:
        for _ in range(10):
            assert post(url, QUERY).status_code == 200
        assert EXECUTED == ["hello"] * 10


def test_every_operation_of_a_batch_counts() -> None:
    with gateway(rate_limit=LIMIT, max_batch_operations=5) as url:
        response = post(url, [QUERY, QUERY, QUERY])
        assert response.status_code == 200
        assert response.json() == [{"data": {"hello": "world"}}] * 3
        assert "retry-after" not in response.headers
        assert_rate_limited(post(url, QUERY))  # the batch of 3 used the burst of 3
        assert_rate_limited(post(url, [QUERY, QUERY]))  # nothing of it ran: 429 as a whole
        assert EXECUTED == ["hello"] * 3


def test_a_batch_that_runs_out_midway_answers_the_rest_with_rate_limited() -> None:
    with gateway(rate_limit=LIMIT, max_batch_operations=5) as url:
        assert post(url, QUERY).status_code == 200
        launch = {"query": "mutation { launch }"}
        response = post(url, [QUERY, launch, launch, QUERY])
        assert response.status_code == 200
        assert response.headers["retry-after"] == "10"
        body = response.json()
        assert body[:2] == [{"data": {"hello": "world"}}, {"data": {"launch": "launched"}}]
        # The third is refused, and the fourth does not run either: a batch runs in order.
        for entry in body[2:]:
            assert "data" not in entry
            assert entry["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 10}
        assert EXECUTED == ["hello", "hello", "launch"]


# -- who the client is ------------------------------------------------------------------------


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    with gateway(rate_limit=LIMIT) as url:  # 127.0.0.1 is not a trusted proxy here
        for i in range(3):
            assert post(url, QUERY, **{"x-forwarded-for": f"203.0.113.{i}"}).status_code == 200
        # A fourth "client" is still the same peer, with the same bucket.
        assert_rate_limited(post(url, QUERY, **{"x-forwarded-for": "203.0.113.99"}))


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    limit = {**LIMIT, "trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"]}
    with gateway(rate_limit=limit) as url:
        alice, bob = "203.0.113.7", "198.51.100.2"
        for _ in range(3):
            assert post(url, QUERY, **{"x-forwarded-for": alice}).status_code == 200
        assert_rate_limited(post(url, QUERY, **{"x-forwarded-for": alice}))
        # Through a second trusted proxy: still alice.
        assert_rate_limited(post(url, QUERY, **{"x-forwarded-for": f"{alice}, 10.1.2.3"}))
        # What alice wrote herself, left of her address, changes nothing.
        assert_rate_limited(post(url, QUERY, **{"x-forwarded-for": f"{bob}, {alice}"}))
        for _ in range(3):  # bob has his own bucket
            assert post(url, QUERY, **{"x-forwarded-for": bob}).status_code == 200
        assert_rate_limited(post(url, QUERY, **{"x-forwarded-for": bob}))
        # The proxy itself (no X-Forwarded-For) is a client of its own.
        assert post(url, QUERY).status_code == 200


# -- rate limits over WebSocket ---------------------------------------------------------------


async def subscribe(ws: Any, op: str, query: str = "{ hello }") -> list[dict[str, Any]]:
    """Send one operation; its messages up to and including the last (complete or error)."""
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query}}))
    messages = []
    while True:
        message = json.loads(await ws.recv())
        messages.append(message)
        if message["type"] in ("complete", "error"):
            return messages


async def test_each_websocket_operation_counts_and_shares_the_bucket_with_http() -> None:
    with gateway(rate_limit=LIMIT) as url:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{url}/graphql", json=QUERY)
            assert response.status_code == 200
        async with ws_connected(url) as ws:
            for op in ("1", "2"):
                assert await subscribe(ws, op) == [
                    {"id": op, "type": "next", "payload": {"data": {"hello": "world"}}},
                    {"id": op, "type": "complete"},
                ]
            # The fourth operation from this address: an error message for that operation.
            refused = {
                "message": "too many operations from this client; retry after 10 seconds",
                "extensions": {"code": "RATE_LIMITED", "retryAfter": 10},
            }
            assert await subscribe(ws, "3") == [{"id": "3", "type": "error", "payload": [refused]}]
            # The connection stays open; the next operation is refused the same way.
            assert await subscribe(ws, "4") == [{"id": "4", "type": "error", "payload": [refused]}]
        assert EXECUTED == ["hello"] * 3


# -- shared through Redis ---------------------------------------------------------------------


def test_two_replicas_share_one_limit_through_redis(redis_prefix: str) -> None:
    redis = {"url": REDIS, "key_prefix": redis_prefix}
    shared = {**LIMIT, "shared": True}
    with gateway(redis, rate_limit=shared) as a, gateway(redis, rate_limit=shared) as b:
        assert post(a, QUERY).status_code == 200
        assert post(a, QUERY).status_code == 200
        assert post(b, QUERY).status_code == 200
        # Two local buckets would admit three more; the shared one admits none.
        assert_rate_limited(post(b, QUERY))
        assert_rate_limited(post(a, QUERY))
        assert EXECUTED == ["hello"] * 3


async def test_the_shared_bucket_takes_a_weight(redis_prefix: str) -> None:
    """The hook for cost-weighted limits: the GCRA script takes several tokens at once."""
    state = SharedState(RedisConfig(url=REDIS, key_prefix=redis_prefix))
    bucket = RateLimitConfig(rate=0.1, burst=3)
    try:
        assert await state.reserve("inbound:w", bucket, 0.0, weight=2) == 0.0
        with pytest.raises(Rejected) as refused:
            await state.reserve("inbound:w", bucket, 0.0, weight=2)  # one token left
        assert refused.value.wait is not None and 9.5 < refused.value.wait <= 10.0
        assert await state.reserve("inbound:w", bucket, 0.0) == 0.0
        with pytest.raises(Rejected):
            await state.reserve("inbound:w", bucket, 0.0)
    finally:
        await state.aclose()


def test_without_redis_each_replica_keeps_its_own_limit(caplog: pytest.LogCaptureFixture) -> None:
    nowhere = {"url": "redis://127.0.0.1:1/0"}  # nothing listens on port 1
    with (
        caplog.at_level(logging.WARNING, logger="graftql.upstreams"),
        gateway(nowhere, rate_limit={**LIMIT, "shared": True}) as url,
    ):
        for _ in range(3):
            assert post(url, QUERY).status_code == 200
        assert_rate_limited(post(url, QUERY))
    assert EXECUTED == ["hello"] * 3
    # One warning about Redis (at start-up, from the listener), not one per operation; and one
    # line that counts the refusals, not one per refusal.
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("redis unavailable")]) == 1
    assert [m for m in messages if m.startswith("inbound rate limit")] == [
        "inbound rate limit: refused 1 operation(s) since the last report (latest from "
        "ip:127.0.0.1)"
    ]


# -- CORS ---------------------------------------------------------------------------------------

APP = "https://app.example.com"
PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "content-type",
}


def test_a_preflight_from_an_allowed_origin_gets_the_cors_headers() -> None:
    cors = {"allow_origins": [APP], "allow_headers": ["Authorization"]}
    with gateway(cors=cors) as url:
        preflight = httpx.options(f"{url}/graphql", headers={"origin": APP, **PREFLIGHT})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == APP
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-max-age"] == "600"
        assert "access-control-allow-credentials" not in preflight.headers
        with_auth = {**PREFLIGHT, "access-control-request-headers": "content-type, authorization"}
        assert httpx.options(f"{url}/graphql", headers={"origin": APP, **with_auth}).is_success
        response = post(url, QUERY, origin=APP)
        assert response.json() == {"data": {"hello": "world"}}
        assert response.headers["access-control-allow-origin"] == APP
        assert response.headers["access-control-expose-headers"] == "Retry-After"


def test_a_preflight_from_another_origin_gets_no_cors_headers() -> None:
    with gateway(cors={"allow_origins": [APP]}) as url:
        for origin in ("https://evil.example", "http://app.example.com", f"{APP}:8443"):
            preflight = httpx.options(f"{url}/graphql", headers={"origin": origin, **PREFLIGHT})
            assert preflight.status_code == 400
            # Without Allow-Origin the browser sends nothing (starlette still lists methods).
            assert "access-control-allow-origin" not in preflight.headers
            assert "access-control-allow-credentials" not in preflight.headers
            response = post(url, QUERY, origin=origin)
            assert "access-control-allow-origin" not in response.headers
        # A header that is not allowed fails the preflight from an allowed origin too.
        custom = {**PREFLIGHT, "access-control-request-headers": "x-custom"}
        preflight = httpx.options(f"{url}/graphql", headers={"origin": APP, **custom})
        assert preflight.status_code == 400


def test_without_server_cors_there_are_no_cors_headers() -> None:
    with gateway() as url:
        preflight = httpx.options(f"{url}/graphql", headers={"origin": APP, **PREFLIGHT})
        assert preflight.status_code == 405
        assert not any(h.startswith("access-control-") for h in preflight.headers)
        assert "access-control-allow-origin" not in post(url, QUERY, origin=APP).headers


# -- WebSocket origins -----------------------------------------------------------------------


async def handshake(url: str, **kwargs: Any) -> int:
    """The handshake's outcome: 101 when the WebSocket opened, else the HTTP status."""
    try:
        async with ws_connected(url, **kwargs):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_a_websocket_from_another_origin_is_refused_with_403() -> None:
    with gateway() as url:
        own = url  # http://127.0.0.1:PORT, the Host the client sends
        port = int(url.rpartition(":")[2])
        assert await handshake(url) == 101  # no Origin: not a browser
        assert await handshake(url, origin=own) == 101
        assert await handshake(url, origin="https://evil.example") == 403
        assert await handshake(url, origin=f"http://127.0.0.1:{port + 1}") == 403
        assert await handshake(url, origin="null") == 403  # a sandboxed page, a file


async def test_a_websocket_from_an_origin_allowed_by_cors_is_accepted() -> None:
    with gateway(cors={"allow_origins": [APP]}) as url:
        assert await handshake(url, origin=APP) == 101
        assert await handshake(url, origin=url) == 101
        assert await handshake(url, origin="https://evil.example") == 403
