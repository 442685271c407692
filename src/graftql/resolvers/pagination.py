"""REST pagination as Relay connections, and a bounded "all items" helper.

Say how an upstream pages, once::

    ORDERS = RestPages("crm", "/customers/{id}/orders", PageNumber(total="total"))

and serve a connection from it (``first``, ``after``; ``edges { cursor node }``,
``pageInfo { hasNextPage endCursor }``)::

    return await ORDERS.connection(info.context, first, after, path_params={"id": self.id},
                                   build=Order.from_crm)

Four styles: ``PageNumber`` (``?page=2&per_page=10``), ``OffsetLimit`` (``?offset=20&limit=10``),
``CursorParam`` (``?starting_after=<id>&limit=10`` and ``has_more``) and ``LinkHeader``
(``Link: <...>; rel="next"``, RFC 8288). The gateway's cursors are signed (``cursors.py``):
each says where the items after it start upstream, so paging forward costs one upstream call
per page whatever style; a changed or foreign cursor is ``BAD_USER_INPUT``.

``all()`` follows the pages to the end, at most ``max_pages`` of them: a list longer than that
is ``PAGE_LIMIT_EXCEEDED`` on the field, never a silently shortened list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
import strawberry

from graftql.errors import BadUserInput, PageLimitExceeded, UpstreamBadResponse
from graftql.resolvers.batch import as_list, dig

if TYPE_CHECKING:
    from graftql.resolvers.context import Context
    from graftql.upstreams import RestUpstream

__all__ = [
    "Connection",
    "CursorParam",
    "Edge",
    "LinkHeader",
    "OffsetLimit",
    "Page",
    "PageInfo",
    "PageNumber",
    "RestPages",
]

T = TypeVar("T")
Position = dict[str, Any]  # where a page starts upstream, as the style understands it


@strawberry.type(description="Relay's page information.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


@dataclass(slots=True)
class Page:
    """One upstream page: its items, where the next starts (None: the last), its total."""

    items: list[Any]
    next: Position | None
    total: int | None = None


class _Style:
    items: str
    size_param: str
    total: str | None

    def start(self) -> Position:
        raise NotImplementedError

    def params(self, position: Position, size: int) -> dict[str, Any]:
        raise NotImplementedError

    def after_item(
        self, upstream: str, position: Position, index: int, item: Any
    ) -> Position | None:
        """Where the items after ``item`` start, if the style can say so directly."""
        return None

    def read(
        self, upstream: str, position: Position, size: int, body: Any, response: httpx.Response
    ) -> Page:
        items = as_list(dig(body, self.items, upstream=upstream), upstream=upstream, what="items")
        total = _int(dig(body, self.total, upstream=upstream), upstream) if self.total else None
        return Page(items, self.following(upstream, position, size, items, body, response), total)

    def following(
        self,
        upstream: str,
        position: Position,
        size: int,
        items: list[Any],
        body: Any,
        response: httpx.Response,
    ) -> Position | None:
        raise NotImplementedError


def _int(value: Any, upstream: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UpstreamBadResponse(upstream, f"{upstream} answered a count that is not a number")
    try:
        return int(value)
    except ValueError:
        raise UpstreamBadResponse(
            upstream, f"{upstream} answered a count that is not a number"
        ) from None


class PageNumber(_Style):
    """``?page=N&per_page=S``. The last page is known from ``total_pages`` (a dotted path in
    the answer), else from a page shorter than asked for."""

    def __init__(
        self,
        *,
        page_param: str = "page",
        size_param: str = "per_page",
        items: str = "data",
        total_pages: str | None = "total_pages",
        total: str | None = None,
        first_page: int = 1,
    ) -> None:
        self.page_param, self.size_param, self.items = page_param, size_param, items
        self.total_pages, self.total, self.first_page = total_pages, total, first_page

    def start(self) -> Position:
        return {"p": self.first_page}

    def params(self, position: Position, size: int) -> dict[str, Any]:
        return {self.page_param: position["p"], self.size_param: size}

    def following(
        self,
        upstream: str,
        position: Position,
        size: int,
        items: list[Any],
        body: Any,
        response: httpx.Response,
    ) -> Position | None:
        page = int(position["p"])
        if self.total_pages:
            last = _int(dig(body, self.total_pages, upstream=upstream), upstream)
            more = page - self.first_page + 1 < last
        else:
            more = len(items) >= size
        return {"p": page + 1} if more and items else None


class OffsetLimit(_Style):
    """``?offset=O&limit=L``. The end is known from ``total`` (a dotted path), else from a
    page shorter than asked for."""

    def __init__(
        self,
        *,
        offset_param: str = "offset",
        size_param: str = "limit",
        items: str = "data",
        total: str | None = "total",
    ) -> None:
        self.offset_param, self.size_param, self.items, self.total = (
            offset_param,
            size_param,
            items,
            total,
        )

    def start(self) -> Position:
        return {"o": 0}

    def params(self, position: Position, size: int) -> dict[str, Any]:
        return {self.offset_param: position["o"], self.size_param: size}

    def after_item(
        self, upstream: str, position: Position, index: int, item: Any
    ) -> Position | None:
        return {"o": int(position["o"]) + index + 1}

    def following(
        self,
        upstream: str,
        position: Position,
        size: int,
        items: list[Any],
        body: Any,
        response: httpx.Response,
    ) -> Position | None:
        end = int(position["o"]) + len(items)
        if self.total:
            more = end < _int(dig(body, self.total, upstream=upstream), upstream)
        else:
            more = len(items) >= size
        return {"o": end} if more and items else None


class CursorParam(_Style):
    """``?starting_after=<last id>&limit=L``, ``has_more`` saying whether more follow
    (Stripe's style). ``item_cursor`` is the dotted path of the id in each item."""

    def __init__(
        self,
        *,
        after_param: str = "starting_after",
        size_param: str = "limit",
        items: str = "data",
        has_more: str = "has_more",
        item_cursor: str = "id",
        total: str | None = None,
    ) -> None:
        self.after_param, self.size_param, self.items = after_param, size_param, items
        self.has_more, self.item_cursor, self.total = has_more, item_cursor, total

    def start(self) -> Position:
        return {"a": None}

    def params(self, position: Position, size: int) -> dict[str, Any]:
        return {self.after_param: position["a"], self.size_param: size}

    def _id(self, upstream: str, item: Any) -> str:
        value = dig(item, self.item_cursor, upstream=upstream)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise UpstreamBadResponse(upstream, f"{upstream} answered an item without an id")
        return str(value)

    def after_item(
        self, upstream: str, position: Position, index: int, item: Any
    ) -> Position | None:
        return {"a": self._id(upstream, item)}

    def following(
        self,
        upstream: str,
        position: Position,
        size: int,
        items: list[Any],
        body: Any,
        response: httpx.Response,
    ) -> Position | None:
        more = dig(body, self.has_more, upstream=upstream)
        if not isinstance(more, bool):
            raise UpstreamBadResponse(
                upstream, f"{upstream} answered '{self.has_more}' not true/false"
            )
        return {"a": self._id(upstream, items[-1])} if more and items else None


class LinkHeader(_Style):
    """The next page's URL in ``Link: <url>; rel="next"`` (RFC 8288; GitHub's style). The URL
    must stay on the upstream's configured origin and base path (``RestUpstream.get_url``)."""

    def __init__(
        self, *, size_param: str = "per_page", items: str = "", total: str | None = None
    ) -> None:
        self.size_param, self.items, self.total = size_param, items, total

    def start(self) -> Position:
        return {"u": None}

    def params(self, position: Position, size: int) -> dict[str, Any]:
        return {self.size_param: size}

    def following(
        self,
        upstream: str,
        position: Position,
        size: int,
        items: list[Any],
        body: Any,
        response: httpx.Response,
    ) -> Position | None:
        link = response.links.get("next")
        url = link.get("url") if link else None
        if not url:
            return None
        target = response.request.url.join(url)
        # Kept without scheme and host: the cursor says where, the configuration says which.
        query = target.query.decode()
        return {"u": target.raw_path.partition(b"?")[0].decode() + (f"?{query}" if query else "")}


class RestPages:
    """A paged REST list: the upstream, the path template, the style and the page sizes.

    ``max_page_size`` bounds ``first`` (a larger one is ``BAD_USER_INPUT``) and is the page
    size ``all()`` asks for; ``params`` are extra query values sent with every page.
    """

    def __init__(
        self,
        upstream: str,
        path: str,
        style: _Style,
        *,
        max_page_size: int = 100,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be >= 1")
        self.upstream = upstream
        self.path = path
        self.style = style
        self.max_page_size = max_page_size
        self.params = dict(params or {})

    def _scope(self, path_params: Mapping[str, str | int]) -> str:
        fixed = ",".join(f"{k}={v}" for k, v in sorted(path_params.items()))
        return f"{self.upstream} {self.path} {fixed}"

    async def fetch(
        self,
        ctx: Context,
        position: Position,
        size: int,
        path_params: Mapping[str, str | int] | None = None,
    ) -> Page:
        """One upstream page from ``position`` (``style.start()`` for the first)."""
        rest: RestUpstream = ctx.upstreams.rest(self.upstream)
        url = position.get("u")
        if url:
            response = await rest.get_url(url)
        else:
            params = {**self.params, **self.style.params(position, size)}
            response = await rest.request_response(
                "GET", self.path, path_params or {}, params=params
            )
        body = rest.decode(response)
        page = self.style.read(self.upstream, position, size, body, response)
        if page.next is not None and page.next.get("u"):
            page.next = {"u": rest.without_configured_query(page.next["u"])}
        return page

    async def page(
        self,
        ctx: Context,
        first: int,
        after: str | None = None,
        *,
        path_params: Mapping[str, str | int] | None = None,
    ) -> tuple[list[tuple[str, Any]], bool, int | None]:
        """``first`` items after the cursor ``after``: ``([(cursor, raw item)], has_next,
        total)``. Costs one upstream call, two when the window straddles an upstream page."""
        if not 1 <= first <= self.max_page_size:
            raise BadUserInput(f"'first' must be between 1 and {self.max_page_size}")
        fixed = dict(path_params or {})
        scope = self._scope(fixed)
        if after is None:
            position, skip, size = self.style.start(), 0, first
        else:
            state = ctx.cursors.decode(scope, after)
            try:
                position, skip, size = state["r"], int(state["k"]), int(state["n"] or first)
            except (KeyError, TypeError, ValueError):
                raise BadUserInput("'after' is not a cursor this API issued") from None
            if position is None:  # issued for the very last item
                return [], False, None
            if not 1 <= size <= self.max_page_size or skip < 0:
                raise BadUserInput("'after' is not a cursor this API issued")
            if "p" not in position and "u" not in position:  # the style sets its own size
                size = first
        found: list[tuple[str, Any]] = []
        total: int | None = None
        next_position: Position | None = position
        for _ in range(2):  # a window starting mid-page may need the following page too
            if next_position is None or len(found) >= first:
                break
            current = next_position
            page = await self.fetch(ctx, current, size, fixed)
            total = page.total if total is None else total
            last = len(page.items) - 1
            for index in range(skip, len(page.items)):
                item = page.items[index]
                direct = self.style.after_item(self.upstream, current, index, item)
                if direct is not None:
                    resume: tuple[Position | None, int] = (direct, 0)
                elif index == last and page.next is not None:
                    resume = (page.next, 0)
                else:
                    resume = (current, index + 1)
                state = {"r": resume[0], "k": resume[1], "n": size}
                found.append((ctx.cursors.encode(scope, state), item))
            next_position, skip = page.next, 0
        has_next = len(found) > first or next_position is not None
        return found[:first], has_next, total

    async def connection(
        self,
        ctx: Context,
        first: int,
        after: str | None = None,
        *,
        build: Callable[[Any], T],
        path_params: Mapping[str, str | int] | None = None,
    ) -> Connection[T]:
        """A Relay connection of ``build(item)`` nodes."""
        rows, has_next, _ = await self.page(ctx, first, after, path_params=path_params)
        edges = [
            Edge(cursor=cursor, node=_build(self.upstream, build, raw)) for cursor, raw in rows
        ]
        end = edges[-1].cursor if edges else None
        return Connection(edges=edges, page_info=PageInfo(has_next_page=has_next, end_cursor=end))

    async def all(
        self,
        ctx: Context,
        *,
        max_pages: int = 10,
        page_size: int | None = None,
        path_params: Mapping[str, str | int] | None = None,
    ) -> list[Any]:
        """Every item, following the pages to the end; more than ``max_pages`` pages is
        ``PageLimitExceeded`` (nothing is returned rather than a part presented as all)."""
        size = page_size or self.max_page_size
        items: list[Any] = []
        position: Position | None = self.style.start()
        for _ in range(max_pages):
            assert position is not None
            page = await self.fetch(ctx, position, size, path_params)
            items.extend(page.items)
            position = page.next
            if position is None:
                return items
        raise PageLimitExceeded(
            self.upstream,
            f"{self.upstream} has more than {max_pages} pages of {size} for this list",
        )


def _build(upstream: str, build: Callable[[Any], T], raw: Any) -> T:
    try:
        return build(raw)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        error = UpstreamBadResponse(
            upstream, f"{upstream} answered an item the gateway cannot read"
        )
        error.detail = f"{type(exc).__name__}: {exc}"[:300]
        raise error from exc
