"""Each entry of ``upstreams:``: where it is, how it is called, and its policies."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from graftql.config._base import SENSITIVE_HEADER, _http_url, _Model, key_error
from graftql.config.auth import AuthConfig, ForwardAuth
from graftql.config.cache import CacheConfig, EndpointCacheConfig
from graftql.config.headers import DEFAULT_IDENTITY_HEADERS, forwardable, identity_problem
from graftql.config.realtime import UpstreamSubscriptionsConfig
from graftql.config.tls import TlsConfig
from graftql.references import EnvStr, Secret, environ_of, expand_env, is_reference


class XmlConfig(_Model):
    """How XML responses decode: elements named in ``force_list`` are always lists."""

    force_list: list[str] = Field(default_factory=list)
    # Namespace URI -> the prefix names get in the decoded answer ("" for none), whatever
    # prefix the upstream's document used. Unset: names keep the document's own prefixes.
    namespaces: dict[str, str] = Field(default_factory=dict)


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
    cache: EndpointCacheConfig | None = None  # docs/caching.md

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
    # Client headers passed on to this upstream by name (none by default); see docs/auth.md.
    forward_headers: list[str] = Field(default_factory=list)
    # Headers an upstream takes as "who the user is": never taken from a client.
    identity_headers: list[str] = Field(default_factory=lambda: list(DEFAULT_IDENTITY_HEADERS))
    # "never": a 3xx is UPSTREAM_BAD_RESPONSE; "same_origin": followed within the origin only.
    follow_redirects: Literal["never", "same_origin"] = "never"
    tls: TlsConfig | None = None
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
    cache: CacheConfig | None = None  # the response cache, off unless given (docs/caching.md)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    # GraphQL upstreams: how their subscriptions are proxied (docs/realtime.md).
    subscriptions: UpstreamSubscriptionsConfig | None = None

    _check_url = field_validator("url")(lambda v: _http_url(v))

    @field_validator("forward_headers", "identity_headers")
    @classmethod
    def _header_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise ValueError(f"{name!r} is not a valid header name")
        return forwardable(value)

    @model_validator(mode="after")
    def _no_forwarded_identity(self) -> UpstreamConfig:
        places: list[tuple[tuple[str, ...], list[str]]] = [
            (("forward_headers",), self.forward_headers)
        ]
        if isinstance(self.auth, ForwardAuth):
            places.append((("auth", "headers"), self.auth.headers))
        for loc, names in places:
            problem = identity_problem(names, self.identity_headers)
            if problem is not None:
                raise key_error("UpstreamConfig", loc, problem, names)
        return self

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

    @model_validator(mode="after")
    def _subscriptions_need_graphql(self) -> UpstreamConfig:
        if self.subscriptions is not None and self.kind != "graphql":
            raise ValueError("'subscriptions' is for kind: graphql upstreams")
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
            elif SENSITIVE_HEADER.search(name.lower()):
                raise ValueError(
                    f"header {name!r} carries a credential: its value must be a secret reference "
                    "(${ENV_VAR} or file:/path), not a literal value"
                )
            else:
                out[name] = expand_env(raw, environ_of(info))
        return out
