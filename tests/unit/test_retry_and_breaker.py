"""Retry arithmetic and breaker transitions, with an injected clock and seeded randomness."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from graftql.config import BreakerConfig, RateLimitConfig, RetryConfig
from graftql.errors import (
    CircuitOpen,
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from graftql.upstreams.breaker import CircuitBreaker
from graftql.upstreams.limits import RateLimiter, Rejected
from graftql.upstreams.retry import RetryBudget, RetryPolicy, parse_retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_stays_within_full_jitter_bounds() -> None:
    policy = RetryPolicy(RetryConfig(base_delay=0.1, max_delay=1.0), rng=random.Random(7))
    error = UpstreamUnavailable("svc", "down")
    for retry in range(1, 9):
        ceiling = min(1.0, 0.1 * 2 ** (retry - 1))
        delays = [policy.delay(retry, error) for _ in range(500)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # it does use the whole range


def test_backoff_is_reproducible_with_a_seed() -> None:
    error = UpstreamUnavailable("svc", "down")
    one = RetryPolicy(RetryConfig(), rng=random.Random(1))
    two = RetryPolicy(RetryConfig(), rng=random.Random(1))
    assert [one.delay(n, error) for n in range(1, 6)] == [two.delay(n, error) for n in range(1, 6)]


def test_retry_after_wins_over_backoff() -> None:
    policy = RetryPolicy(RetryConfig(max_delay=0.5), rng=random.Random(1))
    error = UpstreamRateLimited("svc", "slow down", status=429)
    error.response = httpx.Response(429, headers={"retry-after": "2"})
    assert policy.delay(1, error) == 2.0


def test_parse_retry_after_both_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 11, 27, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    earlier = format_datetime(datetime(2026, 11, 27, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    for bad in (None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2026 00:00:00 GMT"):
        assert parse_retry_after(bad, now=now) is None


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (UpstreamUnavailable("s", "no connection"), True),
        (UpstreamTimeout("s", "no answer"), True),
        (UpstreamTimeout("s", "408", status=408), True),
        (UpstreamRateLimited("s", "429", status=429), True),
        (UpstreamUnavailable("s", "502", status=502), True),
        (UpstreamUnavailable("s", "503", status=503), True),
        (UpstreamTimeout("s", "504", status=504), True),
        (UpstreamBadResponse("s", "500", status=500), False),
        (UpstreamBadResponse("s", "400", status=400), False),
        (UpstreamNotFound("s", "404", status=404), False),
        (UpstreamAuthError("s", "401", status=401), False),
        (UpstreamBadResponse("s", "malformed"), False),
        (CircuitOpen("s", "open"), False),
    ],
)
def test_what_is_retried(error: Exception, retryable: bool) -> None:
    assert RetryPolicy.is_retryable(error) is retryable  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "idempotent", "key_header", "headers", "expected"),
    [
        ("GET", False, None, {}, True),
        ("PUT", False, None, {}, True),
        ("DELETE", False, None, {}, True),
        ("POST", True, None, {}, True),  # a GraphQL query
        ("POST", False, None, {}, False),  # a mutation or a REST create
        ("PATCH", False, None, {}, False),
        ("POST", False, "Idempotency-Key", {"Idempotency-Key": "k"}, True),
        ("POST", False, "Idempotency-Key", {}, False),
    ],
)
def test_only_safe_calls_may_be_retried(
    method: str, idempotent: bool, key_header: str | None, headers: dict[str, str], expected: bool
) -> None:
    policy = RetryPolicy(RetryConfig(idempotency_key_header=key_header))
    request = httpx.Request(method, "http://127.0.0.1:9/x", headers=headers)
    assert policy.may_retry(request, idempotent) is expected


def test_retry_budget_caps_retries_at_a_share_of_recent_calls() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, window=10, floor=3, clock=clock)
    for _ in range(100):
        budget.record_call()
    granted = sum(budget.try_spend() for _ in range(100))
    assert granted == 3 + 20
    clock.now += 11  # the window has passed: calls and retries are forgotten
    assert budget.try_spend() and budget.try_spend() and budget.try_spend()
    assert not budget.try_spend()  # only the floor is left with no recent calls


def breaker(clock: Clock, **config: float) -> CircuitBreaker:
    defaults = {"minimum_calls": 4, "failure_rate": 0.5, "window": 10, "open_for": 5}
    return CircuitBreaker(BreakerConfig(**{**defaults, **config}), clock=clock)  # type: ignore[arg-type]


def test_breaker_opens_on_failure_rate_only_after_minimum_calls() -> None:
    clock = Clock()
    cb = breaker(clock)
    for failed in (True, True, True):
        assert cb.allow()
        cb.record(failed=failed, duration=0.01)
    assert cb.state == "closed"  # 3 calls: below minimum_calls
    cb.record(failed=False, duration=0.01)
    assert cb.state == "open"  # 3 of 4 failed
    assert not cb.allow() and cb.retry_in() == 5


def test_breaker_forgets_outcomes_outside_the_window() -> None:
    clock = Clock()
    cb = breaker(clock)
    cb.record(failed=True, duration=0.01)
    cb.record(failed=True, duration=0.01)
    clock.now += 11
    cb.record(failed=False, duration=0.01)
    cb.record(failed=True, duration=0.01)
    cb.record(failed=False, duration=0.01)
    assert cb.state == "closed"  # only 3 calls in the window


def test_slow_calls_count_as_failures() -> None:
    clock = Clock()
    cb = breaker(clock, slow_call_duration=1.0)
    for _ in range(4):
        cb.record(failed=False, duration=1.5)
    assert cb.state == "open"


def test_half_open_admits_exactly_n_probes_and_closes_when_they_succeed() -> None:
    clock = Clock()
    cb = breaker(clock, half_open_probes=2)
    for _ in range(4):
        cb.record(failed=True, duration=0.01)
    clock.now += 5
    assert cb.state == "half_open"
    assert cb.allow() and cb.allow()
    assert not cb.allow()  # the third caller waits for the probes' verdict
    cb.record(failed=False, duration=0.01)
    assert cb.state == "half_open"
    cb.record(failed=False, duration=0.01)
    assert cb.state == "closed" and cb.allow()
    assert [state for _, state in cb.changes] == ["open", "half_open", "closed"]


def test_a_failed_probe_reopens_for_the_full_time() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(failed=True, duration=0.01)
    clock.now += 5
    assert cb.allow()
    cb.record(failed=True, duration=0.01)
    assert cb.state == "open" and cb.retry_in() == 5


def test_record_says_which_transition_it_caused() -> None:
    """What a replica announces to the others (shared breaker): only its own transitions."""
    clock = Clock()
    cb = breaker(clock)
    assert [cb.record(failed=True, duration=0.01) for _ in range(4)] == [None, None, None, "open"]
    clock.now += 5
    assert cb.allow()
    assert cb.record(failed=False, duration=0.01) == "closed"


def test_another_replicas_verdict_is_applied() -> None:
    clock = Clock()
    cb = breaker(clock)
    cb.force_open(2.0)  # another replica opened it 3 s ago (open_for 5)
    assert cb.state == "open" and cb.retry_in() == 2.0 and not cb.allow()
    clock.now += 2
    assert cb.state == "half_open"
    cb.force_open(5.0)  # the other replica's probe failed: open again, for the full time
    assert cb.state == "open" and cb.retry_in() == 5.0
    cb.force_close()
    assert cb.state == "closed" and cb.allow()
    assert [state for _, state in cb.changes] == ["open", "half_open", "open", "closed"]


def test_a_cancelled_probe_gives_its_slot_back() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record(failed=True, duration=0.01)
    clock.now += 5
    assert cb.allow() and not cb.allow()
    cb.release()
    assert cb.allow()


def test_token_bucket_arithmetic() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimitConfig(rate=10, burst=2), clock=clock)
    assert [limiter.reserve(None) for _ in range(4)] == pytest.approx([0, 0, 0.1, 0.2])
    with pytest.raises(Rejected):
        limiter.reserve(0.25)  # the next token is 0.3 s away: more than the budget
    assert limiter.reserve(0.35) == pytest.approx(0.3)  # the refusal took nothing
    clock.now += 10
    assert limiter.reserve(None) == 0  # refilled, but never beyond the burst
    assert limiter.reserve(None) == 0
    assert limiter.reserve(None) == pytest.approx(0.1)


def test_upstream_quota_headers_pause_calls_until_the_reset() -> None:
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(200, headers={"RateLimit-Remaining": "0", "RateLimit-Reset": "5"})
    )
    assert limiter.remaining == 0
    assert limiter.reserve(None) == 5
    with pytest.raises(Rejected):
        limiter.reserve(1)
    limiter.observe(httpx.Response(200, headers={"X-RateLimit-Remaining": "7"}))
    assert limiter.remaining == 7 and limiter.reserve(None) == 0


def test_a_low_quota_is_spread_over_the_rest_of_the_window() -> None:
    """5 calls left for the next 10 s (limit 50): one call every 2 s instead of 5 now and 429s
    after."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(
            200,
            headers={
                "X-RateLimit-Remaining": "5",
                "X-RateLimit-Reset": "10",
                "X-RateLimit-Limit": "50",
            },
        )
    )
    assert [limiter.reserve(None) for _ in range(3)] == pytest.approx([0, 2, 4])
    with pytest.raises(Rejected):
        limiter.reserve(5)  # the next turn is 6 s away
    assert limiter.quota() == {"remaining": 5, "limit": 50, "reset_in": 10.0}
    clock.now += 10  # the window has refilled: no more pacing
    assert limiter.reserve(None) == 0 and limiter.reserve(None) == 0


def test_calls_past_the_quota_wait_for_the_reset_and_no_turn_lies_beyond_it() -> None:
    """2 calls left for 10 s: the third and later callers (before the upstream says more)
    wait for the reset, not for turns 15 s, 20 s... away that the old pacing handed out."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(
            200,
            headers={"RateLimit-Remaining": "2", "RateLimit-Reset": "10", "RateLimit-Limit": "100"},
        )
    )
    assert [limiter.reserve(None) for _ in range(5)] == pytest.approx([0, 5, 10, 10, 10])
    # A fresh report from the upstream replaces the local count.
    limiter.observe(
        httpx.Response(200, headers={"RateLimit-Remaining": "50", "RateLimit-Reset": "10"})
    )
    assert limiter.reserve(None) == 0


def test_a_burst_larger_than_the_quota_does_not_spend_past_it() -> None:
    """40 left, 60 callers at once: 40 go (the last few paced), 20 wait for the reset."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(
            200,
            headers={
                "RateLimit-Remaining": "40",
                "RateLimit-Reset": "30",
                "RateLimit-Limit": "100",
            },
        )
    )
    waits = [limiter.reserve(None) for _ in range(60)]
    assert waits[:30] == [0] * 30  # plenty left: no pacing
    assert all(0 <= w < 30 for w in waits[30:40])
    assert waits[40:] == [30] * 20


def test_plenty_of_quota_is_not_paced() -> None:
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(
            200,
            headers={
                "RateLimit-Remaining": "40",
                "RateLimit-Reset": "10",
                "RateLimit-Limit": "100",
            },
        )
    )
    assert [limiter.reserve(None) for _ in range(10)] == [0] * 10


def test_a_low_structured_quota_is_paced_by_its_own_policys_limit() -> None:
    """9 left of a daily 1000 is low (under a tenth), however large a burst policy's limit."""
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(
            200,
            headers={
                "RateLimit": '"burst";r=40;t=1, "daily";r=9;t=36',
                "RateLimit-Policy": '"burst";q=50;w=1, "daily";q=1000;w=86400',
            },
        )
    )
    assert (limiter.remaining, limiter.limit) == (9, 1000)
    assert [limiter.reserve(None) for _ in range(3)] == pytest.approx([0, 4, 8])


def test_the_structured_ietf_fields_are_read() -> None:
    clock = Clock()
    limiter = RateLimiter(None, clock=clock)
    limiter.observe(
        httpx.Response(
            200,
            headers={
                "RateLimit": '"burst";r=40;t=1, "daily";r=0;t=30',
                "RateLimit-Policy": '"burst";q=100;w=1, "daily";q=1000;w=86400',
            },
        )
    )
    assert limiter.remaining == 0 and limiter.limit == 1000  # the daily policy's own limit
    assert limiter.reserve(None) == 30
    limiter.observe(httpx.Response(200, headers={"RateLimit": "garbage;r=x"}))
    assert limiter.remaining == 0  # an unreadable field changes nothing


def test_retry_budget_forgets_old_calls_even_without_retries() -> None:
    clock = Clock()
    budget = RetryBudget(0.2, window=10, clock=clock)
    for _ in range(10_000):
        budget.record_call()
        clock.now += 1
    assert len(budget._calls) <= 11  # bounded by the window, not by the traffic
