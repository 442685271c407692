"""Invariants of the seeded storefront demo data that the services and gateway tests rely on."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime

from graftql.demo import data


def test_ids_are_the_documented_ranges() -> None:
    assert [c.id for c in data.CUSTOMERS] == [f"c{i}" for i in range(1, 9)]
    assert [p.id for p in data.PRODUCTS] == [f"p{i}" for i in range(1, 13)]
    assert [o.id for o in data.ORDERS] == [f"o{i}" for i in range(1, 21)]
    assert data.CUSTOMERS_BY_ID["c1"].name == "Ada Lovelace"
    assert data.CUSTOMERS_BY_ID["c1"].email == "ada@example.com"


def test_money_is_integer_minor_units_in_eur() -> None:
    amounts = [p.price_amount for p in data.PRODUCTS]
    amounts += [line.unit_amount for o in data.ORDERS for line in o.lines]
    amounts += [o.total_amount for o in data.ORDERS] + [p.amount for p in data.PAYMENTS]
    assert all(type(a) is int and a > 0 for a in amounts)
    currencies = {p.currency for p in data.PRODUCTS} | {o.currency for o in data.ORDERS}
    assert currencies | {p.currency for p in data.PAYMENTS} == {"EUR"}


def test_reviews_are_zero_to_three_per_product_with_valid_ratings() -> None:
    per_product = Counter(r.product_id for r in data.REVIEWS)
    assert set(per_product) <= set(data.PRODUCTS_BY_ID)
    assert all(n <= 3 for n in per_product.values())
    assert any(p.id not in per_product for p in data.PRODUCTS)
    assert all(1 <= r.rating <= 5 and r.body for r in data.REVIEWS)
    assert len({r.id for r in data.REVIEWS}) == len(data.REVIEWS)
    assert [r.id for r in data.REVIEWS] == [f"r{i}" for i in range(1, len(data.REVIEWS) + 1)]


def test_order_lines_reference_products_at_catalog_price_and_totals_add_up() -> None:
    for order in data.ORDERS:
        assert order.customer_id in data.CUSTOMERS_BY_ID
        assert order.status in {"pending", "paid", "shipped", "delivered", "cancelled"}
        date.fromisoformat(order.created_at)
        assert order.lines
        for line in order.lines:
            assert line.quantity >= 1
            assert line.unit_amount == data.PRODUCTS_BY_ID[line.product_id].price_amount
        assert order.total_amount == sum(li.quantity * li.unit_amount for li in order.lines)


def test_order_counts_per_customer() -> None:
    counts = {cid: len(orders) for cid, orders in data.ORDERS_BY_CUSTOMER_ID.items()}
    assert counts["c1"] == 7
    assert all(n <= 4 for cid, n in counts.items() if cid != "c1")
    assert 0 in counts.values()
    assert sum(counts.values()) == len(data.ORDERS)
    c1_statuses = {o.status for o in data.ORDERS_BY_CUSTOMER_ID["c1"]}
    assert {"pending", "shipped", "delivered"} <= c1_statuses


def test_customer_orders_are_newest_first_then_by_id() -> None:
    for orders in data.ORDERS_BY_CUSTOMER_ID.values():
        keys = [(o.created_at, -int(o.id[1:])) for o in orders]
        assert keys == sorted(keys, reverse=True)
    c1 = [o.id for o in data.ORDERS_BY_CUSTOMER_ID["c1"]]
    assert c1.index("o12") + 1 == c1.index("o15")  # same created_at: tie broken by id


def test_one_payment_per_non_pending_order() -> None:
    paid_orders = [p.order_id for p in data.PAYMENTS]
    assert len(paid_orders) == len(set(paid_orders))
    assert set(paid_orders) == {o.id for o in data.ORDERS if o.status != "pending"}
    for payment in data.PAYMENTS:
        order = data.ORDERS_BY_ID[payment.order_id]
        assert re.fullmatch(r"pay_[A-Za-z0-9]{6,}", payment.id)
        assert payment.amount == order.total_amount
        assert payment.status in {"succeeded", "failed", "refunded"}
        assert type(payment.created) is int
        created_day = datetime.fromtimestamp(payment.created, UTC).date()
        assert created_day == date.fromisoformat(order.created_at)
    assert len(data.PAYMENTS_BY_ID) == len(data.PAYMENTS)


def test_shipments_only_for_shipped_and_delivered_orders() -> None:
    expected = {"shipped": "IN_TRANSIT", "delivered": "DELIVERED"}
    shipped = {o.id: expected[o.status] for o in data.ORDERS if o.status in expected}
    assert {s.order_id: s.status for s in data.SHIPMENTS} == shipped
    assert len({s.tracking_number for s in data.SHIPMENTS}) == len(data.SHIPMENTS)
    for shipment in data.SHIPMENTS:
        assert re.fullmatch(r"1Z[0-9A-Z]{16}", shipment.tracking_number)
        order_day = date.fromisoformat(data.ORDERS_BY_ID[shipment.order_id].created_at)
        assert date.fromisoformat(shipment.eta) > order_day


def test_natural_id_key_orders_numbers_numerically() -> None:
    assert sorted(["o10", "o2", "o1"], key=data.natural_id_key) == ["o1", "o2", "o10"]
