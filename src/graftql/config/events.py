"""The ``events:`` block: the event bus, the webhook inbox and polling sources
(docs/realtime.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from graftql.config._base import _Model
from graftql.references import EnvStr

__all__ = ["BusConfig", "EventsConfig", "InboxConfig", "PollingSourceConfig"]


class BusConfig(_Model):
    """``events.bus``: where published events go."""

    # memory: this process only; redis: every replica (needs the top-level ``redis:`` block).
    backend: Literal["memory", "redis"] = "memory"
    # Events queued per subscriber before the slow-consumer policy applies.
    queue_size: int = Field(1000, ge=1, le=1_000_000)
    # drop_oldest: drop the oldest queued event and count it; disconnect: end the subscription.
    slow_consumer: Literal["drop_oldest", "disconnect"] = "drop_oldest"


class InboxConfig(_Model):
    """``events.inbox``: where verified webhooks are stored before they are acknowledged."""

    backend: Literal["sqlite", "postgres", "redis"] = "sqlite"
    # sqlite: the database file (created if missing).
    path: EnvStr = "graftql-inbox.sqlite3"
    # postgres: a postgresql:// DSN (the password by ${VAR} inside it is not allowed; use
    # PGPASSWORD or a .pgpass file).
    dsn: EnvStr | None = None
    # Dedup records are kept this long; a sender retrying later than this is not recognised.
    retention_days: float = Field(7.0, gt=0, le=3650)
    # Processing attempts (publish + invalidate) before an event is parked as failed.
    max_attempts: int = Field(10, ge=1, le=1000)
    # First retry delay; doubles per attempt up to 60 s.
    retry_delay: float = Field(0.5, gt=0, le=3600, description="seconds")
    # postgres, redis: how long an event taken for processing by one replica is hidden from
    # the others; after a crash its events are taken up again when this runs out. (sqlite: one
    # process owns the file, so a restart takes them up at once.)
    lease: float = Field(30.0, gt=0, le=3600, description="seconds")
    # The table (sqlite, postgres) or key namespace (redis) the inbox uses.
    table: str = Field("graftql_inbox", pattern=r"^[a-z_][a-z0-9_]{0,40}$")

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> InboxConfig:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("backend 'postgres' needs 'dsn'")
        return self


class PollingSourceConfig(_Model):
    """``events.polling.<name>``: poll one REST endpoint of an upstream and publish changes."""

    upstream: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    path: str = Field(pattern=r"^/")
    interval: float = Field(10.0, ge=0.05, le=86400, description="seconds")
    # Where the list of items is in the response (dotted path; empty: the response itself).
    items: str = ""
    # The field that identifies an item; a change is an item whose JSON differs.
    key: str = "id"
    # Topic for each change; {field} placeholders are filled from the item.
    topic: str = Field(min_length=1)

    @field_validator("topic")
    @classmethod
    def _template(cls, value: str) -> str:
        if re.search(r"\{[^}]*[^\w.}][^}]*\}", value):
            raise ValueError("placeholders are {field} or {field.sub}")
        return value


class EventsConfig(_Model):
    bus: BusConfig = Field(default_factory=BusConfig)
    inbox: InboxConfig = Field(default_factory=InboxConfig)
    polling: dict[str, PollingSourceConfig] = Field(default_factory=dict)
