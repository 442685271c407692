"""gateway.yaml: its models, secret references, and loading with errors that name the key.

Configuration says *where and how*: each upstream's URL, credentials and policies. Every key is
validated at start-up; a bad file stops the gateway with one line per problem, each naming the
key path (``upstreams.crm.timeout: must be greater than 0``). Unknown keys are errors, so a typo
is never silently ignored.

Secrets are references, never literals: ``${ENV_VAR}``, ``${ENV_VAR:-default}`` or
``file:/run/secrets/name`` (``graftql.references``). Plain settings such as URLs may use
``${VAR}`` inside a string too.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from graftql.errors import ConfigError
from graftql.references import EnvStr, Secret, environ_of, expand_env, is_reference

__all__ = [
    "ApiKeyAuth",
    "AuthConfig",
    "BasicAuth",
    "BearerAuth",
    "BreakerConfig",
    "BulkheadConfig",
    "CorsConfig",
    "EndpointConfig",
    "GatewayConfig",
    "HmacAuth",
    "InboundRateLimitConfig",
    "LimitsConfig",
    "OAuth2ClientCredentials",
    "PersistedOperationsConfig",
    "RateLimitConfig",
    "RedisConfig",
    "RetryConfig",
    "Secret",
    "ServerConfig",
    "UpstreamConfig",
    "XmlConfig",
    "load_config",
    "parse_config",
]

# Header names whose values are credentials: a literal value for one of them is a config error.
_SENSITIVE_HEADER = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|signature")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or network (10.0.0.0/8): {exc}") from None


_ORIGIN = re.compile(
    r"(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?", re.IGNORECASE
)


def _origin(value: str) -> str:
    """An origin as browsers send it (compared as a string): scheme and host in lower case,
    no default port."""
    if value == "*":
        return value
    match = _ORIGIN.fullmatch(value)
    if match is None or int(match.group(3) or 0) > 65535:
        raise ValueError(
            f"{value!r} is not an origin: scheme://host[:port] with no path, e.g. "
            "'https://app.example.com', or '*'"
        )
    scheme, host, port = match.group(1).lower(), match.group(2).lower(), match.group(3)
    default = {"http": "80", "https": "443"}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def _header_name(value: str) -> str:
    if value != "*" and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError(f"{value!r} is not a header name")
    return value


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
    # Log records as JSON lines or as text for a person (docs/operations.md, "Logs");
    # default: json in production, text in development.
    log_format: Literal["json", "text"] | None = None
    # Prometheus metrics at /metrics (docs/operations.md, "Metrics").
    metrics: bool = True

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


class BearerAuth(_Model):
    """``Authorization: Bearer <token>`` with a static token."""

    type: Literal["bearer"]
    token: Secret


class ApiKeyAuth(_Model):
    """An API key in a named header or query parameter (exactly one of them)."""

    type: Literal["api_key"]
    value: Secret
    header: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeyAuth:
        if (self.header is None) == (self.query is None):
            raise ValueError("set exactly one of 'header' or 'query'")
        return self


class BasicAuth(_Model):
    """HTTP Basic authentication."""

    type: Literal["basic"]
    username: EnvStr
    password: Secret


class OAuth2ClientCredentials(_Model):
    """OAuth2 client-credentials grant; the token is cached and refreshed before expiry."""

    type: Literal["oauth2_client_credentials"]
    token_url: EnvStr
    client_id: EnvStr
    client_secret: Secret
    scopes: list[str] = Field(default_factory=list)
    audience: str | None = None
    extra_params: dict[str, str] = Field(default_factory=dict)
    refresh_leeway: float = Field(30.0, ge=0, description="seconds before expiry to refresh")

    @field_validator("extra_params")
    @classmethod
    def _no_overrides(cls, value: dict[str, str]) -> dict[str, str]:
        taken = sorted(
            {"grant_type", "scope", "audience", "client_id", "client_secret"} & set(value)
        )
        if taken:
            raise ValueError(f"{', '.join(taken)} cannot be set here; use the dedicated keys")
        return value

    _check_url = field_validator("token_url")(lambda v: _http_url(v))


class HmacAuth(_Model):
    """HMAC request signing: timestamp, method, path, query and body digest are signed."""

    type: Literal["hmac"]
    key_id: EnvStr
    secret: Secret
    algorithm: Literal["sha256", "sha512"] = "sha256"
    key_id_header: str = "X-Key-Id"
    timestamp_header: str = "X-Timestamp"
    signature_header: str = "X-Signature"


AuthConfig = Annotated[
    BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | HmacAuth,
    Field(discriminator="type"),
]
_AUTH_TAGS = {"bearer", "api_key", "basic", "oauth2_client_credentials", "hmac"}


class XmlConfig(_Model):
    """How XML responses decode: elements named in ``force_list`` are always lists."""

    force_list: list[str] = Field(default_factory=list)


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s?#]+", value):
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class RetryConfig(_Model):
    """The ``retry:`` block: which calls are retried, how often, how far apart."""

    # 3: against an upstream failing 10 % of calls at random, 2 attempts still fail ~1 % of
    # calls (a query needing several calls fails more); 3 make it ~0.1 %. The retry budget
    # keeps the extra load bounded whatever this is (bench/README.md, resilience workload).
    attempts: int = Field(3, ge=1, le=10, description="tries in all, the first included")
    base_delay: float = Field(0.1, gt=0, le=60, description="seconds; doubles per retry")
    max_delay: float = Field(2.0, gt=0, le=300, description="cap on one backoff, in seconds")
    budget: float = Field(0.2, ge=0, le=10, description="retries per call in the window")
    budget_window: float = Field(10.0, gt=0, le=3600, description="seconds")
    # A POST is retried only when it carries this header; the gateway adds a fresh key per
    # call and sends the same key on every attempt.
    idempotency_key_header: str | None = None


class BreakerConfig(_Model):
    """The ``breaker:`` block: when to stop calling a failing upstream, and for how long."""

    enabled: bool = True
    failure_rate: float = Field(0.5, gt=0, le=1, description="share of failed calls that opens")
    minimum_calls: int = Field(20, ge=1, description="calls in the window before it may open")
    window: float = Field(30.0, gt=0, le=3600, description="seconds of outcomes considered")
    slow_call_duration: float | None = Field(None, gt=0, description="a call this slow fails")
    open_for: float = Field(15.0, gt=0, le=3600, description="seconds before probing again")
    half_open_probes: int = Field(1, ge=1, le=100, description="probes that must succeed")
    # Open and closed for every replica at once, through Redis (the top-level ``redis:``
    # block): a replica that trips it protects the others, and only N probes go out in all.
    shared: bool = False


class RateLimitConfig(_Model):
    """The ``rate_limit:`` block: how fast the gateway may call the upstream (token bucket)."""

    rate: float = Field(gt=0, description="calls per second")
    burst: int = Field(1, ge=1, description="calls allowed at once after a quiet spell")
    # One bucket for every replica, kept in Redis (the top-level ``redis:`` block).
    shared: bool = False


class BulkheadConfig(_Model):
    """The ``bulkhead:`` block: calls in flight at once, and how many may wait for a slot."""

    max_concurrent: int = Field(ge=1)
    max_queue: int = Field(100, ge=0)


class RetryOverride(_Model):
    """``retry:`` inside an endpoint: only the keys given replace the upstream's."""

    attempts: int | None = Field(None, ge=1, le=10)
    base_delay: float | None = Field(None, gt=0, le=60)
    max_delay: float | None = Field(None, gt=0, le=300)
    idempotency_key_header: str | None = None


_ENDPOINT_MATCH = re.compile(
    r"^(?:(?P<method>GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|\*) (?P<path>/\S*)"
    r"|(?P<operation>query|mutation) (?P<name>[A-Za-z_*][A-Za-z0-9_*]*))$"
)


class EndpointConfig(_Model):
    """One entry of ``endpoints:``: policies for some of an upstream's calls.

    ``match`` is ``"METHOD /path/glob"`` for a REST upstream (``*`` is one path segment,
    ``**`` any number; the method may be ``*``) or ``"query Name"`` / ``"mutation Name"`` for a
    GraphQL upstream (the operation the gateway sends; ``*`` in the name matches anything).
    The first entry that matches applies; keys it leaves out keep the upstream's values. The
    breaker, rate limit and bulkhead protect the upstream as a whole and stay per upstream.
    """

    match: str
    timeout: float | None = Field(None, gt=0, le=600, description="seconds per attempt")
    connect_timeout: float | None = Field(None, gt=0, le=600)
    read_timeout: float | None = Field(None, gt=0, le=600)
    retry: RetryOverride | None = None
    dedup: bool | None = None

    @field_validator("match")
    @classmethod
    def _match(cls, value: str) -> str:
        if not _ENDPOINT_MATCH.match(value):
            raise ValueError(
                "must be 'METHOD /path' (e.g. 'GET /reports/*') or 'query Name' / 'mutation Name'"
            )
        return value


class UpstreamConfig(_Model):
    """One entry of ``upstreams:``: a REST or GraphQL service the gateway calls."""

    kind: Literal["rest", "graphql"]
    url: EnvStr
    headers: dict[str, str | Secret] = Field(default_factory=dict)
    timeout: float = Field(10.0, gt=0, le=600, description="seconds per attempt, in all")
    # Within ``timeout``: the longest wait for a connection, and (when set) for the next bytes
    # of the answer. Neither ever extends ``timeout``.
    connect_timeout: float = Field(3.0, gt=0, le=600, description="seconds")
    read_timeout: float | None = Field(None, gt=0, le=600, description="seconds between bytes")
    auth: AuthConfig | None = None
    required: bool = True  # an unreachable required upstream makes /readyz answer 503
    dedup: bool = True  # identical idempotent calls in flight at once share one upstream call
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    rate_limit: RateLimitConfig | None = None
    bulkhead: BulkheadConfig | None = None
    # A larger answer is UPSTREAM_BAD_RESPONSE, read no further than the limit.
    max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # Probed by /readyz: a path on the upstream's origin (it replaces the URL's path), e.g.
    # /healthz; default: the upstream URL itself.
    health_path: str | None = Field(None, pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
    xml: XmlConfig = Field(default_factory=XmlConfig)
    endpoints: list[EndpointConfig] = Field(default_factory=list)

    _check_url = field_validator("url")(lambda v: _http_url(v))

    @model_validator(mode="after")
    def _endpoint_kinds(self) -> UpstreamConfig:
        wanted = "method" if self.kind == "rest" else "operation"
        example = "'GET /reports/*'" if self.kind == "rest" else "'query Name'"
        for index, endpoint in enumerate(self.endpoints):
            found = _ENDPOINT_MATCH.match(endpoint.match)
            if found is not None and found.group(wanted) is None:
                raise ValidationError.from_exception_data(
                    "UpstreamConfig",
                    [
                        {
                            "type": "value_error",
                            "loc": ("endpoints", index, "match"),
                            "input": endpoint.match,
                            "ctx": {"error": f"a {self.kind} upstream matches like {example}"},
                        }
                    ],
                )
        return self

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for name, raw in value.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise ValueError(f"{name!r} is not a valid header name")
            if not isinstance(raw, str):
                raise ValueError(f"header {name!r}: the value must be a string")
            if is_reference(raw):
                out[name] = Secret(raw, environ=environ_of(info))
            elif _SENSITIVE_HEADER.search(name.lower()):
                raise ValueError(
                    f"header {name!r} carries a credential: its value must be a secret reference "
                    "(${ENV_VAR} or file:/path), not a literal value"
                )
            else:
                out[name] = expand_env(raw, environ_of(info))
        return out


class RedisConfig(_Model):
    """The ``redis:`` block: the Redis that replicas share state through."""

    url: EnvStr = "redis://127.0.0.1:6379/0"
    password: Secret | None = None
    key_prefix: str = Field("graftql:", pattern=r"^[A-Za-z0-9_.:-]*$")
    # Each Redis command's limit: Redis sits on the path of every upstream call that uses a
    # shared policy, so a slow Redis must not become a slow gateway.
    timeout: float = Field(0.25, gt=0, le=10, description="seconds")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        match = re.match(r"^(rediss?|unix)://([^@/]*@)?", value)
        if not match:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        if match.group(2) and ":" in match.group(2):
            raise ValueError(
                "must not contain a password; set 'password' to a secret reference instead"
            )
        return value


class GatewayConfig(_Model):
    """The whole of gateway.yaml."""

    schema_: EnvStr = Field(alias="schema", description="module.path:attribute of the schema")
    server: ServerConfig = Field(default_factory=ServerConfig)
    redis: RedisConfig | None = None
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _schema_ref(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError("must look like 'package.module:attribute'")
        return value

    @field_validator("upstreams")
    @classmethod
    def _names(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"{name!r}: upstream names are lower_snake_case identifiers")
        return value

    @model_validator(mode="after")
    def _shared_needs_redis(self) -> GatewayConfig:
        if self.redis is not None:
            return self
        problems: list[dict[str, tuple[str, ...]]] = []
        if self.server.rate_limit is not None and self.server.rate_limit.shared:
            problems.append({"loc": ("server", "rate_limit", "shared")})
        for name, upstream in self.upstreams.items():
            if upstream.breaker.shared:
                problems.append({"loc": ("upstreams", name, "breaker", "shared")})
            if upstream.rate_limit is not None and upstream.rate_limit.shared:
                problems.append({"loc": ("upstreams", name, "rate_limit", "shared")})
        if problems:
            raise ValidationError.from_exception_data(
                "GatewayConfig",
                [
                    {
                        "type": "value_error",
                        "loc": problem["loc"],
                        "input": True,
                        "ctx": {"error": "needs the top-level 'redis:' block"},
                    }
                    for problem in problems
                ],
            )
        return self


def _suggest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """'did you mean' for an unknown key, by walking the models along the key path."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) or next(
                (f for f in current.model_fields.values() if f.alias == part), None
            )
            current = field.annotation if field else None
        elif part in _AUTH_TAGS:
            current = {
                "bearer": BearerAuth,
                "api_key": ApiKeyAuth,
                "basic": BasicAuth,
                "oauth2_client_credentials": OAuth2ClientCredentials,
                "hmac": HmacAuth,
            }[part]
        else:
            args = getattr(current, "__args__", ())
            current = next(
                (a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None
            )
    if isinstance(current, type) and issubclass(current, BaseModel):
        names = [f.alias or n for n, f in current.model_fields.items()]
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        if close:
            return f" (did you mean '{close[0]}'?)"
    return ""


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if part in _AUTH_TAGS and i > 0 and loc[i - 1] == "auth":
            continue  # pydantic puts the union tag in the path; a user never typed it
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def errors_of(exc: ValidationError) -> list[tuple[str, str]]:
    """Each validation problem as (key path, reason), as ConfigError carries them."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            reason = "unknown key" + _suggest(GatewayConfig, loc)
        elif kind == "missing":
            reason = "required key is missing"
        elif kind == "union_tag_invalid":
            reason = f"unknown type {err['input'].get('type')!r}; expected one of " + ", ".join(
                sorted(_AUTH_TAGS)
            )
        elif kind == "union_tag_not_found":
            reason = "'type' is required; one of " + ", ".join(sorted(_AUTH_TAGS))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            reason = msg[:1].lower() + msg[1:]
        out.append((_path(loc), reason))
    return out


def parse_config(
    data: Any, *, source: str = "gateway.yaml", environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate an already-parsed YAML document; ``${VAR}`` comes from ``environ``
    (default: the process environment)."""
    if not isinstance(data, dict):
        raise ConfigError.at("", f"{source}: the top level must be a mapping of keys")
    try:
        return GatewayConfig.model_validate(data, context={"environ": environ})
    except ValidationError as exc:
        raise ConfigError(errors_of(exc)) from None


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read, parse and validate gateway.yaml; every problem raises ``ConfigError``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.at("", f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.at("", f"{file}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError.at("", f"{file}: invalid YAML{where}: {problem}") from None
    return parse_config(data, source=str(file), environ=environ)
