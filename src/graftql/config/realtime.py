"""The real-time transports' blocks: ``server.websocket``, ``server.sse``, and an upstream's
``subscriptions``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from graftql.config._base import _Model
from graftql.references import EnvStr

__all__ = ["SseConfig", "UpstreamSubscriptionsConfig", "WebSocketConfig"]


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
    # permessage-deflate for clients that offer it (browsers do). Off: it costs ~40 KB of
    # zlib state per connection and CPU per message, for events of a few hundred bytes.
    compression: bool = False


class SseConfig(_Model):
    """The ``server.sse:`` block: GraphQL over Server-Sent Events (graphql-sse, distinct
    connections mode) on ``/graphql`` and ``/graphql/stream``."""

    enabled: bool = True
    # A comment line (``:``) this often keeps proxies from closing a quiet stream; null: none.
    keep_alive: float | None = Field(12.0, gt=0, le=3600, description="seconds")
    # Event streams open at once on this process; one more is refused with 503.
    max_streams: int = Field(10_000, ge=1, le=1_000_000)


class UpstreamSubscriptionsConfig(_Model):
    """``upstreams.<name>.subscriptions:`` (GraphQL upstreams): the upstream's subscriptions,
    proxied over WebSocket with its credentials (docs/realtime.md, "Upstream subscriptions")."""

    # Default: the upstream's url with ws:// for http:// (wss:// for https://).
    url: EnvStr | None = None
    protocol: Literal["graphql-transport-ws", "graphql-ws"] = "graphql-transport-ws"
    # The upstream's credentials go in the handshake's headers, and also in the
    # connection_init payload: as header-name: value pairs ("flat", what Apollo servers read),
    # under "headers" (Hasura's way), or not at all ("none").
    credentials_in_init: Literal["flat", "headers", "none"] = "flat"
    # After a lost connection: wait a random time up to min(max, initial * 2**n), reconnect
    # and subscribe again (events sent meanwhile are missed).
    reconnect_initial: float = Field(0.5, gt=0, le=60, description="seconds")
    reconnect_max: float = Field(30.0, gt=0, le=3600, description="seconds")
    # Failed connection attempts in a row before the subscribers get UPSTREAM_UNAVAILABLE;
    # null: keep trying.
    reconnect_attempts: int | None = Field(None, ge=1, le=1_000_000)
    # A graphql-transport-ws ping this often; no pong within pong_timeout is a lost connection.
    ping_interval: float | None = Field(20.0, gt=0, le=3600, description="seconds")
    pong_timeout: float = Field(10.0, gt=0, le=3600, description="seconds")
    # Events buffered per subscriber; a subscriber that falls further behind loses the oldest.
    buffer: int = Field(100, ge=1, le=100_000)

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("ws://", "wss://")):
            raise ValueError("must be a ws:// or wss:// URL")
        return value
