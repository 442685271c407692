"""The response cache as clients see it: through a served gateway, over real HTTP, with its
metrics and its place in /readyz (Redis cut mid-test through a TCP proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import strawberry
from prometheus_client.parser import text_string_to_metric_families

from graftql import Context, GatewaySchema
from graftql.testing import Call, ChaosUpstream, Respond
from integration.helpers import RedisProxy, echo_authorization, require_redis, serve, unique_prefix


@strawberry.type
class Query:
    @strawberry.field
    async def me(self, info: strawberry.Info[Context, None]) -> str:
        """What the upstream says about the caller, with the caller's token forwarded (as
        ``auth: {type: forward}`` does, by writing it into the prepared request)."""
        token = info.context.request.headers.get("authorization", "")
        body = await info.context.upstreams.rest("svc").get("/me", headers={"Authorization": token})
        return str(body["for"])

    @strawberry.field
    async def products(self, info: strawberry.Info[Context, None]) -> int:
        body = await info.context.upstreams.rest("svc").get("/products")
        return int(body["count"])


SCHEMA = GatewaySchema(query=Query)


@contextmanager
def gateway(chaos: ChaosUpstream, **top: Any) -> Iterator[str]:
    svc = {"kind": "rest", "url": chaos.url, "cache": {"ttl": 60}}
    with serve(SCHEMA, upstreams={"svc": svc}, blocks=top) as server:
        yield server.url


def query(url: str, document: str, **headers: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": document}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cache_counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "graftql_upstream_cache"
        for sample in family.samples
        if sample.name == "graftql_upstream_cache_total" and sample.labels["upstream"] == "svc"
    }


def test_user_b_gets_user_bs_answer_after_user_a_asked_the_same(chaos: ChaosUpstream) -> None:
    chaos.route("GET /me", Call(echo_authorization))
    with gateway(chaos) as url:
        a = query(url, "{ me }", Authorization="Bearer token-of-a")
        b = query(url, "{ me }", Authorization="Bearer token-of-b")
        again = query(url, "{ me }", Authorization="Bearer token-of-a")
    assert a == again == {"data": {"me": "Bearer token-of-a"}}
    assert b == {"data": {"me": "Bearer token-of-b"}}
    assert [r.headers["authorization"] for r in chaos.requests] == [
        "Bearer token-of-a",
        "Bearer token-of-b",
    ]


def test_service_scope_hits_are_counted_in_metrics(chaos: ChaosUpstream) -> None:
    chaos.route("GET /products", Respond(json={"count": 3}))
    with gateway(chaos) as url:
        assert cache_counts(url) == {
            "hit": 0,
            "miss": 0,
            "stale": 0,
            "revalidated": 0,
            "bypass": 0,
        }
        for _ in range(3):
            assert query(url, "{ products }") == {"data": {"products": 3}}
        counts = cache_counts(url)
    assert chaos.total == 1
    assert counts["miss"] == 1 and counts["hit"] == 2


async def test_with_redis_cut_queries_still_succeed_and_readyz_says_degraded(
    chaos: ChaosUpstream,
) -> None:
    require_redis()
    chaos.route("GET /products", Respond(json={"count": 3}))
    chaos.route("GET /", Respond(json={}))  # the readiness probe
    proxy = RedisProxy()
    await proxy.start()
    redis = {
        "url": f"redis://127.0.0.1:{proxy.port}/0",
        "key_prefix": unique_prefix(),
        "timeout": 0.2,
    }
    with gateway(chaos, redis=redis, cache={"backend": "redis"}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def products() -> dict[str, Any]:
                response = await client.post("/graphql", json={"query": "{ products }"})
                assert response.status_code == 200
                body: dict[str, Any] = response.json()
                return body

            assert await products() == {"data": {"products": 3}}
            assert await products() == {"data": {"products": 3}}
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["cache"] == "ok"
            assert chaos.count("GET /products") == 1
            await proxy.cut()
            for _ in range(3):
                assert await products() == {"data": {"products": 3}}
            assert chaos.count("GET /products") == 4  # every call went to the upstream
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["cache"] == "degraded"
            assert ready.json()["status"] == "ready"
            metrics = (await client.get("/metrics")).text
    assert 'graftql_upstream_cache_total{outcome="bypass",upstream="svc"} 3.0' in metrics
