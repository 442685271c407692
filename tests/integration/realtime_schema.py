"""A schema for the real-time transport tests: subscriptions that are plain async generators,
and a record (thread-safe: the gateway runs in its own thread) of which ones ended."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator

import strawberry

from graftql import GatewaySchema


class Probe:
    """What the subscriptions did: ``ended`` is set when a ``wait`` subscription's ``finally``
    ran (the client completed it, or went away)."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.ended = threading.Semaphore(0)
        self.executed: list[str] = []

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


PROBE = Probe()


@strawberry.type
class Item:
    name: str
    child: Item | None = None


def _item(depth: int) -> Item:
    return Item(name=f"level{depth}", child=_item(depth + 1) if depth < 30 else None)


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        PROBE.executed.append("hello")
        return f"hello {name}"


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> bool:
        PROBE.executed.append("touch")
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, to: int = 3) -> AsyncGenerator[int, None]:
        for i in range(1, to + 1):
            yield i

    @strawberry.subscription
    async def wait(self) -> AsyncGenerator[int, None]:
        """Yields 0, then nothing until it is cancelled."""
        PROBE.started.release()
        try:
            yield 0
            await asyncio.Event().wait()
            yield 1  # never
        finally:
            PROBE.ended.release()

    @strawberry.subscription
    async def tree(self) -> AsyncGenerator[Item, None]:
        yield _item(0)

    @strawberry.subscription
    async def boom(self) -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("a secret that must not reach a production client")


def realtime_schema() -> GatewaySchema:
    return GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription)


def deep(levels: int) -> str:
    """A subscription ``levels`` fields deep (``tree`` is the first)."""
    selection = "name"
    for _ in range(levels - 2):
        selection = f"child {{ {selection} }}"
    return f"subscription {{ tree {{ {selection} }} }}"


def many_aliases(count: int) -> str:
    return "subscription { tree { " + " ".join(f"a{i}: name" for i in range(count)) + " } }"
