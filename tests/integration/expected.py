"""The exact answer to the README's example query over the seeded demo data."""

from __future__ import annotations

from typing import Any


def money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR"}


def line(quantity: int, name: str, price: int, ratings: list[int]) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "product": {
            "name": name,
            "price": money(price),
            "reviews": [{"rating": r} for r in ratings],
        },
    }


def shipment(status: str, tracking: str, eta: str) -> dict[str, Any]:
    return {"status": status, "trackingNumber": tracking, "eta": eta}


# Checked by hand against graftql/demo/data.py: c1's orders, newest first (ties by id).
EXPECTED = {
    "customer": {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "orders": {
            "edges": [
                {
                    "node": {
                        "id": "o19",
                        "status": "SHIPPED",
                        "total": money(32800),
                        "lines": [
                            line(1, '27" 4K Monitor', 28900, []),
                            line(1, "Laptop Stand", 3900, [4, 3]),
                        ],
                        "payment": {"status": "SUCCEEDED"},
                        "shipment": shipment("IN_TRANSIT", "1Z999AA10123456884", "2026-12-08"),
                    }
                },
                {
                    "node": {
                        "id": "o12",
                        "status": "SHIPPED",
                        "total": money(11997),
                        "lines": [
                            line(2, "USB-C Hub", 4999, [5]),
                            line(1, "Cable & Adapter Kit", 1999, [2]),
                        ],
                        "payment": {"status": "SUCCEEDED"},
                        "shipment": shipment("IN_TRANSIT", "1Z999AA10123456866", "2026-12-04"),
                    }
                },
                {
                    "node": {
                        "id": "o15",
                        "status": "PENDING",
                        "total": money(2750),
                        "lines": [line(1, "Desk Lamp", 2750, [3])],
                        "payment": None,
                        "shipment": None,
                    }
                },
                {
                    "node": {
                        "id": "o9",
                        "status": "PAID",
                        "total": money(24900),
                        "lines": [line(1, "Noise-Cancelling Headphones", 24900, [5, 5, 1])],
                        "payment": {"status": "SUCCEEDED"},
                        "shipment": None,
                    }
                },
                {
                    "node": {
                        "id": "o7",
                        "status": "CANCELLED",
                        "total": money(34900),
                        "lines": [line(1, "Ergonomic Chair", 34900, [5, 4])],
                        "payment": {"status": "REFUNDED"},
                        "shipment": None,
                    }
                },
            ]
        },
    }
}
