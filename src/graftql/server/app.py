"""``create_app``: the Starlette application that serves one gateway configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from graftql.config import GatewayConfig
from graftql.schema import GatewaySchema, load_schema
from graftql.server.graphql import GraphQLEndpoint
from graftql.server.health import healthz, readyz
from graftql.upstreams import Upstreams

__all__ = ["create_app"]


def create_app(
    config: GatewayConfig,
    schema: GatewaySchema | None = None,
    *,
    upstreams: Upstreams | None = None,
) -> Starlette:
    """Build the gateway for ``config``; ``schema`` defaults to the one ``schema:`` names.

    The upstream clients (each with its own connection pool) are created here and closed when
    the application shuts down.
    """
    gateway_schema = schema if schema is not None else load_schema(config.schema_)
    clients = upstreams if upstreams is not None else Upstreams.from_config(config)
    endpoint = GraphQLEndpoint(
        gateway_schema.build(config.server),
        upstreams=clients,
        loaders=gateway_schema.loaders,
        graphiql=config.server.graphiql_enabled,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await clients.start()
            yield
        finally:
            await clients.aclose()

    app = Starlette(
        routes=[
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", endpoint),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
        ],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.upstreams = clients
    return app
