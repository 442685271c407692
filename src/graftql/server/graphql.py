"""The GraphQL WebSocket endpoint: strawberry's protocols (graphql-transport-ws and the legacy
graphql-ws) with graftql's per-connection Context. HTTP is ``graftql.server.http``."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from graftql.events import EventBus, MemoryBus
from graftql.resolvers import Context, LoaderRegistry
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
        bus: EventBus | None = None,
    ) -> None:
        # A handshake from another origin's page (not the gateway's own, not one of
        # allowed_origins) is refused with 403 before it is accepted: see server/cors.py.
        super().__init__(schema, graphql_ide=None, allowed_origins=allowed_origins)
        self._upstreams = upstreams
        self._loaders = loaders
        self._bus = bus if bus is not None else MemoryBus()

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
            bus=self._bus,
        )
