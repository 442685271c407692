"""Declarative batch loaders: say how an upstream looks things up by key, not how to batch.

Four shapes cover the upstreams integrations meet::

    loaders.add("customers", RestBatch("crm", "/customers", param="ids", key="id", items="data"))
    loaders.add("orders", RestEach("crm", "/orders/{id}", concurrency=8))
    loaders.add("products", GraphQLBatch("catalog", "products", "id name", key="id"))
    loaders.add("product", GraphQLAliases("catalog", "product", "id name"))

- ``RestBatch``: one request for many keys, the ids in a query parameter (``joined`` with a
  comma, or ``repeated``: ``?id=1&id=2``) or in a POST body (``body="ids"``).
- ``RestEach``: no batch endpoint; one request per key, at most ``concurrency`` at once.
- ``GraphQLBatch``: a list field taking the ids (``products(ids: [...])``).
- ``GraphQLAliases``: a field taking one id, asked for every key in one document
  (``k0: product(id: $k0) { ... } k1: product(id: $k1) { ... }``).

Results are matched to keys by the ``key`` field of each item, never by position (an
upstream may answer out of order, or leave ids out). A key with no item is ``None``, or with
``missing="error"`` a ``NOT_FOUND`` error on that key alone. ``build`` turns a raw item into
what resolvers get; if it fails on a malformed item (a missing field, a wrong type) that key
gets ``UPSTREAM_BAD_RESPONSE``, the others still load. The batch size is the loader's
``max_batch_size``: a larger batch is split into several calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from graftql.errors import UpstreamBadResponse, UpstreamError, UpstreamNotFound
from graftql.upstreams import UpstreamGraphQLErrors

if TYPE_CHECKING:
    from graftql.resolvers.context import Context

__all__ = ["GraphQLAliases", "GraphQLBatch", "RestBatch", "RestEach", "dig"]

Build = Callable[[Any], Any]
Missing = Literal["null", "error"]


def dig(value: Any, path: str | None, *, upstream: str) -> Any:
    """``value`` at a dotted ``path`` (``"data.items"``); a missing step is
    ``UpstreamBadResponse``. An empty path is ``value`` itself; a ``null`` on the way (an
    empty XML element) is ``None``."""
    if not path:
        return value
    for step in path.split("."):
        if value is None:
            return None
        if isinstance(value, Mapping) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise UpstreamBadResponse(upstream, f"{upstream} answered without '{path}'")
    return value


def as_list(value: Any, *, upstream: str, what: str) -> list[Any]:
    """A list of items; ``None`` (an empty XML element) is empty and a lone item (one
    repeated XML element) is a list of one."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    raise UpstreamBadResponse(upstream, f"{upstream} answered a {type(value).__name__} for {what}")


class _Matched:
    """What the shapes share: line items up with keys, build them, report the gaps."""

    upstream: str
    key: str
    build: Build | None
    missing: Missing

    def _match(self, keys: Sequence[Any], items: list[Any]) -> list[Any]:
        found: dict[str, Any] = {}
        for item in items:
            if item is None:
                continue
            try:
                value = dig(item, self.key, upstream=self.upstream)
            except UpstreamBadResponse:
                raise UpstreamBadResponse(
                    self.upstream, f"{self.upstream} answered an item without '{self.key}'"
                ) from None
            found[str(value)] = item  # XML says "7" where the key is 7: compare as text
        return [self._result(found.get(str(k))) for k in keys]

    def _result(self, item: Any) -> Any:
        if item is None:
            if self.missing == "error":
                return UpstreamNotFound(self.upstream, f"{self.upstream} has no such item")
            return None
        if self.build is None:
            return item
        try:
            return self.build(item)
        except UpstreamBadResponse as refused:  # a mapping that refused the item (mapping.py)
            return refused
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            error = UpstreamBadResponse(
                self.upstream, f"{self.upstream} answered an item the gateway cannot read"
            )
            error.detail = f"{type(exc).__name__}: {exc}"[:300]
            return error


class RestBatch(_Matched):
    """A REST batch endpoint: ``GET /customers?ids=c1,c2`` (``style="joined"``, the default),
    ``?id=c1&id=c2`` (``style="repeated"``), or a POST with ``{"ids": [...]}`` (``body="ids"``;
    ``idempotent`` says whether that POST is a read that may be retried and shared).

    ``items`` is the dotted path to the list of results in the answer (``""``: the answer is
    the list); ``key`` the dotted path to each result's key; ``params`` extra query values.
    """

    def __init__(
        self,
        upstream: str,
        path: str,
        *,
        key: str,
        param: str = "ids",
        style: Literal["joined", "repeated"] = "joined",
        separator: str = ",",
        body: str | None = None,
        idempotent: bool = True,
        items: str = "data",
        params: Mapping[str, Any] | None = None,
        build: Build | None = None,
        missing: Missing = "null",
    ) -> None:
        self.upstream = upstream
        self.path = path
        self.key = key
        self.param = param
        self.style = style
        self.separator = separator
        self.body = body
        self.idempotent = idempotent
        self.items = items
        self.params = dict(params or {})
        self.build = build
        self.missing = missing

    async def __call__(self, ctx: Context, keys: list[Any]) -> list[Any]:
        rest = ctx.upstreams.rest(self.upstream)
        ids = [str(k) for k in keys]
        if self.body is not None:
            answer = await rest.request(
                "POST",
                self.path,
                params=self.params,
                json_body={self.body: ids},
                idempotent=self.idempotent,
            )
        else:
            value: Any = self.separator.join(ids) if self.style == "joined" else ids
            answer = await rest.get(self.path, params={**self.params, self.param: value})
        items = as_list(
            dig(answer, self.items, upstream=self.upstream), upstream=self.upstream, what="items"
        )
        return self._match(keys, items)


class RestEach(_Matched):
    """No batch endpoint: one ``GET path`` per key (``{id}`` in the path is the key, encoded
    as one segment), at most ``concurrency`` at once. A 404 is a missing key; any other
    failure fails that key alone."""

    def __init__(
        self,
        upstream: str,
        path: str,
        *,
        concurrency: int = 8,
        items: str = "",
        params: Mapping[str, Any] | None = None,
        build: Build | None = None,
        missing: Missing = "null",
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if "{id}" not in path:
            raise ValueError(f"RestEach path {path!r} needs an {{id}} placeholder for the key")
        self.upstream = upstream
        self.path = path
        self.concurrency = concurrency
        self.items = items
        self.params = dict(params or {})
        self.build = build
        self.missing = missing
        self.key = ""

    async def __call__(self, ctx: Context, keys: list[Any]) -> list[Any]:
        rest = ctx.upstreams.rest(self.upstream)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(key: Any) -> Any:
            async with gate:
                try:
                    answer = await rest.get(self.path, params=self.params, id=str(key))
                except UpstreamNotFound:
                    return self._result(None)
                except UpstreamError as error:
                    return error
            try:
                return self._result(dig(answer, self.items, upstream=self.upstream))
            except UpstreamBadResponse as error:
                return error

        return list(await asyncio.gather(*(one(k) for k in keys)))


class GraphQLBatch(_Matched):
    """A GraphQL list field by ids: ``products(ids: $ids) { <selection> }``; the ``key``
    field is added to ``selection`` when missing. ``id_type`` is the argument's GraphQL type."""

    def __init__(
        self,
        upstream: str,
        field: str,
        selection: str,
        *,
        key: str = "id",
        argument: str = "ids",
        id_type: str = "[ID!]!",
        build: Build | None = None,
        missing: Missing = "null",
    ) -> None:
        self.upstream = upstream
        self.key = key
        self.build = build
        self.missing = missing
        if "." not in key and key not in selection.replace("{", " ").replace("}", " ").split():
            selection = f"{selection} {key}"  # the key is needed to match the answers
        self.document = (
            f"query GraftqlBatch($ids: {id_type}) "
            f"{{ items: {field}({argument}: $ids) {{ {selection} }} }}"
        )

    async def __call__(self, ctx: Context, keys: list[Any]) -> list[Any]:
        data = await ctx.upstreams.graphql(self.upstream).execute(self.document, {"ids": keys})
        items = as_list(
            dig(data, "items", upstream=self.upstream), upstream=self.upstream, what="items"
        )
        return self._match(keys, items)


class GraphQLAliases(_Matched):
    """A GraphQL field taking one id, asked for every key of the batch in one document:
    ``k0: product(id: $k0) { <selection> } k1: product(id: $k1) { ... }``. An error the
    upstream reports for one alias fails that key alone."""

    def __init__(
        self,
        upstream: str,
        field: str,
        selection: str,
        *,
        argument: str = "id",
        id_type: str = "ID!",
        build: Build | None = None,
        missing: Missing = "null",
    ) -> None:
        self.upstream = upstream
        self.field = field
        self.selection = selection
        self.argument = argument
        self.id_type = id_type
        self.build = build
        self.missing = missing
        self.key = ""
        self._documents: dict[int, str] = {}  # by batch size, bounded by max_batch_size

    def _document(self, size: int) -> str:
        document = self._documents.get(size)
        if document is None:
            variables = ", ".join(f"$k{i}: {self.id_type}" for i in range(size))
            fields = " ".join(
                f"k{i}: {self.field}({self.argument}: $k{i}) {{ {self.selection} }}"
                for i in range(size)
            )
            document = self._documents[size] = f"query GraftqlBatch({variables}) {{ {fields} }}"
        return document

    async def __call__(self, ctx: Context, keys: list[Any]) -> list[Any]:
        upstream = ctx.upstreams.graphql(self.upstream)
        variables = {f"k{i}": key for i, key in enumerate(keys)}
        failed: dict[str, UpstreamError] = {}
        try:
            data = await upstream.execute(self._document(len(keys)), variables)
        except UpstreamGraphQLErrors as error:
            if not isinstance(error.data, Mapping):
                raise
            data = error.data
            for item in error.errors:
                path = (
                    item.get("path") if isinstance(item, Mapping) else getattr(item, "path", None)
                )
                if path:
                    failed[str(path[0])] = UpstreamGraphQLErrors(
                        self.upstream, None, [item], status=error.status
                    )
        if not isinstance(data, Mapping):
            raise UpstreamBadResponse(self.upstream, f"{self.upstream} answered without data")
        return [
            failed[f"k{i}"] if f"k{i}" in failed else self._result(data.get(f"k{i}"))
            for i in range(len(keys))
        ]
