"""Bulk operations: a mutation that takes a list runs one upstream call per item, at most
``concurrency`` at once, and answers per item — a failure fails its item, not the list.

::

    @strawberry.mutation
    async def update_prices(self, info: Info, items: list[PriceInput]) -> list[BulkResult[Product]]:
        crm = info.context.upstreams.rest("crm")

        async def one(item: PriceInput) -> Product:
            return Product.build(await crm.request("PATCH", "/products/{id}", {"id": item.id},
                                                   json_body={"price": item.price}))

        return await run_bulk(items, one, concurrency=4)

Each ``BulkResult`` has the item's ``index`` in the input, ``ok``, the ``value`` or an
``error { code message }``. An ``UpstreamError`` or ``BadUserInput`` keeps its code and
message (written for clients); anything else is ``INTERNAL_SERVER_ERROR`` with a generic
message, logged with its traceback and a correlation id. ``max_items`` bounds the list: a
longer one is ``BAD_USER_INPUT`` before any call is made.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from graftql.errors import BadUserInput, GraftqlError

__all__ = ["BulkError", "BulkResult", "run_bulk"]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

logger = logging.getLogger("graftql.errors")


@strawberry.type(description="Why one item of a bulk operation failed.")
class BulkError:
    code: str
    message: str


@strawberry.type(description="The outcome of one item of a bulk operation.")
class BulkResult(Generic[T]):
    index: int
    ok: bool
    value: T | None = None
    error: BulkError | None = None


def _error(exc: BaseException) -> BulkError:
    if isinstance(exc, GraftqlError):
        return BulkError(code=exc.code, message=exc.message)
    reference = uuid.uuid4().hex[:16]
    logger.error("bulk item failed unexpectedly (%s)", reference, exc_info=exc)
    return BulkError(
        code="INTERNAL_SERVER_ERROR", message=f"unexpected error (reference {reference})"
    )


async def run_bulk(
    items: Sequence[I],
    call: Callable[[I], Awaitable[T]],
    *,
    concurrency: int = 8,
    max_items: int = 100,
) -> list[BulkResult[T]]:
    """``call(item)`` for every item, ``concurrency`` at a time; results in input order."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if len(items) > max_items:
        raise BadUserInput(f"at most {max_items} items at once, got {len(items)}")
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, item: I) -> BulkResult[T]:
        async with gate:
            try:
                value = await call(item)
            except Exception as exc:
                return BulkResult(index=index, ok=False, error=_error(exc))
        return BulkResult(index=index, ok=True, value=value)

    return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))
