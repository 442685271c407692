"""Limits the gateway keeps toward one upstream: a request rate and a number in flight.

- ``RateLimiter``: a token bucket (``rate`` per second, ``burst`` at once). A caller reserves a
  token and waits for it when it can have it within the request's deadline; otherwise it fails
  at once. It also obeys the upstream's own quota headers (``RateLimit-Remaining`` /
  ``X-RateLimit-Remaining`` with their reset): at zero remaining, calls wait for the reset
  instead of collecting 429s.
- ``Bulkhead``: at most ``max_concurrent`` calls in flight and ``max_queue`` waiting, so one
  slow upstream cannot take every connection and task of the gateway.

Clocks are injected; waiting goes through ``asyncio.sleep`` only where a caller must wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from graftql.config import BulkheadConfig, RateLimitConfig

__all__ = ["Bulkhead", "RateLimiter", "Rejected"]

_MAX_QUOTA_PAUSE = 60.0


class Rejected(Exception):
    """A limit refused the call; ``wait`` says how long it would have had to wait (seconds)."""

    def __init__(self, wait: float | None = None) -> None:
        super().__init__(wait)
        self.wait = wait


class RateLimiter:
    def __init__(
        self, config: RateLimitConfig | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self._tokens = float(config.burst) if config else 0.0
        self._updated = clock()
        self.remaining: int | None = None  # the upstream's own count, from its headers
        self._quota_reset = 0.0  # on our clock: when an exhausted upstream quota refills

    def reserve(self, budget: float | None, *, bucket: bool = True) -> float:
        """Take a token; returns the seconds to wait before using it. Raises ``Rejected``
        (taking nothing) when that wait would exceed ``budget``. ``bucket=False``: only the
        upstream's own quota counts (the token came from the shared bucket)."""
        now = self._clock()
        wait = max(0.0, self._quota_reset - now) if self.remaining == 0 else 0.0
        cfg = self.config if bucket else None
        if cfg is not None:
            self._tokens = min(cfg.burst, self._tokens + (now - self._updated) * cfg.rate)
            self._updated = now
            if self._tokens < 1:  # tokens below zero are reservations of callers already waiting
                wait = max(wait, (1 - self._tokens) / cfg.rate)
        if budget is not None and wait > budget:
            raise Rejected(wait)
        if cfg is not None:
            self._tokens -= 1
        return wait

    def observe(self, response: httpx.Response) -> None:
        """Read the upstream's quota headers (IETF RateLimit and the common X- forms)."""
        headers = response.headers
        remaining = headers.get("ratelimit-remaining") or headers.get("x-ratelimit-remaining")
        if remaining is None or not remaining.strip().isdigit():
            return
        self.remaining = int(remaining)
        reset = headers.get("ratelimit-reset") or headers.get("x-ratelimit-reset")
        if reset and reset.strip().isdigit():
            value = int(reset)
            # Seconds to wait, or (X- form, large values) a unix time of the reset, in seconds
            # or milliseconds. Never trust it for more than a minute: a wrong reading would
            # otherwise stop all calls, and then nothing could correct it.
            if value > 10**12:
                value //= 1000
            seconds = value - time.time() if value > 10**9 else value
            self._quota_reset = self._clock() + min(_MAX_QUOTA_PAUSE, max(0.0, seconds))


class Bulkhead:
    def __init__(self, config: BulkheadConfig | None) -> None:
        self.config = config
        self._slots = asyncio.Semaphore(config.max_concurrent) if config else None
        self.waiting = 0
        self.rejected = 0

    async def acquire(self, budget: float | None) -> None:
        """Wait for a slot (at most ``budget`` seconds); ``Rejected`` when the queue is full
        or the wait runs out."""
        if self._slots is None or self.config is None:
            return
        if self._slots.locked() and self.waiting >= self.config.max_queue:
            self.rejected += 1
            raise Rejected()
        self.waiting += 1
        try:
            async with asyncio.timeout(budget):
                await self._slots.acquire()
        except TimeoutError:
            self.rejected += 1
            raise Rejected(budget) from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()
