"""Circuit breaker: stop calling an upstream that keeps failing, and find out when it is back.

- closed: calls go through; outcomes of the last ``window`` seconds are kept. Once at least
  ``minimum_calls`` are seen and the failure rate (failures and slow calls) reaches
  ``failure_rate``, the breaker opens.
- open: every call fails at once with ``CircuitOpen``, no request is sent, for ``open_for``
  seconds.
- half-open: exactly ``half_open_probes`` calls go through; when they all succeed the breaker
  closes, the first failure opens it again. Other calls meanwhile fail with ``CircuitOpen``.

The clock is injected; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from graftql.config import BreakerConfig

__all__ = ["CircuitBreaker", "State"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self, config: BreakerConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._clock = clock
        self._state: State = "closed"
        self._opened_at = 0.0
        self._outcomes: deque[tuple[float, bool]] = deque()  # (when, failed)
        self._failures = 0  # failed outcomes in _outcomes, kept in step (no recount per call)
        self._probes_out = 0
        self._probes_ok = 0
        self.changes: list[tuple[float, State]] = []  # transitions, for /readyz and metrics

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.config.open_for:
            self._move("half_open")
        return self._state

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.config.open_for - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go out now? A True in half-open reserves one of the probes."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and self._probes_out < self.config.half_open_probes:
            self._probes_out += 1
            return True
        return False

    def record(self, *, failed: bool, duration: float) -> State | None:
        """Count one outcome; returns the new state when this outcome changed it."""
        slow = self.config.slow_call_duration
        failed = failed or (slow is not None and duration >= slow)
        now = self._clock()
        if self._state == "half_open":
            if failed:
                self._open(now)
                return "open"
            self._probes_ok += 1
            if self._probes_ok >= self.config.half_open_probes:
                self._move("closed")
                return "closed"
            return None
        if self._state == "open":
            return None  # a call admitted before the breaker opened
        self._outcomes.append((now, failed))
        self._failures += failed
        horizon = now - self.config.window
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._failures -= self._outcomes.popleft()[1]
        total = len(self._outcomes)
        if (
            total >= self.config.minimum_calls
            and self._failures / total >= self.config.failure_rate
        ):
            self._open(now)
            return "open"
        return None

    def release(self) -> None:
        """A probe that ended without an outcome (cancelled) gives its slot back."""
        if self._state == "half_open" and self._probes_out > self._probes_ok:
            self._probes_out -= 1

    def force_open(self, seconds: float) -> None:
        """Open for ``seconds`` from now because another replica opened it (or reopened it)."""
        now = self._clock()
        self._opened_at = now - max(0.0, self.config.open_for - seconds)
        if self._state != "open":
            self._move("open")
        else:
            self._probes_out = self._probes_ok = 0

    def force_close(self) -> None:
        """Close because another replica's probes succeeded."""
        if self._state != "closed":
            self._move("closed")

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._move("open")

    def _move(self, state: State) -> None:
        self._state = state
        self._outcomes.clear()
        self._failures = 0
        self._probes_out = self._probes_ok = 0
        self.changes.append((self._clock(), state))
        del self.changes[:-20]
