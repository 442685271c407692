"""What every inbox store shares: the stored event, the protocol, the error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from graftql.errors import GraftqlError

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
