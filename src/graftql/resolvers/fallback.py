"""``Fallback``: a static value for a field when the upstream behind it fails.

A loader's ``fallback=`` works per key; this works per field, for fields resolved without a
loader or where a default is good enough (a banner, a recommendations list, a price shown as
"unavailable")::

    @strawberry.field(extensions=[Fallback([])])
    async def recommendations(self, info: Info) -> list[Product]: ...

Only upstream failures are replaced (``UpstreamError``, including ``CIRCUIT_OPEN``; narrow it
with ``codes=``); a bug in the resolver still surfaces as an error. Each use emits the
``fallback`` event, so metrics and logs show how often answers were degraded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from strawberry.extensions.field_extension import FieldExtension
from strawberry.types import Info

from graftql.errors import UpstreamError
from graftql.upstreams.events import emit

__all__ = ["Fallback"]


class Fallback(FieldExtension):
    def __init__(
        self,
        value: Any = None,
        *,
        codes: Collection[str] | None = None,
        factory: Callable[[UpstreamError], Any] | None = None,
    ) -> None:
        """``value`` is served as is (it is not copied); ``factory(error)`` makes one per use
        instead. ``codes`` limits the fallback to these error codes (``{"CIRCUIT_OPEN"}``)."""
        super().__init__()
        self.value = value
        self.codes = frozenset(codes) if codes is not None else None
        self.factory = factory

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Any, Any],
        **kwargs: Any,
    ) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except UpstreamError as error:
            if self.codes is not None and error.code not in self.codes:
                raise
            field = ".".join(str(part) for part in info.path.as_list())
            emit("fallback", error.upstream, field=field, reason=error.code)
            return self.factory(error) if self.factory is not None else self.value
