"""The exceptions graftql raises, and the GraphQL error codes they become.

Our exception hierarchy:

* GraftqlError
  + BadUserInput
  + Unauthenticated
  + Forbidden
  + ConfigError
  + ConnectionRejected
  + UpstreamError
    - UpstreamTimeout
    - UpstreamUnavailable
    - UpstreamRateLimited
    - UpstreamAuthError
    - UpstreamBadResponse
      . UpstreamGraphQLErrors (in graftql.upstreams: a GraphQL upstream answered `errors`)
    - UpstreamNotFound
    - CircuitOpen
    - PageLimitExceeded
  + WebhookError
    - SignatureRejected (in graftql.events.signatures: a webhook failed verification; 400/401)
  + StoreError (in graftql.events.stores: the webhook inbox's store failed; the route answers 503)
  + BusUnavailable, SlowConsumer (in graftql.events: publishing failed; a subscriber fell behind)

Each class names the condition, never the library that reported it: an ``httpx.ConnectError``
and a refused TCP connection from gql both become ``UpstreamUnavailable``.

An ``UpstreamError`` raised from a resolver becomes a GraphQL error on the field that needed
it; graphql-core copies ``extensions`` (``code`` and ``upstream``) into the response. Messages
are written for the client: they never carry secrets, tokens, stack traces or internal URLs.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadUserInput",
    "CircuitOpen",
    "ConfigError",
    "ConnectionRejected",
    "Forbidden",
    "GraftqlError",
    "PageLimitExceeded",
    "Unauthenticated",
    "UnknownName",
    "UpstreamAuthError",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "WebhookError",
]


class GraftqlError(Exception):
    """Base class for every error graftql raises on purpose.

    Catch it to tell graftql's own, expected failures from bugs. ``code`` is the value of
    ``extensions.code`` when the error reaches a GraphQL client.
    """

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code}


class BadUserInput(GraftqlError):
    """A client's argument cannot be used (an empty id, a value out of range).

    Raise it from a resolver to answer with ``extensions.code`` ``BAD_USER_INPUT``.
    """

    code = "BAD_USER_INPUT"


class Unauthenticated(GraftqlError):
    """The field needs a signed-in client and this one is anonymous (``server.auth`` with
    ``anonymous: true``). Raised by ``PrincipalPermission``; code ``UNAUTHENTICATED``."""

    code = "UNAUTHENTICATED"


class Forbidden(GraftqlError):
    """The client is signed in but may not read this field or object (another customer's
    order). Raised by ``PrincipalPermission``; code ``FORBIDDEN``."""

    code = "FORBIDDEN"


class ConfigError(GraftqlError):
    """The gateway configuration is invalid; raised at start-up, never while serving.

    ``errors`` holds one ``(key path, reason)`` pair per problem, e.g.
    ``("upstreams.crm.timeout", "must be > 0")``. ``str()`` gives one line per problem.
    """

    code = "CONFIG_ERROR"

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__(
            "\n".join(f"{path}: {reason}" if path else reason for path, reason in errors)
        )

    @classmethod
    def at(cls, path: str, reason: str) -> ConfigError:
        return cls([(path, reason)])


class ConnectionRejected(GraftqlError):
    """A real-time client is refused at ``connection_init`` (graphql-transport-ws closes with
    4403 Forbidden; graphql-ws answers ``connection_error``). Raise it from the gateway's
    connection hook (``GraphQLEndpoint(authenticate=...)``) when the payload's credentials
    are missing or wrong; the message is not sent to the client."""

    code = "FORBIDDEN"


class UpstreamError(GraftqlError):
    """An upstream call failed. Catch it in a resolver to substitute a fallback value.

    ``upstream`` is the upstream's configured name (safe to show); ``status`` the HTTP status
    the upstream answered with, if it answered at all; ``detail`` what the upstream said, for
    the operator's log only (it may name internals, so it never reaches a client).
    """

    code = "UPSTREAM_ERROR"

    def __init__(
        self, upstream: str, message: str, *, status: int | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.status = status
        self.detail = detail
        self.response: Any = None  # the upstream's answer (an httpx.Response), when there was one
        self.retryable = True  # False when the gateway itself refused the call (its own limits)
        # False when the request never left the gateway (no connection could be made): then
        # even a call that is not safe to repeat, such as a mutation, may be tried again.
        self.sent = True
        self.attempts = 0  # attempts made before giving up (0: none was made)

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "upstream": self.upstream}


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within its timeout or the request's deadline, or answered
    408 or 504."""

    code = "UPSTREAM_TIMEOUT"


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, the connection was lost, it answered 502 or 503, or
    the gateway's bulkhead for it is full."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamRateLimited(UpstreamError):
    """The upstream answered 429 Too Many Requests, or the gateway's own rate limit for it
    leaves no call before the request's deadline."""

    code = "UPSTREAM_RATE_LIMITED"


class UpstreamAuthError(UpstreamError):
    """The upstream rejected the gateway's credentials (401/403), or none could be obtained."""

    code = "UPSTREAM_AUTH_FAILED"


class UpstreamBadResponse(UpstreamError):
    """The upstream answered, but not with something usable: an unexpected status, a body
    that does not decode, or GraphQL errors instead of data."""

    code = "UPSTREAM_BAD_RESPONSE"


class UpstreamNotFound(UpstreamError):
    """The upstream answered 404 for the resource. Loaders usually turn it into ``null``."""

    code = "NOT_FOUND"


class CircuitOpen(UpstreamError):
    """The upstream's circuit breaker is open: the call was not attempted."""

    code = "CIRCUIT_OPEN"


class PageLimitExceeded(UpstreamError):
    """An "all items" field would need more upstream pages than its cap allows; the field
    fails rather than answer a shortened list as if it were all (``RestPages.all``)."""

    code = "PAGE_LIMIT_EXCEEDED"


class UnknownName(KeyError):
    """Code asked for a loader or upstream that is not registered (a bug, not a condition).

    A ``KeyError`` whose message reads without the quotes ``KeyError`` adds.
    """

    def __str__(self) -> str:
        return str(self.args[0])


class WebhookError(GraftqlError):
    """An incoming webhook was rejected (bad signature, replay, too large)."""

    code = "WEBHOOK_REJECTED"
