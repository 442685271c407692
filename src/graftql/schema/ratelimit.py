"""Inbound rate limits (``server.rate_limit``): operations per client, on every transport.

- **What counts.** GraphQL operations, not HTTP requests: each entry of a batch and each
  operation sent over a WebSocket takes a token, whatever it turns out to be (a document that
  does not parse counts too). ``RateLimitOperations`` is a schema extension, so HTTP and
  WebSocket share it; a refused operation is neither parsed nor validated, and never runs.
- **Who is a client.** The principal, when inbound auth set ``Context.principal``; else the
  client's IP address (an IPv6 client by its /64, the block one subscriber usually holds). The
  IP is the TCP peer's, unless that peer is one of ``trusted_proxies``: then it is the
  right-most ``X-Forwarded-For`` address that is not itself a trusted proxy. From any other
  peer the header is ignored, since a client can write anything in it.
- **Where the buckets live.** In memory, one token bucket per client, the least recently seen
  forgotten past 100 000 (a forgotten client starts again with a full bucket, so forgetting
  can only be lenient). With ``shared: true`` one bucket per client for all replicas, in Redis
  (``SharedState.reserve``, the GCRA script the upstream limits use); while Redis cannot
  answer, each replica falls back to its own buckets.
- **What a refused client sees.** ``OperationRateLimited`` (``RATE_LIMITED``, with
  ``retryAfter`` in whole seconds): over HTTP a 429 with ``Retry-After`` (server/http.py), over
  WebSocket an ``error`` message for that operation.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from graphql import GraphQLError
from starlette.requests import HTTPConnection
from strawberry.extensions import SchemaExtension

from graftql.config import InboundRateLimitConfig, RateLimitConfig
from graftql.errors import GraftqlError
from graftql.resolvers import Context, principal_id
from graftql.schema.documents import stand_in
from graftql.upstreams import SharedState
from graftql.upstreams.limits import Rejected

__all__ = [
    "ClientBuckets",
    "InboundRateLimiter",
    "OperationRateLimited",
    "RateLimitOperations",
    "client_address",
    "rate_limit_extensions",
]

logger = logging.getLogger("graftql.server")

_MAX_CLIENTS = 100_000
_REPORT_EVERY = 30.0  # seconds between the log lines that count refused operations

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OperationRateLimited(GraftqlError):
    """The client has used up its operations (``server.rate_limit``); this one was not run.

    ``retry_after``: whole seconds until the client's next operation would be admitted.
    """

    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many operations from this client; retry after {retry_after} "
            f"second{'s' if retry_after != 1 else ''}"
        )
        self.retry_after = retry_after

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code, "retryAfter": self.retry_after}


class ClientBuckets:
    """One token bucket per client key: ``rate`` tokens a second, at most ``burst`` saved up.

    The arithmetic of ``graftql.upstreams.limits.RateLimiter``, with two differences: an
    operation that finds too few tokens is refused and takes nothing (a client is never
    queued, so a bucket never goes below zero), and each bucket is two floats in an LRU map
    rather than an object, since there may be 100 000 of them.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = _MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def take(self, key: str, cost: int = 1) -> float:
        """Take ``cost`` tokens from ``key``'s bucket: 0.0 when admitted, else the seconds
        until it would be (and nothing is taken). ``cost`` above ``burst`` is never admitted."""
        now = self._clock()
        found = self._buckets.pop(key, None)
        tokens = float(self.burst)
        if found is not None:
            saved, updated = found
            tokens = min(tokens, saved + (now - updated) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate
        self._buckets[key] = (tokens, now)  # now the most recently used
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


class InboundRateLimiter:
    """The state behind ``server.rate_limit`` for one gateway: the local buckets, and the
    Redis bucket per client when ``shared``. One per built schema."""

    def __init__(
        self, config: InboundRateLimitConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.local = ClientBuckets(config.rate, config.burst, clock=clock)
        self.trusted: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(network) for network in config.trusted_proxies
        )
        # The shape SharedState.reserve reads (rate and burst).
        self._shared_config = RateLimitConfig(rate=config.rate, burst=config.burst, shared=True)
        self._refused = 0
        self._reported_at = -_REPORT_EVERY

    def client_key(self, context: Context) -> str:
        """The principal when there is one, else the client's address (IPv6: its /64)."""
        if context.principal:
            return f"principal:{principal_id(context.principal)}"
        address = client_address(context.request, self.trusted)
        if isinstance(address, ipaddress.IPv6Address):
            return f"ip:{ipaddress.IPv6Network((address, 64), strict=False)}"
        return f"ip:{address if address is not None else 'unknown'}"

    async def take(self, key: str, shared: SharedState | None, cost: int = 1) -> float:
        """Admit one operation of ``cost`` for ``key``: 0.0, or the seconds until the client's
        next operation would be admitted (nothing is taken then)."""
        wait = await self._take(key, shared, cost)
        if wait > 0:
            self._report(key)
        return wait

    async def _take(self, key: str, shared: SharedState | None, cost: int) -> float:
        if self.config.shared and shared is not None:
            try:
                await shared.reserve(f"inbound:{key}", self._shared_config, 0.0, weight=cost)
            except Rejected as rejected:
                return max(rejected.wait or 0.0, 1e-6)
            except LookupError:
                pass  # Redis cannot answer (SharedState warned): this replica's own bucket
            else:
                return 0.0
        return self.local.take(key, cost)

    def _report(self, key: str) -> None:
        """One warning every 30 s at most, however many operations are refused: a client
        hammering the gateway must not flood its log too."""
        self._refused += 1
        now = time.monotonic()
        if now - self._reported_at >= _REPORT_EVERY:
            logger.warning(
                "inbound rate limit: refused %d operation(s) since the last report (latest "
                "from %s)",
                self._refused,
                key,
            )
            self._refused = 0
            self._reported_at = now


class RateLimitOperations(SchemaExtension):
    """Counts every operation against its client's bucket before it is parsed.

    Must come before ``CheckedDocuments`` among the schema's extensions: a refused operation
    gets a stand-in document instead of being parsed, and its refusal is the validation
    result, which ``CheckedDocuments`` then leaves alone (and which strawberry reports alike
    over HTTP and WebSocket). Pass it as a factory around one limiter:
    ``lambda: RateLimitOperations(limiter)``.
    """

    def __init__(self, limiter: InboundRateLimiter) -> None:
        self._limiter = limiter
        self._refused: GraphQLError | None = None

    def cost(self) -> int:
        """What this operation takes from the bucket: 1 for now.

        The hook for a cost-weighted limit. It is called before parsing, so a weight from the
        estimated cost (``schema/limits.py``) would be charged in two steps: 1 here, to admit
        the operation at all, and the rest once ``CheckedDocuments`` has measured it. Both
        kinds of bucket take a weight (``ClientBuckets.take``, ``SharedState.reserve``)."""
        return 1

    async def on_operation(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            limiter = self._limiter
            key = limiter.client_key(context)
            wait = await limiter.take(key, context.upstreams.shared, self.cost())
            if wait > 0:
                refusal = OperationRateLimited(max(1, math.ceil(wait)))
                self._refused = GraphQLError(refusal.message, original_error=refusal)
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if self._refused is not None and context.graphql_document is None:
            context.graphql_document = stand_in(context)  # carries the refusal to validation
        yield

    def on_validate(self) -> Iterator[None]:
        if self._refused is not None:
            self.execution_context.pre_execution_errors = [self._refused]
        yield


def rate_limit_extensions(
    config: InboundRateLimitConfig | None,
) -> list[Callable[[], SchemaExtension]]:
    """The extension factory for ``server.rate_limit`` (none when it is off), around one
    limiter: the buckets outlive the per-operation extension instances."""
    if config is None:
        return []
    limiter = InboundRateLimiter(config)
    return [lambda: RateLimitOperations(limiter)]


def client_address(connection: HTTPConnection, trusted: Sequence[_Network]) -> _Address | None:
    """The client's IP address: the TCP peer's, or, when the peer is a trusted proxy, the
    right-most ``X-Forwarded-For`` address that is not a trusted proxy (the left-most if all
    are). Each proxy appends the address it was connected from, so only the entries that
    trusted proxies wrote are believed; a hop that is not an IP address ends the walk there.
    ``None`` when the peer has no IP address (a Unix socket)."""
    peer = connection.client
    address = _ip(peer.host) if peer is not None else None
    if address is None or not _is_trusted(address, trusted):
        return address
    hops = [
        hop for header in connection.headers.getlist("x-forwarded-for") for hop in header.split(",")
    ]
    for hop in reversed(hops):
        forwarded = _ip(hop)
        if forwarded is None:
            break
        address = forwarded
        if not _is_trusted(address, trusted):
            break
    return address


def _ip(text: str) -> _Address | None:
    """An address as proxies write it: ``1.2.3.4``, ``2001:db8::1``, ``[2001:db8::1]``, with
    or without a port; an IPv4-mapped IPv6 address is its IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: _Address, trusted: Sequence[_Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)
