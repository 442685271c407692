"""The PostgreSQL inbox store (asyncpg), shared by replicas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graftql.events.stores._base import InboxEvent, Outcome, StoreError, _fail


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
