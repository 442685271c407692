"""The real-time transports' blocks: ``server.websocket`` and ``server.sse``."""

from __future__ import annotations

from pydantic import Field

from graftql.config._base import _Model

__all__ = ["SseConfig", "WebSocketConfig"]


class WebSocketConfig(_Model):
    """The ``server.websocket:`` block: GraphQL over WebSocket (graphql-transport-ws and the
    legacy graphql-ws), docs/realtime.md "Transports"."""

    # Operations running at once on one connection; one more gets an ``error`` message
    # (code SUBSCRIPTION_LIMIT) for its id and the connection stays open.
    max_subscriptions: int = Field(100, ge=1, le=100_000)
    # A connection that has not sent connection_init by then is closed with 4408.
    connection_init_timeout: float = Field(10.0, gt=0, le=3600, description="seconds")
    # The server's keep-alive: a ``ping`` (graphql-transport-ws) or ``ka`` (graphql-ws) message
    # this often once the connection is acknowledged; null: none.
    keep_alive: float | None = Field(15.0, gt=0, le=3600, description="seconds")


class SseConfig(_Model):
    """The ``server.sse:`` block: GraphQL over Server-Sent Events (graphql-sse, distinct
    connections mode) on ``/graphql`` and ``/graphql/stream``."""

    enabled: bool = True
    # A comment line (``:``) this often keeps proxies from closing a quiet stream; null: none.
    keep_alive: float | None = Field(12.0, gt=0, le=3600, description="seconds")
    # Event streams open at once on this process; one more is refused with 503.
    max_streams: int = Field(10_000, ge=1, le=1_000_000)
