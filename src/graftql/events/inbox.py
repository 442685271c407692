"""The durable webhook inbox: store first, acknowledge, then process with retries.

Guarantees (docs/realtime.md, "The inbox"):

- **Nothing acknowledged is lost.** The webhook route answers 2xx only after ``accept``
  returned, i.e. after the store committed the event (SQLite: WAL + ``synchronous=FULL``).
  A store failure raises ``StoreError`` and the route answers 503, so the sender retries.
- **Each event once.** ``accept`` of an (source, event id) already stored stores nothing and
  returns False; the route still answers 2xx (the sender must stop retrying). Dedup records
  are kept ``retention_days``.
- **Processed after a crash.** Events are processed from the store, never from the request:
  a worker claims due events, publishes each to the bus, calls the cache-tag invalidation
  hook, then marks it processed. Events stored but not settled when the process died are
  claimed again after a restart (SQLite: at once; PostgreSQL/Redis: when the lease of the
  replica that died runs out).
- **Published once.** A crash or failure between publishing and marking processed leads to a
  second attempt; the publish carries the event's id and the bus drops an id it has already
  published (RedisBus: a ``SET NX`` in the same Lua call as the ``PUBLISH``), so a
  subscriber still sees the event once.
- **Retries.** A failed attempt (bus or invalidation) is retried after ``retry_delay``,
  doubling to at most 60 s, up to ``max_attempts``; then the event is settled ``failed`` and
  logged.
- **Ordering.** For a source with ``entity``, an event whose version is lower than the
  highest already processed for that entity is settled ``superseded`` and not published: an
  old event arriving late never overwrites newer state. Equal versions are published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from graftql.events.bus import EventBus
from graftql.events.stores import InboxEvent, InboxStore, Outcome, StoreError

__all__ = ["InboxObserver", "WebhookInbox"]

logger = logging.getLogger("graftql.events")

_MAX_DELAY = 60.0
_PURGE_EVERY = 3600.0
_HEALTH_TIMEOUT = 2.0


class InboxObserver(Protocol):
    def processed(self, source: str, outcome: Outcome) -> None: ...

    def backlog(self, count: int) -> None: ...


Invalidate = Callable[[list[str]], Awaitable[Any] | Any]


class WebhookInbox:
    """Stores verified webhook events and processes them in the background."""

    def __init__(
        self,
        store: InboxStore,
        bus: EventBus,
        *,
        invalidate: Invalidate | None = None,
        max_attempts: int = 10,
        retry_delay: float = 0.5,
        retention: float = 7 * 86400,
        poll_interval: float = 1.0,
        batch: int = 100,
        clock: Callable[[], float] = time.time,
        observer: InboxObserver | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.invalidate = invalidate
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.retention = retention
        self.poll_interval = poll_interval  # also picks up other replicas' due retries
        self.batch = batch
        self.clock = clock
        self.observer = observer
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._purged_at = 0.0
        self._opened = False
        self._open_warned_at = -30.0

    async def start(self) -> None:
        """Open the store and start processing. A store that cannot be opened does not stop
        the gateway: webhooks are answered 503 (senders retry) and the worker tries to open
        it again every ``poll_interval``."""
        await self._open()
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="graftql-webhook-inbox")

    async def _open(self) -> bool:
        if self._opened:
            return True
        try:
            await self.store.open()
        except StoreError as exc:
            now = time.monotonic()
            if now - self._open_warned_at < 30:
                return False
            self._open_warned_at = now  # at most every 30 s while it lasts
            cause = exc.__cause__
            logger.error(
                "webhook inbox: %s%s; webhooks are answered 503 until it opens",
                exc,
                f": {str(cause)[:200]}" if cause is not None else "",
            )
            return False
        self._opened = True
        return True

    async def health(self) -> dict[str, object]:
        """``/readyz``'s entry for the inbox: ``backend``, ``status`` (up, down), ``backlog``
        when up, ``detail`` when down (the store error's words: never a path or a DSN)."""
        backend = type(self.store).__name__.removesuffix("Store").lower()
        report: dict[str, object] = {"backend": backend}
        if not self._opened:
            detail = "the store could not be opened; webhooks are answered 503"
            return {**report, "status": "down", "detail": detail}
        try:
            async with asyncio.timeout(_HEALTH_TIMEOUT):
                backlog = await self.store.backlog()
        except StoreError as exc:
            return {**report, "status": "down", "detail": str(exc)}
        except TimeoutError:
            detail = f"no answer within {_HEALTH_TIMEOUT:g}s"
            return {**report, "status": "down", "detail": detail}
        return {**report, "status": "up", "backlog": backlog}

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._opened:
            await self.store.close()
            self._opened = False

    async def accept(self, event: InboxEvent) -> bool:
        """Store ``event`` durably; False if it was already there. Raises ``StoreError``."""
        stored = await self.store.put(event, self.clock())
        if stored:
            self._wake.set()
        return stored

    async def process_due(self) -> int:
        """Claim and process what is due now; the number of events settled or retried."""
        events = await self.store.claim(self.clock(), self.batch)
        # Published one by one, in order; the store writes that settle them go together
        # (one commit for the batch where the store groups them).
        writes = [await self._process(event) for event in events]
        results = await asyncio.gather(*writes, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self.observer is not None:
            with contextlib.suppress(StoreError):
                self.observer.backlog(await self.store.backlog())
        return len(events)

    async def _run(self) -> None:
        while True:
            try:
                if not await self._open():
                    await asyncio.sleep(self.poll_interval)
                    continue
                while await self.process_due() == self.batch:
                    pass  # more may be due at once
                now = self.clock()
                if now - self._purged_at >= _PURGE_EVERY:
                    self._purged_at = now
                    await self.store.purge(now - self.retention)
            except StoreError as exc:
                logger.warning("webhook inbox: %s; trying again", exc)
            except Exception:
                logger.exception("webhook inbox: unexpected error; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def _process(self, event: InboxEvent) -> Awaitable[None]:
        """Deliver ``event``; the store write that records the outcome, not yet awaited."""
        event.attempts += 1
        now = self.clock()
        try:
            outcome = await self._deliver(event, now)
        except Exception as exc:
            if event.attempts >= self.max_attempts:
                logger.error(
                    "webhook inbox: %s event %s failed %d times (%s); giving up",
                    event.source,
                    event.event_id,
                    event.attempts,
                    type(exc).__name__,
                )
                return self._settle(event, "failed", now)
            delay = min(_MAX_DELAY, self.retry_delay * 2 ** (event.attempts - 1))
            logger.warning(
                "webhook inbox: %s event %s attempt %d failed (%s); retrying in %.1f s",
                event.source,
                event.event_id,
                event.attempts,
                type(exc).__name__,
                delay,
            )
            return self.store.retry(event, now + delay)
        return self._settle(event, outcome, now)

    async def _deliver(self, event: InboxEvent, now: float) -> Outcome:
        if event.entity is not None and event.version is not None:
            key = f"{event.source}:{event.entity}"
            if not await self.store.advance(key, event.version, now):
                return "superseded"
        await self.bus.publish(
            event.topic, event.event, event_id=f"{event.source}:{event.event_id}"
        )
        if event.tags and self.invalidate is not None:
            result = self.invalidate(list(event.tags))
            if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
                await result
        return "processed"

    async def _settle(self, event: InboxEvent, outcome: Outcome, now: float) -> None:
        await self.store.settle(event, outcome, now)
        if self.observer is not None:
            self.observer.processed(event.source, outcome)


def invalidation_hook(upstreams: Any) -> Invalidate | None:
    """The upstreams' ``invalidate(tags)`` when the cache provides one, else None."""
    hook = getattr(upstreams, "invalidate", None)
    return hook if callable(hook) else None


def tags_of(templates: Iterable[str], fill: Callable[[str], str | None]) -> list[str]:
    return [tag for tag in (fill(t) for t in templates) if tag]
