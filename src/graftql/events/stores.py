"""Where the webhook inbox keeps events: SQLite (default), PostgreSQL or Redis.

Each store does the same five things atomically: insert an event unless its (source, id) is
already known (``put``, the dedup), take due events for processing under a lease (``claim``),
settle them (``settle``) or put them back for later (``retry``), and keep the highest version
seen per entity (``advance``, the ordering rule). A store error is raised as ``StoreError``:
the webhook route then answers 503 and the sender retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosqlite
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from graftql.config import GatewayConfig
from graftql.config.events import InboxConfig
from graftql.errors import GraftqlError

__all__ = [
    "InboxEvent",
    "InboxStore",
    "PostgresStore",
    "RedisStore",
    "SqliteStore",
    "StoreError",
    "store_from_config",
]

Outcome = Literal["processed", "superseded", "failed"]


class StoreError(GraftqlError):
    """The inbox's store could not do what was asked (unreachable, read-only, full)."""


@dataclass
class InboxEvent:
    """One verified delivery, as stored."""

    source: str
    event_id: str
    topic: str
    event: dict[str, Any]  # what is published on the bus
    entity: str | None = None
    version: float | None = None
    tags: list[str] = field(default_factory=list)
    attempts: int = 0

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "topic": self.topic,
                "event": self.event,
                "entity": self.entity,
                "version": self.version,
                "tags": self.tags,
            }
        )

    @classmethod
    def decode(cls, source: str, event_id: str, data: bytes | str, attempts: int) -> InboxEvent:
        fields = orjson.loads(data)
        return cls(source=source, event_id=event_id, attempts=attempts, **fields)


class InboxStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, event: InboxEvent, now: float) -> bool:
        """Store ``event`` durably; False (storing nothing) if its id is already known."""

    async def claim(self, now: float, limit: int) -> list[InboxEvent]:
        """Take up to ``limit`` due events, hidden from other claims for the lease."""

    async def settle(self, event: InboxEvent, outcome: Outcome, now: float) -> None: ...

    async def retry(self, event: InboxEvent, at: float) -> None:
        """Count a failed attempt and make the event due again at ``at``."""

    async def advance(self, entity: str, version: float, now: float) -> bool:
        """Record ``version`` for ``entity`` unless a higher one is recorded; True when this
        event is not older than what was already processed."""

    async def backlog(self) -> int:
        """Events stored and not yet settled."""

    async def purge(self, before: float) -> int:
        """Forget settled events and entity versions last touched before ``before``."""


def _fail(what: str, exc: BaseException) -> StoreError:
    return StoreError(f"inbox store: cannot {what} ({type(exc).__name__})")


class SqliteStore:
    """One SQLite file, in WAL mode with ``synchronous=FULL``: a committed insert survives a
    crash of the process and of the machine. One gateway process per file."""

    def __init__(self, path: str | Path, *, table: str = "graftql_inbox", lease: float = 30.0):
        self.path = str(path)
        self.table = table
        self.lease = lease
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._writes: list[tuple[str, str, tuple[Any, ...], asyncio.Future[int]]] = []

    async def open(self) -> None:
        try:
            self._db = await aiosqlite.connect(self.path)
            t = self.table
            await self._db.executescript(
                f"""
                PRAGMA journal_mode=WAL;
                PRAGMA synchronous=FULL;
                PRAGMA busy_timeout=5000;
                CREATE TABLE IF NOT EXISTS {t} (
                    source TEXT NOT NULL, event_id TEXT NOT NULL, data BLOB NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                    due REAL NOT NULL, received REAL NOT NULL, settled REAL,
                    PRIMARY KEY (source, event_id));
                CREATE INDEX IF NOT EXISTS {t}_due ON {t} (status, due);
                CREATE TABLE IF NOT EXISTS {t}_versions (
                    entity TEXT PRIMARY KEY, version REAL NOT NULL, touched REAL NOT NULL);
                """
            )
            # This process owns the file: what an earlier run had claimed is due now.
            await self._db.execute(
                f"UPDATE {t} SET due = ? WHERE status = 'pending'",  # noqa: S608 - table name from validated config
                (time.time(),),
            )
            await self._db.commit()
        except (aiosqlite.Error, OSError) as exc:
            await self.close()
            raise _fail("open the database", exc) from exc

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("inbox store: not open")
        return self._db

    async def _write(self, what: str, sql: str, args: tuple[Any, ...]) -> int:
        """Run one write; its row count once committed.

        Group commit: the writes that arrive while a commit (an fsync) is under way are run
        together in the next transaction and committed once; each caller still returns only
        after its own write is committed, and a failure fails every write of that group."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._writes.append((what, sql, args, done))
        async with self._lock:
            if not done.done():
                await self._commit_waiting()
        return done.result()

    async def _commit_waiting(self) -> None:
        batch, self._writes = self._writes, []
        counts = []
        failing = batch[0][0]
        try:
            for what, sql, args, _ in batch:
                failing = what
                counts.append((await self.db.execute(sql, args)).rowcount)
            await self.db.commit()
        except (aiosqlite.Error, OSError, StoreError) as exc:
            with contextlib.suppress(aiosqlite.Error, OSError, StoreError):
                await self.db.rollback()
            error = exc if isinstance(exc, StoreError) else _fail(failing, exc)
            for *_, done in batch:
                done.set_exception(error)
            return
        for (*_, done), count in zip(batch, counts, strict=True):
            done.set_result(count)

    async def put(self, event: InboxEvent, now: float) -> bool:
        inserted = await self._write(
            "store the event",
            f"INSERT OR IGNORE INTO {self.table} (source, event_id, data, due, received) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?)",
            (event.source, event.event_id, event.encode(), now, now),
        )
        return inserted == 1

    async def claim(self, now: float, limit: int) -> list[InboxEvent]:
        async with self._lock:
            try:
                cursor = await self.db.execute(
                    f"UPDATE {self.table} SET due = ? WHERE rowid IN ("  # noqa: S608
                    f"SELECT rowid FROM {self.table} WHERE status = 'pending' AND due <= ? "
                    "ORDER BY received LIMIT ?) RETURNING source, event_id, data, attempts",
                    (now + self.lease, now, limit),
                )
                rows = list(await cursor.fetchall())
                await self.db.commit()
            except (aiosqlite.Error, OSError) as exc:
                raise _fail("claim events", exc) from exc
        return [InboxEvent.decode(*row) for row in rows]

    async def settle(self, event: InboxEvent, outcome: Outcome, now: float) -> None:
        await self._write(
            "settle an event",
            f"UPDATE {self.table} SET status = ?, settled = ?, attempts = ? "  # noqa: S608
            "WHERE source = ? AND event_id = ?",
            (outcome, now, event.attempts, event.source, event.event_id),
        )

    async def retry(self, event: InboxEvent, at: float) -> None:
        await self._write(
            "reschedule an event",
            f"UPDATE {self.table} SET due = ?, attempts = ? "  # noqa: S608
            "WHERE source = ? AND event_id = ?",
            (at, event.attempts, event.source, event.event_id),
        )

    async def advance(self, entity: str, version: float, now: float) -> bool:
        changed = await self._write(
            "record the entity version",
            f"INSERT INTO {self.table}_versions (entity, version, touched) VALUES (?, ?, ?) "  # noqa: S608
            "ON CONFLICT (entity) DO UPDATE SET version = excluded.version, "
            "touched = excluded.touched WHERE excluded.version >= version",
            (entity, version, now),
        )
        return changed == 1

    async def backlog(self) -> int:
        async with self._lock:
            try:
                cursor = await self.db.execute(
                    f"SELECT count(*) FROM {self.table} WHERE status = 'pending'"  # noqa: S608
                )
                row = await cursor.fetchone()
            except (aiosqlite.Error, OSError) as exc:
                raise _fail("count the backlog", exc) from exc
        return int(row[0]) if row else 0

    async def purge(self, before: float) -> int:
        removed = await self._write(
            "purge",
            f"DELETE FROM {self.table} WHERE status != 'pending' AND settled < ?",  # noqa: S608
            (before,),
        )
        await self._write(
            "purge",
            f"DELETE FROM {self.table}_versions WHERE touched < ?",  # noqa: S608
            (before,),
        )
        return removed


class PostgresStore:
    """A PostgreSQL table shared by every replica (asyncpg). Claims use ``FOR UPDATE SKIP
    LOCKED``, so two replicas never take the same event at once."""

    def __init__(self, dsn: str, *, table: str = "graftql_inbox", lease: float = 30.0):
        self.dsn = dsn
        self.table = table
        self.lease = lease
        self._pool: Any = None

    async def open(self) -> None:
        import asyncpg  # only when configured

        t = self.table
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, timeout=5)
            async with self._pool.acquire() as conn:
                await conn.execute(
                    f"""
                    CREATE TABLE IF NOT EXISTS {t} (
                        source TEXT NOT NULL, event_id TEXT NOT NULL, data BYTEA NOT NULL,
                        status TEXT NOT NULL DEFAULT 'pending',
                        attempts INTEGER NOT NULL DEFAULT 0, due DOUBLE PRECISION NOT NULL,
                        received DOUBLE PRECISION NOT NULL, settled DOUBLE PRECISION,
                        PRIMARY KEY (source, event_id));
                    CREATE INDEX IF NOT EXISTS {t}_due ON {t} (status, due);
                    CREATE TABLE IF NOT EXISTS {t}_versions (
                        entity TEXT PRIMARY KEY, version DOUBLE PRECISION NOT NULL,
                        touched DOUBLE PRECISION NOT NULL);
                    """
                )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise _fail("open the database", exc) from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _run(self, what: str, call: Callable[[Any], Any]) -> Any:
        import asyncpg

        if self._pool is None:
            raise StoreError("inbox store: not open")
        try:
            async with self._pool.acquire() as conn:
                return await call(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise _fail(what, exc) from exc

    async def put(self, event: InboxEvent, now: float) -> bool:
        sql = (
            f"INSERT INTO {self.table} (source, event_id, data, due, received) "  # noqa: S608
            "VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING"
        )
        status = await self._run(
            "store the event",
            lambda c: c.execute(sql, event.source, event.event_id, event.encode(), now),
        )
        return bool(status == "INSERT 0 1")

    async def claim(self, now: float, limit: int) -> list[InboxEvent]:
        t = self.table
        sql = (
            f"UPDATE {t} SET due = $1 WHERE (source, event_id) IN ("  # noqa: S608
            f"SELECT source, event_id FROM {t} WHERE status = 'pending' AND due <= $2 "
            "ORDER BY received LIMIT $3 FOR UPDATE SKIP LOCKED) "
            "RETURNING source, event_id, data, attempts"
        )
        rows = await self._run("claim events", lambda c: c.fetch(sql, now + self.lease, now, limit))
        return [InboxEvent.decode(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def settle(self, event: InboxEvent, outcome: Outcome, now: float) -> None:
        sql = (
            f"UPDATE {self.table} SET status = $1, settled = $2, attempts = $3 "  # noqa: S608
            "WHERE source = $4 AND event_id = $5"
        )
        await self._run(
            "settle an event",
            lambda c: c.execute(sql, outcome, now, event.attempts, event.source, event.event_id),
        )

    async def retry(self, event: InboxEvent, at: float) -> None:
        sql = (
            f"UPDATE {self.table} SET due = $1, attempts = $2 "  # noqa: S608
            "WHERE source = $3 AND event_id = $4"
        )
        await self._run(
            "reschedule an event",
            lambda c: c.execute(sql, at, event.attempts, event.source, event.event_id),
        )

    async def advance(self, entity: str, version: float, now: float) -> bool:
        t = self.table
        sql = (
            f"INSERT INTO {t}_versions AS v (entity, version, touched) VALUES ($1, $2, $3) "  # noqa: S608
            "ON CONFLICT (entity) DO UPDATE SET version = excluded.version, "
            "touched = excluded.touched WHERE excluded.version >= v.version"
        )
        status = await self._run(
            "record the entity version", lambda c: c.execute(sql, entity, version, now)
        )
        return bool(status == "INSERT 0 1")

    async def backlog(self) -> int:
        sql = f"SELECT count(*) FROM {self.table} WHERE status = 'pending'"  # noqa: S608
        return int(await self._run("count the backlog", lambda c: c.fetchval(sql)))

    async def purge(self, before: float) -> int:
        t = self.table

        async def purge(conn: Any) -> int:
            status = await conn.execute(
                f"DELETE FROM {t} WHERE status != 'pending' AND settled < $1",  # noqa: S608
                before,
            )
            await conn.execute(f"DELETE FROM {t}_versions WHERE touched < $1", before)  # noqa: S608
            return int(status.split()[-1])

        return int(await self._run("purge", purge))


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
                pipe.hset(
                    f"{self.prefix}event:{member}",
                    mapping={"status": outcome, "attempts": event.attempts},
                )
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


def store_from_config(config: GatewayConfig) -> InboxStore:
    inbox: InboxConfig = config.events.inbox
    if inbox.backend == "postgres":
        assert inbox.dsn is not None  # the config requires it
        return PostgresStore(inbox.dsn, table=inbox.table, lease=inbox.lease)
    if inbox.backend == "redis":
        assert config.redis is not None  # the config requires it
        redis = config.redis
        client = aioredis.Redis.from_url(
            redis.url,
            password=redis.password.reveal() if redis.password else None,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        return RedisStore(
            client,
            prefix=f"{redis.key_prefix}{inbox.table}:",
            retention=inbox.retention_days * 86400,
            lease=inbox.lease,
        )
    return SqliteStore(inbox.path, table=inbox.table, lease=inbox.lease)
