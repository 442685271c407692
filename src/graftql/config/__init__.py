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

from graftql.config.auth import (
    ApiKeyAuth,
    AuthConfig,
    AwsSigV4Auth,
    BasicAuth,
    BearerAuth,
    ForwardAuth,
    HmacAuth,
    OAuth2ClientCredentials,
)
from graftql.config.cache import CacheConfig, CacheDefaults, EndpointCacheConfig
from graftql.config.gateway import GatewayConfig, RedisConfig, errors_of, load_config, parse_config
from graftql.config.identity import InboundAuthConfig
from graftql.config.realtime import SseConfig, UpstreamSubscriptionsConfig, WebSocketConfig
from graftql.config.server import (
    CorsConfig,
    InboundRateLimitConfig,
    LimitsConfig,
    PersistedOperationsConfig,
    ServerConfig,
)
from graftql.config.tls import TlsConfig
from graftql.config.tracing import TracingConfig
from graftql.config.upstream import (
    BreakerConfig,
    BulkheadConfig,
    EndpointConfig,
    RateLimitConfig,
    RetryConfig,
    UpstreamConfig,
    XmlConfig,
)
from graftql.references import Secret

__all__ = [
    "ApiKeyAuth",
    "AuthConfig",
    "AwsSigV4Auth",
    "BasicAuth",
    "BearerAuth",
    "BreakerConfig",
    "BulkheadConfig",
    "CacheConfig",
    "CacheDefaults",
    "CorsConfig",
    "EndpointCacheConfig",
    "EndpointConfig",
    "ForwardAuth",
    "GatewayConfig",
    "HmacAuth",
    "InboundAuthConfig",
    "InboundRateLimitConfig",
    "LimitsConfig",
    "OAuth2ClientCredentials",
    "PersistedOperationsConfig",
    "RateLimitConfig",
    "RedisConfig",
    "RetryConfig",
    "Secret",
    "ServerConfig",
    "SseConfig",
    "TlsConfig",
    "TracingConfig",
    "UpstreamConfig",
    "UpstreamSubscriptionsConfig",
    "WebSocketConfig",
    "XmlConfig",
    "errors_of",
    "load_config",
    "parse_config",
]
