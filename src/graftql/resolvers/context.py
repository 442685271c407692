"""The per-request ``Context`` that every resolver receives as ``info.context``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graftql.events import EventBus, MemoryBus
from graftql.resolvers.cursors import CursorSigner
from graftql.resolvers.loaders import LoaderRegistry, RequestLoaders
from graftql.upstreams import Upstreams, caller

__all__ = ["Context", "principal_id"]


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
    cursors: CursorSigner = field(default_factory=CursorSigner, repr=False)  # pagination
    # The event bus subscription resolvers read (``async with info.context.bus.subscribe(t)``).
    bus: EventBus = field(default_factory=MemoryBus, repr=False)

    def __post_init__(self) -> None:
        self.loaders = self.registry.for_request(self)

    def for_operation(self) -> Context:
        """A copy with fresh loaders, for one of several operations sharing a connection."""
        return replace(self)

    @property
    def principal_id(self) -> str | None:
        """A short, stable, hashed id of the principal; None when the caller is anonymous."""
        return principal_id(self.principal) if self.principal else None

    def authorization(self) -> object:
        """The client's credential: a WebSocket's ``connection_init`` payload
        (``{"Authorization": ...}``, any case; browsers cannot set handshake headers) first,
        else the request's ``Authorization`` header; None without either. Not necessarily a
        string: a payload may hold anything."""
        for key, value in (self.connection_params or {}).items():
            if isinstance(key, str) and key.lower() == "authorization":
                return value
        return self.request.headers.get("authorization")

    def caller(self) -> caller.Caller:
        """What the upstream layer may know of this operation's client (``upstreams.caller``):
        its headers, with ``authorization`` the credential inbound auth checked."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.request.headers.raw}
        token = self.authorization()
        if isinstance(token, str):
            headers["authorization"] = token
        return caller.Caller(headers=headers, principal=self.principal_id)


def principal_id(principal: Mapping[str, Any]) -> str:
    """A short, stable id for a principal: from its ``sub`` (or ``id``) claim, else from all
    of it. Hashed, so no identity is written into Redis keys, cache keys or logs."""
    identity = principal.get("sub", principal.get("id"))
    if not isinstance(identity, str | int) or identity == "":
        identity = orjson.dumps(principal, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return hashlib.sha256(str(identity).encode()).hexdigest()[:32]
