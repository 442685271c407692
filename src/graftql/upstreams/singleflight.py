"""In-flight de-duplication: identical idempotent upstream calls made at the same time, across
client requests, share one upstream call.

The key is everything that shapes the request before credentials are applied: method, URL,
body and every header. The client credential a ``forward`` upstream passes on (and any
``forward_headers``) is written into the request when it is prepared, before this key is taken
(``upstreams/headers.py``), so calls made for different users never share; calls made with the
gateway's own credentials do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import httpx

__all__ = ["SingleFlight", "request_key"]

T = TypeVar("T")


def request_key(request: httpx.Request) -> Hashable:
    return (
        request.method,
        str(request.url),
        request.content,
        tuple(sorted((k.lower(), v) for k, v in request.headers.multi_items())),
    )


class SingleFlight(Generic[T]):
    """``await flights.do(key, call)``: the first caller starts ``call``; callers with the same
    key that arrive before it finishes wait for its outcome (value or exception) instead.

    The call runs as a task of its own: a caller that gives up (a client disconnects, a
    deadline passes) cancels only its own wait, never the call the others are waiting for.
    """

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Future[T]] = {}
        self.joined = 0  # calls that were answered by another caller's upstream call

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, key: Hashable) -> bool:
        """Would a call with ``key`` join one in flight now?"""
        return key in self._calls

    async def do(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        running = self._calls.get(key)
        if running is not None:
            self.joined += 1
            return await asyncio.shield(running)
        task: asyncio.Future[T] = asyncio.ensure_future(call())
        self._calls[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def close_to_joiners(self, key: Hashable) -> None:
        """Called from inside a shared call: callers that arrive from now on start a call of
        their own (those already waiting keep waiting for this one). A call about to retry
        does this, so a failure it may still end in takes down only the callers it already
        had, not everyone who arrives during its backoff."""
        if self._calls.get(key) is asyncio.current_task():
            del self._calls[key]

    def _finished(self, key: Hashable, done: asyncio.Future[T]) -> None:
        if self._calls.get(key) is done:
            del self._calls[key]
        if not done.cancelled():
            done.exception()  # mark it retrieved: every waiter may have gone away
