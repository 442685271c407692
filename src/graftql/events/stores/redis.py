"""The Redis inbox store, shared by replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from graftql.events.stores._base import InboxEvent, Outcome, _fail

# KEYS: record, pending set. ARGV: data, now, retention seconds, member.
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'status', 'pending', 'attempts', 0)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1
"""
# KEYS: pending set. ARGV: now, limit, lease end, record key prefix.
_CLAIM = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, m in ipairs(members) do
  redis.call('ZADD', KEYS[1], ARGV[3], m)
  local rec = redis.call('HMGET', ARGV[4] .. m, 'data', 'attempts')
  if rec[1] then
    table.insert(out, m); table.insert(out, rec[1]); table.insert(out, rec[2])
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
"""
# KEYS: entity key. ARGV: version, retention seconds.
_ADVANCE = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class RedisStore:
    """Redis: a hash per event (expiring after the retention), a sorted set of due events.
    Durable only as far as the Redis server's persistence is configured (``appendonly yes``,
    ``appendfsync always`` for no loss)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        retention: float,
        lease: float = 30.0,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.retention = int(retention)
        self.lease = lease
        self._pending = f"{prefix}pending"
        self._put = client.register_script(_PUT)
        self._claim = client.register_script(_CLAIM)
        self._advance = client.register_script(_ADVANCE)

    async def open(self) -> None:
        await self._run("connect", self._client.ping)

    async def close(self) -> None:
        await self._client.aclose()

    async def _run(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            async with asyncio.timeout(5):
                return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            raise _fail(what, exc) from exc

    @staticmethod
    def _member(source: str, event_id: str) -> str:
        return f"{source}\x1f{event_id}"

    async def put(self, event: InboxEvent, now: float) -> bool:
        member = self._member(event.source, event.event_id)
        keys = [f"{self.prefix}event:{member}", self._pending]
        args: list[bytes | str | float] = [event.encode(), now, self.retention, member]
        return bool(await self._run("store the event", lambda: self._put(keys=keys, args=args)))

    async def claim(self, now: float, limit: int) -> list[InboxEvent]:
        args: list[str | float] = [now, limit, now + self.lease, f"{self.prefix}event:"]
        flat = await self._run("claim events", lambda: self._claim(keys=[self._pending], args=args))
        events = []
        for i in range(0, len(flat), 3):
            source, _, event_id = flat[i].decode().partition("\x1f")
            events.append(InboxEvent.decode(source, event_id, flat[i + 1], int(flat[i + 2])))
        return events

    async def settle(self, event: InboxEvent, outcome: Outcome, now: float) -> None:
        member = self._member(event.source, event.event_id)

        async def settle() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                key = f"{self.prefix}event:{member}"
                pipe.hset(key, mapping={"status": outcome, "attempts": event.attempts})
                pipe.expire(key, self.retention)  # kept (for the dedup) from settling on
                pipe.zrem(self._pending, member)
                await pipe.execute()

        await self._run("settle an event", settle)

    async def retry(self, event: InboxEvent, at: float) -> None:
        member = self._member(event.source, event.event_id)

        async def retry() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(f"{self.prefix}event:{member}", "attempts", event.attempts)
                pipe.zadd(self._pending, {member: at})
                await pipe.execute()

        await self._run("reschedule an event", retry)

    async def advance(self, entity: str, version: float, now: float) -> bool:
        keys = [f"{self.prefix}version:{entity}"]
        args: list[str | float] = [repr(version), self.retention]
        return bool(
            await self._run(
                "record the entity version", lambda: self._advance(keys=keys, args=args)
            )
        )

    async def backlog(self) -> int:
        return int(await self._run("count the backlog", lambda: self._client.zcard(self._pending)))

    async def purge(self, before: float) -> int:
        return 0  # every record expires on its own after the retention
