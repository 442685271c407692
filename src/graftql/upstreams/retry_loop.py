"""The retry loop: one call as one or more guarded attempts, within the request's deadline and
the upstream's retry budget (``retry.py`` decides what is worth another attempt and how long
to wait). Each attempt's outcome is kept for /readyz and reported as an ``attempt`` event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Hashable

import httpx

from graftql.errors import CircuitOpen, UpstreamError, UpstreamNotFound
from graftql.upstreams import deadline, events
from graftql.upstreams.events import emit
from graftql.upstreams.guards import GuardedAttempts
from graftql.upstreams.policy import CallPolicy
from graftql.upstreams.retry import IDEMPOTENT_METHODS
from graftql.upstreams.singleflight import SingleFlight

__all__ = ["RetryLoop"]

_MAX_PAUSE = 60.0  # the longest retry wait without a request deadline


class RetryLoop(GuardedAttempts):
    """The part of an ``Upstream`` that retries a call's attempts."""

    flights: SingleFlight[httpx.Response]
    # What /readyz shows: when (time.monotonic) an attempt last succeeded, last failed and
    # the failure's error code. Plain attributes, set per attempt: no lock, no allocation.
    last_success: float | None
    last_failure: float | None
    last_failure_code: str | None

    async def _call(
        self,
        request: httpx.Request,
        call: CallPolicy,
        *,
        idempotent: bool,
        flight: Hashable | None = None,
    ) -> httpx.Response:
        policy = call.retry
        key_header = policy.config.idempotency_key_header
        if (
            key_header
            and not idempotent
            and request.method not in IDEMPOTENT_METHODS
            and key_header not in request.headers
        ):
            request.headers[key_header] = uuid.uuid4().hex  # the same key on every attempt
        safe = policy.may_retry(request, idempotent)
        policy.budget.record_call()
        attempt = 1
        while True:
            started = time.monotonic()
            try:
                response = await self._guarded(request, call)
            except UpstreamError as error:
                error.attempts = attempt
                if isinstance(error, UpstreamNotFound):
                    self.last_success = time.monotonic()  # it answered: no such resource
                elif error.retryable and not isinstance(error, CircuitOpen):
                    # The gateway's own refusals (its limits, an open breaker) sent nothing.
                    self.last_failure = time.monotonic()
                    self.last_failure_code = error.code
                if events.listening():
                    self._attempted(request, attempt, error.code, error.status, started)
                if not (
                    (safe or not error.sent)  # a call that never left may always go again
                    and attempt < policy.config.attempts
                    and policy.is_retryable(error)
                ):
                    raise
                pause = policy.delay(attempt, error)
                left = deadline.remaining()
                if left is None:
                    left = _MAX_PAUSE  # no deadline (a WebSocket operation): still a bound
                if pause >= left or not policy.budget.try_spend():
                    raise  # waiting would outlast the request, or we retry too much already
                emit("retry", self.name, attempt=attempt, delay=pause, reason=error.code)
                if flight is not None:
                    self.flights.close_to_joiners(flight)
                await asyncio.sleep(pause)
                attempt += 1
            else:
                response.extensions["graftql.attempts"] = attempt
                self.last_success = time.monotonic()
                if events.listening():
                    self._attempted(request, attempt, "ok", response.status_code, started)
                return response

    def _attempted(
        self, request: httpx.Request, attempt: int, outcome: str, status: int | None, started: float
    ) -> None:
        emit(
            "attempt",
            self.name,
            attempt=attempt,
            method=request.method,
            outcome=outcome,
            status=status,
            seconds=time.monotonic() - started,
        )
