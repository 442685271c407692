"""What stands before each attempt, outermost first: the bulkhead (how many calls may be in
flight), the circuit breaker (is the upstream failing?) and the rate limit (may a call go now,
or after a wait within the deadline?), each this replica's own or shared through Redis
(``shared.py``). A refusal here sends nothing and is never retried (docs/resilience.md).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from graftql.errors import (
    CircuitOpen,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from graftql.upstreams import deadline
from graftql.upstreams.attempt import Attempts
from graftql.upstreams.breaker import CircuitBreaker, State
from graftql.upstreams.events import emit
from graftql.upstreams.limits import Bulkhead, Rejected
from graftql.upstreams.policy import CallPolicy
from graftql.upstreams.shared import SharedState

__all__ = ["GuardedAttempts"]


class GuardedAttempts(Attempts):
    """The part of an ``Upstream`` that lets an attempt through its bulkhead, breaker and
    rate limit."""

    bulkhead: Bulkhead
    breaker: CircuitBreaker | None
    _shared_breaker: SharedState | None  # set when the breaker is ``shared: true``
    _shared_rate: SharedState | None  # set when the rate limit is ``shared: true``

    async def _guarded(self, request: httpx.Request, call: CallPolicy) -> httpx.Response:
        """One attempt behind the bulkhead, the circuit breaker and the rate limit."""
        bulkhead = self.bulkhead  # a reload may replace it while this call is in flight
        try:
            await bulkhead.acquire(deadline.remaining())
        except Rejected:
            emit("rejected", self.name, by="bulkhead")
            raise self._refused(
                UpstreamUnavailable, f"too many calls to {self.name} are already waiting"
            ) from None
        try:
            return await self._behind_breaker(request, call)
        finally:
            bulkhead.release()

    async def _behind_breaker(self, request: httpx.Request, call: CallPolicy) -> httpx.Response:
        breaker = self.breaker
        if breaker is None:
            await self._take_rate_token()
            return await self._attempt(request, call)
        shared = self._shared_breaker
        if shared is not None:
            await shared.start()  # hear the other replicas before the first call
        if not breaker.allow():
            raise self._circuit_open(breaker)
        probe = breaker.state == "half_open"
        if shared is not None and probe:
            if not await shared.claim_probe(self.name, breaker):
                breaker.release()  # another replica sends the probes
                raise self._circuit_open(breaker)
        moved: State | None = None
        try:
            await self._take_rate_token()
            started = time.monotonic()  # a slow call is the upstream's time, not our queueing
            response = await self._attempt(request, call)
        except UpstreamError as error:
            if error.retryable:  # the gateway's own refusals say nothing about the upstream
                moved = breaker.record(
                    failed=_is_outage(error), duration=time.monotonic() - started
                )
            else:
                breaker.release()
            raise
        except BaseException:
            breaker.release()
            raise
        else:
            moved = breaker.record(failed=False, duration=time.monotonic() - started)
            if (
                shared is not None
                and probe
                and moved is None
                and breaker.state == "half_open"
                and await shared.probe_succeeded(self.name, breaker)
            ):
                # The other probes succeeded on other replicas: close here, and everywhere.
                breaker.force_close()
                moved = "closed"
        finally:
            if moved is not None:
                emit("breaker", self.name, state=moved)
                if shared is not None:
                    await shared.announce(self.name, moved, breaker)
        return response

    def _circuit_open(self, breaker: CircuitBreaker) -> CircuitOpen:
        return CircuitOpen(
            self.name, f"{self.name} is failing; calls are paused for {breaker.retry_in():.0f}s"
        )

    async def _take_rate_token(self) -> None:
        budget = deadline.remaining()
        if budget is not None and budget <= 0:
            # The time ran out before this call's turn (e.g. while it queued in the
            # bulkhead): a timeout, whatever a rate limit would have said about a wait of 0.
            raise self._deadline_passed()
        try:
            if self._shared_rate is not None and self.config.rate_limit is not None:
                try:
                    wait = await self._shared_rate.reserve(
                        self.name, self.config.rate_limit, budget
                    )
                except LookupError:  # Redis cannot answer: this replica's own bucket
                    wait = self.rate.reserve(budget)
                else:
                    wait = max(wait, self.rate.reserve(budget, bucket=False))
            else:
                wait = self.rate.reserve(budget)
        except Rejected as rejected:
            emit("rejected", self.name, by="rate_limit", wait=rejected.wait)
            raise self._refused(
                UpstreamRateLimited,
                f"the gateway's rate limit for {self.name} leaves no call before the deadline",
            ) from None
        if wait > 0:
            emit("rate_limit_wait", self.name, seconds=wait)
            await asyncio.sleep(wait)


def _is_outage(error: UpstreamError) -> bool:
    """Failures that say the upstream is unwell (what the breaker counts): no connection, no
    answer in time, or a 5xx. A 4xx is about our request, not about its health."""
    if error.status is not None:
        return error.status >= 500
    return isinstance(error, UpstreamUnavailable | UpstreamTimeout)
