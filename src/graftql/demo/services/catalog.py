"""The "catalog" demo upstream: a small GraphQL API over the seeded products and reviews.

Served at ``/graphql`` (POST with a JSON body, or GET with query parameters) following the
GraphQL-over-HTTP conventions, built directly on graphql-core. Every request must carry
``Authorization: Bearer <token>``. Subscriptions (``priceChanged``) are served over WebSocket
on the same path (``catalog_subscriptions.py``). Parsed and validated documents are cached by
query text, because a gateway sends the same few documents over and over.
"""

from __future__ import annotations

import hmac
import json
from collections import OrderedDict
from collections.abc import Sequence
from inspect import isawaitable
from typing import Any, Final

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute,
    parse,
    validate,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graftql.demo.data import PRODUCTS_BY_ID, REVIEWS_BY_PRODUCT_ID, Product
from graftql.demo.services.catalog_subscriptions import PriceFeed, install, subscription_routes
from graftql.demo.services.common import JSONObject, ServiceControl, create_service_app

SERVICE_NAME: Final = "catalog"
MAX_IDS: Final = 100
DOCUMENT_CACHE_SIZE: Final = 256
MAX_QUERY_LENGTH: Final = 100_000

SDL: Final = """
type Query {
  product(id: ID!): Product
  products(ids: [ID!]!): [Product]!
}

type Product {
  id: ID!
  name: String!
  price: Money!
  reviews: [Review!]!
}

type Money {
  amount: Int!
  currency: String!
}

type Review {
  id: ID!
  rating: Int!
  body: String!
}

type Subscription {
  priceChanged(productId: ID!): PriceChange!
}

type PriceChange {
  productId: ID!
  price: Money!
}
"""


def product_json(product: Product) -> JSONObject:
    """A product as the GraphQL layer sees it: plain dicts resolved by the default resolver."""
    return {
        "id": product.id,
        "name": product.name,
        "price": {"amount": product.price_amount, "currency": product.currency},
        "reviews": [
            {"id": review.id, "rating": review.rating, "body": review.body}
            for review in REVIEWS_BY_PRODUCT_ID[product.id]
        ],
    }


def _resolve_product(_root: object, _info: object, id: str) -> JSONObject | None:
    product = PRODUCTS_BY_ID.get(id)
    return product_json(product) if product is not None else None


def _resolve_products(_root: object, _info: object, ids: Sequence[str]) -> list[JSONObject | None]:
    if len(ids) > MAX_IDS:
        raise GraphQLError(f"products accepts at most {MAX_IDS} ids, got {len(ids)}")
    return [_resolve_product(None, _info, product_id) for product_id in ids]


def create_schema(feed: PriceFeed | None = None) -> GraphQLSchema:
    schema = build_schema(SDL)
    install(schema, feed if feed is not None else PriceFeed())
    query_type = schema.query_type
    assert query_type is not None
    query_type.fields["product"].resolve = _resolve_product
    query_type.fields["products"].resolve = _resolve_products
    return schema


class DocumentCache:
    """Parse-and-validate results keyed by query text, least recently used evicted first."""

    def __init__(self, schema: GraphQLSchema, max_size: int = DOCUMENT_CACHE_SIZE) -> None:
        self._schema = schema
        self._max_size = max_size
        self._entries: OrderedDict[str, tuple[DocumentNode | None, list[GraphQLError]]]
        self._entries = OrderedDict()
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> tuple[DocumentNode | None, list[GraphQLError]]:
        cached = self._entries.get(query)
        if cached is not None:
            self._entries.move_to_end(query)
            return cached
        self.misses += 1
        entry: tuple[DocumentNode | None, list[GraphQLError]]
        try:
            document = parse(query)
        except GraphQLError as exc:
            entry = (None, [exc])
        else:
            errors = validate(self._schema, document)
            entry = (None, errors) if errors else (document, [])
        self._entries[query] = entry
        if len(self._entries) > self._max_size:
            self._entries.popitem(last=False)
        return entry


def _errors(status: int, *messages: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": m} for m in messages]}, status_code=status)


def error_response(status: int, code: str, message: str) -> Response:
    """Routing errors and injected failures, shaped like GraphQL errors with a code."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status)


async def _request_params(request: Request) -> tuple[Any, Any, Any] | Response:
    """(query, variables, operationName) from a GET query string or a POST JSON body."""
    if request.method == "GET":
        params = request.query_params
        variables: Any = params.get("variables")
        if variables is not None:
            try:
                variables = json.loads(variables)
            except ValueError:
                return _errors(400, "variables must be a JSON object")
        return params.get("query"), variables, params.get("operationName")
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _errors(400, "request body must be JSON")
    if not isinstance(body, dict):
        return _errors(400, "request body must be a JSON object")
    return body.get("query"), body.get("variables"), body.get("operationName")


def create_app(
    *,
    token: str,
    control: ServiceControl | None = None,
) -> Starlette:
    """The catalog service; requests must send ``Authorization: Bearer <token>``."""
    if not token:
        raise ValueError("token must not be empty")
    control = control or ServiceControl(SERVICE_NAME)
    feed = PriceFeed()
    schema = create_schema(feed)
    documents = DocumentCache(schema)
    expected = token.encode()
    websocket, price_routes = subscription_routes(schema, feed, token=expected, documents=documents)

    async def guard(request: Request) -> Response | None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        # Auth schemes are case-insensitive (RFC 9110); compare the token in constant time.
        if scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode("latin-1"), expected
        ):
            return None
        response = _errors(401, "unauthorized")
        response.headers["WWW-Authenticate"] = 'Bearer realm="catalog"'
        return response

    async def graphql_endpoint(request: Request) -> Response:
        params = await _request_params(request)
        if isinstance(params, Response):
            return params
        query, variables, operation_name = params
        if not isinstance(query, str) or not query.strip():
            return _errors(400, "query must be a non-empty string")
        if len(query) > MAX_QUERY_LENGTH:
            return _errors(400, f"query is longer than {MAX_QUERY_LENGTH} characters")
        if variables is not None and not isinstance(variables, dict):
            return _errors(400, "variables must be a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            return _errors(400, "operationName must be a string")
        document, errors = documents.get(query)
        if document is None:
            return JSONResponse({"errors": [e.formatted for e in errors]}, status_code=400)
        result = execute(schema, document, variable_values=variables, operation_name=operation_name)
        if isawaitable(result):  # all resolvers are sync; kept for safety
            result = await result
        return JSONResponse(result.formatted)

    app = create_service_app(
        control,
        [Route("/graphql", graphql_endpoint, methods=["GET", "POST"]), websocket, *price_routes],
        error_response=error_response,
        guard=guard,
    )
    app.state.documents = documents
    app.state.prices = feed
    return app
