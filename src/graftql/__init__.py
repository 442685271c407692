"""graftql: one GraphQL endpoint in front of REST, XML and GraphQL upstreams.

The public API is what ``__all__`` lists; everything else may change between releases.
"""

from __future__ import annotations

from graftql._version import __version__
from graftql.config import GatewayConfig, Secret, load_config
from graftql.errors import (
    BadUserInput,
    CircuitOpen,
    ConfigError,
    Forbidden,
    GraftqlError,
    Unauthenticated,
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    WebhookError,
)
from graftql.resolvers import (
    Context,
    Fallback,
    GraphQLAliases,
    GraphQLBatch,
    LoaderRegistry,
    PrincipalPermission,
    RestBatch,
    RestEach,
    by_key,
)
from graftql.schema import GatewaySchema
from graftql.server import create_app
from graftql.upstreams import (
    GraphQLUpstream,
    RestUpstream,
    Upstream,
    UpstreamGraphQLErrors,
    Upstreams,
)

__all__ = [
    "BadUserInput",
    "CircuitOpen",
    "ConfigError",
    "Context",
    "Fallback",
    "Forbidden",
    "GatewayConfig",
    "GatewaySchema",
    "GraftqlError",
    "GraphQLAliases",
    "GraphQLBatch",
    "GraphQLUpstream",
    "LoaderRegistry",
    "PrincipalPermission",
    "RestBatch",
    "RestEach",
    "RestUpstream",
    "Secret",
    "Unauthenticated",
    "Upstream",
    "UpstreamAuthError",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamGraphQLErrors",
    "UpstreamNotFound",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "Upstreams",
    "WebhookError",
    "__version__",
    "by_key",
    "create_app",
    "load_config",
]
