"""The catalog (GraphQL) and crm (REST/JSON) demo upstreams over real HTTP.

Auth rejections, 400/404s, batch ordering and page-number pagination. The payments and shipping
services have their own modules (test_demo_payments.py, test_demo_shipping.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from integration.demo_stack import Stack, stack_fixtures

stack, client, _fresh_services = stack_fixtures(("catalog", "crm"))


# --- catalog (GraphQL) ------------------------------------------------------------------------


def gql(stack: Stack, client: httpx.Client, query: str, **variables: Any) -> httpx.Response:
    return client.post(
        f"{stack.urls['catalog']}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {stack.creds.catalog_token}"},
    )


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
def test_catalog_rejects_missing_or_wrong_token(
    stack: Stack, client: httpx.Client, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(
        f"{stack.urls['catalog']}/graphql", json={"query": "{ __typename }"}, headers=headers
    )
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "unauthorized"}]}


def test_catalog_product_shape_and_unknown_product(stack: Stack, client: httpx.Client) -> None:
    query = "query($id: ID!) { product(id: $id) { id name price { amount currency } reviews { id rating body } } }"  # noqa: E501
    response = gql(stack, client, query, id="p1")
    assert response.status_code == 200
    product = response.json()["data"]["product"]
    assert product["price"] == {"amount": 12900, "currency": "EUR"}
    assert [r["id"] for r in product["reviews"]] == ["r1", "r2", "r3"]
    assert gql(stack, client, query, id="p99").json() == {"data": {"product": None}}
    no_reviews = gql(stack, client, query, id="p4").json()["data"]["product"]
    assert no_reviews["reviews"] == []


def test_catalog_products_keeps_request_order_with_nulls(
    stack: Stack, client: httpx.Client
) -> None:
    query = "query($ids: [ID!]!) { products(ids: $ids) { id name } }"
    body = gql(stack, client, query, ids=["p12", "nope", "p3", "p12"]).json()
    assert body == {
        "data": {
            "products": [
                {"id": "p12", "name": "Cable & Adapter Kit"},
                None,
                {"id": "p3", "name": "USB-C Hub"},
                {"id": "p12", "name": "Cable & Adapter Kit"},
            ]
        }
    }


def test_catalog_more_than_100_ids_is_a_graphql_error(stack: Stack, client: httpx.Client) -> None:
    query = "query($ids: [ID!]!) { products(ids: $ids) { id } }"
    body = gql(stack, client, query, ids=["p1"] * 101).json()
    assert body["data"] is None
    assert "at most 100" in body["errors"][0]["message"]
    assert gql(stack, client, query, ids=["p1"] * 100).json()["data"]["products"][99]["id"] == "p1"


@pytest.mark.parametrize(
    ("payload", "message_part"),
    [
        ({"query": "{ product(id: "}, "Syntax Error"),
        ({"query": "{ nope }"}, "nope"),
        ({"query": ""}, "query"),
        ({"query": "{ __typename }", "variables": [1]}, "variables"),
    ],
)
def test_catalog_bad_documents_are_400(
    stack: Stack, client: httpx.Client, payload: dict[str, Any], message_part: str
) -> None:
    response = client.post(
        f"{stack.urls['catalog']}/graphql",
        json=payload,
        headers={"Authorization": f"Bearer {stack.creds.catalog_token}"},
    )
    assert response.status_code == 400
    assert message_part in response.json()["errors"][0]["message"]


def test_catalog_non_json_body_is_400(stack: Stack, client: httpx.Client) -> None:
    response = client.post(
        f"{stack.urls['catalog']}/graphql",
        content=b"{not json",
        headers={"Authorization": f"Bearer {stack.creds.catalog_token}"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "request body must be JSON"


def test_catalog_get_and_document_cache(stack: Stack, client: httpx.Client) -> None:
    documents = stack.apps["catalog"].state.documents
    query = "query Q($id: ID!) { product(id: $id) { name } }"
    misses = documents.misses
    for _ in range(3):
        response = client.get(
            f"{stack.urls['catalog']}/graphql",
            params={"query": query, "variables": '{"id": "p2"}', "operationName": "Q"},
            headers={"Authorization": f"Bearer {stack.creds.catalog_token}"},
        )
        assert response.json() == {"data": {"product": {"name": "Wireless Mouse"}}}
    assert documents.misses == misses + 1  # parsed and validated once, then served cached


# --- crm (REST/JSON, X-Api-Key) ---------------------------------------------------------------


def crm(stack: Stack, client: httpx.Client, path: str, **params: Any) -> httpx.Response:
    return client.get(
        f"{stack.urls['crm']}{path}",
        params=params or None,
        headers={"X-Api-Key": stack.creds.crm_api_key},
    )


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, {"Authorization": "Bearer x"}])
def test_crm_rejects_missing_or_wrong_api_key(
    stack: Stack, client: httpx.Client, headers: dict[str, str]
) -> None:
    response = client.get(f"{stack.urls['crm']}/customers/c1", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_crm_customer_and_order_lookup(stack: Stack, client: httpx.Client) -> None:
    assert crm(stack, client, "/customers/c1").json() == {
        "id": "c1",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
    }
    order = crm(stack, client, "/orders/o12").json()
    assert order == {
        "id": "o12",
        "customer_id": "c1",
        "status": "shipped",
        "currency": "EUR",
        "total_amount": 2 * 4999 + 1999,
        "created_at": "2026-06-18",
        "lines": [
            {"product_id": "p3", "quantity": 2, "unit_amount": 4999},
            {"product_id": "p12", "quantity": 1, "unit_amount": 1999},
        ],
    }


@pytest.mark.parametrize("path", ["/customers/c99", "/orders/o99", "/customers/c99/orders"])
def test_crm_unknown_ids_are_404(stack: Stack, client: httpx.Client, path: str) -> None:
    response = crm(stack, client, path)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


def test_crm_batch_keeps_request_order_and_omits_unknown(
    stack: Stack, client: httpx.Client
) -> None:
    body = crm(stack, client, "/customers", ids="c3,zz,c1").json()
    assert [c["id"] for c in body["data"]] == ["c3", "c1"]
    repeated = client.get(
        f"{stack.urls['crm']}/customers?ids=c2&ids=c8,c5",
        headers={"X-Api-Key": stack.creds.crm_api_key},
    ).json()
    assert [c["id"] for c in repeated["data"]] == ["c2", "c8", "c5"]


@pytest.mark.parametrize("query", ["", "?ids=", "?ids=,", "?ids=" + ",".join(["c1"] * 101)])
def test_crm_batch_bad_ids_are_400(stack: Stack, client: httpx.Client, query: str) -> None:
    response = client.get(
        f"{stack.urls['crm']}/customers{query}", headers={"X-Api-Key": stack.creds.crm_api_key}
    )
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_crm_order_pages_cover_everything_once(stack: Stack, client: httpx.Client) -> None:
    first = crm(stack, client, "/customers/c1/orders", per_page=5).json()
    assert {k: first[k] for k in ("page", "per_page", "total", "total_pages")} == {
        "page": 1,
        "per_page": 5,
        "total": 7,
        "total_pages": 2,
    }
    second = crm(stack, client, "/customers/c1/orders", per_page=5, page=2).json()
    beyond = crm(stack, client, "/customers/c1/orders", per_page=5, page=3).json()
    ids = [o["id"] for o in first["data"] + second["data"]]
    assert ids == ["o19", "o12", "o15", "o9", "o7", "o4", "o1"]  # newest first, ties by id
    assert len(second["data"]) == 2 and beyond["data"] == []
    default = crm(stack, client, "/customers/c1/orders").json()
    assert (default["page"], default["per_page"], default["total_pages"]) == (1, 10, 1)
    empty = crm(stack, client, "/customers/c5/orders").json()
    assert (empty["data"], empty["total"], empty["total_pages"]) == ([], 0, 0)


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"per_page": "0"},
        {"per_page": "101"},
        {"per_page": ""},
    ],
)
def test_crm_bad_paging_is_400(stack: Stack, client: httpx.Client, params: dict[str, str]) -> None:
    response = crm(stack, client, "/customers/c1/orders", **params)
    assert response.status_code == 400
    assert "error" in response.json()
