"""The GraphQL WebSocket endpoint: strawberry's protocols (graphql-transport-ws and the legacy
graphql-ws, with graftql's rules: ``server/websocket.py``) and graftql's per-connection
Context. HTTP is ``graftql.server.http``; Server-Sent Events ``graftql.server.sse``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import cast

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from graftql.config import WebSocketConfig
from graftql.errors import ConnectionRejected
from graftql.events import EventBus, MemoryBus
from graftql.resolvers import Context, LoaderRegistry
from graftql.resolvers.cursors import CursorSigner
from graftql.server.identity import InboundAuth, websocket_principal
from graftql.server.websocket import ConnectionObserver, LegacyGraphQLWS, TransportWS
from graftql.upstreams import Upstreams

__all__ = ["ConnectionAuthenticator", "GraphQLEndpoint"]

# Called once per WebSocket at connection_init, with ``context.connection_params`` set to its
# payload: set ``context.principal`` (every operation on the connection inherits it), return
# the connection_ack payload (or None), or raise ConnectionRejected (closed with 4403).
ConnectionAuthenticator = Callable[[Context], Awaitable[Mapping[str, object] | None]]


class GraphQLEndpoint(GraphQL[Context, None]):
    """WebSocket only: the HTTP methods are served by ``GraphQLHTTP`` on the same path."""

    graphql_transport_ws_handler_class = TransportWS
    graphql_ws_handler_class = LegacyGraphQLWS

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        upstreams: Upstreams,
        loaders: LoaderRegistry,
        allowed_origins: Sequence[str] = (),
        identity: InboundAuth | None = None,
        cursors: CursorSigner | None = None,
        settings: WebSocketConfig | None = None,
        authenticate: ConnectionAuthenticator | None = None,
        bus: EventBus | None = None,
        connection_observer: ConnectionObserver | None = None,
    ) -> None:
        settings = settings if settings is not None else WebSocketConfig()
        # A handshake from another origin's page (not the gateway's own, not one of
        # allowed_origins) is refused with 403 before it is accepted: see server/cors.py.
        super().__init__(
            schema,
            graphql_ide=None,
            allowed_origins=allowed_origins,
            keep_alive=settings.keep_alive is not None,
            keep_alive_interval=settings.keep_alive or 1.0,
            connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
            max_subscriptions_per_connection=None,  # the handlers apply it, with a code
        )
        self.websocket_settings = settings
        self._upstreams = upstreams
        self._loaders = loaders
        self._identity = identity
        self._cursors = cursors or CursorSigner()
        self._authenticate = authenticate
        self._bus = bus if bus is not None else MemoryBus()
        self.connection_observer = connection_observer  # the handlers report to it

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
            cursors=self._cursors,
            bus=self._bus,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """``server.auth`` for a WebSocket: the token from the ``connection_init`` payload
        (``{"Authorization": "Bearer ..."}``), else from the handshake's header. A refused
        one closes the connection with 4403 (graphql-transport-ws); the principal is the
        connection's, for every operation on it. Then the application's ``authenticate``
        hook, if any: it may refuse (``ConnectionRejected``: 4403) or add to the ack."""
        if self._identity is not None:
            context.principal = await websocket_principal(self._identity, context)
        if self._authenticate is None:
            return cast(UnsetType, UNSET)
        try:
            ack = await self._authenticate(context)
        except ConnectionRejected:
            raise ConnectionRejectionError from None
        if ack is None:
            return cast(UnsetType, UNSET)
        payload: dict[str, object] = dict(ack)
        return payload
