"""Declarative mapping of upstream payloads: rename, nested paths, type coercion, validated.

A mapping is a pydantic model whose fields say where each value comes from::

    class OrderRow(Mapped):
        id: str
        customer_id: str = path("customer.id")      # nested path extraction
        total: MinorUnits = path("amount.value")     # "12.30" -> 1230 (cents)
        placed: Date = path("created_at")            # rename + "2024-05-01T10:00:00Z" -> date
        status: Literal["open", "paid"]

    row = OrderRow.from_upstream("crm", raw)

Anything the payload gets wrong (a missing field, a date that is not one, "12.345" for an
amount in cents, a string where a list belongs) raises ``UpstreamBadResponse`` naming the
upstream and the fields, never the values: on the GraphQL field that needed it this is an
``UPSTREAM_BAD_RESPONSE`` error, not a 500. Extra payload fields are ignored.

In a declarative loader, ``build=lambda raw: OrderRow.from_upstream("crm", raw)`` fails only
the key whose item was malformed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import AliasPath, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from graftql.errors import UpstreamBadResponse

__all__ = ["Date", "Mapped", "MinorUnits", "path", "to_minor_units"]


def path(dotted: str, **field: Any) -> Any:
    """The value at ``dotted`` (``"customer.id"``, ``"lines.0.sku"``) of the payload."""
    first, *rest = dotted.split(".")
    steps = [int(s) if s.isdigit() else s for s in rest]
    return Field(validation_alias=AliasPath(first, *steps), **field)


def to_minor_units(exponent: int = 2) -> Callable[[Any], int]:
    """A validator: an amount given as a decimal ("12.30", 12.3) as an integer of minor units
    (1230). ``exponent`` is the currency's number of decimals (2 for EUR, 0 for JPY, 3 for
    BHD); an amount with more decimals than that is malformed, never rounded. For another
    exponent than 2: ``Annotated[int, BeforeValidator(to_minor_units(0))]``."""
    scale = Decimal(10) ** exponent

    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("an amount, not a boolean")
        if isinstance(value, float):
            value = repr(value)  # the shortest decimal that round-trips: 0.1 is "0.1"
        try:
            amount = Decimal(str(value)) * scale
        except InvalidOperation:
            raise ValueError("not a decimal amount") from None
        if not amount.is_finite() or amount != amount.to_integral_value():
            raise ValueError(f"more than {exponent} decimal places")
        return int(amount)

    return convert


MinorUnits = Annotated[int, BeforeValidator(to_minor_units(2))]


def _to_date(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 10 and value[10] in "T ":
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    return value


# A date, from "2024-05-01" or from a timestamp (its calendar date as the upstream wrote it).
Date = Annotated[datetime.date, BeforeValidator(_to_date)]


class Mapped(BaseModel):
    """Base of a mapping: a frozen pydantic model read from an upstream payload."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_upstream(cls, upstream: str, payload: Any) -> Self:
        """``payload`` mapped, or ``UpstreamBadResponse`` naming what did not fit."""
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            # Where and what kind of problem, never the upstream's values (they may be
            # personal data): "total: value_error; placed: date_from_datetime_parsing".
            where = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or '(payload)'}: {error['type']}"
                for error in exc.errors()[:5]
            )
            error = UpstreamBadResponse(
                upstream, f"{upstream} answered a {cls.__name__} the gateway cannot read"
            )
            error.detail = where
            raise error from None

    @classmethod
    def many_from_upstream(cls, upstream: str, payload: Any) -> list[Self]:
        """A list of payloads mapped (a lone object, as XML gives one element, is a list)."""
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list):
            raise UpstreamBadResponse(upstream, f"{upstream} answered no list of {cls.__name__}")
        return [cls.from_upstream(upstream, item) for item in payload]
