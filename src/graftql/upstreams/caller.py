"""Who the current operation runs for, as the upstream layer may see it.

The schema sets it once per operation (``graftql.schema.builder``), whatever the transport; it
travels with the operation through asyncio's context variables into resolvers, loaders and the
tasks they start, as the deadline does. Upstream code reads it for two things only:

- forwarding: an upstream configured to forward the client's credential or allow-listed headers
  takes them from ``Caller.headers`` (never from anywhere else);
- scoping: a cache or a shared in-flight call that depends on who asked keys on
  ``Caller.principal`` (or on the forwarded credential itself).

Nothing here knows about GraphQL or Starlette: the server hands over plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

__all__ = ["Caller", "current", "reset", "start"]


@dataclass(frozen=True, slots=True)
class Caller:
    """The client behind the current operation."""

    # The client's request headers, names in lower case (a WebSocket: its handshake headers).
    headers: Mapping[str, str] = field(default_factory=dict)
    # A short, stable id of the authenticated principal (inbound auth), None when anonymous.
    principal: str | None = None


_caller: ContextVar[Caller | None] = ContextVar("graftql_caller", default=None)


def start(caller: Caller) -> Token[Caller | None]:
    """Make ``caller`` the current one for this context (the operation and its tasks)."""
    return _caller.set(caller)


def reset(token: Token[Caller | None]) -> None:
    _caller.reset(token)


def current() -> Caller | None:
    """The current operation's caller; None outside an operation (start-up, probes, polling)."""
    return _caller.get()
