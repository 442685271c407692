"""What every upstream has: one pooled connection transport, a single way out (``send``) where
transport failures and HTTP statuses become graftql errors, and a reachability probe.

``send`` is where the policy pipeline of DESIGN.md runs; it knows nothing of REST versus
GraphQL: in-flight dedup, retries within the request's deadline and the retry budget, and per
attempt the bulkhead, the circuit breaker, the rate limit, the credentials and the timeout
(docs/resilience.md). The response cache (``cache.py``, docs/caching.md) wraps them all.

Requests and responses are httpx objects and credentials are ``httpx.Auth`` flows, but
``send`` drives the transport itself instead of going through ``httpx.AsyncClient.send``: the
client's cookie jar would carry one user's upstream session cookie into every later request,
its redirect following could leave the configured origin, and its per-request machinery cost
more CPU than the rest of an upstream call (see bench/README.md). The default transport is
``PooledTransport``: aiohttp's connection pool behind httpx's transport interface.

``Upstream`` is composed of one class per concern, each in its own module; this one builds
them from the configuration (and again on a reload) and runs the outer steps of ``send``:

- ``policy.py``: ``CallPolicy``, and how a call finds its ``endpoints:`` entry's policy;
- ``retry_loop.py``: the retry loop around the attempts, and the outcome /readyz shows;
- ``guards.py``: the bulkhead, circuit breaker and rate limit before each attempt;
- ``attempt.py``: one attempt: timeout, credentials, redirects, errors for failures/statuses;
- ``readiness.py``: the reachability ``Probe`` and the token state for /readyz.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

import httpx
import orjson

from graftql._version import __version__
from graftql.config import UpstreamConfig
from graftql.errors import UpstreamError
from graftql.upstreams import deadline, events
from graftql.upstreams.auth import build_auth
from graftql.upstreams.breaker import CircuitBreaker
from graftql.upstreams.cache import response_cache
from graftql.upstreams.events import emit
from graftql.upstreams.headers import HeaderRules
from graftql.upstreams.limits import Bulkhead, RateLimiter
from graftql.upstreams.policy import CallPolicies, CallPolicy, call_policy, endpoint_policies
from graftql.upstreams.readiness import Probe, Readiness
from graftql.upstreams.retry import RetryPolicy
from graftql.upstreams.retry_loop import RetryLoop
from graftql.upstreams.rotation import rotating
from graftql.upstreams.shared import SharedState
from graftql.upstreams.singleflight import SingleFlight, request_key
from graftql.upstreams.tls import client_context
from graftql.upstreams.transport import PooledTransport

__all__ = ["CallPolicy", "Probe", "Upstream"]

logger = logging.getLogger("graftql.upstreams")

_USER_AGENT = f"graftql/{__version__}"


class Upstream(RetryLoop, Readiness, CallPolicies):
    """Base of ``RestUpstream`` and ``GraphQLUpstream``: the configured, pooled connection."""

    kind: str = ""
    # What ``reconfigure`` replaces: everything built from the configuration but the URL.
    _reloaded: tuple[str, ...] = (
        "config",
        "auth",
        "_headers",
        "_probe_headers",
        "breaker",
        "rate",
        "_shared_breaker",
        "_shared_rate",
        "bulkhead",
        "retry",
        "policy",
        "_endpoints",
    )

    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.url = httpx.URL(config.url)
        self.transport = (
            transport
            if transport is not None
            else PooledTransport(ssl_context=client_context(config.tls))
        )
        self._headers = httpx.Headers({"user-agent": _USER_AGENT})
        self._probe_headers = self._headers.copy()
        for key, value in config.headers.items():
            if isinstance(value, str):
                self._headers[key] = self._probe_headers[key] = value
            else:
                self._headers[key] = value.reveal()
        # Credentials; ``file:`` secrets (auth's and the headers') are re-read after a 401.
        self.auth: httpx.Auth | None = rotating(
            build_auth(name, config.auth), name, config, self._headers
        )
        self.header_rules = HeaderRules(config)  # client headers this upstream may get
        self.flights: SingleFlight[httpx.Response] = SingleFlight()
        self.breaker = CircuitBreaker(config.breaker) if config.breaker.enabled else None
        self.rate = RateLimiter(config.rate_limit)
        # Redis-shared state, for the policies that ask for it (``shared: true``).
        self._shared_breaker = shared if self.breaker and config.breaker.shared else None
        self._shared_rate = (
            shared if config.rate_limit is not None and config.rate_limit.shared else None
        )
        if self._shared_breaker is not None and self.breaker is not None:
            self._shared_breaker.track(name, self.breaker)
        self.bulkhead = Bulkhead(config.bulkhead)
        self.retry = RetryPolicy(config.retry)
        self.policy = call_policy(
            config.timeout, config.connect_timeout, config.read_timeout, self.retry, config.dedup
        )
        self._endpoints = endpoint_policies(config, self.retry)
        self.cache = response_cache(self, shared)  # None unless a cache: block asks for one
        # What /readyz shows: when (time.monotonic) an attempt last succeeded, last failed and
        # the failure's error code. Plain attributes, set per attempt: no lock, no allocation.
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_failure_code: str | None = None

    def reconfigure(self, config: UpstreamConfig, *, shared: SharedState | None = None) -> None:
        """Take the policies, headers and credentials of ``config`` (a configuration reload)
        without dropping the connection pool or the calls in flight, which finish under the
        policies they started with. A breaker, rate limit or bulkhead whose settings did not
        change keeps its state (an open breaker stays open). The kind and URL cannot change.
        """
        if config.kind != self.config.kind or config.url != self.config.url:
            raise ValueError(f"{self.name}: a new kind or URL needs a new upstream")
        fresh = type(self)(self.name, config, transport=self.transport, shared=shared)
        kept = {
            attribute
            for attribute, section in (
                ("breaker", "breaker"),
                ("rate", "rate_limit"),
                ("bulkhead", "bulkhead"),
            )
            if getattr(config, section) == getattr(self.config, section)
        }
        for attribute in self._reloaded:
            if attribute not in kept:
                setattr(self, attribute, getattr(fresh, attribute))
        if self._shared_breaker is not None and self.breaker is not None:
            self._shared_breaker.track(self.name, self.breaker)

    def prepare(
        self,
        method: str,
        url: httpx.URL,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        policy: CallPolicy | None = None,
    ) -> httpx.Request:
        """A request carrying the upstream's static headers, then the client headers it may
        get (``graftql.upstreams.headers``), then ``headers``; ``url`` must be absolute.
        ``policy`` defaults to the upstream's own."""
        policy = policy or self.policy
        all_headers = self._headers.copy()
        forwarded = self.header_rules.apply(all_headers) if self.header_rules else ()
        if headers:
            all_headers.update(headers)
        content = None
        if json_body is not None:
            content = orjson.dumps(json_body)
            all_headers["content-type"] = "application/json"
        return httpx.Request(
            method,
            url,
            headers=all_headers,
            content=content,
            extensions={
                "timeout": policy.timeouts,
                "max_body": self.config.max_response_bytes,
                "graftql.policy": policy,
                "graftql.forwarded_credentials": forwarded,
            },
        )

    async def send(
        self, request: httpx.Request, *, idempotent: bool | None = None
    ) -> httpx.Response:
        """Send one request and return a 2xx response, or raise an ``UpstreamError``.

        The response body has been read. A 404 raises ``UpstreamNotFound`` so that loaders can
        turn it into ``null``; every other non-2xx status raises the error that names it.
        ``idempotent`` defaults to true for GET and HEAD; idempotent calls identical to one
        already in flight share its outcome (unless the upstream sets ``dedup: false``).

        The policies, outermost first: the response cache (if configured), in-flight dedup,
        then the retry loop (within the request's deadline and the retry budget), then per
        attempt the bulkhead, the circuit breaker, the rate limit, the credentials and the
        attempt's timeout.
        """
        if self.cache is not None and "graftql.cache" not in request.extensions:
            return await self.cache.send(request, idempotent)  # outermost; it calls back here
        if idempotent is None:
            idempotent = request.method in ("GET", "HEAD")
        policy: CallPolicy = request.extensions.get("graftql.policy") or self.policy
        key = request_key(request) if idempotent and policy.dedup else None
        if not events.listening():
            return await self._dispatch(request, policy, idempotent, key)
        joined = key is not None and key in self.flights
        started = time.monotonic()
        outcome, attempts = "ok", 0
        try:
            response = await self._dispatch(request, policy, idempotent, key)
            attempts = response.extensions.get("graftql.attempts", 0)
            return response
        except UpstreamError as error:
            outcome, attempts = error.code, error.attempts
            raise
        finally:
            # One event per call as its caller saw it (explain): a call that joined another
            # made no attempt of its own; its attempts are those of the call it shared.
            emit(
                "call",
                self.name,
                method=request.method,
                target=request.url.path,  # never the query: it may carry a credential
                attempts=attempts,
                joined=joined,
                outcome=outcome,
                seconds=time.monotonic() - started,
            )

    async def _dispatch(
        self, request: httpx.Request, policy: CallPolicy, idempotent: bool, key: Hashable | None
    ) -> httpx.Response:
        if key is not None:
            left = deadline.remaining()
            try:
                # A caller that joins a shared call still waits only until its own deadline;
                # the shared call goes on for the others.
                async with asyncio.timeout(left if left is None else max(left, 0.0)):
                    return await self.flights.do(
                        key, lambda: self._call(request, policy, idempotent=True, flight=key)
                    )
            except TimeoutError:
                raise self._deadline_passed() from None
        return await self._call(request, policy, idempotent=idempotent)

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.aclose()  # its background refreshes first
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def join_path(base: bytes, path: str) -> bytes:
    """``path`` (already encoded) below the configured base path, never above it."""
    return base.rstrip(b"/") + b"/" + path.lstrip("/").encode("ascii")
