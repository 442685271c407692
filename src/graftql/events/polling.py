"""Polling sources: for an upstream with neither webhooks nor subscriptions, fetch a list on
an interval (through the upstream's own policies: retry, breaker, rate limit, auth), diff it
by key with the previous fetch, and publish each change.

Rules (docs/realtime.md, "Polling sources"):

- The first successful fetch is the baseline: nothing is published for it (a restart does
  not replay every item as a change).
- An item whose key is new is ``added``; one whose JSON differs from the previous fetch is
  ``changed``; a key that is gone is ``removed`` (published with the last item seen).
- A failed fetch publishes nothing and keeps the previous snapshot; the next tick tries again.
- Each change is published with the id ``poll:<source>:<key>:<old hash>-><new hash>``, so
  replicas polling the same upstream over a Redis bus publish each change once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from graftql.config.events import PollingSourceConfig
from graftql.errors import GraftqlError
from graftql.events.bus import BusUnavailable, EventBus
from graftql.events.templates import field, fill_template

__all__ = ["PollingSource"]

logger = logging.getLogger("graftql.events")


class _Getter(Protocol):
    async def get(self, path: str) -> Any: ...


def _digest(item: Any) -> str:
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class PollingSource:
    """One ``events.polling.<name>`` source. ``sleep`` is injectable (tests step time)."""

    def __init__(
        self,
        name: str,
        config: PollingSourceConfig,
        upstream: _Getter,
        bus: EventBus,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.config = config
        self.upstream = upstream
        self.bus = bus
        self.sleep = sleep
        self.snapshot: dict[str, tuple[str, Any]] | None = None  # key -> (digest, item)
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"graftql-poll-{self.name}")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await self.sleep(self.config.interval)

    async def poll_once(self) -> int:
        """Fetch once and publish what changed; the number of changes published."""
        try:
            body = await self.upstream.get(self.config.path)
        except GraftqlError as exc:
            self.failures += 1
            logger.warning("polling %s: fetch failed (%s); keeping the last state", self.name, exc)
            return 0
        items = field(body, self.config.items)
        if not isinstance(items, list):
            self.failures += 1
            logger.warning(
                "polling %s: %r is not a list in the response", self.name, self.config.items
            )
            return 0
        current: dict[str, tuple[str, Any]] = {}
        for item in items:
            key = field(item, self.config.key)
            if isinstance(key, str | int) and not isinstance(key, bool):
                current[str(key)] = (_digest(item), item)
        previous, self.snapshot = self.snapshot, current
        if previous is None:
            return 0  # the baseline
        published = 0
        for key, (digest, item) in current.items():
            before = previous.get(key)
            if before is None:
                published += await self._publish(key, "added", "", digest, item)
            elif before[0] != digest:
                published += await self._publish(key, "changed", before[0], digest, item)
        for key, (digest, item) in previous.items():
            if key not in current:
                published += await self._publish(key, "removed", digest, "", item)
        return published

    async def _publish(self, key: str, change: str, old: str, new: str, item: Any) -> int:
        topic = fill_template(self.config.topic, item)
        if topic is None:
            logger.warning("polling %s: item %s lacks a field of the topic", self.name, key)
            return 0
        event = {"source": self.name, "key": key, "change": change, "data": item}
        try:
            await self.bus.publish(topic, event, event_id=f"poll:{self.name}:{key}:{old}->{new}")
        except BusUnavailable as exc:
            logger.warning("polling %s: %s", self.name, exc)
            return 0
        return 1
