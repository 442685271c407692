"""The demo's field-level authorization, over the real demo gateway (inbound auth on).

Anonymous clients read products and customers' names; a customer reads only their own email
and orders; staff read everything. The rules sit on the fields of Customer and Order, so they
hold through aliases, named and inline fragments, the Node interface and the SearchResult union,
over HTTP and WebSocket.
"""

from __future__ import annotations

import json
from typing import Any

from graftql.demo.runner import EXAMPLE_QUERY, demo_config
from graftql.server.identity import mint_token
from integration.expected import EXPECTED
from integration.helpers import graphql, ws_connected

C1 = "customer"  # helpers.demo_token's customer: Ada, c1 (orders o1, o4, ...; o2 is c2's)


def token_for(sub: str, role: str = "customer") -> str:
    auth = demo_config({}).server.auth
    assert auth is not None
    return mint_token(auth, {"sub": sub, "role": role})


def denied(body: dict[str, Any], prefix: str) -> bool:
    """Some error, and every error, under ``prefix`` is FORBIDDEN. (Once the first field of an
    object is refused, the object is null and graphql-core may drop its siblings' errors.)"""
    found = [(path, code) for path, code in codes(body) if path.startswith(prefix + ".")]
    return bool(found) and all(code == "FORBIDDEN" for _, code in found)


def codes(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, code) of each error, in a stable order."""
    return sorted(
        (".".join(map(str, error["path"])), error["extensions"]["code"])
        for error in body.get("errors", [])
    )


def test_the_example_query_as_its_customer_is_complete(gateway: str) -> None:
    assert graphql(gateway, EXAMPLE_QUERY, token=C1) == {"data": EXPECTED}


def test_anonymous_clients_read_only_public_fields(gateway: str) -> None:
    body = graphql(gateway, EXAMPLE_QUERY, token=None)
    assert body["data"] == {"customer": {"name": "Ada Lovelace", "email": None, "orders": None}}
    assert codes(body) == [
        ("customer.email", "UNAUTHENTICATED"),
        ("customer.orders", "UNAUTHENTICATED"),
    ]
    assert body["errors"][0]["message"] == "sign in to read this field"
    products = graphql(gateway, '{ product(id: "p1") { name price { amount } } }', token=None)
    assert products == {
        "data": {"product": {"name": "Mechanical Keyboard", "price": {"amount": 12900}}}
    }


def test_a_customer_cannot_read_another_customers_email_or_orders(gateway: str) -> None:
    query = '{ customer(id: "c2") { name email orders(first: 1) { totalCount } } }'
    body = graphql(gateway, query, token=C1)
    assert body["data"] == {"customer": {"name": "Grace Hopper", "email": None, "orders": None}}
    assert codes(body) == [("customer.email", "FORBIDDEN"), ("customer.orders", "FORBIDDEN")]
    messages = {error["message"] for error in body["errors"]}
    assert messages == {"a customer may read only their own details and orders"}
    # c2 reads their own.
    own = graphql(gateway, query, token=token_for("c2"))
    assert own["data"]["customer"]["email"] == "grace@example.com"
    assert "errors" not in own


def test_a_customer_cannot_read_another_customers_order_by_id_or_alias(gateway: str) -> None:
    query = """{
      mine: order(id: "o1") { id total { amount } }
      theirs: order(id: "o2") { total { amount } }
      again: order(id: "o2") { id status payment { status } }
    }"""
    body = graphql(gateway, query, token=C1)
    assert body["data"] == {
        "mine": {"id": "o1", "total": {"amount": 16350}},
        "theirs": None,
        "again": None,
    }
    assert denied(body, "theirs") and denied(body, "again")
    assert all(path.split(".")[0] in ("theirs", "again") for path, _ in codes(body))


def test_rules_hold_through_fragments_on_the_node_interface(gateway: str) -> None:
    query = """
      query ($id: ID!) { node(id: $id) { ...N } }
      fragment N on Node { id ... on Order { total { amount } ...More } }
      fragment More on Order { lines { quantity } shipment { status } }
    """
    body = graphql(gateway, query, token=C1, id="o2")
    assert body["data"] == {"node": None}
    assert denied(body, "node") and len(codes(body)) == len(body["errors"])
    # The same query for an order of one's own, and a public product through the interface.
    own = graphql(gateway, query, token=C1, id="o1")
    assert own["data"]["node"]["id"] == "o1" and "errors" not in own
    product = graphql(gateway, query, token=None, id="p1")
    assert product == {"data": {"node": {"id": "p1"}}}


def test_rules_hold_through_inline_fragments_on_the_search_union(gateway: str) -> None:
    query = """{
      search(ids: ["p2", "o1", "o2", "c2", "x9"]) {
        __typename
        ... on Product { name }
        ... on Order { id total { amount } }
        ... on Customer { name email }
      }
    }"""
    body = graphql(gateway, query, token=C1)
    assert body["data"] == {
        "search": [
            {"__typename": "Product", "name": "Wireless Mouse"},
            {"__typename": "Order", "id": "o1", "total": {"amount": 16350}},
            None,  # c2's order
            {"__typename": "Customer", "name": "Grace Hopper", "email": None},
            None,  # no such id
        ]
    }
    assert denied(body, "search.2") and ("search.3.email", "FORBIDDEN") in codes(body)
    assert all(path.startswith(("search.2.", "search.3.")) for path, _ in codes(body))


def test_staff_read_every_customers_data(gateway: str) -> None:
    query = """{
      customer(id: "c2") { email orders(first: 1) { totalCount } }
      order(id: "o2") { id }
      search(ids: ["o3"]) { ... on Order { id } }
    }"""
    body = graphql(gateway, query, token="staff")
    assert "errors" not in body
    assert body["data"]["customer"]["email"] == "grace@example.com"
    assert body["data"]["order"] == {"id": "o2"} and body["data"]["search"] == [{"id": "o3"}]


def test_a_token_with_another_role_is_just_a_customer_of_nobody(gateway: str) -> None:
    body = graphql(gateway, '{ order(id: "o1") { id } }', token=token_for("c1", "admin"))
    # role "admin" is not staff, but sub c1 owns o1: the rules read claims, nothing else.
    assert body == {"data": {"order": {"id": "o1"}}}
    body = graphql(gateway, '{ order(id: "o2") { id } }', token=token_for("c1", "admin"))
    assert body["data"] == {"order": None} and codes(body) == [("order.id", "FORBIDDEN")]


async def test_rules_hold_over_websocket_with_the_connection_token(gateway: str) -> None:
    async with ws_connected(gateway, {"Authorization": f"Bearer {token_for('c1')}"}) as ws:
        query = '{ mine: order(id: "o1") { id } theirs: order(id: "o2") { id } }'
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        payload = json.loads(await ws.recv())["payload"]
    assert payload["data"] == {"mine": {"id": "o1"}, "theirs": None}
    assert codes(payload) == [("theirs.id", "FORBIDDEN")]


async def _subscribe(gateway: str, token: str | None, query: str) -> dict[str, Any]:
    """The first message a subscription gets (an error for it, or its first event)."""
    init = {"Authorization": f"Bearer {token}"} if token else {}
    async with ws_connected(gateway, init) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def test_subscriptions_follow_only_what_the_caller_may_read(gateway: str) -> None:
    """paymentUpdated and shipmentUpdated are checked before the first event: a customer
    follows their own payments and orders only, anonymous clients none."""
    payments = 'subscription { paymentUpdated(customerId: "%s") { status } }'
    shipment = 'subscription { shipmentUpdated(orderId: "%s") { status } }'
    for token, query, code in (
        (token_for("c1"), payments % "c2", "FORBIDDEN"),
        (None, payments % "c1", "UNAUTHENTICATED"),
        (token_for("c1"), shipment % "o2", "FORBIDDEN"),  # o2 is c2's
        (token_for("c1"), shipment % "o999", "FORBIDDEN"),  # no such order
    ):
        message = await _subscribe(gateway, token, query)
        assert message["type"] == "next", message
        assert [e["extensions"]["code"] for e in message["payload"]["errors"]] == [code]
