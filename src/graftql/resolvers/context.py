"""The per-request ``Context`` that every resolver receives as ``info.context``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graftql.resolvers.loaders import LoaderRegistry, RequestLoaders
from graftql.upstreams import Upstreams

__all__ = ["Context"]


@dataclass(eq=False)
class Context:
    """What a resolver may use: the request, the caller, the upstreams and this request's loaders.

    Built fresh for every operation, so nothing here is shared between requests or users.
    """

    request: Request | WebSocket
    response: Response | None
    upstreams: Upstreams
    loaders: RequestLoaders = field(init=False)
    registry: LoaderRegistry = field(default_factory=LoaderRegistry, repr=False)
    principal: Mapping[str, Any] = field(default_factory=dict)  # filled by inbound auth

    def __post_init__(self) -> None:
        self.loaders = self.registry.for_request(self)
