"""The per-request ``Context`` that every resolver receives as ``info.context``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graftql.resolvers.loaders import LoaderRegistry, RequestLoaders
from graftql.upstreams import Upstreams

__all__ = ["Context"]


@dataclass(eq=False)
class Context:
    """What a resolver may use: the request, the caller, the upstreams and this operation's
    loaders.

    One per operation, so loaders and their per-key caches are never shared between
    operations: an HTTP request is one operation; a WebSocket connection makes one Context and
    each operation on it works on its own copy (``for_operation``).
    """

    request: Request | WebSocket
    response: Response | None
    upstreams: Upstreams
    loaders: RequestLoaders = field(init=False)
    registry: LoaderRegistry = field(default_factory=LoaderRegistry, repr=False)
    principal: Mapping[str, Any] = field(default_factory=dict)  # filled by inbound auth
    connection_params: dict[str, Any] | None = None  # a WebSocket's connection_init payload

    def __post_init__(self) -> None:
        self.loaders = self.registry.for_request(self)

    def for_operation(self) -> Context:
        """A copy with fresh loaders, for one of several operations sharing a connection."""
        return replace(self)
