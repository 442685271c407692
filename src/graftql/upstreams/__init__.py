"""Upstream clients: how the gateway talks to the services behind it.

Nothing here knows about GraphQL execution; resolvers and loaders call these clients.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Literal, TypeVar

import httpx

from graftql.config import GatewayConfig
from graftql.errors import UnknownName
from graftql.upstreams import deadline, events
from graftql.upstreams.base import Probe, Upstream
from graftql.upstreams.cache import ResponseCache, distinct_backends
from graftql.upstreams.graphql import GraphQLUpstream, UpstreamGraphQLErrors
from graftql.upstreams.rest import RestUpstream, encode_segment, expand_path
from graftql.upstreams.shared import SharedState

__all__ = [
    "GraphQLUpstream",
    "Probe",
    "ResponseCache",
    "RestUpstream",
    "SharedState",
    "Upstream",
    "UpstreamGraphQLErrors",
    "Upstreams",
    "deadline",
    "encode_segment",
    "events",
    "expand_path",
]

_U = TypeVar("_U", bound=Upstream)


class Upstreams(Mapping[str, Upstream]):
    """Every configured upstream by name; created once per gateway, shared by all requests."""

    def __init__(
        self, upstreams: Mapping[str, Upstream], *, shared: SharedState | None = None
    ) -> None:
        self._upstreams = dict(upstreams)
        self.shared = shared  # closed with the upstreams

    @classmethod
    def from_config(
        cls, config: GatewayConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> Upstreams:
        kinds: dict[str, type[Upstream]] = {"rest": RestUpstream, "graphql": GraphQLUpstream}
        shared = SharedState(config.redis) if config.redis is not None else None
        return cls(
            {
                name: kinds[cfg.kind](name, cfg, transport=transport, shared=shared)
                for name, cfg in config.upstreams.items()
            },
            shared=shared,
        )

    def __getitem__(self, name: str) -> Upstream:
        try:
            return self._upstreams[name]
        except KeyError:
            raise UnknownName(
                f"no upstream named {name!r} in the configuration "
                f"(configured: {', '.join(sorted(self._upstreams)) or 'none'})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)

    def _typed(self, name: str, kind: type[_U]) -> _U:
        upstream = self[name]
        if not isinstance(upstream, kind):
            raise TypeError(f"upstream {name!r} is {upstream.kind!r}, not {kind.kind!r}")
        return upstream

    def rest(self, name: str) -> RestUpstream:
        return self._typed(name, RestUpstream)

    def graphql(self, name: str) -> GraphQLUpstream:
        return self._typed(name, GraphQLUpstream)

    @property
    def caches(self) -> list[ResponseCache]:
        """The response caches of the upstreams that have one."""
        return [u.cache for u in self._upstreams.values() if u.cache is not None]

    async def invalidate(self, *tags: str) -> None:
        """Drop every cached answer carrying any of ``tags``, on every upstream (and, with the
        Redis backend, on every replica). For resolvers after a write the configuration does
        not know about, and for webhooks that announce a change."""
        wanted = [tag for tag in dict.fromkeys(tags) if tag]
        caches = self.caches
        if not wanted or not caches:
            return
        for backend in distinct_backends(caches):
            cache = next(c for c in caches if c.backend is backend)
            await cache.invalidate(wanted)

    async def cache_status(self) -> Literal["ok", "degraded"] | None:
        """For /readyz: None without a cache; "degraded" while a backend cannot answer (the
        calls bypass the cache then, so this never makes the gateway unready)."""
        caches = self.caches
        if not caches:
            return None
        for backend in distinct_backends(caches):
            if not await backend.healthy():
                return "degraded"
        return "ok"

    async def start(self) -> None:
        """Begin listening to the other replicas (shared policies); the app calls it at
        start-up. Without it, the first call that needs the shared state starts it."""
        if self.shared is not None:
            await self.shared.start()

    async def aclose(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.aclose()
        if self.shared is not None:
            await self.shared.aclose()
