"""Limits the gateway keeps toward one upstream: a request rate and a number in flight.

- ``RateLimiter``: a token bucket (``rate`` per second, ``burst`` at once). A caller reserves a
  token and waits for it when it can have it within the request's deadline; otherwise it fails
  at once. It also obeys the upstream's own quota headers (``RateLimit-Remaining`` /
  ``X-RateLimit-Remaining`` with their reset, or the IETF structured ``RateLimit`` field): when
  the quota runs low, the calls left are spread over the rest of the window, and at zero calls
  wait for the reset instead of collecting 429s.
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
        # The upstream's own account of its quota, from its headers.
        self.remaining: int | None = None
        self.limit: int | None = None
        self._quota_reset = 0.0  # on our clock: when the upstream's quota window refills
        self._quota_slot = 0.0  # on our clock: the next call's turn while the quota runs low
        self._reserved = 0  # calls let through since the upstream last reported its quota

    def reserve(self, budget: float | None, *, bucket: bool = True) -> float:
        """Take a token; returns the seconds to wait before using it. Raises ``Rejected``
        (taking nothing) when that wait would exceed ``budget``. ``bucket=False``: only the
        upstream's own quota counts (the token came from the shared bucket)."""
        now = self._clock()
        wait = 0.0
        slot = None
        in_window = self.remaining is not None and now < self._quota_reset
        if self.remaining is not None and in_window:
            left = self.remaining - self._reserved  # minus calls sent since the upstream said so
            if left <= 0:
                wait = self._quota_reset - now
            elif left <= self._low_water():
                # Spread what is left over the rest of the window instead of spending it now
                # and collecting 429s until the reset; no turn lies past the reset, when the
                # quota is whole again.
                slot = min(max(now, self._quota_slot), self._quota_reset)
                wait = slot - now
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
        if in_window:
            self._reserved += 1
        if slot is not None and self.remaining:
            self._quota_slot = slot + (self._quota_reset - now) / self.remaining
        return wait

    def _low_water(self) -> int:
        """Remaining calls at which pacing starts: a tenth of the limit, at least 5."""
        return max(5, (self.limit or 0) // 10)

    def quota(self) -> dict[str, float] | None:
        """What the upstream last said about its quota (for /readyz and metrics)."""
        if self.remaining is None:
            return None
        report: dict[str, float] = {"remaining": self.remaining}
        if self.limit is not None:
            report["limit"] = self.limit
        left = self._quota_reset - self._clock()
        if left > 0:
            report["reset_in"] = round(left, 1)
        return report

    def observe(self, response: httpx.Response) -> None:
        """Read the upstream's quota headers: ``RateLimit-Remaining/-Reset/-Limit`` and the
        ``X-RateLimit-`` forms, or the structured ``RateLimit`` / ``RateLimit-Policy`` fields
        of the IETF draft (``"default";r=5;t=30``, ``"default";q=100;w=60``)."""
        headers = response.headers
        remaining = _count(headers, "remaining")
        reset = _count(headers, "reset")
        limit = _count(headers, "limit")
        structured = headers.get("ratelimit")
        policy: str | None = None
        if remaining is None and structured:
            policy, remaining, reset = _tightest(_members(structured), "r", "t")
        if limit is None and headers.get("ratelimit-policy"):
            quotas = _members(headers["ratelimit-policy"])
            # The limit of the policy that gave the remaining count, not another one's.
            same = quotas.get(policy) if policy is not None else None
            limit = _number(same.get("q")) if same else _tightest(quotas, "q", "w")[1]
        if remaining is None:
            return
        self.remaining = remaining
        self._reserved = 0  # the upstream's count includes the calls it has seen
        if limit is not None:
            self.limit = limit
        if reset is not None:
            # Seconds to wait, or (X- form, large values) a unix time of the reset, in seconds
            # or milliseconds. Never trust it for more than a minute: a wrong reading would
            # otherwise stop all calls, and then nothing could correct it.
            if reset > 10**12:
                reset //= 1000
            seconds = reset - time.time() if reset > 10**9 else reset
            self._quota_reset = self._clock() + min(_MAX_QUOTA_PAUSE, max(0.0, seconds))


def _count(headers: httpx.Headers, field: str) -> int | None:
    """``RateLimit-<field>``, else ``X-RateLimit-<field>``, as a whole number."""
    value = headers.get(f"ratelimit-{field}") or headers.get(f"x-ratelimit-{field}")
    return _number(value)


def _number(value: str | None) -> int | None:
    value = value.strip() if value else value
    return int(value) if value and value.isdigit() else None


def _members(value: str) -> dict[str, dict[str, str]]:
    """A structured field's members by policy name: ``"daily";r=9;t=30`` -> {"daily": {...}}."""
    members: dict[str, dict[str, str]] = {}
    for member in value.split(","):
        name, *parts = member.split(";")
        members[name.strip().strip('"')] = dict(
            part.strip().partition("=")[::2] for part in parts if "=" in part
        )
    return members


def _tightest(
    members: dict[str, dict[str, str]], count_key: str, time_key: str
) -> tuple[str | None, int | None, int | None]:
    """The policy with the smallest ``count_key``: its name, that count and its ``time_key``."""
    best: tuple[str | None, int | None, int | None] = (None, None, None)
    for name, params in members.items():
        count = _number(params.get(count_key))
        if count is not None and (best[1] is None or count < best[1]):
            best = (name, count, _number(params.get(time_key)))
    return best


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
