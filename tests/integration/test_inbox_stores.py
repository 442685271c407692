"""The three inbox stores against the same contract: SQLite file, real PostgreSQL, real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from graftql.events import MemoryBus
from graftql.events.inbox import WebhookInbox
from graftql.events.stores import InboxEvent, InboxStore, PostgresStore, RedisStore, SqliteStore
from integration.helpers import REDIS, require_postgres, require_redis, unique_prefix


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InboxStore]:
    made: InboxStore
    table = f"inbox_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "inbox.sqlite3", table=table, lease=5)
    elif request.param == "postgres":
        dsn = await asyncio.to_thread(require_postgres)
        made = PostgresStore(dsn, table=table, lease=5)
    else:
        await asyncio.to_thread(require_redis)
        prefix = unique_prefix()
        made = RedisStore(aioredis.Redis.from_url(REDIS), prefix=prefix, retention=3600, lease=5)
    await made.open()
    yield made
    if isinstance(made, PostgresStore):
        conn = await asyncpg.connect(made.dsn)
        await conn.execute(f"DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_versions")
        await conn.close()
    if isinstance(made, RedisStore):
        client = aioredis.Redis.from_url(REDIS)
        keys = [k async for k in client.scan_iter(match=f"{made.prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    await made.close()


def event(event_id: str, **kw: object) -> InboxEvent:
    return InboxEvent(
        source="pay",
        event_id=event_id,
        topic="t",
        event={"id": event_id},
        **kw,  # type: ignore[arg-type]
    )


async def test_put_dedupes_by_source_and_id(store: InboxStore) -> None:
    assert await store.put(event("a"), 100.0) is True
    assert await store.put(event("a"), 101.0) is False
    other = InboxEvent(source="other", event_id="a", topic="t", event={})
    assert await store.put(other, 101.0) is True
    results = await asyncio.gather(*(store.put(event("b"), 102.0) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    assert await store.backlog() == 3


async def test_claim_leases_settle_and_retry(store: InboxStore) -> None:
    await store.put(event("a", entity="p1", version=5.0, tags=["T:1"]), 100.0)
    await store.put(event("b"), 100.0)
    claimed = await store.claim(100.0, 10)
    assert sorted(e.event_id for e in claimed) == ["a", "b"]
    first = next(e for e in claimed if e.event_id == "a")
    assert (first.entity, first.version, first.tags, first.event) == (
        "p1",
        5.0,
        ["T:1"],
        {"id": "a"},
    )
    assert await store.claim(101.0, 10) == []  # leased
    first.attempts = 1
    await store.retry(first, 102.0)
    await store.settle(next(e for e in claimed if e.event_id == "b"), "processed", 101.0)
    again = await store.claim(102.0, 10)
    assert [(e.event_id, e.attempts) for e in again] == [("a", 1)]
    assert await store.backlog() == 1
    # A lease that runs out (a replica died): claimable again.
    assert [e.event_id for e in await store.claim(102.0 + 5.1, 10)] == ["a"]
    await store.settle(again[0], "processed", 110.0)
    assert await store.backlog() == 0
    assert await store.claim(200.0, 10) == []


async def test_advance_keeps_the_highest_version(store: InboxStore) -> None:
    assert await store.advance("pay:p1", 10.0, 1.0) is True
    assert await store.advance("pay:p1", 9.0, 1.0) is False
    assert await store.advance("pay:p1", 10.0, 1.0) is True  # equal: a retry of the same event
    assert await store.advance("pay:p1", 11.0, 1.0) is True
    assert await store.advance("pay:p1", 10.5, 1.0) is False
    assert await store.advance("pay:p2", 1.0, 1.0) is True


async def test_the_inbox_processes_each_stored_event_once(store: InboxStore) -> None:
    bus = MemoryBus()
    inbox = WebhookInbox(store, bus, retry_delay=0.01)  # not started: driven by hand
    async with bus.subscribe("t") as subscription:
        for n in range(5):
            assert await inbox.accept(event(f"e{n}"))
            assert not await inbox.accept(event(f"e{n}"))
        assert await inbox.process_due() == 5
        assert await inbox.process_due() == 0
        got = [await asyncio.wait_for(subscription.get(), 1) for _ in range(5)]
        assert sorted(e["id"] for e in got) == [f"e{n}" for n in range(5)]
        assert subscription._queue.empty()


async def test_purge_forgets_settled_events_after_the_retention(store: InboxStore) -> None:
    if isinstance(store, RedisStore):
        # Redis forgets by itself: each record expires after the retention.
        await store.put(event("old"), 1.0)
        client = aioredis.Redis.from_url(REDIS)
        ttl = await client.ttl(f"{store.prefix}event:pay\x1fold")
        await client.aclose()
        assert 3590 <= ttl <= 3600
        return
    await store.put(event("old"), 1.0)
    [claimed] = await store.claim(1.0, 10)
    await store.settle(claimed, "processed", 2.0)
    await store.put(event("pending"), 1.0)
    assert await store.purge(before=3.0) == 1
    assert await store.put(event("old"), 4.0) is True  # forgotten: it would be new again
    assert await store.put(event("pending"), 4.0) is False  # never purged before processing
