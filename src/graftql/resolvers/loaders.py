"""Named, per-request dataloaders: how resolvers reach upstreams without N+1.

A schema module declares its loaders once, in code::

    loaders = LoaderRegistry()

    @loaders.loader("customers", max_batch_size=100)
    async def customers(ctx: Context, ids: list[str]) -> list[dict | None]:
        body = await ctx.upstreams.rest("crm").get("/customers", params={"ids": ",".join(ids)})
        return by_key(ids, body["data"], key=lambda c: c["id"])

or declares one from its shape (``graftql.resolvers.batch``)::

    loaders.add("customers", RestBatch("crm", "/customers", param="ids", key="id"))

and resolvers call ``await info.context.loaders.customers.load(id)`` (or
``loaders["customers"]``). Every request gets a
fresh set of ``aiodataloader.DataLoader`` objects (created on first use), so batching and the
per-key cache never reach across requests or users.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aiodataloader import DataLoader

from graftql.errors import UnknownName, UpstreamError
from graftql.upstreams.events import emit

if TYPE_CHECKING:
    from graftql.resolvers.context import Context

__all__ = ["BatchLoadFn", "LoaderRegistry", "RequestLoaders", "by_key", "current_batch"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

BatchLoadFn = Callable[["Context", list[Any]], Awaitable[Sequence[Any]]]
Fallback = Callable[[Any, UpstreamError], Any]
_F = TypeVar("_F", bound=BatchLoadFn)

# The loader batch the running task works for: (loader name, number of keys). Upstream calls
# made inside a batch function see it, so explain can say how many keys a call carried.
current_batch: ContextVar[tuple[str, int] | None] = ContextVar("graftql_batch", default=None)


def by_key(keys: Sequence[K], items: Iterable[V], key: Callable[[V], K]) -> list[V | None]:
    """Line ``items`` up with ``keys`` by each item's key, never by position; missing → None."""
    found = {key(item): item for item in items}
    return [found.get(k) for k in keys]


@dataclass(frozen=True, slots=True)
class _LoaderSpec:
    name: str
    batch_load: BatchLoadFn
    max_batch_size: int
    fallback: Fallback | None


class LoaderRegistry:
    """The loaders a schema declares, by name."""

    def __init__(self) -> None:
        self._specs: dict[str, _LoaderSpec] = {}

    def loader(
        self, name: str, *, max_batch_size: int = 100, fallback: Fallback | None = None
    ) -> Callable[[_F], _F]:
        """Register an async batch function ``(ctx, keys) -> results aligned with keys``.

        A result may be an ``Exception`` instance to fail just that key. ``fallback(key,
        error)`` is called for each key whose upstream call failed (an ``UpstreamError``): what
        it returns is served instead of the error (a static value, or the last good value from
        a cache); when it raises, the error stands.
        """
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")

        def register(fn: _F) -> _F:
            if name in self._specs:
                raise ValueError(f"a loader named {name!r} is already registered")
            self._specs[name] = _LoaderSpec(name, fn, max_batch_size, fallback)
            return fn

        return register

    def add(
        self,
        name: str,
        batch_load: BatchLoadFn,
        *,
        max_batch_size: int = 100,
        fallback: Fallback | None = None,
    ) -> None:
        """Register a batch function under ``name``: a declared shape such as
        ``RestBatch(...)`` (``graftql.resolvers.batch``) or any ``(ctx, keys)`` coroutine."""
        self.loader(name, max_batch_size=max_batch_size, fallback=fallback)(batch_load)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        return sorted(self._specs)

    def for_request(self, context: Context) -> RequestLoaders:
        return RequestLoaders(self._specs, context)


async def _run(spec: _LoaderSpec, context: Context, keys: list[Any]) -> list[Any]:
    current_batch.set((spec.name, len(keys)))  # this batch runs in a task of its own
    try:
        results: list[Any] = list(await spec.batch_load(context, keys))
    except UpstreamError as error:
        if spec.fallback is None:
            raise
        results = [error] * len(keys)
    if len(results) != len(keys):
        raise RuntimeError(
            f"loader {spec.name!r} returned {len(results)} results for {len(keys)} keys"
        )
    if spec.fallback is not None:
        results = [_fallback(spec, k, r) for k, r in zip(keys, results, strict=True)]
    return results


def _fallback(spec: _LoaderSpec, key: Any, result: Any) -> Any:
    if not isinstance(result, UpstreamError) or spec.fallback is None:
        return result
    try:
        value = spec.fallback(key, result)
    except Exception:
        return result
    emit("fallback", result.upstream, loader=spec.name, reason=result.code)
    return value


class RequestLoaders:
    """One request's loaders; ``loaders["customers"]`` is created on first use."""

    def __init__(self, specs: dict[str, _LoaderSpec], context: Context) -> None:
        self._specs = specs
        self._context = context
        self._loaders: dict[str, DataLoader[Any, Any]] = {}

    def __getitem__(self, name: str) -> DataLoader[Any, Any]:
        loader = self._loaders.get(name)
        if loader is None:
            spec = self._specs.get(name)
            if spec is None:
                known = ", ".join(sorted(self._specs)) or "none"
                raise UnknownName(f"no loader named {name!r} (registered: {known})")
            loader = DataLoader(
                functools.partial(_run, spec, self._context),
                max_batch_size=spec.max_batch_size,
            )
            self._loaders[name] = loader
        return loader

    def __getattr__(self, name: str) -> DataLoader[Any, Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except UnknownName as error:
            raise AttributeError(str(error)) from None
