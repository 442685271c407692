"""Where the webhook inbox keeps events: SQLite (default), PostgreSQL or Redis.

Each store does the same five things atomically: insert an event unless its (source, id) is
already known (``put``, the dedup), take due events for processing under a lease (``claim``),
settle them (``settle``) or put them back for later (``retry``), and keep the highest version
seen per entity (``advance``, the ordering rule). A store error is raised as ``StoreError``:
the webhook route then answers 503 and the sender retries.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from graftql.config import GatewayConfig
from graftql.config.events import InboxConfig
from graftql.events.stores._base import InboxEvent, InboxStore, Outcome, StoreError
from graftql.events.stores.postgres import PostgresStore
from graftql.events.stores.redis import RedisStore
from graftql.events.stores.sqlite import SqliteStore

__all__ = [
    "InboxEvent",
    "InboxStore",
    "Outcome",
    "PostgresStore",
    "RedisStore",
    "SqliteStore",
    "StoreError",
    "store_from_config",
]


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
