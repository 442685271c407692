"""The fan-out benchmark's gateway schema (``schema: fanout_schema:schema``, with bench/ on
PYTHONPATH): ``ticks(topic)`` reads the event bus; the ``publish`` mutation sends ``count``
events to a topic, ``interval`` seconds apart, each stamped with the wall-clock time it was
published; ``subscribers`` says how many subscriptions the bus holds for a topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import strawberry
from strawberry.scalars import JSON

from graftql import Context, GatewaySchema


@strawberry.type
class Query:
    @strawberry.field
    def subscribers(self, info: strawberry.Info[Context, None], topic: str) -> int:
        count = getattr(info.context.bus, "subscribers", None)
        return int(count(topic)) if count is not None else -1


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def publish(
        self, info: strawberry.Info[Context, None], topic: str, count: int, interval: float
    ) -> int:
        bus = info.context.bus

        async def send() -> None:
            for seq in range(count):
                await bus.publish(topic, {"seq": seq, "sent": time.time()})
                await asyncio.sleep(interval)

        # In the background: the answer comes at once, the events at their pace.
        info.context.request.app.state.fanout_task = asyncio.create_task(send())
        return count


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(
        self, info: strawberry.Info[Context, None], topic: str
    ) -> AsyncGenerator[JSON, None]:
        async with info.context.bus.subscribe(topic) as events:
            async for event in events:
                yield event


schema = GatewaySchema(query=Query, mutation=Mutation, subscription=Subscription)
