"""The ``cache:`` blocks: the upstream response cache (docs/caching.md).

Three places: the top level (``cache: {backend: redis}``, the default backend of every
upstream), an upstream (``upstreams.<name>.cache``: turns caching on for its GET/HEAD calls and
GraphQL queries) and an ``endpoints:`` entry (adjusts or turns off caching for the calls it
matches; on a write it names the tags a successful call invalidates).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from graftql.config._base import _Model

if TYPE_CHECKING:
    from graftql.config.upstream import UpstreamConfig

Backend = Literal["memory", "redis"]
Scope = Literal["auto", "principal"]
Tag = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
_DAY = 86400.0


class CacheDefaults(_Model):
    """The top-level ``cache:`` block: what upstreams' caches share by default."""

    # redis needs the top-level ``redis:`` block; each upstream may still choose its own.
    backend: Backend = "memory"


class CacheConfig(_Model):
    """``upstreams.<name>.cache``: caching for the upstream's reads."""

    enabled: bool = True  # false: only endpoints with a cache block of their own are cached
    backend: Backend | None = None  # None: the top-level cache.backend, else memory
    ttl: float = Field(60.0, ge=0, le=_DAY, description="seconds fresh, unless Cache-Control says")
    stale_while_revalidate: float = Field(0.0, ge=0, le=_DAY, description="seconds")
    stale_if_error: float = Field(0.0, ge=0, le=7 * _DAY, description="seconds")
    # auto: per credential when the request carries one of its own, else shared by everyone
    # (the upstream's own auth: flow is added later); principal: per principal always.
    scope: Scope = "auto"
    max_entries: int = Field(10_000, ge=1, description="memory backend: entries kept")
    max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="memory backend: bytes kept")
    max_entry_bytes: int = Field(1024 * 1024, ge=1, description="a larger body is not stored")
    tags: list[Tag] = Field(default_factory=list)


class EndpointCacheConfig(_Model):
    """``cache:`` inside an ``endpoints:`` entry: only the keys given replace the upstream's.

    ``tags`` on a read are the tags its cached answers carry; on a write (POST, PUT, PATCH,
    DELETE, a GraphQL mutation) the tags a successful call invalidates.
    """

    enabled: bool = True
    ttl: float | None = Field(None, ge=0, le=_DAY)
    stale_while_revalidate: float | None = Field(None, ge=0, le=_DAY)
    stale_if_error: float | None = Field(None, ge=0, le=7 * _DAY)
    scope: Scope | None = None  # can only add isolation: principal wins over auto
    tags: list[Tag] | None = None


def resolve_backends(
    defaults: CacheDefaults | None, upstreams: dict[str, UpstreamConfig]
) -> dict[str, UpstreamConfig]:
    """Each upstream whose cache names no backend gets the top-level one; an upstream that
    caches only some endpoints gets a disabled block of its own to carry it. Returns
    ``upstreams`` itself when nothing changes."""
    backend = defaults.backend if defaults is not None else "memory"
    changed = dict(upstreams)
    touched = False
    for name, upstream in upstreams.items():
        cache = upstream.cache
        if cache is None and any(e.cache is not None for e in upstream.endpoints):
            cache = CacheConfig(enabled=False)
        if cache is not None and cache.backend is None:
            cache = cache.model_copy(update={"backend": backend})
        if cache is not upstream.cache:
            changed[name] = upstream.model_copy(update={"cache": cache})
            touched = True
    return changed if touched else upstreams
