"""The ``server:`` block: how the gateway's own front door behaves."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    model_validator,
)

from graftql.config._base import _header_name, _Model, _network, _origin
from graftql.config.identity import InboundAuthConfig
from graftql.config.realtime import SseConfig, WebSocketConfig
from graftql.config.tracing import TracingConfig
from graftql.references import EnvStr, Secret


class LimitsConfig(_Model):
    """The ``server.limits`` block: how large an operation may be, checked before it runs.

    Every transport (HTTP, WebSocket) gets the same checks; a violation is an
    ``OPERATION_LIMIT_EXCEEDED`` error and no resolver runs. ``null`` turns a limit off.
    docs/security.md says what each one protects against and how to tune it.
    """

    # The query text in UTF-8, checked before parsing.
    max_document_bytes: int | None = Field(100_000, gt=0)
    # Lexical tokens, comments included (graphql-core's parse(max_tokens=...)).
    max_tokens: int | None = Field(5_000, gt=0)
    # Fields nested in fields, through fragments. 15 admits the standard introspection query.
    max_depth: int | None = Field(15, gt=0)
    # Aliased fields; a fragment counts again at every spread.
    max_aliases: int | None = Field(30, gt=0)
    # Fields in the operation's top-level selection set.
    max_root_fields: int | None = Field(20, gt=0)
    # Directive uses; a fragment counts again at every spread.
    max_directives: int | None = Field(50, gt=0)
    # Fields once every fragment spread is expanded.
    max_fields: int | None = Field(2_000, gt=0)
    # Estimated cost: 1 a field; a list multiplies its selection by first/last/limit.
    max_cost: int | None = Field(10_000, gt=0)
    # The assumed length of a list whose field has no first/last/limit argument.
    list_size: int = Field(10, gt=0, le=10_000)


class PersistedOperationsConfig(_Model):
    """The ``server.persisted_operations:`` block: operations sent by hash instead of text."""

    # Automatic persisted queries: a client sends a hash, and the text only when the gateway
    # does not know it yet (Apollo's protocol). Saves bandwidth; no security by itself.
    apq: bool = True
    apq_cache_size: int = Field(1000, ge=0, le=1_000_000, description="documents kept")
    # A trusted-documents manifest (Apollo's persisted query manifest, or {"<sha256>": "text"}):
    # its operations can be sent by hash (extensions.persistedQuery or documentId).
    manifest: EnvStr | None = None
    # Run nothing but the manifest's operations, over every transport: the production lock.
    only_trusted: bool = False

    @model_validator(mode="after")
    def _trusted_needs_manifest(self) -> PersistedOperationsConfig:
        if self.only_trusted and self.manifest is None:
            raise ValueError("'only_trusted' needs a 'manifest'")
        return self


class InboundRateLimitConfig(_Model):
    """The ``server.rate_limit:`` block: operations per client (token bucket), over HTTP and
    WebSocket alike. A client is its principal when inbound auth set one, else its IP."""

    rate: float = Field(gt=0, le=1_000_000, description="operations per second")
    # Operations allowed at once after a quiet spell; default: one second's worth (at least 1).
    burst: int = Field(ge=1, le=1_000_000)
    # One bucket per client for every replica, kept in Redis (the top-level ``redis:`` block).
    shared: bool = False
    # Proxies whose X-Forwarded-For is believed (addresses or CIDR networks); from any other
    # peer the header is ignored.
    trusted_proxies: list[Annotated[str, AfterValidator(_network)]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_burst(cls, data: Any) -> Any:
        if isinstance(data, dict) and "burst" not in data:
            rate = data.get("rate")
            # An invalid rate is reported on its own, not as a missing burst too.
            burst = 1
            if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
                burst = max(1, math.ceil(rate))
            return {**data, "burst": burst}
        return data


class CorsConfig(_Model):
    """The ``server.cors:`` block: which other origins' pages may call the gateway from a
    browser (their WebSocket handshakes too)."""

    allow_origins: list[Annotated[str, AfterValidator(_origin)]] = Field(min_length=1)
    # Cookies and HTTP authentication on cross-origin requests; never with '*'.
    allow_credentials: bool = False
    # Request headers beyond the safelisted ones (Content-Type is), e.g. [Authorization].
    allow_headers: list[Annotated[str, AfterValidator(_header_name)]] = Field(default_factory=list)
    max_age: int = Field(600, ge=0, le=86400, description="seconds a preflight is cached")

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsConfig:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValidationError.from_exception_data(
                "CorsConfig",
                [
                    {
                        "type": "value_error",
                        "loc": ("allow_credentials",),
                        "input": True,
                        "ctx": {
                            "error": "cannot be true when allow_origins has '*' (any site "
                            "could then send requests with its visitors' cookies); list the "
                            "origins"
                        },
                    }
                ],
            )
        return self


class ServerConfig(_Model):
    """The ``server:`` block: where the gateway listens and in which mode."""

    host: EnvStr = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    env: Literal["development", "production"] = "development"
    graphiql: bool | None = None  # default: on in development, off in production
    # A directory of GraphiQL's files (`graftql graphiql-assets --dir DIR`): the gateway serves
    # them and the page loads nothing from a CDN (docs/operations.md, "GraphiQL offline").
    graphiql_assets: EnvStr | None = None
    introspection: bool | None = None  # default: on in development, off in production
    # Every client request's deadline: no upstream attempt is started or waited for past it.
    request_timeout: float = Field(30.0, gt=0, le=3600, description="seconds")
    # A longer (or shorter) deadline for named operations, e.g. {ExportOrders: 120}. The name
    # is the client's operationName: it can only change how long the gateway waits.
    operation_timeouts: dict[str, Annotated[float, Field(gt=0, le=3600)]] = Field(
        default_factory=dict
    )
    # An HTTP request body larger than this (after gzip/deflate decoding) is refused with 413.
    max_request_bytes: int = Field(1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Batched requests (a JSON array): refused unless this is set; at most this many operations.
    max_batch_operations: int = Field(0, ge=0, le=1000)
    # Operation size limits: depth, aliases, cost and more (docs/security.md).
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    persisted_operations: PersistedOperationsConfig = Field(
        default_factory=PersistedOperationsConfig
    )
    # Operations per client (docs/security.md, "Inbound rate limits"); off unless set.
    rate_limit: InboundRateLimitConfig | None = None
    # Other origins allowed to call from a browser (docs/security.md, "CORS"); off unless set.
    cors: CorsConfig | None = None
    # Who the clients are: JWT validation (docs/identity.md); off unless set.
    auth: InboundAuthConfig | None = None
    # Log records as JSON lines or as text for a person (docs/operations.md, "Logs");
    # default: json in production, text in development.
    log_format: Literal["json", "text"] | None = None
    # Prometheus metrics at /metrics (docs/operations.md, "Metrics").
    metrics: bool = True
    # extensions.graftql.upstreamCalls for requests with a graftql-explain header (docs/data.md,
    # "Explain"): auto = in development only; trusted = when the header is explain_secret.
    explain: Literal["auto", "off", "trusted"] = "auto"
    explain_secret: Secret | None = None
    # Signs pagination cursors (docs/data.md, "Pagination"); default: a random key per process,
    # so set it when several replicas serve the same clients.
    cursor_secret: Secret | None = None

    @model_validator(mode="after")
    def _trusted_explain_needs_secret(self) -> ServerConfig:
        if self.explain == "trusted" and self.explain_secret is None:
            raise ValueError("explain: 'trusted' needs 'explain_secret' (a secret reference)")
        return self

    # OpenTelemetry traces (docs/operations.md, "Traces"); off unless enabled.
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    # Subscriptions over WebSocket and Server-Sent Events (docs/realtime.md, "Transports").
    websocket: WebSocketConfig = Field(default_factory=WebSocketConfig)
    sse: SseConfig = Field(default_factory=SseConfig)

    @property
    def graphiql_enabled(self) -> bool:
        return self.env == "development" if self.graphiql is None else self.graphiql

    @property
    def json_logs(self) -> bool:
        if self.log_format is None:
            return self.env == "production"
        return self.log_format == "json"

    @property
    def introspection_enabled(self) -> bool:
        return self.env == "development" if self.introspection is None else self.introspection
