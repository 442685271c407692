"""Retries: which failures are worth another attempt, how long to wait, and how many retries
an upstream may receive in all.

- Backoff is exponential with full jitter: the n-th retry waits a uniformly random time in
  ``[0, min(max_delay, base_delay * 2**(n-1))]``, so a crowd of callers spreads out instead of
  retrying in step.
- ``Retry-After`` (seconds or an HTTP-date) from the upstream wins over the backoff.
- The retry budget caps retries at a fraction of the calls made in a recent window (plus a small
  floor), so a failing upstream never receives several times its normal load from us.

Clock and randomness are injected, so every number here is testable without sleeping.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx

from graftql.config import RetryConfig
from graftql.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable

__all__ = ["RetryBudget", "RetryPolicy", "parse_retry_after"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; anything else is not one
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class RetryBudget:
    """At most ``ratio`` retries per call over the last ``window`` seconds, plus ``floor``
    retries per window so that a quiet upstream can still be retried at all."""

    def __init__(
        self,
        ratio: float,
        *,
        window: float = 10.0,
        floor: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.window = window
        self.floor = floor
        self._clock = clock
        self._calls: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        for events in (self._calls, self._retries):
            while events and events[0] < horizon:
                events.popleft()

    def record_call(self) -> None:
        now = self._clock()
        self._prune(now)  # also here: an upstream that never needs a retry must not grow this
        self._calls.append(now)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is used up."""
        now = self._clock()
        self._prune(now)
        if len(self._retries) >= self.floor + self.ratio * len(self._calls):
            return False
        self._retries.append(now)
        return True


class RetryPolicy:
    """One upstream's retry rules (the ``retry:`` block)."""

    def __init__(
        self,
        config: RetryConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        budget: RetryBudget | None = None,
    ) -> None:
        self.config = config
        self.budget = budget or RetryBudget(config.budget, window=config.budget_window, clock=clock)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def may_retry(self, request: httpx.Request, idempotent: bool) -> bool:
        """Only calls that are safe to repeat: idempotent methods and GraphQL queries, or a
        POST that carries the configured idempotency key."""
        if idempotent or request.method in IDEMPOTENT_METHODS:
            return True
        header = self.config.idempotency_key_header
        return header is not None and header in request.headers

    @staticmethod
    def is_retryable(error: UpstreamError) -> bool:
        """Connect errors, lost connections, timeouts, 408, 429, 502, 503, 504; never other 4xx,
        and never a call the gateway's own limits refused."""
        if not error.retryable:
            return False
        if error.status is not None:
            return error.status in _RETRY_STATUSES
        return isinstance(error, UpstreamUnavailable | UpstreamTimeout | UpstreamRateLimited)

    def delay(self, retry: int, error: UpstreamError) -> float:
        """Seconds before retry number ``retry`` (1 for the first retry)."""
        response = error.response
        if isinstance(response, httpx.Response):
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is not None:
                return after
        cfg = self.config
        ceiling = min(cfg.max_delay, cfg.base_delay * 2 ** (retry - 1))
        return self._rng.uniform(0, ceiling)
