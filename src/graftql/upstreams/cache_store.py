"""What the response cache stores, how long it may use it, and the in-memory backend.

An ``Entry`` is one upstream answer with the times that govern it, read from the answer's
``Cache-Control`` (RFC 9111, and RFC 5861 for the two stale-* directives) or from the
configuration. Times are wall-clock seconds (``time.time``): a Redis entry is read by other
replicas, whose monotonic clocks mean nothing here.

Backends keep entries by key, and keep one generation number per tag: invalidating a tag
bumps its number, and an entry stored under older numbers is never used again. A read that was
in flight while a tag was invalidated stores its (older) answer under the numbers it saw when it
started, so it cannot resurrect what the invalidation removed.
"""

from __future__ import annotations

import email.utils
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import orjson

__all__ = [
    "DROPPED",
    "Backend",
    "BackendUnavailable",
    "Entry",
    "MemoryBackend",
    "directives",
    "head",
    "lifetime",
]

# Not kept with an entry: they describe one connection or one exchange, or (Set-Cookie) hand a
# session to whoever receives them. The body is stored decoded, so its encoding goes too.
DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
        "content-length",
        "content-encoding",
        "set-cookie",
        "age",
    }
)
_DIRECTIVE = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^,]*))?')


class BackendUnavailable(Exception):
    """The backend could not answer (Redis down or slow): the call bypasses the cache."""


def directives(value: str | None) -> dict[str, str | None]:
    """``Cache-Control`` as ``{directive: argument or None}``, names in lower case."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in value.split(","):
        found = _DIRECTIVE.match(part)
        if found is None:
            continue
        argument = found.group(2)
        if argument is not None:
            argument = argument.strip().strip('"')
        out.setdefault(found.group(1).lower(), argument)
    return out


def seconds(value: str | None) -> float | None:
    """A delta-seconds argument, or None when absent or not a number (treated as absent)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return float(max(number, 0))


def head(response: httpx.Response) -> dict[str, str]:
    """The answer's headers as a plain dict, names in lower case (httpx's lookups cost more
    than the rest of the cache's work)."""
    return dict(response.headers.items())


def lifetime(
    headers: Mapping[str, str],
    control: Mapping[str, str | None],
    *,
    shared: bool,
    default: float,
) -> float:
    """Seconds the answer stays fresh: ``s-maxage`` (shared entries only), ``max-age``,
    ``Expires`` (against ``Date``), else the configured ``default``; minus ``Age``.
    ``headers``: names in lower case (``head``)."""
    fresh = seconds(control.get("s-maxage")) if shared else None
    if fresh is None:
        fresh = seconds(control.get("max-age"))
    if fresh is None and "expires" in headers:
        fresh = _expires(headers["expires"], headers.get("date"))
    if fresh is None:
        return default
    age = seconds(headers.get("age")) or 0.0
    return max(fresh - age, 0.0)


def _expires(expires: str, date: str | None) -> float:
    """RFC 9111 5.3: an Expires that does not parse (``0``) means already expired."""
    try:
        until = email.utils.parsedate_to_datetime(expires)
        now = email.utils.parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return 0.0
    if now is None:
        return 0.0  # no Date to measure it against: do not guess with our own clock
    return max((until - now).total_seconds(), 0.0)


@dataclass(slots=True)
class Entry:
    """One stored answer and the times that decide what it may be used for."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stored_at: float
    fresh_for: float  # seconds after stored_at
    stale_while_revalidate: float
    stale_if_error: float
    revalidate: bool  # no-cache / must-revalidate: never served without asking, never stale
    generations: tuple[int, ...] = ()  # of the entry's tags, when it was fetched
    etag: str | None = field(default=None)
    last_modified: str | None = field(default=None)

    @classmethod
    def of(
        cls,
        response: httpx.Response,
        headers: Mapping[str, str],
        *,
        now: float,
        fresh_for: float,
        stale_while_revalidate: float,
        stale_if_error: float,
        revalidate: bool,
        generations: tuple[int, ...],
    ) -> Entry:
        """``headers``: the answer's, from ``head``."""
        return cls(
            response.status_code,
            [(k, v) for k, v in response.headers.multi_items() if k not in DROPPED],
            response.content,
            now,
            fresh_for,
            stale_while_revalidate,
            stale_if_error,
            revalidate,
            generations,
            headers.get("etag"),
            headers.get("last-modified"),
        )

    @property
    def validators(self) -> bool:
        return self.etag is not None or self.last_modified is not None

    def age(self, now: float) -> float:
        return now - self.stored_at

    def is_fresh(self, now: float) -> bool:
        return not self.revalidate and self.age(now) < self.fresh_for

    def stale_usable(self, now: float, window: float) -> bool:
        """May it be served stale ``now`` under a window of ``window`` seconds past fresh?"""
        return not self.revalidate and self.age(now) < self.fresh_for + window

    def keep_for(self, default: float) -> float:
        """Seconds to keep it: while fresh, then while it may serve stale or be revalidated
        (an entry with validators is worth keeping ``default`` seconds for a cheap 304)."""
        after = max(self.stale_while_revalidate, self.stale_if_error)
        if self.validators:
            after = max(after, default)
        return self.fresh_for + after

    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 200

    def response(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(self.status, headers=self.headers, content=self.body, request=request)

    def dumps(self) -> bytes:
        """As bytes for Redis: a JSON head, then the body as it is."""
        head = orjson.dumps(
            [
                self.status,
                self.headers,
                self.stored_at,
                self.fresh_for,
                self.stale_while_revalidate,
                self.stale_if_error,
                self.revalidate,
                list(self.generations),
                self.etag,
                self.last_modified,
            ]
        )
        return len(head).to_bytes(4, "big") + head + self.body

    @classmethod
    def loads(cls, data: bytes) -> Entry:
        size = int.from_bytes(data[:4], "big")
        head = orjson.loads(data[4 : 4 + size])
        return cls(
            int(head[0]),
            [(str(k), str(v)) for k, v in head[1]],
            data[4 + size :],
            float(head[2]),
            float(head[3]),
            float(head[4]),
            float(head[5]),
            bool(head[6]),
            tuple(int(g) for g in head[7]),
            head[8],
            head[9],
        )


class Backend(Protocol):
    """Where entries live. Every method may raise ``BackendUnavailable``."""

    name: str

    async def get(self, key: str, tags: Sequence[str]) -> tuple[Entry | None, tuple[int, ...]]:
        """The entry under ``key`` (None if absent or expired) and the tags' generations."""
        ...

    async def put(self, key: str, entry: Entry, keep: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def bump(self, tags: Sequence[str]) -> None:
        """Invalidate ``tags``: entries stored under their current generations are dead."""
        ...

    async def healthy(self) -> bool: ...


class MemoryBackend:
    """A bounded LRU in this process: at most ``max_entries`` entries and ``max_bytes`` bytes
    (bodies and headers); the least recently used go first."""

    name = "memory"

    def __init__(self, *, max_entries: int, max_bytes: int, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[str, tuple[Entry, float, int]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str, tags: Sequence[str]) -> tuple[Entry | None, tuple[int, ...]]:
        generations = tuple(self._generations.get(tag, 0) for tag in tags)
        found = self._entries.get(key)
        if found is None:
            return None, generations
        entry, until, _ = found
        if self.clock() >= until:
            self._remove(key)
            return None, generations
        self._entries.move_to_end(key)
        return entry, generations

    async def put(self, key: str, entry: Entry, keep: float) -> None:
        size = entry.size()
        if size > self.max_bytes:
            return
        self._remove(key)
        self._entries[key] = (entry, self.clock() + keep, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    async def delete(self, key: str) -> None:
        self._remove(key)

    async def bump(self, tags: Sequence[str]) -> None:
        for tag in tags:
            self._generations[tag] = self._generations.get(tag, 0) + 1

    async def healthy(self) -> bool:
        return True

    def _remove(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= found[2]
