"""Delegation: the GraphQL upstream receives exactly the client's selection (aliases,
fragments, variables resolved), minus the gateway's own fields, plus the keys; lookups are
batched. Asserted on the document a real GraphQL upstream on loopback received."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from graphql import build_schema, graphql_sync, parse, print_ast

from graftql import Context, GatewaySchema
from graftql.resolvers.delegation import Delegate, requires, upstream_field
from graftql.testing import ChaosUpstream
from graftql.testing._http import ReceivedRequest
from graftql.testing.behaviours import Call, Respond
from integration.helpers import graphql, serve

UPSTREAM_SDL = """
type Query { products(ids: [ID!]!): [Product]! }
type Product {
  id: ID!
  name(upper: Boolean = false): String!
  price: Money!
  reviews(first: Int): [Review!]!
}
type Money { amount: Int! currency: String! }
type Review { id: ID! rating: Int! }
"""
REVIEWS = [{"id": f"r{i}", "rating": i} for i in range(1, 6)]


def _product(id: str) -> dict[str, Any] | None:
    if id.startswith("missing"):
        return None
    return {
        "id": id,
        "name": lambda _info, upper=False: f"product {id}".upper() if upper else f"product {id}",
        "price": {"amount": 100 * len(id), "currency": "EUR"},
        "reviews": lambda _info, first=None: REVIEWS[:first] if first is not None else REVIEWS,
    }


UPSTREAM = build_schema(UPSTREAM_SDL)
UPSTREAM.query_type.fields["products"].resolve = lambda _r, _i, ids: [_product(i) for i in ids]  # type: ignore[union-attr]


def _execute(request: ReceivedRequest) -> Respond:
    body = request.json()
    result = graphql_sync(UPSTREAM, body["query"], variable_values=body.get("variables"))
    assert not result.errors, result.errors
    return Respond(200, json={"data": result.data})


@strawberry.type
class Money:
    amount: int = upstream_field()
    currency: str = upstream_field()


@strawberry.type
class Review:
    id: strawberry.ID = upstream_field()
    rating: int = upstream_field()


def _name(upper: bool = False) -> str:
    raise AssertionError("read from the upstream's answer")


def _reviews(first: int | None = None) -> list[Review]:
    raise AssertionError("read from the upstream's answer")


@strawberry.type
class Product:
    id: strawberry.ID = upstream_field()
    name: str = upstream_field(resolver=_name)
    price: Money = upstream_field()
    reviews: list[Review] = upstream_field(resolver=_reviews)

    # The gateway's own field: never sent upstream, but what it needs is.
    @strawberry.field(metadata=requires("price { amount }"))
    def expensive(self, info: strawberry.Info[Context, None]) -> bool:
        raw: Any = self
        return bool(raw["price"]["amount"] >= 300)

    @strawberry.field  # the gateway's own, needing nothing
    def source(self) -> str:
        return "gateway"


PRODUCTS = Delegate("catalog", "products", key="id")


@strawberry.type
class Query:
    @strawberry.field
    async def product(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Product | None:
        product: Product | None = await PRODUCTS.load(info, id)
        return product


SCHEMA = GatewaySchema(query=Query)


@pytest.fixture
def catalog(chaos: ChaosUpstream) -> ChaosUpstream:
    chaos.route("POST /graphql").always(Call(_execute))
    return chaos


@pytest.fixture
def gateway(catalog: ChaosUpstream) -> Iterator[str]:
    upstreams = {"catalog": {"kind": "graphql", "url": f"{catalog.url}/graphql"}}
    with serve(SCHEMA, upstreams=upstreams) as server:
        yield server.url


def _received(chaos: ChaosUpstream) -> tuple[str, Any]:
    (request,) = chaos.requests
    body = request.json()
    return print_ast(parse(body["query"])), body["variables"]


def _doc(text: str) -> str:
    return print_ast(parse(text))


def test_only_the_selected_fields_are_forwarded(gateway: str, catalog: ChaosUpstream) -> None:
    body = graphql(gateway, '{ product(id: "p1") { name } }')
    assert body == {"data": {"product": {"name": "product p1"}}}
    document, variables = _received(catalog)
    assert document == _doc(
        "query GraftqlDelegate($k0: [ID!]!) { s0: products(ids: $k0) { name id } }"
    )
    assert variables == {"k0": ["p1"]}


def test_aliases_fragments_and_variables(gateway: str, catalog: ChaosUpstream) -> None:
    query = """
    query Q($upper: Boolean!, $n: Int, $withPrice: Boolean!, $noRating: Boolean!) {
      product(id: "p22") {
        id
        loud: name(upper: $upper)
        quiet: name
        ...Priced @include(if: $withPrice)
        ... on Product { top: reviews(first: $n) { id rating @skip(if: $noRating) } }
        ... @include(if: false) { source }
      }
    }
    fragment Priced on Product { price { amount cents: amount } expensive source }
    """
    variables = {"upper": True, "n": 2, "withPrice": True, "noRating": True}
    body = graphql(gateway, query, **variables)
    assert body == {
        "data": {
            "product": {
                "id": "p22",
                "loud": "PRODUCT P22",
                "quiet": "product p22",
                "price": {"amount": 300, "cents": 300},
                "expensive": True,
                "source": "gateway",
                "top": [{"id": "r1"}, {"id": "r2"}],
            }
        }
    }
    document, sent = _received(catalog)
    # Variables resolved into literals, fragments inlined, skipped parts and the gateway's own
    # fields (expensive, source) left out; `price` is selected anyway, and the key is there.
    assert document == _doc(
        """query GraftqlDelegate($k0: [ID!]!) {
          s0: products(ids: $k0) {
            id loud: name(upper: true) quiet: name
            price { amount cents: amount }
            top: reviews(first: 2) { id }
          }
        }"""
    )
    assert sent == {"k0": ["p22"]}


def test_key_is_added_when_not_selected_or_aliased_away(
    gateway: str, catalog: ChaosUpstream
) -> None:
    body = graphql(gateway, '{ product(id: "p1") { id: name } }')
    assert body == {"data": {"product": {"id": "product p1"}}}
    document, _ = _received(catalog)
    assert document == _doc(
        "query GraftqlDelegate($k0: [ID!]!) { s0: products(ids: $k0) { id: name graftqlKey: id } }"
    )


def test_gateway_field_requirements_are_sent(gateway: str, catalog: ChaosUpstream) -> None:
    body = graphql(gateway, '{ product(id: "p1") { expensive } }')
    assert body == {"data": {"product": {"expensive": False}}}
    document, _ = _received(catalog)
    assert document == _doc(
        "query GraftqlDelegate($k0: [ID!]!) { s0: products(ids: $k0) { price { amount } id } }"
    )


def test_lookups_are_batched_by_key_and_selection(gateway: str, catalog: ChaosUpstream) -> None:
    query = """{
      a: product(id: "p1") { name }
      b: product(id: "p2") { name }
      c: product(id: "p1") { name }
      d: product(id: "missing") { name }
      e: product(id: "p3") { price { currency } }
    }"""
    body = graphql(gateway, query)
    assert body == {
        "data": {
            "a": {"name": "product p1"},
            "b": {"name": "product p2"},
            "c": {"name": "product p1"},
            "d": None,
            "e": {"price": {"currency": "EUR"}},
        }
    }
    document, variables = _received(catalog)  # one upstream call for all five
    assert document == _doc(
        """query GraftqlDelegate($k0: [ID!]!, $k1: [ID!]!) {
          s0: products(ids: $k0) { name id }
          s1: products(ids: $k1) { price { currency } id }
        }"""
    )
    assert variables == {"k0": ["p1", "p2", "missing"], "k1": ["p3"]}


def test_item_without_its_key_is_a_bad_response(chaos: ChaosUpstream) -> None:
    chaos.route("POST /graphql").always(Respond(200, json={"data": {"s0": [{"name": "no id"}]}}))
    upstreams = {"catalog": {"kind": "graphql", "url": f"{chaos.url}/graphql"}}
    with serve(SCHEMA, upstreams=upstreams) as server:
        body = graphql(server.url, '{ product(id: "p1") { name } }')
    assert body["data"] == {"product": None}
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"


def test_requirements_merge_into_the_clients_selection(
    gateway: str, catalog: ChaosUpstream
) -> None:
    body = graphql(gateway, '{ product(id: "p333") { price { currency } expensive } }')
    assert body == {"data": {"product": {"price": {"currency": "EUR"}, "expensive": True}}}
    document, _ = _received(catalog)
    assert document == _doc(
        "query GraftqlDelegate($k0: [ID!]!) "
        "{ s0: products(ids: $k0) { price { currency amount } id } }"
    )


SMALL = Delegate("catalog", "products", max_batch_size=2)


@strawberry.type
class SmallQuery:
    @strawberry.field
    async def product(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Product | None:
        product: Product | None = await SMALL.load(info, id)
        return product


def test_delegated_batches_respect_the_max_size(catalog: ChaosUpstream) -> None:
    upstreams = {"catalog": {"kind": "graphql", "url": f"{catalog.url}/graphql"}}
    query = "{ " + " ".join(f'p{i}: product(id: "p{i}") {{ id }}' for i in range(5)) + " }"
    with serve(GatewaySchema(query=SmallQuery), upstreams=upstreams) as server:
        body = graphql(server.url, query)
    assert body == {"data": {f"p{i}": {"id": f"p{i}"} for i in range(5)}}
    sizes = sorted(len(r.json()["variables"]["k0"]) for r in catalog.requests)
    assert sizes == [1, 2, 2]
