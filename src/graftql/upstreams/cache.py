"""The upstream response cache: the outermost policy of ``Upstream.send`` (docs/caching.md).

What is cached: answers (2xx) to GET and HEAD, and to POSTs the caller declares idempotent
(GraphQL queries; a GraphQL answer carrying ``errors`` is not stored). Writes are never cached;
a write whose endpoint names ``cache.tags`` invalidates them.

The key is a SHA-256 digest of everything that shaped the request before the pipeline's own
credentials were applied: upstream, method, URL, body and every header (so every header a
``Vary`` can name that the gateway sets), and the scope. Scope ``service``: the request carries
no credential of its own (the upstream's ``auth:`` flow adds the gateway's later), so everyone
shares the entry. Scope ``principal``: the request carries a credential-looking header that is
not one of the upstream's configured headers (a forwarded ``Authorization``, a cookie, an API
key), so the entry is that credential's alone; ``scope: principal`` also keys on the caller's
principal. Nothing is stored in clear: keys are digests.

``Cache-Control`` from the upstream decides over the configuration: ``no-store`` is never
stored, ``private`` only at principal scope, ``no-cache`` is revalidated before every use,
``max-age`` / ``s-maxage`` / ``Expires`` set the freshness, ``must-revalidate`` forbids serving
stale, and ``stale-while-revalidate`` / ``stale-if-error`` set the stale windows. Stale
entries with an ``ETag`` or ``Last-Modified`` are revalidated with ``If-None-Match`` /
``If-Modified-Since``; a 304 refreshes the entry and serves its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from graftql.config import CacheConfig, EndpointCacheConfig
from graftql.errors import (
    CircuitOpen,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from graftql.upstreams import caller, deadline
from graftql.upstreams.cache_redis import RedisBackend
from graftql.upstreams.cache_store import (
    DROPPED,
    Backend,
    BackendUnavailable,
    Entry,
    MemoryBackend,
    directives,
    head,
    lifetime,
    seconds,
)
from graftql.upstreams.events import emit
from graftql.upstreams.shared import SharedState

if TYPE_CHECKING:
    from graftql.upstreams.base import Upstream

__all__ = ["CachePolicy", "ResponseCache", "response_cache"]

logger = logging.getLogger("graftql.upstreams")

# Header names whose values identify who is asking (config/_base.py's list, plus the session).
CREDENTIAL = re.compile(r"authorization|cookie|api[-_]?key|token|secret|password|signature|session")
# Per-call headers that never change an answer: keying on them would make every key unique.
_NOT_KEYED = frozenset({"x-request-id", "traceparent", "tracestate", "baggage"})
_READS = frozenset({"GET", "HEAD"})
_STORABLE = frozenset({200, 203, 204})
_MARK = "graftql.cache"  # request extension: the cache has seen it ("revalidate": conditional)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What the cache does for one call: the upstream's ``cache:``, or an endpoint's."""

    enabled: bool
    ttl: float
    stale_while_revalidate: float
    stale_if_error: float
    principal: bool  # scope: principal
    tags: tuple[str, ...]
    max_entry_bytes: int


def response_cache(upstream: Upstream, shared: SharedState | None) -> ResponseCache | None:
    """The cache ``upstream``'s configuration asks for, or None."""
    config = upstream.config.cache
    if config is None:
        return None
    backend: Backend
    if config.backend == "redis":
        if shared is None:  # the configuration refuses this; a hand-built upstream may not
            raise ValueError(f"upstream {upstream.name!r}: cache.backend redis needs redis:")
        backend = RedisBackend.of(shared)
    else:
        backend = MemoryBackend(
            max_entries=config.max_entries, max_bytes=config.max_bytes, clock=time.time
        )
    return ResponseCache(upstream, backend)


def _policy(config: CacheConfig, endpoint: EndpointCacheConfig | None) -> CachePolicy:
    def pick(own: Any, upstream: Any) -> Any:
        return upstream if own is None else own

    e = endpoint or EndpointCacheConfig(enabled=config.enabled)
    return CachePolicy(
        enabled=e.enabled,
        ttl=pick(e.ttl, config.ttl),
        stale_while_revalidate=pick(e.stale_while_revalidate, config.stale_while_revalidate),
        stale_if_error=pick(e.stale_if_error, config.stale_if_error),
        # More isolation only: either level asking for principal scope gets it.
        principal="principal" in (config.scope, e.scope),
        tags=tuple(pick(e.tags, config.tags)),
        max_entry_bytes=config.max_entry_bytes,
    )


def _outage(error: UpstreamError) -> bool:
    """Failures stale-if-error covers: no answer, a 5xx or 429, an open breaker, or the
    gateway's own refusal. Not a 4xx: a 404 or 401 is an answer, not an outage."""
    if isinstance(error, CircuitOpen):
        return True
    if error.status is not None:
        return error.status >= 500 or error.status == 429
    return isinstance(error, UpstreamUnavailable | UpstreamTimeout | UpstreamRateLimited)


class ResponseCache:
    """One upstream's cache. ``send`` is called by ``Upstream.send`` and calls it back."""

    def __init__(
        self, upstream: Upstream, backend: Backend, *, clock: Callable[[], float] = time.time
    ) -> None:
        config = upstream.config.cache
        assert config is not None
        self.upstream = upstream
        self.name = upstream.name
        self.backend = backend
        self.clock = clock
        self.use_clock(clock)
        self.policy = _policy(config, None)
        # Endpoint policies by the identity of the CallPolicy the request was prepared with:
        # the endpoint was matched once already, when the request was built.
        self._by_call: dict[int, CachePolicy] = {
            id(call): _policy(config, entry.cache)
            for entry, (_, call) in zip(upstream.config.endpoints, upstream._endpoints, strict=True)
            if entry.cache is not None
        }
        self._static = {k.lower(): v for k, v in upstream._headers.items()}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Read the time from ``clock`` (wall-clock seconds); tests move it by hand."""
        self.clock = clock
        if isinstance(self.backend, MemoryBackend):
            self.backend.clock = clock  # one clock for the entries and their expiry

    def policy_for(self, request: httpx.Request) -> CachePolicy:
        call = request.extensions.get("graftql.policy")
        return self._by_call.get(id(call), self.policy) if call is not None else self.policy

    # -- the call -------------------------------------------------------------------------

    async def send(self, request: httpx.Request, idempotent: bool | None) -> httpx.Response:
        method = request.method
        if idempotent is None:
            idempotent = method in _READS
        policy = self.policy_for(request)
        request.extensions[_MARK] = True
        if not (method in _READS or (method == "POST" and idempotent)):
            return await self._write(request, idempotent, policy)
        if not policy.enabled:
            return await self.upstream.send(request, idempotent=idempotent)
        scope, key = self.key(request, policy)
        try:
            entry, generations = await self.backend.get(key, policy.tags)
        except BackendUnavailable:
            self._emit("bypass", scope, reason="backend_unavailable")
            return await self.upstream.send(request, idempotent=idempotent)
        if entry is not None and entry.generations != generations:
            entry = None  # one of its tags was invalidated since it was fetched
        now = self.clock()
        if entry is not None:
            if entry.is_fresh(now):
                self._emit("hit", scope)
                return entry.response(request)
            if entry.stale_usable(now, entry.stale_while_revalidate):
                self._refresh_later(
                    key,
                    lambda: self._refresh(
                        key, request, entry, generations, policy, scope, idempotent
                    ),
                )
                self._emit("stale", scope, reason="revalidating")
                return entry.response(request)
        outgoing = _conditional(request, entry) if entry is not None else request
        try:
            response = await self.upstream.send(outgoing, idempotent=idempotent)
        except UpstreamError as error:
            if (
                entry is not None
                and _outage(error)
                and entry.stale_usable(self.clock(), entry.stale_if_error)
            ):
                self._emit("stale", scope, reason=error.code)
                return entry.response(request)
            self._emit("miss", scope)  # looked up, nothing served from the cache
            raise
        return await self._settle(
            key, request, outgoing, response, entry, generations, policy, scope
        )

    async def _write(
        self, request: httpx.Request, idempotent: bool, policy: CachePolicy
    ) -> httpx.Response:
        """A call that is not a read: never cached; its endpoint's tags are invalidated once it
        was sent, whatever its outcome (a write that timed out may still have happened)."""
        sent = True
        try:
            return await self.upstream.send(request, idempotent=idempotent)
        except UpstreamError as error:
            sent = error.sent
            raise
        finally:
            if policy.tags and sent and request.method != "OPTIONS":
                await self.invalidate(policy.tags)

    async def _settle(
        self,
        key: str,
        request: httpx.Request,
        outgoing: httpx.Request,
        response: httpx.Response,
        entry: Entry | None,
        generations: tuple[int, ...],
        policy: CachePolicy,
        scope: str,
        *,
        background: bool = False,
    ) -> httpx.Response:
        """Store what came back (or refresh ``entry`` on a 304) and return what to serve."""
        if response.status_code == 304 and entry is not None and outgoing is not request:
            refreshed = self._refreshed(entry, response, generations, scope)
            await self._put(key, refreshed, policy)
            self._emit("revalidated", scope)
            return refreshed.response(request)
        if not background:
            self._emit("miss", scope)
        fresh = self._entry(outgoing, response, generations, policy, scope)
        if fresh is not None:
            await self._put(key, fresh, policy)
        elif entry is not None:
            with contextlib.suppress(BackendUnavailable):
                await self.backend.delete(key)  # e.g. now no-store: the old answer must go
        return response

    def _entry(
        self,
        sent: httpx.Request,
        response: httpx.Response,
        generations: tuple[int, ...],
        policy: CachePolicy,
        scope: str,
    ) -> Entry | None:
        """The entry to store for ``response``, or None when it must not be stored."""
        if response.status_code not in _STORABLE or len(response.content) > policy.max_entry_bytes:
            return None
        headers = head(response)
        control = directives(headers.get("cache-control"))
        if "no-store" in control or headers.get("vary", "").strip() == "*":
            return None
        private = "private" in control or "set-cookie" in headers
        if private and scope != "principal":
            return None
        if sent.method == "POST" and b'"errors"' in response.content:
            return None  # a GraphQL answer with errors (or one we cannot tell from it)
        revalidate = "no-cache" in control
        strict = revalidate or "must-revalidate" in control or "proxy-revalidate" in control
        swr = seconds(control.get("stale-while-revalidate"))
        sie = seconds(control.get("stale-if-error"))
        fresh_for = (
            0.0
            if revalidate
            else lifetime(headers, control, shared=scope == "service", default=policy.ttl)
        )
        if strict:
            swr = sie = 0.0
        swr = policy.stale_while_revalidate if swr is None else swr
        sie = policy.stale_if_error if sie is None else sie
        validators = "etag" in headers or "last-modified" in headers
        if revalidate and not validators:
            return None  # it could never be used
        if fresh_for + max(swr, sie, policy.ttl if validators else 0.0) <= 0:
            return None  # Entry.keep_for: nothing to keep it for
        if scope == "service" and self._forwarded(sent):
            return None  # the pipeline put the client's own credential on it after all
        return Entry.of(
            response,
            headers,
            now=self.clock(),
            fresh_for=fresh_for,
            stale_while_revalidate=swr,
            stale_if_error=sie,
            revalidate=revalidate,
            generations=generations,
        )

    def _refreshed(
        self, entry: Entry, response: httpx.Response, generations: tuple[int, ...], scope: str
    ) -> Entry:
        """``entry`` after a 304: the 304's headers replace the stored ones, times restart."""
        headers = httpx.Headers(entry.headers)
        for name, value in response.headers.items():
            if name not in DROPPED:
                headers[name] = value
        merged = dict(headers.items())
        control = directives(merged.get("cache-control"))
        revalidate = "no-cache" in control
        return Entry(
            entry.status,
            list(headers.multi_items()),
            entry.body,
            self.clock(),
            0.0
            if revalidate
            else lifetime(merged, control, shared=scope == "service", default=entry.fresh_for),
            entry.stale_while_revalidate,
            entry.stale_if_error,
            revalidate,
            generations,
            merged.get("etag"),
            merged.get("last-modified"),
        )

    async def _put(self, key: str, entry: Entry, policy: CachePolicy) -> None:
        with contextlib.suppress(BackendUnavailable):  # the backend has warned already
            await self.backend.put(key, entry, entry.keep_for(policy.ttl))

    # -- stale-while-revalidate -----------------------------------------------------------

    def _refresh_later(self, key: str, refresh: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``refresh()`` (``_refresh``) in the background, once however many callers see
        ``key`` stale."""
        if key in self._refreshing:
            return
        self._refreshing.add(key)
        task = asyncio.get_running_loop().create_task(
            refresh(), name=f"graftql-cache-refresh-{self.name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(
        self,
        key: str,
        request: httpx.Request,
        entry: Entry,
        generations: tuple[int, ...],
        policy: CachePolicy,
        scope: str,
        idempotent: bool,
    ) -> None:
        # Not bound by the deadline of the request that happened to notice: by its own.
        call = request.extensions.get("graftql.policy") or self.upstream.policy
        token = deadline.start(call.timeout * call.retry.config.attempts)
        try:
            outgoing = _conditional(request, entry)
            response = await self.upstream.send(outgoing, idempotent=idempotent)
            await self._settle(
                key,
                request,
                outgoing,
                response,
                entry,
                generations,
                policy,
                scope,
                background=True,
            )
        except UpstreamError as error:
            logger.info("%s: refreshing a stale cache entry failed (%s)", self.name, error.code)
        finally:
            deadline.reset(token)
            self._refreshing.discard(key)

    # -- keys and scope -------------------------------------------------------------------

    def key(self, request: httpx.Request, policy: CachePolicy) -> tuple[str, str]:
        """(scope, key) for ``request``: see the module's docstring."""
        digest = hashlib.sha256()
        digest.update(f"{self.name}\0{request.method}\0".encode())
        digest.update(str(request.url).encode() + b"\0")
        digest.update(request.content + b"\0")
        # Headers the upstream's forwarding rules copied from the client's credential, whatever
        # their name (``forward`` may rename Authorization to x-session).
        own_credential = bool(request.extensions.get("graftql.forwarded_credentials"))
        for name, value in sorted(request.headers.multi_items()):
            name = name.lower()
            if name in _NOT_KEYED:
                continue
            digest.update(f"{name}\0{value}\0".encode())
            if not own_credential and CREDENTIAL.search(name) and self._static.get(name) != value:
                own_credential = True
        scope = "principal" if own_credential or policy.principal else "service"
        digest.update(scope.encode())
        if policy.principal:
            who = caller.current()
            principal = who.principal if who is not None else None
            digest.update(b"\0principal\0" + (principal or "-").encode())
        return scope, f"{self.name}:{digest.hexdigest()}"

    def _forwarded(self, sent: httpx.Request) -> bool:
        """Did a credential header the client sent end up on ``sent`` (put there inside the
        pipeline, after the key was made)? Then the answer is that client's alone."""
        who = caller.current()
        if who is None:
            return False
        theirs = [v for k, v in who.headers.items() if CREDENTIAL.search(k) and len(v) >= 8]
        if not theirs:
            return False
        return any(
            CREDENTIAL.search(name.lower()) and any(mine in value for mine in theirs)
            for name, value in sent.headers.items()
        )

    # -- invalidation, health, closing ------------------------------------------------------

    async def invalidate(self, tags: Iterable[str]) -> None:
        """Entries carrying any of ``tags`` are never used again (on every replica, with
        Redis). While Redis is unreachable an invalidation is lost: entries then live until
        their time runs out."""
        wanted = list(dict.fromkeys(tags))
        if not wanted:
            return
        with contextlib.suppress(BackendUnavailable):
            await self.backend.bump(wanted)

    async def healthy(self) -> bool:
        return await self.backend.healthy()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _emit(self, outcome: str, scope: str, **fields: Any) -> None:
        emit("cache", self.name, outcome=outcome, scope=scope, **fields)


def _conditional(request: httpx.Request, entry: Entry) -> httpx.Request:
    """A copy of ``request`` that asks whether ``entry`` is still current (or a plain copy when
    it has no validators): the pipeline's auth flow may change the request it is given."""
    headers = request.headers.copy()
    mark: Any = True
    if entry.etag is not None:
        headers["if-none-match"] = entry.etag
        mark = "revalidate"
    if entry.last_modified is not None:
        headers["if-modified-since"] = entry.last_modified
        mark = "revalidate"
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        content=request.content,
        extensions={**request.extensions, _MARK: mark},
    )


def distinct_backends(caches: Sequence[ResponseCache]) -> list[Backend]:
    seen: dict[int, Backend] = {}
    for cache in caches:
        seen.setdefault(id(cache.backend), cache.backend)
    return list(seen.values())
