"""The Redis backend of the response cache, for several replicas (the top-level ``redis:``).

One backend per gateway process, over the connection pool of the process' ``SharedState``.
An entry is one key (``<prefix>cache:<upstream>:<sha256>``) whose value is the entry's bytes
and whose time to live is how long the entry is worth keeping; a tag is one counter
(``<prefix>cache-tag:<tag>``) read together with the entry in one round trip.

Redis is never a dependency of an answer: each command is bounded by ``redis.timeout``; when
one fails or is late, the call bypasses the cache (it goes to the upstream), a warning is
logged at most every 30 s, and Redis is left alone for a few seconds, so a hanging Redis costs
one timeout now and then rather than one per call. ``/readyz`` shows the cache degraded then.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from graftql.upstreams.cache_store import BackendUnavailable, Entry
from graftql.upstreams.shared import RedisGuard, RedisUnavailable, SharedState

__all__ = ["RedisBackend"]

_T = TypeVar("_T")
_backends: weakref.WeakKeyDictionary[SharedState, RedisBackend] = weakref.WeakKeyDictionary()


class RedisBackend:
    name = "redis"

    def __init__(self, shared: SharedState) -> None:
        self._client = shared.client
        self._prefix = shared.config.key_prefix
        self._guard = RedisGuard(shared.config.timeout, "upstream calls bypass the response cache")

    @classmethod
    def of(cls, shared: SharedState) -> RedisBackend:
        """The one backend of this process' Redis connection."""
        backend = _backends.get(shared)
        if backend is None:
            backend = _backends[shared] = cls(shared)
        return backend

    @property
    def available(self) -> bool:
        return self._guard.available

    async def _run(self, what: str, command: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await self._guard.run(what, command)
        except RedisUnavailable:
            raise BackendUnavailable("redis unavailable") from None

    def _key(self, key: str) -> str:
        return f"{self._prefix}cache:{key}"

    def _tag(self, tag: str) -> str:
        return f"{self._prefix}cache-tag:{tag}"

    async def get(self, key: str, tags: Sequence[str]) -> tuple[Entry | None, tuple[int, ...]]:
        keys = [self._key(key), *(self._tag(t) for t in tags)]
        values = await self._run("read the response cache", lambda: self._client.mget(keys))
        raw, generations = values[0], tuple(int(v or 0) for v in values[1:])
        if not isinstance(raw, bytes):
            return None, generations
        try:
            return Entry.loads(raw), generations
        except (ValueError, TypeError, IndexError, KeyError):
            return None, generations  # not ours, or an older format: a miss

    async def put(self, key: str, entry: Entry, keep: float) -> None:
        data = entry.dumps()
        milliseconds = max(int(keep * 1000), 1)
        await self._run(
            "write the response cache",
            lambda: self._client.set(self._key(key), data, px=milliseconds),
        )

    async def delete(self, key: str) -> None:
        await self._run("write the response cache", lambda: self._client.delete(self._key(key)))

    async def bump(self, tags: Sequence[str]) -> None:
        async def incr() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for tag in tags:
                    pipe.incr(self._tag(tag))
                await pipe.execute()

        await self._run("invalidate cache tags", incr)

    async def healthy(self) -> bool:
        self._guard.ask_now()
        try:
            await self._run("ping", self._client.ping)
        except BackendUnavailable:
            return False
        return True
