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
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import orjson

from graftql._version import __version__
from graftql.config import EndpointConfig, UpstreamConfig
from graftql.errors import (
    CircuitOpen,
    UpstreamAuthError,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from graftql.upstreams import caller, deadline, events, redirects
from graftql.upstreams.auth import OAuth2ClientCredentialsAuth, build_auth
from graftql.upstreams.breaker import CircuitBreaker, State
from graftql.upstreams.cache import response_cache
from graftql.upstreams.events import emit
from graftql.upstreams.headers import HeaderRules
from graftql.upstreams.limits import Bulkhead, RateLimiter, Rejected
from graftql.upstreams.retry import IDEMPOTENT_METHODS, RetryPolicy
from graftql.upstreams.rotation import RotatingAuth, rotating
from graftql.upstreams.shared import SharedState
from graftql.upstreams.singleflight import SingleFlight, request_key
from graftql.upstreams.tls import client_context, why_unreachable
from graftql.upstreams.transport import BodyTooLarge, PooledTransport

__all__ = ["CallPolicy", "Probe", "Upstream"]

logger = logging.getLogger("graftql.upstreams")

_PROBE_TIMEOUT = 2.0
_MAX_PAUSE = 60.0  # the longest retry wait without a request deadline
_USER_AGENT = f"graftql/{__version__}"


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What one call is allowed: the upstream's settings, or an ``endpoints:`` entry's."""

    timeout: float  # the attempt's total
    timeouts: dict[str, float | None]  # connect / read / write / pool, for the transport
    retry: RetryPolicy
    dedup: bool


@dataclass(frozen=True, slots=True)
class Probe:
    """The outcome of one reachability check, as /readyz reports it."""

    status: Literal["up", "down"]
    latency_ms: float
    detail: str  # e.g. "HTTP 200" or "connection refused"; never a URL or a credential


class Upstream:
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
        self.policy = _policy(
            config.timeout, config.connect_timeout, config.read_timeout, self.retry, config.dedup
        )
        self._endpoints = [
            (_endpoint_pattern(e.match), self._endpoint(e)) for e in config.endpoints
        ]
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

    def _endpoint(self, endpoint: EndpointConfig) -> CallPolicy:
        config = self.config
        retry = self.retry
        if endpoint.retry is not None:
            changes = endpoint.retry.model_dump(exclude_none=True)
            # The upstream's retry budget is shared: an endpoint cannot retry more in all.
            retry = RetryPolicy(config.retry.model_copy(update=changes), budget=self.retry.budget)
        return _policy(
            endpoint.timeout or config.timeout,
            endpoint.connect_timeout or config.connect_timeout,
            endpoint.read_timeout or config.read_timeout,
            retry,
            config.dedup if endpoint.dedup is None else endpoint.dedup,
        )

    def policy_for(self, call: str) -> CallPolicy:
        """The policy of the first ``endpoints:`` entry matching ``call`` ("GET /path" or
        "query Name"), else the upstream's."""
        for pattern, policy in self._endpoints:
            if pattern.match(call):
                return policy
        return self.policy

    @property
    def has_endpoints(self) -> bool:
        return bool(self._endpoints)

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
                raise self._refused(
                    UpstreamTimeout, f"the request's deadline passed before {self.name} answered"
                ) from None
        return await self._call(request, policy, idempotent=idempotent)

    async def _call(
        self,
        request: httpx.Request,
        call: CallPolicy,
        *,
        idempotent: bool,
        flight: Hashable | None = None,
    ) -> httpx.Response:
        policy = call.retry
        key_header = policy.config.idempotency_key_header
        if (
            key_header
            and not idempotent
            and request.method not in IDEMPOTENT_METHODS
            and key_header not in request.headers
        ):
            request.headers[key_header] = uuid.uuid4().hex  # the same key on every attempt
        safe = policy.may_retry(request, idempotent)
        policy.budget.record_call()
        attempt = 1
        while True:
            started = time.monotonic()
            try:
                response = await self._guarded(request, call)
            except UpstreamError as error:
                error.attempts = attempt
                if isinstance(error, UpstreamNotFound):
                    self.last_success = time.monotonic()  # it answered: no such resource
                elif error.retryable and not isinstance(error, CircuitOpen):
                    # The gateway's own refusals (its limits, an open breaker) sent nothing.
                    self.last_failure = time.monotonic()
                    self.last_failure_code = error.code
                if events.listening():
                    self._attempted(request, attempt, error.code, error.status, started)
                if not (
                    (safe or not error.sent)  # a call that never left may always go again
                    and attempt < policy.config.attempts
                    and policy.is_retryable(error)
                ):
                    raise
                pause = policy.delay(attempt, error)
                left = deadline.remaining()
                if left is None:
                    left = _MAX_PAUSE  # no deadline (a WebSocket operation): still a bound
                if pause >= left or not policy.budget.try_spend():
                    raise  # waiting would outlast the request, or we retry too much already
                emit("retry", self.name, attempt=attempt, delay=pause, reason=error.code)
                if flight is not None:
                    self.flights.close_to_joiners(flight)
                await asyncio.sleep(pause)
                attempt += 1
            else:
                response.extensions["graftql.attempts"] = attempt
                self.last_success = time.monotonic()
                if events.listening():
                    self._attempted(request, attempt, "ok", response.status_code, started)
                return response

    def _attempted(
        self, request: httpx.Request, attempt: int, outcome: str, status: int | None, started: float
    ) -> None:
        emit(
            "attempt",
            self.name,
            attempt=attempt,
            method=request.method,
            outcome=outcome,
            status=status,
            seconds=time.monotonic() - started,
        )

    async def _guarded(self, request: httpx.Request, call: CallPolicy) -> httpx.Response:
        """One attempt behind the bulkhead, the circuit breaker and the rate limit."""
        bulkhead = self.bulkhead  # a reload may replace it while this call is in flight
        try:
            await bulkhead.acquire(deadline.remaining())
        except Rejected:
            emit("rejected", self.name, by="bulkhead")
            raise self._refused(
                UpstreamUnavailable, f"too many calls to {self.name} are already waiting"
            ) from None
        try:
            return await self._behind_breaker(request, call)
        finally:
            bulkhead.release()

    async def _behind_breaker(self, request: httpx.Request, call: CallPolicy) -> httpx.Response:
        breaker = self.breaker
        if breaker is None:
            await self._take_rate_token()
            return await self._attempt(request, call)
        shared = self._shared_breaker
        if shared is not None:
            await shared.start()  # hear the other replicas before the first call
        if not breaker.allow():
            raise self._circuit_open(breaker)
        probe = breaker.state == "half_open"
        if shared is not None and probe:
            if not await shared.claim_probe(self.name, breaker):
                breaker.release()  # another replica sends the probes
                raise self._circuit_open(breaker)
        moved: State | None = None
        try:
            await self._take_rate_token()
            started = time.monotonic()  # a slow call is the upstream's time, not our queueing
            response = await self._attempt(request, call)
        except UpstreamError as error:
            if error.retryable:  # the gateway's own refusals say nothing about the upstream
                moved = breaker.record(
                    failed=_is_outage(error), duration=time.monotonic() - started
                )
            else:
                breaker.release()
            raise
        except BaseException:
            breaker.release()
            raise
        else:
            moved = breaker.record(failed=False, duration=time.monotonic() - started)
            if (
                shared is not None
                and probe
                and moved is None
                and breaker.state == "half_open"
                and await shared.probe_succeeded(self.name, breaker)
            ):
                # The other probes succeeded on other replicas: close here, and everywhere.
                breaker.force_close()
                moved = "closed"
        finally:
            if moved is not None:
                emit("breaker", self.name, state=moved)
                if shared is not None:
                    await shared.announce(self.name, moved, breaker)
        return response

    def _circuit_open(self, breaker: CircuitBreaker) -> CircuitOpen:
        return CircuitOpen(
            self.name, f"{self.name} is failing; calls are paused for {breaker.retry_in():.0f}s"
        )

    async def _take_rate_token(self) -> None:
        budget = deadline.remaining()
        if budget is not None and budget <= 0:
            # The time ran out before this call's turn (e.g. while it queued in the
            # bulkhead): a timeout, whatever a rate limit would have said about a wait of 0.
            raise self._refused(
                UpstreamTimeout, f"the request's deadline passed before {self.name} answered"
            )
        try:
            if self._shared_rate is not None and self.config.rate_limit is not None:
                try:
                    wait = await self._shared_rate.reserve(
                        self.name, self.config.rate_limit, budget
                    )
                except LookupError:  # Redis cannot answer: this replica's own bucket
                    wait = self.rate.reserve(budget)
                else:
                    wait = max(wait, self.rate.reserve(budget, bucket=False))
            else:
                wait = self.rate.reserve(budget)
        except Rejected as rejected:
            emit("rejected", self.name, by="rate_limit", wait=rejected.wait)
            raise self._refused(
                UpstreamRateLimited,
                f"the gateway's rate limit for {self.name} leaves no call before the deadline",
            ) from None
        if wait > 0:
            emit("rate_limit_wait", self.name, seconds=wait)
            await asyncio.sleep(wait)

    def _refused(self, kind: type[UpstreamError], message: str) -> UpstreamError:
        error = kind(self.name, message)
        error.retryable = False
        return error

    async def _attempt(self, request: httpx.Request, call: CallPolicy) -> httpx.Response:
        limit = call.timeout
        left = deadline.remaining()
        if left is not None and left < limit:
            if left <= 0:  # nothing was sent: this says nothing about the upstream
                raise self._refused(
                    UpstreamTimeout, f"the request's deadline passed before {self.name} answered"
                )
            limit = left
        try:
            # The limit bounds the whole attempt, including a body that trickles in slowly.
            async with asyncio.timeout(limit):
                response = await self._exchange(request)
        except UpstreamError:
            raise  # raised by an auth flow (e.g. the token endpoint refused the client)
        except httpx.ConnectTimeout as exc:
            error = UpstreamUnavailable(
                self.name,
                f"{self.name} could not be reached within {call.timeouts['connect'] or 0:g}s",
            )
            error.sent = False
            raise error from exc
        except httpx.ReadTimeout as exc:
            raise UpstreamTimeout(
                self.name,
                f"{self.name} sent nothing for {call.timeouts['read'] or 0:g}s",
            ) from exc
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise UpstreamTimeout(
                self.name,
                f"{self.name} did not answer within {call.timeout:g}s"
                if limit == call.timeout
                else f"the request's deadline passed before {self.name} answered",
            ) from exc
        except BodyTooLarge as exc:
            raise UpstreamBadResponse(
                self.name,
                f"{self.name} answered with more than {self.config.max_response_bytes} bytes",
            ) from exc
        except httpx.ConnectError as exc:
            error = UpstreamUnavailable(
                self.name, f"{self.name} could not be reached{why_unreachable(exc)}"
            )
            error.sent = False
            raise error from exc
        except httpx.RemoteProtocolError as exc:
            raise UpstreamBadResponse(
                self.name, f"{self.name} answered with malformed HTTP"
            ) from exc
        except httpx.DecodingError as exc:
            raise UpstreamBadResponse(
                self.name, f"{self.name} answered with a body its Content-Encoding does not match"
            ) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self.name, f"the connection to {self.name} was lost") from exc
        self.rate.observe(response)
        if response.status_code != 304 or request.extensions.get("graftql.cache") != "revalidate":
            self.raise_for_status(response)  # a 304 to the cache's revalidation is its answer
        return response

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """One request with its credentials, and the redirects ``follow_redirects`` allows
        (docs/auth.md)."""
        response = await self._authorized(request)
        if self.config.follow_redirects == "same_origin":
            hops = 0
            while response.status_code in redirects.REDIRECT_STATUSES:
                request = redirects.follow(self.name, request, response, hops)
                hops += 1
                response = await self._authorized(request)
        return response

    async def _authorized(self, request: httpx.Request) -> httpx.Response:
        """One request through the auth flow (which may add a token fetch or a retry). Every
        401/403 to the request itself (not to a token request) is reported as the
        ``auth_rejected`` event: the audit log."""
        if self.auth is None:
            response = await self._roundtrip(request)
            if response.status_code in (401, 403):
                _rejected(self.name, request, response)
            return response
        flow = self.auth.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = await self._roundtrip(outgoing)
                if response.status_code in (401, 403) and outgoing is request:
                    _rejected(self.name, request, response)
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            await flow.aclose()

    async def _roundtrip(self, request: httpx.Request) -> httpx.Response:
        response = await self.transport.handle_async_request(request)
        try:
            body = await response.aread()  # decoded (the transport unpacked gzip within the limit)
        finally:
            await response.aclose()
        limit = request.extensions.get("max_body")
        if limit is not None and len(body) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        return response

    def raise_for_status(self, response: httpx.Response) -> None:
        """Raise the error that names a non-2xx status; ``detail`` keeps the start of the body
        for the operator's log."""
        status = response.status_code
        if 200 <= status < 300:
            return
        name = self.name
        error: UpstreamError
        if status in (401, 403):
            error = UpstreamAuthError(
                name, f"{name} rejected the gateway's credentials", status=status
            )
        elif status in redirects.REDIRECT_STATUSES:
            error = UpstreamBadResponse(
                name,
                f"{name} answered with a redirect (HTTP {status}), which is not followed",
                status=status,
            )
        elif status == 404:
            error = UpstreamNotFound(name, f"{name} has no such resource", status=status)
        elif status == 429:
            error = UpstreamRateLimited(name, f"{name} is rate limiting the gateway", status=status)
        elif status == 408 or status == 504:
            error = UpstreamTimeout(name, f"{name} timed out (HTTP {status})", status=status)
        elif status in (502, 503):
            error = UpstreamUnavailable(
                name, f"{name} is unavailable (HTTP {status})", status=status
            )
        else:
            error = UpstreamBadResponse(name, f"{name} answered HTTP {status}", status=status)
        error.detail = response.content[:300].decode("utf-8", "replace")
        error.response = response
        raise error

    def token_state(self) -> dict[str, object] | None:
        """The OAuth2 client-credentials token's state (``OAuth2ClientCredentialsAuth.state``),
        or None for an upstream with other credentials or none."""
        auth = self.auth
        if isinstance(auth, RotatingAuth):
            auth = auth.inner
        return auth.state() if isinstance(auth, OAuth2ClientCredentialsAuth) else None

    async def probe(self) -> Probe:
        """Is the upstream reachable? Any HTTP answer counts as up.

        No credentials are sent: neither the auth flow nor static headers given as secrets.
        """
        path = self.config.health_path
        url = self.url.copy_with(raw_path=path.encode("ascii")) if path else self.url
        request = httpx.Request(
            "GET", url, headers=self._probe_headers, extensions={"timeout": self.policy.timeouts}
        )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                response = await self._roundtrip(request)
        except (TimeoutError, httpx.TimeoutException):
            return Probe("down", _ms(started), f"no answer within {_PROBE_TIMEOUT:g}s")
        except httpx.HTTPError as exc:
            return Probe("down", _ms(started), _describe(exc))
        if response.status_code >= 500:
            return Probe("down", _ms(started), f"HTTP {response.status_code}")
        return Probe("up", _ms(started), f"HTTP {response.status_code}")

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.aclose()  # its background refreshes first
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _policy(
    total: float, connect: float, read: float | None, retry: RetryPolicy, dedup: bool
) -> CallPolicy:
    timeouts: dict[str, float | None] = {
        "connect": min(connect, total),
        # None: no limit between bytes of its own; the attempt's total still applies.
        "read": min(read, total) if read else None,
        "write": total,
        "pool": total,
    }
    return CallPolicy(total, timeouts, retry, dedup)


def _endpoint_pattern(match: str) -> re.Pattern[str]:
    """``"GET /reports/*"`` as a regular expression over ``"METHOD /path"`` (or
    ``"query Name"``): ``*`` is one path segment (any name part), ``**`` anything."""
    head, _, tail = match.partition(" ")
    head = r"[A-Z]+" if head == "*" else re.escape(head)
    parts = re.split(r"(\*\*|\*)", tail)
    body = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(f"{head} {body}\\Z")


def _rejected(upstream: str, request: httpx.Request, response: httpx.Response) -> None:
    current = caller.current()
    emit(
        "auth_rejected",
        upstream,
        status=response.status_code,
        method=request.method,
        principal=current.principal if current is not None else None,
    )


def _is_outage(error: UpstreamError) -> bool:
    """Failures that say the upstream is unwell (what the breaker counts): no connection, no
    answer in time, or a 5xx. A 4xx is about our request, not about its health."""
    if error.status is not None:
        return error.status >= 500
    return isinstance(error, UpstreamUnavailable | UpstreamTimeout)


def join_path(base: bytes, path: str) -> bytes:
    """``path`` (already encoded) below the configured base path, never above it."""
    return base.rstrip(b"/") + b"/" + path.lstrip("/").encode("ascii")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:  # the OSError sits a few causes down
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return "connection refused"
            cause = cause.__cause__ or cause.__context__
        return "cannot connect"
    return type(exc).__name__
