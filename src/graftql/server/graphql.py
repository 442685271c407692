"""The GraphQL WebSocket endpoint: strawberry's protocols (graphql-transport-ws and the legacy
graphql-ws) with graftql's per-connection Context. HTTP is ``graftql.server.http``."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Sequence
from typing import Any

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UnsetType

from graftql.resolvers import Context, LoaderRegistry
from graftql.server.identity import InboundAuth, Unauthenticated
from graftql.upstreams import Upstreams

__all__ = ["GraphQLEndpoint"]


class GraphQLEndpoint(GraphQL[Context, None]):
    """WebSocket only: the HTTP methods are served by ``GraphQLHTTP`` on the same path."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        upstreams: Upstreams,
        loaders: LoaderRegistry,
        allowed_origins: Sequence[str] = (),
        identity: InboundAuth | None = None,
    ) -> None:
        # A handshake from another origin's page (not the gateway's own, not one of
        # allowed_origins) is refused with 403 before it is accepted: see server/cors.py.
        super().__init__(schema, graphql_ide=None, allowed_origins=allowed_origins)
        self._upstreams = upstreams
        self._loaders = loaders
        self._identity = identity

    # orjson: a response is mostly JSON encoding once the upstreams have answered.
    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: strawberry sends bytes as binary WebSocket frames, which
        # graphql-ws clients (gql, the graphql-ws npm package) reject as a protocol error.
        return orjson.dumps(data).decode()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            upstreams=self._upstreams,
            registry=self._loaders,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """``server.auth`` for a WebSocket: the token from the ``connection_init`` payload
        (``{"Authorization": "Bearer ..."}``), else from the handshake's header. A refused
        one closes the connection with 4403 (graphql-transport-ws); the principal is the
        connection's, for every operation on it."""
        if self._identity is not None:
            context.principal = await _websocket_principal(self._identity, context)
        return await super().on_ws_connect(context)


async def _websocket_principal(identity: InboundAuth, context: Context) -> dict[str, Any]:
    authorization: object = None
    for key, value in (context.connection_params or {}).items():
        if isinstance(key, str) and key.lower() == "authorization":
            authorization = value
    if authorization is None:
        authorization = context.request.headers.get("authorization")
    try:
        if authorization is not None and not isinstance(authorization, str):
            authorization = "<not a string>"  # refused as malformed, never raised on
        claims = await identity.authenticate(authorization, transport="websocket")
    except Unauthenticated:
        raise ConnectionRejectionError({"message": "unauthenticated"}) from None
    expires = claims.get("exp")
    if isinstance(context.request, WebSocket) and isinstance(expires, int | float):
        _close_when_expired(context.request, expires + identity.config.leeway)
    return claims


def _close_when_expired(websocket: WebSocket, deadline: float) -> None:
    """The connection ends (4403) when its token does: a principal is not kept past ``exp``.
    Held weakly, so a connection that ended first is not kept alive until then."""
    ref = weakref.ref(websocket)

    async def close() -> None:
        found = ref()
        if found is not None and found.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):  # it went away meanwhile
                await found.close(code=4403, reason="token expired")

    def fire() -> None:
        task = asyncio.ensure_future(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    delay = max(0.0, deadline - time.time())
    asyncio.get_running_loop().call_later(delay, fire)


_closing: set[asyncio.Task[None]] = set()  # strong references while a close runs
