"""The client request's deadline, as every upstream call of that request sees it.

The server sets it when a request arrives (``server.request_timeout``); it travels with the
request through asyncio's context variables into resolvers, loaders and the tasks they start.
An upstream attempt gets only what is left of it, and no retry waits past it.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

__all__ = ["remaining", "reset", "start"]

_deadline: ContextVar[float | None] = ContextVar("graftql_deadline", default=None)


def start(seconds: float) -> Token[float | None]:
    """Begin a deadline ``seconds`` from now for the current context."""
    return _deadline.set(time.monotonic() + seconds)


def reset(token: Token[float | None]) -> None:
    """End the deadline ``start`` began (the one before it applies again)."""
    _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (may be <= 0), or None without one."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()
