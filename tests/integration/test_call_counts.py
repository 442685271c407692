"""What queries cost, counted by the upstreams themselves (``/__stats`` and the chaos log):
one call per upstream per level over 50 orders, and shared calls under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from graftql.demo.data import ORDERS
from graftql.demo.runner import EXAMPLE_QUERY, demo_config, demo_environment
from graftql.demo.servers import ServerThread
from graftql.demo.services import DemoCredentials
from graftql.demo.services.crm import order_json
from graftql.server import create_app
from graftql.testing import ChaosUpstream
from graftql.testing.behaviours import Respond
from integration.helpers import demo_token, graphql, reset, stats

# 50 orders for one customer: the seeded ones (which payments and shipping know) and more.
FIFTY = [
    {**order_json(ORDERS[i % len(ORDERS)]), "id": f"o{i + 1}", "customer_id": "c1"}
    for i in range(50)
]
QUERY = """{ customer(id: "c1") { name orders(first: 50) { totalCount edges { node {
  id total { amount } lines { quantity product { name reviews { rating } } }
  payment { status } shipment { status trackingNumber } } } } } }"""


@pytest.fixture
def big_crm(chaos: ChaosUpstream) -> ChaosUpstream:
    chaos.route("GET /customers").always(
        Respond(200, json={"data": [{"id": "c1", "name": "Ada", "email": "ada@example.com"}]})
    )
    chaos.route("GET /customers/c1/orders").always(
        Respond(200, json={"data": FIFTY, "total": 50, "total_pages": 1})
    )
    return chaos


@pytest.fixture
def gateway_over_big_crm(
    big_crm: ChaosUpstream, demo_services: Mapping[str, str], demo_credentials: DemoCredentials
) -> Iterator[str]:
    urls = {**demo_services, "crm": big_crm.url}
    config = demo_config(demo_environment(demo_credentials, urls))
    with ServerThread(create_app(config)) as server:
        yield server.url


def test_fifty_orders_cost_one_call_per_upstream_per_level(
    gateway_over_big_crm: str, big_crm: ChaosUpstream, demo_services: Mapping[str, str]
) -> None:
    graphql(gateway_over_big_crm, '{ product(id: "p1") { name } }')  # warm: nothing shared
    reset(demo_services)
    body = graphql(gateway_over_big_crm, QUERY)
    assert "errors" not in body
    orders = body["data"]["customer"]["orders"]["edges"]
    assert len(orders) == 50
    assert sum(len(o["node"]["lines"]) for o in orders) > 50  # every line has its product
    assert all(line["product"] for o in orders for line in o["node"]["lines"])
    assert big_crm.count("GET /customers") == 1
    assert big_crm.count("GET /customers/c1/orders") == 1
    counts = stats({k: v for k, v in demo_services.items() if k != "crm"})
    assert counts["catalog"] == {"POST /graphql": 1}
    assert counts["shipping"] == {"GET /shipments": 1}
    # The OAuth2 token may be fetched once by this new gateway; the payments list only once.
    assert counts["payments"].get("GET /v1/payments") == 1
    assert set(counts["payments"]) <= {"GET /v1/payments", "POST /oauth/token"}


def _total(counts: dict[str, dict[str, int]]) -> int:
    return sum(sum(routes.values()) for routes in counts.values())


async def _concurrently(url: str, query: str, n: int) -> list[dict[str, Any]]:
    staff = {"authorization": f"Bearer {demo_token('staff')}"}  # as graphql() calls
    async with httpx.AsyncClient(timeout=60, headers=staff) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/graphql", json={"query": query}) for _ in range(n))
        )
    return [r.json() for r in responses]


def test_32_concurrent_identical_queries_share_upstream_calls(
    gateway: str, demo_services: Mapping[str, str]
) -> None:
    graphql(gateway, EXAMPLE_QUERY)  # warm: the payments token
    reset(demo_services)
    graphql(gateway, EXAMPLE_QUERY)
    one = _total(stats(demo_services))
    try:
        # Upstreams that take 200 ms, so the 32 queries' calls are in flight together.
        for url in demo_services.values():
            httpx.post(f"{url}/__chaos", json={"latency_ms": 200}).raise_for_status()
        before = _total(stats(demo_services))
        bodies = asyncio.run(_concurrently(gateway, EXAMPLE_QUERY, 32))
        after = _total(stats(demo_services))
    finally:
        reset(demo_services)  # latency off again
    assert all("errors" not in body for body in bodies)
    assert len({str(body) for body in bodies}) == 1  # 32 identical answers
    concurrent = after - before
    print(f"one query: {one} upstream calls; 32 concurrent: {concurrent} (32x: {32 * one})")
    assert concurrent < 32 * one, (concurrent, one)
