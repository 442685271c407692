"""A GraphQL upstream's subscriptions, over WebSocket through gql's websockets transport.

- **One upstream subscription per distinct operation.** Every client that subscribes with the
  same document and variables shares one upstream subscription (the upstream's credentials are
  the gateway's, not the client's, so what one client may see all may); it is opened for the
  first and closed when the last one leaves.
- **Credentials.** The upstream's own ``auth:`` flow runs on the handshake as it would on an
  HTTP request (bearer, API key in a header or the query, basic, OAuth2 client credentials
  with its cached token, HMAC), so the handshake carries the headers the upstream expects;
  ``credentials_in_init`` puts them in the ``connection_init`` payload too. Never a client's:
  the shared subscription runs outside every client's operation (``upstreams.caller`` is
  None there), so nothing a client sent can be forwarded on it.
- **Reconnecting.** A lost connection (closed, refused, no pong, no ack) is opened again after
  an exponential backoff with full jitter, and the operation subscribed again; events the
  upstream sent in between are missed. After ``reconnect_attempts`` failures in a row the
  subscribers get ``UPSTREAM_UNAVAILABLE``. The upstream refusing the credentials (HTTP
  401/403 at the handshake, or 4401/4403) is ``UPSTREAM_AUTH_FAILED`` at once, and refusing
  the operation (an ``error`` message) ``UPSTREAM_BAD_RESPONSE``: neither gets better by
  retrying.
- **Slow subscribers.** Each has a queue of ``buffer`` events; one that falls further behind
  loses its oldest events, never holding up the others.

Clock-free: the waits go through an injected ``sleep`` and ``random``, so the backoff is
testable without waiting.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import httpx
import orjson
from gql import GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from graphql import DocumentNode, ExecutionResult
from websockets.exceptions import ConnectionClosed, InvalidStatus

from graftql.config import UpstreamSubscriptionsConfig
from graftql.errors import UpstreamAuthError, UpstreamError, UpstreamUnavailable

__all__ = [
    "SubscriptionUpstream",
    "UpstreamSubscriptions",
    "backoff_delay",
    "init_payload",
    "websocket_url",
]

logger = logging.getLogger("graftql.upstreams")

_END = object()


class SubscriptionUpstream(Protocol):
    """What the subscriptions need of a GraphQL upstream (``GraphQLUpstream``)."""

    name: str
    url: httpx.URL
    auth: httpx.Auth | None
    transport: httpx.AsyncBaseTransport

    def static_headers(self) -> dict[str, str]: ...

    def graphql_errors(self, data: Any, errors: list[Any]) -> UpstreamError: ...


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """The wait before reconnection ``attempt`` (1, 2, ...): full jitter in
    ``[0, min(cap, initial * 2**(attempt-1))]``."""
    return rng.uniform(0, min(cap, initial * 2 ** min(attempt - 1, 30)))


def init_payload(headers: dict[str, str], where: str) -> dict[str, Any]:
    """The ``connection_init`` payload for ``credentials_in_init``."""
    if where == "flat":
        return dict(headers)
    if where == "headers":
        return {"headers": dict(headers)}
    return {}


def websocket_url(upstream_url: httpx.URL, configured: str | None) -> httpx.URL:
    if configured is not None:
        return httpx.URL(configured)
    scheme = "wss" if upstream_url.scheme == "https" else "ws"
    return upstream_url.copy_with(scheme=scheme)


class _Feed:
    """One upstream subscription and the clients sharing it."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[object]] = set()
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0

    def publish(self, item: object) -> None:
        for queue in self.subscribers:
            if queue.full():  # a slow subscriber loses its oldest event, not the others theirs
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(item)


class UpstreamSubscriptions:
    """The subscriptions of one GraphQL upstream; ``subscribe`` yields each event's ``data``."""

    def __init__(
        self,
        upstream: SubscriptionUpstream,
        config: UpstreamSubscriptionsConfig,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._upstream = upstream
        self.config = config
        self.url = websocket_url(upstream.url, config.url)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._feeds: dict[tuple[str, bytes], _Feed] = {}
        self.connections = 0  # connections opened, for tests and logs

    @property
    def active(self) -> int:
        """Upstream subscriptions open (or being re-established) now."""
        return len(self._feeds)

    @property
    def subscribers(self) -> int:
        """Gateway subscriptions reading them, all together."""
        return sum(len(feed.subscribers) for feed in self._feeds.values())

    async def subscribe(
        self, document: DocumentNode, source: str, variables: dict[str, Any] | None = None
    ) -> AsyncGenerator[Any, None]:
        """Each event's ``data``, for as long as the caller iterates; raises the
        ``UpstreamError`` that ended the upstream subscription, if one did."""
        key = (source, orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS))
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed()
            # A context of its own: the subscription is shared, so it must not run as the
            # client that happened to open it (``upstreams.caller``: no forwarded credential,
            # no principal-scoped anything), nor inherit that operation's deadline.
            feed.task = asyncio.create_task(
                self._run(key, feed, document, variables), context=contextvars.Context()
            )
        queue: asyncio.Queue[object] = asyncio.Queue(self.config.buffer)
        feed.subscribers.add(queue)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            feed.subscribers.discard(queue)
            if not feed.subscribers and self._feeds.get(key) is feed:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()

    async def aclose(self) -> None:
        """Close every upstream subscription; their subscribers get UPSTREAM_UNAVAILABLE."""
        feeds = list(self._feeds.values())
        tasks = [feed.task for feed in feeds if feed.task is not None]
        self._feeds.clear()
        name = self._upstream.name
        for feed in feeds:
            feed.publish(UpstreamUnavailable(name, f"{name} subscriptions are shutting down"))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self,
        key: tuple[str, bytes],
        feed: _Feed,
        document: DocumentNode,
        variables: dict[str, Any] | None,
    ) -> None:
        name = self._upstream.name
        config = self.config
        failures = 0
        try:
            while True:
                try:
                    async for result in self._session(document, variables):
                        failures = 0
                        if result.errors:
                            raise self._upstream.graphql_errors(result.data, list(result.errors))
                        feed.publish(result.data)
                    feed.publish(_END)  # the upstream completed the subscription
                    return
                except UpstreamError as error:
                    feed.publish(error)
                    return
                except TransportQueryError as error:
                    feed.publish(self._upstream.graphql_errors(None, _errors_of(error)))
                    return
                except (
                    TransportError,
                    OSError,
                    TimeoutError,
                    ConnectionClosed,
                    httpx.HTTPError,
                ) as error:
                    refused = _auth_refusal(error)
                    if refused is not None:
                        feed.publish(UpstreamAuthError(name, f"{name} {refused}"))
                        return
                    failures += 1
                    if config.reconnect_attempts and failures >= config.reconnect_attempts:
                        feed.publish(
                            UpstreamUnavailable(
                                name, f"{name} subscription connection lost; reconnecting failed"
                            )
                        )
                        return
                    delay = backoff_delay(
                        failures, config.reconnect_initial, config.reconnect_max, self._rng
                    )
                    logger.warning(
                        "%s: subscription connection lost (%s); reconnecting in %.1f s "
                        "(attempt %d)",
                        name,
                        type(error).__name__,
                        delay,
                        failures,
                    )
                    await self._sleep(delay)
        except Exception:  # a bug: the subscribers must hear of it, not wait forever
            logger.exception("%s: subscription failed", name)
            feed.publish(UpstreamUnavailable(name, f"{name} subscription failed"))
        finally:
            if self._feeds.get(key) is feed:
                del self._feeds[key]

    async def _session(
        self, document: DocumentNode, variables: dict[str, Any] | None
    ) -> AsyncIterator[ExecutionResult]:
        """One connection: connect with the credentials, subscribe, yield its results."""
        headers, url = await self._credentials()
        config = self.config
        transport = WebsocketsTransport(
            url=str(url),
            headers=headers,
            init_payload=init_payload(headers, config.credentials_in_init),
            subprotocols=[config.protocol],
            ping_interval=config.ping_interval
            if config.protocol == "graphql-transport-ws"
            else None,
            pong_timeout=config.pong_timeout,
            connect_timeout=10,
            ack_timeout=10,
        )
        self.connections += 1
        await transport.connect()
        try:
            request = GraphQLRequest(document, variable_values=variables)
            async for result in transport.subscribe(request):
                yield result
        finally:
            await transport.close()

    async def _credentials(self) -> tuple[dict[str, str], httpx.URL]:
        """The handshake's headers (and URL, for an API key in the query): the upstream's
        static headers and its auth flow run on a stand-in GET to the same address."""
        upstream = self._upstream
        scheme = "https" if self.url.scheme == "wss" else "http"
        request = httpx.Request(
            "GET", self.url.copy_with(scheme=scheme), headers=upstream.static_headers()
        )
        auth = upstream.auth
        if auth is not None:
            flow = auth.async_auth_flow(request)
            try:
                outgoing = await flow.__anext__()
                while outgoing is not request:  # e.g. an OAuth2 token fetch
                    response = await upstream.transport.handle_async_request(outgoing)
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
                    outgoing = await flow.asend(response)
            finally:
                await flow.aclose()
        headers = {
            key: value
            for key, value in request.headers.items()
            if key not in ("host", "user-agent", "content-length", "accept", "accept-encoding")
        }
        url = request.url.copy_with(scheme=self.url.scheme)
        return headers, url


def _errors_of(error: TransportQueryError) -> list[Any]:
    errors = error.errors if error.errors else [{"message": str(error)}]
    return list(errors)


def _auth_refusal(error: BaseException) -> str | None:
    """The reason, when the upstream refused the gateway's credentials (HTTP 401/403 at the
    handshake, or a close with 4401/4403)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, InvalidStatus) and seen.response.status_code in (401, 403):
            return f"rejected the gateway's credentials (HTTP {seen.response.status_code})"
        if isinstance(seen, ConnectionClosed) and seen.rcvd is not None:
            if seen.rcvd.code in (4401, 4403):
                return f"rejected the gateway's credentials (close code {seen.rcvd.code})"
        seen = seen.__cause__ or seen.__context__
    return None
