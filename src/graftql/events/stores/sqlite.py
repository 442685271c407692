"""The default inbox store: one SQLite file (aiosqlite), group-committed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiosqlite

from graftql.events.stores._base import InboxEvent, Outcome, StoreError, _fail


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
