"""Policy state that every replica of the gateway shares through Redis.

Two policies can be shared (``shared: true`` in their block, plus the top-level ``redis:``):

- **Rate limit.** One token bucket for all replicas, kept as a GCRA "theoretical arrival
  time" in one Redis key and updated by a Lua script that reads Redis' own clock, so replicas'
  clocks never matter. A caller reserves a token and learns how long to wait for it, exactly as
  with the local bucket; a wait beyond the caller's deadline takes nothing.
- **Circuit breaker.** Each replica counts outcomes itself (no Redis call on the hot path); when
  one opens its breaker it stores "open" with a time to live of ``open_for`` and publishes it,
  and every other replica opens too. After ``open_for`` the replicas go half-open together, but
  only ``half_open_probes`` probes go out in all (a counter in Redis); the probing replica
  publishes the outcome: closed for everyone, or open again. A replica that starts, or that
  reconnects to Redis, reads the stored state first.

Redis is an optimisation here, never a dependency of an answer: when it is unreachable or slow
(each command is bounded by ``redis.timeout``), every replica falls back to its local bucket
and breaker, logs a warning (at most every 30 s), and picks the shared state up again when
Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from graftql.config import RateLimitConfig, RedisConfig
from graftql.upstreams.breaker import CircuitBreaker, State
from graftql.upstreams.events import emit
from graftql.upstreams.limits import Rejected

__all__ = ["SharedState"]

logger = logging.getLogger("graftql.upstreams")

_T = TypeVar("_T")
_WARN_EVERY = 30.0
_RETRY_AFTER = 5.0  # seconds without Redis commands after one failed
_RESUBSCRIBE_DELAY = (0.1, 5.0)  # first and longest wait between attempts to listen again

# KEYS[1]: the bucket. ARGV: microseconds per token, burst, the caller's budget in microseconds
# (-1: none), the tokens to take. Returns {1, wait} with the wait in microseconds, or {0, wait}
# when refused.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local weight = tonumber(ARGV[4] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + (weight - burst) * interval - now
if wait < 0 then wait = 0 end
if budget >= 0 and wait > budget then return {0, wait} end
local new = tat + weight * interval
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, wait}
"""

# KEYS[1]: the probe counter. ARGV: probes allowed, its time to live in ms. 1 when admitted.
_CLAIM_PROBE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return 1 end
return 0
"""


class RedisUnavailable(Exception):
    """Redis did not answer a command in time, refused it, or is being left alone after that."""


class RedisGuard:
    """How one user of Redis treats it: each command bounded by ``timeout``; after a failure
    Redis is left alone for a few seconds (a Redis that hangs costs one timeout now and then,
    not one per upstream call); a warning at most every 30 s naming what failed and what the
    gateway does ``instead``. Shared by the replicas' policies and the response cache."""

    def __init__(self, timeout: float, instead: str) -> None:
        self.timeout = timeout
        self._instead = instead
        self.available = True  # as of the last command
        self._retry_at = 0.0  # while unavailable: when to try Redis again
        self._warned_at = -_WARN_EVERY

    async def run(self, what: str, command: Callable[[], Awaitable[_T]]) -> _T:
        """``command()`` within the timeout; ``RedisUnavailable`` (after a warning) if not."""
        if not self.available and time.monotonic() < self._retry_at:
            raise RedisUnavailable(what)
        try:
            async with asyncio.timeout(self.timeout):
                result = await command()
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(what, exc)
            raise RedisUnavailable(what) from exc
        self.available = True
        return result

    def ask_now(self) -> None:
        """The next command asks Redis even while resting (an explicit health check)."""
        self._retry_at = 0.0

    def failed(self, what: str, exc: BaseException) -> None:
        self.available = False
        now = time.monotonic()
        self._retry_at = now + _RETRY_AFTER
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "redis unavailable (%s: %s); %s", what, type(exc).__name__, self._instead
            )


class SharedState:
    """The Redis connection behind every shared policy of one gateway process."""

    def __init__(self, config: RedisConfig, *, client: aioredis.Redis | None = None) -> None:
        self.config = config
        self._client = client or aioredis.Redis.from_url(
            config.url,
            password=config.password.reveal() if config.password else None,
            socket_timeout=config.timeout,
            socket_connect_timeout=config.timeout,
            health_check_interval=0,
        )
        self._prefix = config.key_prefix
        self._channel = f"{self._prefix}breaker"
        self._replica = uuid.uuid4().hex  # this process, so it ignores its own announcements
        self._breakers: dict[str, CircuitBreaker] = {}
        self._gcra = self._client.register_script(_GCRA)
        self._claim = self._client.register_script(_CLAIM_PROBE)
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.guard = RedisGuard(config.timeout, "shared policies fall back to this replica's own")

    # -- the connection ---------------------------------------------------------------------

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, for other Redis users of the process (the response cache)."""
        return self._client

    @property
    def available(self) -> bool:
        """Did Redis answer the last command?"""
        return self.guard.available

    async def _run(self, what: str, command: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run one command within the configured timeout; None (after a warning) on failure."""
        try:
            return await self.guard.run(what, command)
        except RedisUnavailable:
            return None

    async def start(self) -> None:
        """Listen for other replicas' breaker changes (once per process, on first use)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="graftql-shared-breakers")
            # Wait briefly for the subscription, so the first call already sees remote state;
            # never long: Redis being down must not hold up a call.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.timeout):
                    await self._listening.wait()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._client.aclose()

    async def _listen(self) -> None:
        delay = _RESUBSCRIBE_DELAY[0]
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                for name in list(self._breakers):  # what happened while we were not listening
                    await self._sync(name)
                self._listening.set()
                self.guard.available = True
                delay = _RESUBSCRIBE_DELAY[0]
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._receive(message.get("data"))
            except (RedisError, OSError, TimeoutError) as exc:
                self.guard.failed("listening", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._listening.clear()
            await asyncio.sleep(delay)
            delay = min(_RESUBSCRIBE_DELAY[1], delay * 2)

    async def ping(self) -> bool:
        """Does Redis answer now? (for /readyz)"""
        self.guard.ask_now()
        return bool(await self._run("ping", self._client.ping))

    # -- the breaker --------------------------------------------------------------------------

    def track(self, name: str, breaker: CircuitBreaker) -> None:
        """Keep ``breaker`` (upstream ``name``) in step with the other replicas."""
        self._breakers[name] = breaker

    async def _sync(self, name: str) -> None:
        """Take over the stored state: open for what is left of it, if another replica opened."""
        breaker = self._breakers[name]
        ttl = await self._client.pttl(self._key("open", name))
        if ttl > 0:
            self._apply(name, breaker, "open", ttl / 1000)

    def _receive(self, data: Any) -> None:
        try:
            message = orjson.loads(data)
            name, state, replica = message["upstream"], message["state"], message["replica"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignored a malformed breaker announcement on %s", self._channel)
            return
        breaker = self._breakers.get(name)
        if breaker is None or replica == self._replica:
            return
        self._apply(name, breaker, state, float(message.get("open_for", 0)))

    def _apply(self, name: str, breaker: CircuitBreaker, state: State, seconds: float) -> None:
        before = breaker.state
        if state == "open":
            breaker.force_open(seconds)
        elif state == "closed":
            breaker.force_close()
        if breaker.state != before:
            emit("breaker", name, state=breaker.state, source="shared")

    async def claim_probe(self, name: str, breaker: CircuitBreaker) -> bool:
        """May this replica send one of the half-open probes? Without Redis: yes (local)."""
        ttl_ms = int(breaker.config.open_for * 1000)
        key = self._key("probes", name)
        claimed = await self._run(
            "claim a probe",
            lambda: self._claim(keys=[key], args=[breaker.config.half_open_probes, ttl_ms]),
        )
        return claimed is None or bool(claimed)

    async def probe_succeeded(self, name: str, breaker: CircuitBreaker) -> bool:
        """Count a successful half-open probe for all replicas; True once ``half_open_probes``
        of them succeeded, wherever they were sent (the breaker closes everywhere then)."""
        key = self._key("probes_ok", name)
        ttl_ms = int(breaker.config.open_for * 1000)

        async def count() -> int:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, ttl_ms)
                done, _ = await pipe.execute()
            return int(done)

        done = await self._run("count a probe", count)
        return done is not None and done >= breaker.config.half_open_probes

    async def announce(self, name: str, state: State, breaker: CircuitBreaker) -> None:
        """Tell the other replicas that this one opened or closed the breaker."""
        if state == "half_open":
            return  # every replica gets there on its own clock
        open_for = breaker.config.open_for
        message = orjson.dumps(
            {"upstream": name, "state": state, "replica": self._replica, "open_for": open_for}
        )
        open_key = self._key("open", name)
        probes_keys = (self._key("probes", name), self._key("probes_ok", name))

        async def store_and_publish() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                if state == "open":
                    pipe.set(open_key, "1", px=int(open_for * 1000))
                else:
                    pipe.delete(open_key)
                pipe.delete(*probes_keys)
                pipe.publish(self._channel, message)
                await pipe.execute()

        await self._run("announce the breaker", store_and_publish)

    # -- the rate limit -----------------------------------------------------------------------

    async def reserve(
        self, name: str, config: RateLimitConfig, budget: float | None, *, weight: int = 1
    ) -> float:
        """Take ``weight`` tokens from the shared bucket ``name`` (an upstream's name, or
        ``inbound:<client>`` for the inbound limit); seconds to wait for them. ``Rejected``
        (taking nothing) when that is beyond ``budget``; ``LookupError`` when Redis cannot
        answer."""
        interval = round(1_000_000 / config.rate)
        limit = -1 if budget is None else max(0, int(budget * 1_000_000))
        key = self._key("rate", name)
        result = await self._run(
            "take a rate-limit token",
            lambda: self._gcra(keys=[key], args=[interval, config.burst, limit, weight]),
        )
        if result is None:
            raise LookupError("redis unavailable")
        admitted, wait = int(result[0]), int(result[1]) / 1_000_000
        if not admitted:
            raise Rejected(wait)
        return wait

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"
