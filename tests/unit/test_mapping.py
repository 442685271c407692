"""Declarative mapping (pure logic): rename, nested paths, coercion, and what malformed
payloads become."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import pytest
from pydantic import BeforeValidator

from graftql.errors import UpstreamBadResponse
from graftql.resolvers.mapping import Date, Mapped, MinorUnits, path, to_minor_units


class Row(Mapped):
    id: str
    customer_id: str = path("customer.id")
    first_sku: str = path("lines.0.sku")
    total: MinorUnits = path("amount.value")
    placed: Date = path("created_at")
    status: Literal["open", "paid"]


GOOD = {
    "id": "o1",
    "customer": {"id": "c1", "name": "Ada"},
    "lines": [{"sku": "k1"}, {"sku": "k2"}],
    "amount": {"value": "12.30", "currency": "EUR"},
    "created_at": "2024-05-01T22:10:00Z",
    "status": "paid",
    "ignored": True,
}


def test_maps_renames_paths_and_coerces() -> None:
    row = Row.from_upstream("crm", GOOD)
    assert row.model_dump() == {
        "id": "o1",
        "customer_id": "c1",
        "first_sku": "k1",
        "total": 1230,
        "placed": datetime.date(2024, 5, 1),
        "status": "paid",
    }


@pytest.mark.parametrize(
    ("value", "cents"),
    [("12.30", 1230), (12.3, 1230), (0.1, 10), (7, 700), ("-0.05", -5), ("1e2", 10000)],
)
def test_minor_units(value: object, cents: int) -> None:
    assert Row.from_upstream("crm", {**GOOD, "amount": {"value": value}}).total == cents


def test_other_exponents() -> None:
    class Yen(Mapped):
        price: Annotated[int, BeforeValidator(to_minor_units(0))]

    assert Yen.from_upstream("shop", {"price": "1500"}).price == 1500
    with pytest.raises(UpstreamBadResponse):
        Yen.from_upstream("shop", {"price": "1500.5"})


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"amount": {"value": "12.345"}}, "amount"),  # more decimals than cents: never rounded
        ({"amount": {"value": "twelve"}}, "amount"),
        ({"amount": {"value": True}}, "amount"),
        ({"amount": {"value": "NaN"}}, "amount"),
        ({"amount": None}, "amount"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"status": "lost"}, "status"),
        ({"customer": {}}, "customer.id"),
        ({"lines": []}, "lines.0.sku"),
    ],
)
def test_malformed_payloads_are_bad_responses(change: dict[str, object], where: str) -> None:
    with pytest.raises(UpstreamBadResponse) as raised:
        Row.from_upstream("crm", {**GOOD, **change})
    error = raised.value
    assert error.code == "UPSTREAM_BAD_RESPONSE" and error.upstream == "crm"
    assert error.message == "crm answered a Row the gateway cannot read"
    assert where.split(".")[0] in error.detail
    assert "twelve" not in error.detail and "yesterday" not in error.detail  # no values


def test_not_an_object_at_all() -> None:
    with pytest.raises(UpstreamBadResponse):
        Row.from_upstream("crm", ["not", "an", "object"])
    with pytest.raises(UpstreamBadResponse):
        Row.many_from_upstream("crm", "nope")
    assert [r.id for r in Row.many_from_upstream("crm", GOOD)] == ["o1"]  # a lone XML element
