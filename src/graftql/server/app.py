"""``create_app``: the Starlette application that serves one gateway configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from graftql.config import GatewayConfig
from graftql.errors import ConfigError
from graftql.events import EventBus, bus_from_config
from graftql.resolvers import Context
from graftql.resolvers.cursors import CursorSigner
from graftql.schema import GatewaySchema, load_schema
from graftql.schema.observe import OperationReport
from graftql.server.cors import cors_middleware, websocket_origins
from graftql.server.graphiql import OfflineGraphiQL
from graftql.server.graphql import ConnectionAuthenticator, GraphQLEndpoint
from graftql.server.health import healthz, readyz
from graftql.server.http import GraphQLHTTP, HttpSettings
from graftql.server.identity import InboundAuth
from graftql.server.logs import audit_upstream_credentials, log_operation
from graftql.server.metrics import GatewayMetrics
from graftql.server.persisted import PersistedOperations
from graftql.server.realtime import Realtime
from graftql.server.reload import ConfigReloader
from graftql.server.request_id import RequestId
from graftql.server.sse import GraphQLSSE, wants_event_stream
from graftql.upstreams import Upstreams

if TYPE_CHECKING:
    from graftql.server.tracing import GatewayTracing

__all__ = ["create_app"]


def create_app(
    config: GatewayConfig,
    schema: GatewaySchema | None = None,
    *,
    upstreams: Upstreams | None = None,
    tracer_provider: Any = None,
    reload_config: Callable[[], GatewayConfig] | None = None,
    authenticate: ConnectionAuthenticator | None = None,
    bus: EventBus | None = None,
) -> Starlette:
    """Build the gateway for ``config``; ``schema`` defaults to the one ``schema:`` names.

    ``authenticate`` is the WebSocket connection hook: it reads the ``connection_init``
    payload, sets the principal or refuses the connection (``server/graphql.py``).

    The upstream clients (each with its own connection pool) are created here and closed when
    the application shuts down. ``tracer_provider`` (an OpenTelemetry ``TracerProvider``)
    replaces the one ``server.tracing`` would build from the ``OTEL_*`` variables. With
    ``reload_config`` (it reads and validates the file again), SIGHUP reloads the upstreams'
    policies and secrets (``server/reload.py``); the app must then run in the main thread.
    """
    gateway_schema = schema if schema is not None else load_schema(config.schema_)
    # GraphiQL's files from the gateway itself: checked before anything is opened, and a
    # config error names the key.
    graphiql = (
        OfflineGraphiQL(config.server.graphiql_assets)
        if config.server.graphiql_enabled and config.server.graphiql_assets is not None
        else None
    )
    clients = upstreams if upstreams is not None else Upstreams.from_config(config)
    events = bus if bus is not None else bus_from_config(config)
    persisted = PersistedOperations(config.server.persisted_operations)
    metrics = GatewayMetrics(clients) if config.server.metrics else None
    audit_upstream_credentials()
    tracing = _tracing(config, clients, tracer_provider)
    reloader = ConfigReloader(reload_config, config, clients) if reload_config is not None else None

    def report(operation: OperationReport) -> None:  # once per operation, any transport
        if metrics is not None:
            metrics.observe_operation(operation)
        log_operation(operation)

    realtime = Realtime(config, events, clients, observer=metrics)
    strawberry_schema = gateway_schema.build(
        config.server,
        trusted=persisted.trusted_hashes,
        report=report,
        outer=[tracing.extension] if tracing is not None else (),
        subscriptions=metrics,
    )
    identity = InboundAuth(config.server.auth) if config.server.auth is not None else None
    secret = config.server.cursor_secret
    cursors = CursorSigner(secret.reveal().encode()) if secret is not None else CursorSigner()
    websocket = GraphQLEndpoint(
        strawberry_schema,
        upstreams=clients,
        loaders=gateway_schema.loaders,
        allowed_origins=websocket_origins(config.server.cors),
        identity=identity,
        cursors=cursors,
        settings=config.server.websocket,
        authenticate=authenticate,
        bus=events,
        connection_observer=metrics,
    )

    async def context(request: Request, response: Response) -> Context:
        return Context(
            request=request,
            response=response,
            upstreams=clients,
            registry=gateway_schema.loaders,
            cursors=cursors,
            bus=events,
        )

    server = config.server
    http = GraphQLHTTP(
        strawberry_schema,
        context=context,
        settings=HttpSettings(
            max_request_bytes=server.max_request_bytes,
            max_batch=server.max_batch_operations,
            graphiql=server.graphiql_enabled,
        ),
        persisted=persisted,
        identity=identity,
        graphiql=graphiql.page if graphiql is not None else None,
    )
    sse = GraphQLSSE(strawberry_schema, http=http, settings=server.sse)

    async def graphql_http(request: Request) -> Response:
        # graphql-sse: the same path answers an event stream to a client that asks for one.
        if server.sse.enabled and wants_event_stream(request.headers.get("accept")):
            return await sse.handle(request)
        return await http.handle(request)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await clients.start()
            await events.start()
            await realtime.start()
            if metrics is not None:
                metrics.start()
            if tracing is not None:
                tracing.start()
            if reloader is not None:
                reloader.install()
            yield
        finally:
            if reloader is not None:
                reloader.uninstall()
            if tracing is not None:
                tracing.stop()
            if metrics is not None:
                await metrics.stop()
            await realtime.aclose()
            await events.aclose()
            await clients.aclose()
            if identity is not None:
                await identity.aclose()

    app = Starlette(
        routes=[
            Route("/graphql", graphql_http, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            *(
                [Route("/graphql/stream", sse.handle, methods=["GET", "POST"])]
                if server.sse.enabled
                else []
            ),
            WebSocketRoute("/graphql", websocket),
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/readyz", readyz, methods=["GET", "HEAD"]),
            *([Route("/metrics", metrics.endpoint, methods=["GET"])] if metrics else []),
            *([graphiql.route] if graphiql is not None else []),
            *realtime.routes,
        ],
        # Outermost, so that every answer has an X-Request-Id, refusals too.
        middleware=[Middleware(RequestId), *cors_middleware(server.cors)],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.upstreams = clients
    app.state.metrics = metrics
    app.state.reloader = reloader
    app.state.bus = events
    app.state.realtime = realtime
    return app


def _tracing(config: GatewayConfig, clients: Upstreams, provider: Any) -> GatewayTracing | None:
    if not config.server.tracing.enabled:
        return None
    try:
        from graftql.server.tracing import GatewayTracing
    except ImportError as exc:
        raise ConfigError.at(
            "server.tracing.enabled",
            f"needs OpenTelemetry: pip install 'graftql[otel]' ({exc.name} is missing)",
        ) from None
    return GatewayTracing.from_config(config.server.tracing, clients, provider=provider)
