"""The README's example query, end to end: four real upstreams, one gateway, one answer."""

from __future__ import annotations

from collections.abc import Mapping

from graftql.demo.runner import EXAMPLE_QUERY
from integration.expected import EXPECTED
from integration.helpers import graphql, reset, stats


def test_example_query_answers_exactly_the_seeded_data(gateway: str) -> None:
    assert graphql(gateway, EXAMPLE_QUERY) == {"data": EXPECTED}


def test_example_query_costs_one_request_per_upstream_per_level(
    gateway: str, demo_services: Mapping[str, str]
) -> None:
    graphql(gateway, EXAMPLE_QUERY)  # warm: the payments token is fetched once per gateway
    reset(demo_services)
    assert graphql(gateway, EXAMPLE_QUERY)["data"] == EXPECTED
    assert stats(demo_services) == {
        "catalog": {"POST /graphql": 1},  # products of every line of every order, with reviews
        "crm": {"GET /customers": 1, "GET /customers/{id}/orders": 1},
        "payments": {"GET /v1/payments": 1},  # the cached token is reused: no token request
        "shipping": {"GET /shipments": 1},
    }


def test_all_seven_orders_still_cost_one_request_per_upstream(
    gateway: str, demo_services: Mapping[str, str]
) -> None:
    query = """{ customer(id: "c1") { orders(first: 7) { totalCount edges { node {
        id lines { product { name reviews { rating } } } payment { status }
        shipment { status } } } } } }"""
    graphql(gateway, query)
    reset(demo_services)
    body = graphql(gateway, query)
    orders = body["data"]["customer"]["orders"]
    assert orders["totalCount"] == 7 and len(orders["edges"]) == 7
    assert stats(demo_services) == {
        "catalog": {"POST /graphql": 1},
        "crm": {"GET /customers": 1, "GET /customers/{id}/orders": 1},
        "payments": {"GET /v1/payments": 1},
        "shipping": {"GET /shipments": 1},
    }


def test_the_same_product_on_several_lines_is_fetched_once(
    gateway: str, demo_services: Mapping[str, str]
) -> None:
    reset(demo_services)
    body = graphql(gateway, '{ a: product(id: "p1") { name } b: product(id: "p1") { name } }')
    assert body == {
        "data": {"a": {"name": "Mechanical Keyboard"}, "b": {"name": "Mechanical Keyboard"}}
    }
    assert stats(demo_services)["catalog"] == {"POST /graphql": 1}


def test_pagination_walks_all_orders_without_loss_or_duplicates(gateway: str) -> None:
    query = """query ($after: String) { customer(id: "c1") { orders(first: 3, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } } }"""
    seen: list[str] = []
    after = None
    for _ in range(5):
        orders = graphql(gateway, query, after=after)["data"]["customer"]["orders"]
        seen += [edge["node"]["id"] for edge in orders["edges"]]
        if not orders["pageInfo"]["hasNextPage"]:
            break
        after = orders["pageInfo"]["endCursor"]
    assert seen == ["o19", "o12", "o15", "o9", "o7", "o4", "o1"]


def test_unknown_customer_is_null_without_error(gateway: str) -> None:
    assert graphql(gateway, '{ customer(id: "c404") { name } }') == {"data": {"customer": None}}


def test_customer_without_orders(gateway: str) -> None:
    body = graphql(gateway, '{ customer(id: "c5") { orders { totalCount edges { cursor } } } }')
    assert body == {"data": {"customer": {"orders": {"totalCount": 0, "edges": []}}}}
