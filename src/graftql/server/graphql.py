"""The GraphQL endpoint: strawberry's ASGI view with graftql's per-request Context."""

from __future__ import annotations

import orjson
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from graftql.resolvers import Context, LoaderRegistry
from graftql.upstreams import Upstreams, deadline

__all__ = ["GraphQLEndpoint"]


class GraphQLEndpoint(GraphQL[Context, None]):
    """POST, GET (queries only) and WebSocket on one path; GraphiQL when enabled."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        upstreams: Upstreams,
        loaders: LoaderRegistry,
        graphiql: bool,
        request_timeout: float,
    ) -> None:
        super().__init__(schema, graphql_ide="graphiql" if graphiql else None)
        self._upstreams = upstreams
        self._loaders = loaders
        self._request_timeout = request_timeout

    # orjson: a response is mostly JSON encoding once the upstreams have answered.
    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        if not isinstance(request, WebSocket):
            # The request's deadline, inherited by every upstream call made for it.
            deadline.start(self._request_timeout)
        return Context(
            request=request,
            response=response if isinstance(response, Response) else None,
            upstreams=self._upstreams,
            registry=self._loaders,
        )
