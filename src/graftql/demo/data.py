"""Seeded, deterministic data behind the four storefront demo upstream services.

Everything here is hand-written literal data so that a reader can check a gateway answer
against this file by eye, and so that every run of the demo and of the tests sees exactly the
same records. Derived values (order totals, line unit prices, payment amounts and timestamps)
are computed from the literals rather than typed twice, so they cannot drift apart.

Money is always an integer amount in minor units (cents) plus an ISO 4217 currency code.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final, Literal

CURRENCY: Final = "EUR"

OrderStatus = Literal["pending", "paid", "shipped", "delivered", "cancelled"]
PaymentStatus = Literal["succeeded", "failed", "refunded"]
ShipmentStatus = Literal["IN_TRANSIT", "DELIVERED"]


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    price_amount: int
    currency: str = CURRENCY


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    product_id: str
    rating: int
    body: str


@dataclass(frozen=True, slots=True)
class OrderLine:
    product_id: str
    quantity: int
    unit_amount: int


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    customer_id: str
    status: OrderStatus
    created_at: str
    lines: tuple[OrderLine, ...]
    currency: str = CURRENCY

    @property
    def total_amount(self) -> int:
        return sum(line.quantity * line.unit_amount for line in self.lines)


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    order_id: str
    status: PaymentStatus
    amount: int
    currency: str
    created: int


@dataclass(frozen=True, slots=True)
class Shipment:
    order_id: str
    status: ShipmentStatus
    tracking_number: str
    eta: str


def natural_id_key(record_id: str) -> tuple[str, int]:
    """Sort key for ids like "o12": prefix first, then the number, so o2 sorts before o10."""
    prefix = record_id.rstrip("0123456789")
    digits = record_id[len(prefix) :]
    return (prefix, int(digits) if digits else -1)


CUSTOMERS: Final[tuple[Customer, ...]] = (
    Customer("c1", "Ada Lovelace", "ada@example.com"),
    Customer("c2", "Grace Hopper", "grace@example.com"),
    Customer("c3", "Alan Turing", "alan@example.com"),
    Customer("c4", "Katherine Johnson", "katherine@example.com"),
    Customer("c5", "Edsger Dijkstra", "edsger@example.com"),  # deliberately has no orders
    Customer("c6", "Barbara Liskov", "barbara@example.com"),
    Customer("c7", "Donald Knuth", "donald@example.com"),
    Customer("c8", "Margaret Hamilton", "margaret@example.com"),
)

# Names include characters that need escaping in JSON, XML and GraphQL ("&", quotes, commas)
# so that any serialisation bug in the gateway shows up with the demo data itself.
PRODUCTS: Final[tuple[Product, ...]] = (
    Product("p1", "Mechanical Keyboard", 12900),
    Product("p2", "Wireless Mouse", 3450),
    Product("p3", "USB-C Hub", 4999),
    Product("p4", '27" 4K Monitor', 28900),
    Product("p5", "Laptop Stand", 3900),
    Product("p6", "Noise-Cancelling Headphones", 24900),
    Product("p7", "HD Webcam", 6900),
    Product("p8", "Desk Lamp", 2750),
    Product("p9", "Ergonomic Chair", 34900),
    Product("p10", "Notebook (A5, dotted)", 1250),
    Product("p11", "Fountain Pen", 4500),
    Product("p12", "Cable & Adapter Kit", 1999),
)

# p4, p7 and p11 have no reviews, so an empty list is part of every demo query.
REVIEWS: Final[tuple[Review, ...]] = (
    Review("r1", "p1", 5, "Clicky in the best way."),
    Review("r2", "p1", 4, "Great switches, loud for open offices."),
    Review("r3", "p1", 2, "Keycaps started to shine after a month."),
    Review("r4", "p2", 4, "Light and precise."),
    Review("r5", "p2", 3, "Scroll wheel squeaks."),
    Review("r6", "p3", 5, "Every port I need."),
    Review("r7", "p5", 4, "Sturdy, folds flat."),
    Review("r8", "p6", 5, "Blissful silence on the train."),
    Review("r9", "p6", 5, "Battery lasts all week."),
    Review("r10", "p6", 1, "Left ear cup broke <after> two weeks & support was slow."),
    Review("r11", "p8", 3, "Warm light, wobbly base."),
    Review("r12", "p9", 5, "My back says thank you."),
    Review("r13", "p9", 4, "Assembly took an hour."),
    Review("r14", "p10", 5, "Paper takes fountain pen ink without bleeding."),
    Review("r15", "p12", 2, "One adapter was missing."),
    Review("r16", "p5", 3, 'Fine, but "adjustable" means two heights.'),
)

PRODUCTS_BY_ID: Final[Mapping[str, Product]] = MappingProxyType({p.id: p for p in PRODUCTS})


def _order(
    order_id: str,
    customer_id: str,
    status: OrderStatus,
    created_at: str,
    *items: tuple[str, int],
) -> Order:
    # The unit price is the catalog price, looked up rather than retyped.
    lines = tuple(
        OrderLine(product_id, quantity, PRODUCTS_BY_ID[product_id].price_amount)
        for product_id, quantity in items
    )
    return Order(order_id, customer_id, status, created_at, lines)


ORDERS: Final[tuple[Order, ...]] = (
    _order("o1", "c1", "delivered", "2026-01-14", ("p1", 1), ("p2", 1)),
    _order("o2", "c2", "delivered", "2026-01-20", ("p4", 1)),
    _order("o3", "c3", "delivered", "2026-01-28", ("p9", 1), ("p8", 1)),
    _order("o4", "c1", "delivered", "2026-02-03", ("p10", 3)),
    _order("o5", "c2", "delivered", "2026-02-14", ("p11", 1), ("p10", 2)),
    _order("o6", "c4", "delivered", "2026-03-02", ("p5", 2)),
    _order("o7", "c1", "cancelled", "2026-03-21", ("p9", 1)),
    _order("o8", "c6", "shipped", "2026-04-11", ("p7", 1), ("p3", 1)),
    _order("o9", "c1", "paid", "2026-05-02", ("p6", 1)),
    _order("o10", "c3", "cancelled", "2026-05-15", ("p6", 1)),
    _order("o11", "c7", "delivered", "2026-05-29", ("p2", 1)),
    _order("o12", "c1", "shipped", "2026-06-18", ("p3", 2), ("p12", 1)),
    _order("o13", "c2", "paid", "2026-06-30", ("p7", 1)),
    _order("o14", "c4", "paid", "2026-07-07", ("p12", 3)),
    # Same day as o12 on purpose: exercises the "created_at desc, then id" tie-break.
    _order("o15", "c1", "pending", "2026-06-18", ("p8", 1)),
    _order("o16", "c3", "shipped", "2026-08-01", ("p1", 1)),
    _order("o17", "c2", "pending", "2026-09-09", ("p2", 2)),
    _order("o18", "c7", "pending", "2026-10-12", ("p11", 1)),
    _order("o19", "c1", "shipped", "2026-11-20", ("p4", 1), ("p5", 1)),
    _order("o20", "c8", "paid", "2026-12-01", ("p10", 1), ("p12", 1)),
)

ORDERS_BY_ID: Final[Mapping[str, Order]] = MappingProxyType({o.id: o for o in ORDERS})


def _payment(payment_id: str, order_id: str, status: PaymentStatus, time_of_day: str) -> Payment:
    # Amount and currency come from the order; "created" is the order day plus a literal
    # time of day, as UTC unix seconds, so it is stable across time zones and runs.
    order = ORDERS_BY_ID[order_id]
    day = date.fromisoformat(order.created_at)
    hours, minutes, seconds = (int(part) for part in time_of_day.split(":"))
    created = calendar.timegm((day.year, day.month, day.day, hours, minutes, seconds, 0, 0, 0))
    return Payment(payment_id, order_id, status, order.total_amount, order.currency, created)


# One payment per non-pending order (o15, o17 and o18 are pending). The suffixes are not in
# order-id order, so "sorted by payment id" differs visibly from "sorted by order id".
PAYMENTS: Final[tuple[Payment, ...]] = (
    _payment("pay_3HkQ9xWmA1", "o1", "succeeded", "09:12:45"),
    _payment("pay_8ZtR2cLpB7", "o2", "succeeded", "14:03:10"),
    _payment("pay_1MvX7eNqC4", "o3", "succeeded", "11:48:02"),
    _payment("pay_6QwE4rTyD9", "o4", "succeeded", "08:30:59"),
    _payment("pay_2PbN5sKjE3", "o5", "succeeded", "19:21:33"),
    _payment("pay_9LcV1uHgF6", "o6", "succeeded", "07:55:18"),
    _payment("pay_4XfJ8iOzG2", "o7", "refunded", "16:40:27"),
    _payment("pay_7DsA3oPmH8", "o8", "succeeded", "12:17:51"),
    _payment("pay_5GhK6aWxJ0", "o9", "succeeded", "21:05:04"),
    _payment("pay_0RyU2bQnK5", "o10", "failed", "10:29:36"),
    _payment("pay_3TeW7dZvL1", "o11", "succeeded", "13:58:12"),
    _payment("pay_8NmC4fYbM6", "o12", "succeeded", "17:44:40"),
    _payment("pay_1BqL9gXcN2", "o13", "succeeded", "06:11:25"),
    _payment("pay_6KjP5hVdP7", "o14", "succeeded", "15:36:08"),
    _payment("pay_2WzS8jUeQ3", "o16", "succeeded", "09:59:57"),
    _payment("pay_9FxD1kTfR4", "o19", "succeeded", "20:22:19"),
    _payment("pay_5VaG3lSgS9", "o20", "succeeded", "11:01:43"),
)

# Only shipped (IN_TRANSIT) and delivered (DELIVERED) orders have a shipment.
SHIPMENTS: Final[tuple[Shipment, ...]] = (
    Shipment("o1", "DELIVERED", "1Z999AA10123456784", "2026-01-19"),
    Shipment("o2", "DELIVERED", "1Z999AA10123456793", "2026-01-24"),
    Shipment("o3", "DELIVERED", "1Z999AA10123456802", "2026-02-03"),
    Shipment("o4", "DELIVERED", "1Z999AA10123456811", "2026-02-06"),
    Shipment("o5", "DELIVERED", "1Z999AA10123456820", "2026-02-18"),
    Shipment("o6", "DELIVERED", "1Z999AA10123456839", "2026-03-06"),
    Shipment("o8", "IN_TRANSIT", "1Z999AA10123456848", "2026-12-03"),
    Shipment("o11", "DELIVERED", "1Z999AA10123456857", "2026-06-02"),
    Shipment("o12", "IN_TRANSIT", "1Z999AA10123456866", "2026-12-04"),
    Shipment("o16", "IN_TRANSIT", "1Z999AA10123456875", "2026-12-05"),
    Shipment("o19", "IN_TRANSIT", "1Z999AA10123456884", "2026-12-08"),
)

CUSTOMERS_BY_ID: Final[Mapping[str, Customer]] = MappingProxyType({c.id: c for c in CUSTOMERS})
PAYMENTS_BY_ID: Final[Mapping[str, Payment]] = MappingProxyType({p.id: p for p in PAYMENTS})
PAYMENTS_BY_ORDER_ID: Final[Mapping[str, Payment]] = MappingProxyType(
    {p.order_id: p for p in PAYMENTS}
)
SHIPMENTS_BY_ORDER_ID: Final[Mapping[str, Shipment]] = MappingProxyType(
    {s.order_id: s for s in SHIPMENTS}
)
REVIEWS_BY_PRODUCT_ID: Final[Mapping[str, tuple[Review, ...]]] = MappingProxyType(
    {p.id: tuple(r for r in REVIEWS if r.product_id == p.id) for p in PRODUCTS}
)


# Orders per customer, newest first (created_at descending, then id), which is the order the
# CRM service pages through. Customers without orders map to an empty tuple.
def _newest_first(orders: list[Order]) -> tuple[Order, ...]:
    # Two stable sorts: by id ascending, then by created_at descending keeps id order on ties.
    by_id = sorted(orders, key=lambda o: natural_id_key(o.id))
    return tuple(sorted(by_id, key=lambda o: o.created_at, reverse=True))


ORDERS_BY_CUSTOMER_ID: Final[Mapping[str, tuple[Order, ...]]] = MappingProxyType(
    {c.id: _newest_first([o for o in ORDERS if o.customer_id == c.id]) for c in CUSTOMERS}
)
