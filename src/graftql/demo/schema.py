"""The storefront's unified schema: one graph over four upstreams.

- ``catalog`` (GraphQL): products, prices, reviews
- ``crm`` (REST/JSON): customers, orders with lines
- ``payments`` (REST/JSON, OAuth2): a payment per order
- ``shipping`` (REST/XML, HMAC-signed): a shipment per order

Every upstream is reached through a named loader, so a query costs at most one request per
upstream per level, whatever the number of orders or lines. It is also the worked example of
how to write a graftql schema.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
from collections.abc import AsyncGenerator
from contextlib import aclosing
from enum import Enum
from typing import Any

import strawberry

from graftql import (
    BadUserInput,
    Context,
    GatewaySchema,
    LoaderRegistry,
    UpstreamNotFound,
    by_key,
)

loaders = LoaderRegistry()

_MAX_PAGE = 50


@strawberry.type(description="An amount of money in minor units (cents), never a float.")
class Money:
    amount: int
    currency: str


@strawberry.enum
class OrderStatus(Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


@strawberry.enum
class PaymentStatus(Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"


@strawberry.enum
class ShipmentStatus(Enum):
    IN_TRANSIT = "IN_TRANSIT"
    DELIVERED = "DELIVERED"


@strawberry.type
class Review:
    id: strawberry.ID
    rating: int
    body: str


@strawberry.type
class Product:
    id: strawberry.ID
    name: str
    price: Money
    reviews: list[Review]

    @classmethod
    def from_catalog(cls, raw: dict[str, Any]) -> Product:
        return cls(
            id=raw["id"],
            name=raw["name"],
            price=Money(**raw["price"]),
            reviews=[Review(**review) for review in raw["reviews"]],
        )


@strawberry.type
class Payment:
    id: strawberry.ID
    status: PaymentStatus
    amount: Money

    @classmethod
    def from_payments(cls, raw: dict[str, Any]) -> Payment:
        return cls(
            id=raw["id"],
            status=PaymentStatus(raw["status"]),
            amount=Money(amount=raw["amount"], currency=raw["currency"]),
        )


@strawberry.type
class Shipment:
    status: ShipmentStatus
    tracking_number: str
    eta: datetime.date | None

    @classmethod
    def from_shipping(cls, raw: dict[str, Any]) -> Shipment:
        eta = raw.get("eta")
        return cls(
            status=ShipmentStatus(raw["status"]),
            tracking_number=raw["tracking_number"],
            eta=datetime.date.fromisoformat(eta) if eta else None,
        )


@strawberry.type
class OrderLine:
    quantity: int
    unit_price: Money
    product_id: strawberry.Private[str]

    @strawberry.field
    async def product(self, info: strawberry.Info[Context, None]) -> Product | None:
        product: Product | None = await info.context.loaders["products"].load(self.product_id)
        return product


@strawberry.type
class Order:
    id: strawberry.ID
    status: OrderStatus
    total: Money
    created_at: datetime.date
    lines: list[OrderLine]

    @classmethod
    def from_crm(cls, raw: dict[str, Any]) -> Order:
        currency = raw["currency"]
        return cls(
            id=raw["id"],
            status=OrderStatus(raw["status"]),
            total=Money(amount=raw["total_amount"], currency=currency),
            created_at=datetime.date.fromisoformat(raw["created_at"][:10]),
            lines=[
                OrderLine(
                    quantity=line["quantity"],
                    unit_price=Money(amount=line["unit_amount"], currency=currency),
                    product_id=line["product_id"],
                )
                for line in raw["lines"]
            ],
        )

    @strawberry.field  # null while the order has no payment (e.g. pending)
    async def payment(self, info: strawberry.Info[Context, None]) -> Payment | None:
        payment: Payment | None = await info.context.loaders["payment_by_order"].load(self.id)
        return payment

    @strawberry.field  # null until the order ships
    async def shipment(self, info: strawberry.Info[Context, None]) -> Shipment | None:
        shipment: Shipment | None = await info.context.loaders["shipment_by_order"].load(self.id)
        return shipment


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    total_count: int


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        offset = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
        kind = ""
    if kind != "offset" or offset < 0:
        raise BadUserInput("'after' is not a cursor this API issued")
    return offset + 1


@strawberry.type
class Customer:
    id: strawberry.ID
    name: str
    email: str

    @strawberry.field
    async def orders(
        self, info: strawberry.Info[Context, None], first: int = 10, after: str | None = None
    ) -> OrderConnection | None:  # nullable: a CRM failure must not null the customer
        if not 1 <= first <= _MAX_PAGE:
            raise BadUserInput(f"'first' must be between 1 and {_MAX_PAGE}")
        start = _offset(after)
        page: OrderConnection = await info.context.loaders["customer_orders"].load(
            (self.id, start, first)
        )
        return page


@strawberry.type
class Query:
    @strawberry.field
    async def customer(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Customer | None:
        customer: Customer | None = await info.context.loaders["customers"].load(id)
        return customer

    @strawberry.field
    async def product(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Product | None:
        product: Product | None = await info.context.loaders["products"].load(id)
        return product

    @strawberry.field
    async def order(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Order | None:
        order: Order | None = await info.context.loaders["orders"].load(id)
        return order


# --- loaders: one batched upstream call per level --------------------------------------------


@loaders.loader("customers")
async def load_customers(ctx: Context, ids: list[str]) -> list[Customer | None]:
    body = await ctx.upstreams.rest("crm").get("/customers", params={"ids": ",".join(ids)})
    found = by_key(ids, body["data"], key=lambda c: c["id"])
    return [Customer(id=c["id"], name=c["name"], email=c["email"]) if c else None for c in found]


@loaders.loader("customer_orders", max_batch_size=10)
async def load_customer_orders(
    ctx: Context, keys: list[tuple[str, int, int]]
) -> list[OrderConnection | BaseException]:
    # The CRM pages by number; our cursors are offsets. A window that straddles two CRM pages
    # costs a second request, which only happens when a client changes `first` mid-way.
    crm = ctx.upstreams.rest("crm")

    async def window(customer_id: str, start: int, first: int) -> OrderConnection:
        page = start // first + 1
        params = {"page": page, "per_page": first}
        body = await crm.get("/customers/{id}/orders", id=customer_id, params=params)
        rows = body["data"][start % first :]
        if start % first and page < body["total_pages"]:
            following = await crm.get(
                "/customers/{id}/orders", id=customer_id, params={**params, "page": page + 1}
            )
            rows += following["data"]
        rows = rows[:first]
        edges = [
            OrderEdge(cursor=_cursor(start + i), node=Order.from_crm(row))
            for i, row in enumerate(rows)
        ]
        total = body["total"]
        return OrderConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=start + len(rows) < total,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            total_count=total,
        )

    return list(await asyncio.gather(*(window(*key) for key in keys), return_exceptions=True))


@loaders.loader("orders", max_batch_size=10)
async def load_orders(ctx: Context, ids: list[str]) -> list[Order | BaseException | None]:
    # The CRM has no batch endpoint for orders: fan out, one request per distinct id.
    crm = ctx.upstreams.rest("crm")

    async def one(order_id: str) -> Order | None:
        try:
            return Order.from_crm(await crm.get("/orders/{id}", id=order_id))
        except UpstreamNotFound:
            return None

    # return_exceptions: a failure fails only its own key, as a per-key error.
    return list(await asyncio.gather(*(one(i) for i in ids), return_exceptions=True))


_PRODUCTS = """
query Products($ids: [ID!]!) {
  products(ids: $ids) { id name price { amount currency } reviews { id rating body } }
}
"""


@loaders.loader("products")
async def load_products(ctx: Context, ids: list[str]) -> list[Product | None]:
    data = await ctx.upstreams.graphql("catalog").execute(_PRODUCTS, {"ids": ids})
    found = by_key(ids, (p for p in data["products"] if p), key=lambda p: p["id"])
    return [Product.from_catalog(p) if p else None for p in found]


@loaders.loader("payment_by_order")
async def load_payments(ctx: Context, order_ids: list[str]) -> list[Payment | None]:
    payments = ctx.upstreams.rest("payments")
    params: dict[str, Any] = {"order_ids": ",".join(order_ids), "limit": 100}
    latest: dict[str, dict[str, Any]] = {}
    while True:
        body = await payments.get("/v1/payments", params=params)
        for raw in body["data"]:
            current = latest.get(raw["order_id"])
            if current is None or raw["created"] >= current["created"]:
                latest[raw["order_id"]] = raw
        if not body["has_more"] or not body["data"]:
            break
        params["starting_after"] = body["data"][-1]["id"]
    return [Payment.from_payments(latest[o]) if o in latest else None for o in order_ids]


@loaders.loader("shipment_by_order")
async def load_shipments(ctx: Context, order_ids: list[str]) -> list[Shipment | None]:
    body = await ctx.upstreams.rest("shipping").get(
        "/shipments", params={"order_ids": ",".join(order_ids)}
    )
    rows = (body.get("shipments") or {}).get("shipment") or []
    found = by_key(order_ids, rows, key=lambda s: s["order_id"])
    return [Shipment.from_shipping(s) if s else None for s in found]


# --- subscriptions -----------------------------------------------------------------------------


@strawberry.type(description="A product's new price, as the catalog announced it.")
class PriceChange:
    product_id: strawberry.ID
    price: Money


_PRICE_CHANGED = """
subscription PriceChanged($productId: ID!) {
  priceChanged(productId: $productId) { productId price { amount currency } }
}
"""


@strawberry.type
class Subscription:
    """Updates from the event bus (docs/realtime.md): payments' webhooks and shipping's
    polled feed; and the catalog's own GraphQL subscription, proxied. A topic is an exact
    name, so an argument cannot widen what is received."""

    @strawberry.subscription  # a customer's payments, as they change status
    async def payment_updated(
        self, info: strawberry.Info[Context, None], customer_id: strawberry.ID
    ) -> AsyncGenerator[Payment, None]:
        async with info.context.bus.subscribe(f"payment.{customer_id}") as events:
            async for event in events:
                yield Payment.from_payments(event["data"]["data"])

    @strawberry.subscription  # an order's shipment, as it moves
    async def shipment_updated(
        self, info: strawberry.Info[Context, None], order_id: strawberry.ID
    ) -> AsyncGenerator[Shipment, None]:
        async with info.context.bus.subscribe(f"shipment.{order_id}") as events:
            async for event in events:
                yield Shipment.from_shipping(event["data"])

    @strawberry.subscription  # a product's price, as the catalog changes it
    async def price_changed(
        self, info: strawberry.Info[Context, None], product_id: strawberry.ID
    ) -> AsyncGenerator[PriceChange, None]:
        # Proxied from the catalog's own GraphQL subscription, with the catalog's credentials;
        # every client watching the same product shares one upstream subscription. aclosing:
        # when the client leaves, the upstream subscription is released at once.
        catalog = info.context.upstreams.graphql("catalog")
        events = catalog.subscribe(_PRICE_CHANGED, {"productId": product_id})
        async with aclosing(events):
            async for data in events:
                change, price = data["priceChanged"], data["priceChanged"]["price"]
                yield PriceChange(
                    product_id=change["productId"],
                    price=Money(amount=price["amount"], currency=price["currency"]),
                )


schema = GatewaySchema(query=Query, subscription=Subscription, loaders=loaders)
