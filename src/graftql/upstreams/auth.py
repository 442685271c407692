"""Upstream credentials as ``httpx.Auth`` flows, built from an upstream's ``auth:`` block.

Each flow sees exactly one upstream's requests, so a credential can only reach the upstream it
was configured for. Secrets are revealed at the last moment and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx

from graftql.config import (
    ApiKeyAuth,
    AuthConfig,
    AwsSigV4Auth,
    BasicAuth,
    BearerAuth,
    ForwardAuth,
    HmacAuth,
    OAuth2ClientCredentials,
)
from graftql.errors import UpstreamAuthError
from graftql.upstreams import caller
from graftql.upstreams.events import emit
from graftql.upstreams.rotation import SecretFiles, file_secrets

__all__ = ["HmacSigner", "OAuth2ClientCredentialsAuth", "build_auth"]


def build_auth(upstream: str, config: AuthConfig | None) -> httpx.Auth | None:
    """The ``httpx.Auth`` for an upstream's ``auth:`` block (``None`` when it has none)."""
    match config:
        case None:
            return None
        case BearerAuth():
            return _StaticHeader("Authorization", lambda: f"Bearer {config.token.reveal()}")
        case ApiKeyAuth(header=str() as header):
            return _StaticHeader(header, config.value.reveal)
        case ApiKeyAuth(query=str() as query):
            return _QueryParam(query, config.value.reveal)
        case BasicAuth():
            return _StaticHeader("Authorization", lambda: _basic(config))
        case OAuth2ClientCredentials():
            return OAuth2ClientCredentialsAuth(upstream, config)
        case HmacAuth():
            return HmacSigner(config)
        case AwsSigV4Auth():
            from graftql.upstreams.sigv4 import SigV4Signer  # botocore: the optional extra

            return SigV4Signer(config)
        case ForwardAuth():
            return None  # the client's own headers, written when the request is prepared
    raise AssertionError(f"unhandled auth config {type(config).__name__}")  # pragma: no cover


def _basic(config: BasicAuth) -> str:
    pair = f"{config.username}:{config.password.reveal()}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class _StaticHeader(httpx.Auth):
    def __init__(self, name: str, value: Callable[[], str]) -> None:
        self._name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._name] = self._value()
        yield request


class _QueryParam(httpx.Auth):
    def __init__(self, name: str, value: Callable[[], str]) -> None:
        self._name = name
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.url = request.url.copy_merge_params({self._name: self._value()})
        yield request


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # on the auth's clock
    expires_at: float  # on the auth's clock


class OAuth2ClientCredentialsAuth(httpx.Auth):
    """OAuth2 client-credentials grant (RFC 6749 section 4.4).

    The token is cached and fetched again ``refresh_leeway`` seconds before it expires;
    concurrent requests share one fetch. On a 401 the token that was used is dropped (only if it
    is still the cached one), a new one is fetched and the request is sent once more; a second
    401 is returned to the caller, never a loop.

    Every fetch emits the ``token`` event: ``outcome`` is ``fetched``, or ``failed`` when the
    token endpoint refused, answered unusably or could not be reached (or the call that
    needed the token was abandoned during the fetch); ``trigger`` is ``missing`` (no token
    yet), ``expiring`` (refresh before expiry) or ``rejected`` (the upstream answered 401).

    A ``file:`` client secret the token endpoint refuses (400/401) is read again; if it
    changed, the fetch is tried once more with the new value (secret rotation).
    """

    def __init__(
        self,
        upstream: str,
        config: OAuth2ClientCredentials,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstream = upstream
        self._config = config
        self._clock = clock
        self._token: _Token | None = None
        # The last fetch's failure (when, on the clock, and why), None after a success.
        self._failure: tuple[float, str] | None = None
        self._lock = asyncio.Lock()
        secrets = file_secrets(config)
        self._files = SecretFiles(upstream, secrets) if secrets else None

    def _fresh(self) -> _Token | None:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token
        return None

    def _token_request(self) -> httpx.Request:
        cfg = self._config
        form = {**cfg.extra_params, "grant_type": "client_credentials"}
        if cfg.scopes:
            form["scope"] = " ".join(cfg.scopes)
        if cfg.audience:
            form["audience"] = cfg.audience
        request = httpx.Request("POST", cfg.token_url, data=form)
        # RFC 6749 section 2.3.1: id and secret are form-encoded before they go into Basic.
        basic = httpx.BasicAuth(quote_plus(cfg.client_id), quote_plus(cfg.client_secret.reveal()))
        return next(basic.auth_flow(request))

    async def _store(self, response: httpx.Response, requested_at: float) -> _Token:
        name = self._upstream
        await response.aread()  # httpx reads bodies only for flows it runs itself
        status = response.status_code
        said = response.content[:300].decode("utf-8", "replace")  # for the operator's log
        if status in (400, 401, 403):
            raise UpstreamAuthError(
                name,
                f"{name} token endpoint refused the gateway's client credentials (HTTP {status})",
                status=status,
                detail=said,
            )
        if not 200 <= status < 300:
            raise UpstreamAuthError(
                name, f"{name} token endpoint failed (HTTP {status})", status=status, detail=said
            )
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise UpstreamAuthError(name, f"{name} token endpoint answered unusably") from None
        if not isinstance(value, str) or not value:
            raise UpstreamAuthError(name, f"{name} token endpoint returned no access token")
        # Measured from when we asked, so network time never makes us hold an expired token.
        leeway = min(self._config.refresh_leeway, expires_in / 2)
        expires_at = requested_at + expires_in
        self._token = _Token(value, expires_at - leeway, expires_at)
        return self._token

    async def _fetch(self, trigger: str) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Fetch a token into the cache (the caller holds the lock). Refused client
        credentials from a ``file:`` secret are read again and tried once more."""
        files = self._files
        generation = files.generation if files is not None else 0
        for attempt in (1, 2):
            outcome = "failed"
            # Until the endpoint answers: unreachable, too slow, or the call was abandoned.
            reason = "no answer"
            try:
                requested_at = self._clock()
                await self._store((yield self._token_request()), requested_at)
                outcome = "fetched"
                return
            except UpstreamAuthError as error:
                reason = f"HTTP {error.status}" if error.status else "unusable answer"
                if not (
                    attempt == 1
                    and error.status in (400, 401)
                    and files is not None
                    and await files.renewed_since(generation)
                ):
                    raise
            finally:  # also when the token endpoint could not be reached
                self._failure = None if outcome == "fetched" else (self._clock(), reason)
                current = caller.current()
                emit(
                    "token",
                    self._upstream,
                    outcome=outcome,
                    trigger=trigger,
                    principal=current.principal if current is not None else None,
                )

    def state(self) -> dict[str, object]:
        """The token as ``/readyz`` shows it, never its value: ``failing`` (the last fetch
        failed: ``error`` says how, ``since_s`` how long ago), ``missing`` (none fetched yet),
        ``valid`` (``expires_in_s``: seconds left) or ``expired`` (the next call fetches one)."""
        now = self._clock()
        if self._failure is not None:
            at, reason = self._failure
            return {"state": "failing", "error": reason, "since_s": round(now - at, 1)}
        token = self._token
        if token is None:
            return {"state": "missing"}
        if now < token.expires_at:
            return {"state": "valid", "expires_in_s": round(token.expires_at - now, 1)}
        return {"state": "expired"}

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # Two rounds at most: the request with the cached token (fetched first when there is
        # none), then once more with a new token if the upstream answers 401 to that one.
        token = self._fresh()
        rejected: _Token | None = None
        while True:
            if token is None:
                async with self._lock:
                    trigger = self._fetch_trigger(rejected)
                    if trigger is not None:
                        # An async generator cannot ``yield from``: relay the fetch's requests.
                        fetch = self._fetch(trigger)
                        try:
                            outgoing = await fetch.__anext__()
                            while True:
                                try:
                                    outgoing = await fetch.asend((yield outgoing))
                                except StopAsyncIteration:
                                    break
                        finally:
                            await fetch.aclose()
                    token = self._token
                    assert token is not None
            request.headers["Authorization"] = f"Bearer {token.value}"
            response = yield request
            if response.status_code != 401 or rejected is not None:
                return
            rejected, token = token, None

    def _fetch_trigger(self, rejected: _Token | None) -> str | None:
        """Why a token must be fetched (the caller holds the lock), or None when a fresh one
        is there: another call fetched it meanwhile. ``rejected``: the upstream answered 401
        to that token; it is dropped unless another call replaced it already."""
        if rejected is not None and self._token is rejected:
            self._token = None
        if self._fresh() is not None:
            return None
        if rejected is not None:
            return "rejected"
        return "missing" if self._token is None else "expiring"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("graftql upstreams are asynchronous")


class HmacSigner(httpx.Auth):
    """Signs each request with HMAC over timestamp, method, path, query and body digest.

    The canonical string is ``"\\n".join([timestamp, METHOD, raw_path, raw_query,
    hex(digest(body))])`` with the path and query exactly as they go on the wire; the
    timestamp (unix seconds) lets the upstream reject replays.
    """

    requires_request_body = True

    def __init__(self, config: HmacAuth, *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock

    def signature(self, request: httpx.Request, timestamp: str) -> str:
        cfg = self._config
        digest = getattr(hashlib, cfg.algorithm)
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        canonical = "\n".join(
            [timestamp, request.method, path, query, digest(request.content).hexdigest()]
        )
        key = cfg.secret.reveal().encode()
        return hmac.new(key, canonical.encode(), digest).hexdigest()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        cfg = self._config
        timestamp = str(int(self._clock()))
        request.headers[cfg.key_id_header] = cfg.key_id
        request.headers[cfg.timestamp_header] = timestamp
        request.headers[cfg.signature_header] = self.signature(request, timestamp)
        yield request
