"""The storefront's unified schema: one graph over four upstreams.

- ``catalog`` (GraphQL): products, prices, reviews
- ``crm`` (REST/JSON): customers, orders with lines
- ``payments`` (REST/JSON, OAuth2): a payment per order
- ``shipping`` (REST/XML, HMAC-signed): a shipment per order

Who may read what (``server.auth`` validates the client's token, docs/identity.md): products
and customers' names are public; a customer (a token with ``role: customer`` and ``sub`` their
customer id) may read only their own email and orders; staff (``role: staff``) may read every
customer's. The rules sit on the fields of ``Customer`` and ``Order`` themselves, so they hold
however an order is reached: ``customer.orders``, ``order(id)``, the ``Node`` interface or the
``SearchResult`` union, through any fragment.

Every upstream is reached through a named loader, so a query costs at most one request per
upstream per level, whatever the number of orders or lines. It is also the worked example of
how to write a graftql schema.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from enum import Enum
from typing import Annotated, Any, TypeVar

import strawberry

from graftql import (
    BadUserInput,
    Context,
    Forbidden,
    GatewaySchema,
    LoaderRegistry,
    PrincipalPermission,
    RestBatch,
    RestEach,
    Unauthenticated,
)
from graftql.resolvers.delegation import Delegate, upstream_field
from graftql.resolvers.pagination import PageInfo, PageNumber, RestPages

loaders = LoaderRegistry()

# The CRM pages by number (?page=&per_page=, with total and total_pages in the answer).
CUSTOMER_ORDERS = RestPages(
    "crm", "/customers/{id}/orders", PageNumber(total="total"), max_page_size=50
)


# --- who may read what ---------------------------------------------------------------------


def _is_staff(principal: Mapping[str, Any]) -> bool:
    return principal.get("role") == "staff"


class CustomerSelf(PrincipalPermission):
    """A customer's private fields: the customer themselves, or staff."""

    message = "a customer may read only their own details and orders"

    def allows(self, principal: Mapping[str, Any], source: Any) -> bool:
        return _is_staff(principal) or principal.get("sub") == source.id


class OrderOwner(PrincipalPermission):
    """Every field of an order: the customer who placed it, or staff."""

    message = "a customer may read only their own orders"

    def allows(self, principal: Mapping[str, Any], source: Any) -> bool:
        return _is_staff(principal) or principal.get("sub") == source.customer_id


def _own_order() -> Any:
    return strawberry.field(permission_classes=[OrderOwner])


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(permission: type[PrincipalPermission]) -> Callable[[_F], _F]:
    """``@strawberry.field(permission_classes=[permission])``, typed as strawberry's bare
    ``@strawberry.field`` is (mypy sees the method; strawberry makes it a field)."""
    decorator: Callable[[_F], _F] = strawberry.field(permission_classes=[permission])
    return decorator


@strawberry.interface(description="An object with a global id: c1 (customer), o1, p1.")
class Node:
    id: strawberry.ID


@strawberry.type(description="An amount of money in minor units (cents), never a float.")
class Money:
    # Built from REST answers (Money(...)) and read from the catalog's answers (dicts).
    amount: int = upstream_field()
    currency: str = upstream_field()


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
    id: strawberry.ID = upstream_field()
    rating: int = upstream_field()
    body: str = upstream_field()


@strawberry.type
class Product(Node):
    """Mirrors the catalog's Product: fetched with exactly the client's selection."""

    id: strawberry.ID = upstream_field()
    name: str = upstream_field()
    price: Money = upstream_field()
    reviews: list[Review] = upstream_field()


# catalog: products(ids: [ID!]!): [Product]!, one document per level for every product.
PRODUCTS = Delegate("catalog", "products", key="id")


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
        product: Product | None = await PRODUCTS.load(info, self.product_id)
        return product


@strawberry.type
class Order(Node):
    id: strawberry.ID = _own_order()
    status: OrderStatus = _own_order()
    total: Money = _own_order()
    created_at: datetime.date = _own_order()
    lines: list[OrderLine] = _own_order()
    customer_id: strawberry.Private[str]

    @classmethod
    def from_crm(cls, raw: dict[str, Any]) -> Order:
        currency = raw["currency"]
        return cls(
            id=raw["id"],
            customer_id=raw["customer_id"],
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

    @_guarded(OrderOwner)  # null while the order has no payment (e.g. pending)
    async def payment(self, info: strawberry.Info[Context, None]) -> Payment | None:
        payment: Payment | None = await info.context.loaders.payment_by_order.load(self.id)
        return payment

    @_guarded(OrderOwner)  # null until the order ships
    async def shipment(self, info: strawberry.Info[Context, None]) -> Shipment | None:
        shipment: Shipment | None = await info.context.loaders.shipment_by_order.load(self.id)
        return shipment


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class Customer(Node):
    name: str
    # Nullable: another customer's email is null with a FORBIDDEN error, the name still shown.
    email: str | None = strawberry.field(permission_classes=[CustomerSelf])

    @classmethod
    def from_crm(cls, raw: dict[str, Any]) -> Customer:
        return cls(id=raw["id"], name=raw["name"], email=raw["email"])

    @_guarded(CustomerSelf)
    async def orders(
        self, info: strawberry.Info[Context, None], first: int = 10, after: str | None = None
    ) -> OrderConnection | None:  # nullable: a CRM failure must not null the customer
        rows, has_next, total = await CUSTOMER_ORDERS.page(
            info.context, first, after, path_params={"id": self.id}
        )
        edges = [OrderEdge(cursor=cursor, node=Order.from_crm(row)) for cursor, row in rows]
        end = edges[-1].cursor if edges else None
        return OrderConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=has_next, end_cursor=end),
            total_count=total or 0,
        )


@strawberry.type
class Query:
    @strawberry.field
    async def customer(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Customer | None:
        customer: Customer | None = await info.context.loaders.customers.load(id)
        return customer

    @strawberry.field
    async def product(
        self, info: strawberry.Info[Context, None], id: strawberry.ID
    ) -> Product | None:
        product: Product | None = await PRODUCTS.load(info, id)
        return product

    @strawberry.field
    async def order(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Order | None:
        order: Order | None = await info.context.loaders.orders.load(id)
        return order

    @strawberry.field  # any object by its global id (c1, o1, p1)
    async def node(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Node | None:
        node: Node | None = await _node(info, id)
        return node

    @strawberry.field  # objects of any kind by their global ids, in order
    async def search(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID]
    ) -> list[SearchResult | None]:
        if len(ids) > _MAX_SEARCH:
            raise BadUserInput(f"at most {_MAX_SEARCH} ids")
        return list(await asyncio.gather(*(_node(info, i) for i in ids)))


SearchResult = Annotated[Customer | Order | Product, strawberry.union("SearchResult")]

_MAX_SEARCH = 50
_NODE_LOADERS = {"c": "customers", "o": "orders"}


async def _node(info: strawberry.Info[Context, None], id: str) -> Any:
    if not id[1:].isdigit():
        return None
    if id[:1] == "p":  # products are delegated: the catalog gets the client's selection
        return await PRODUCTS.load(info, id)
    loader = _NODE_LOADERS.get(id[:1])
    return None if loader is None else await info.context.loaders[loader].load(id)


# --- loaders: one batched upstream call per level --------------------------------------------


loaders.add(
    "customers",
    RestBatch("crm", "/customers", param="ids", key="id", build=Customer.from_crm),
)


# The CRM has no batch endpoint for orders: one request per distinct id, 8 at a time.
loaders.add(
    "orders",
    RestEach("crm", "/orders/{id}", concurrency=8, build=Order.from_crm),
    max_batch_size=10,
)


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


loaders.add(
    "shipment_by_order",
    RestBatch(
        "shipping",
        "/shipments",
        param="order_ids",
        key="order_id",
        items="shipments.shipment",
        build=Shipment.from_shipping,
    ),
)


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
        _may_follow(info, customer_id, "a customer may follow only their own payments")
        async with info.context.bus.subscribe(f"payment.{customer_id}") as events:
            async for event in events:
                yield Payment.from_payments(event["data"]["data"])

    @strawberry.subscription  # an order's shipment, as it moves
    async def shipment_updated(
        self, info: strawberry.Info[Context, None], order_id: strawberry.ID
    ) -> AsyncGenerator[Shipment, None]:
        order: Order | None = await info.context.loaders.orders.load(order_id)
        owner = order.customer_id if order is not None else None
        _may_follow(info, owner, "a customer may follow only their own orders' shipments")
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


def _may_follow(info: strawberry.Info[Context, None], customer_id: str | None, why: str) -> None:
    """Subscriptions are checked once, before the first event: staff, or that customer."""
    principal = info.context.principal
    if not principal:
        raise Unauthenticated("sign in to follow these updates")
    if not (_is_staff(principal) or (customer_id and principal.get("sub") == customer_id)):
        raise Forbidden(why)


schema = GatewaySchema(
    query=Query,
    subscription=Subscription,
    loaders=loaders,
    types=[Customer, Order, Product],
)
