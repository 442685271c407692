"""GraphQL upstreams through gql, over the upstream's own pooled httpx client.

gql builds the request payload and reads the ``{data, errors}`` answer; the HTTP exchange goes
through ``Upstream.send`` like every other upstream call, so the same error mapping (and, in
time, the same policies) apply. No schema is fetched from the upstream.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportError, TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import DocumentNode, ExecutionResult

from graftql.config import UpstreamConfig
from graftql.errors import UpstreamBadResponse
from graftql.upstreams.base import Upstream

__all__ = ["GraphQLUpstream", "UpstreamGraphQLErrors"]


class UpstreamGraphQLErrors(UpstreamBadResponse):
    """The upstream answered with GraphQL ``errors``. ``data`` holds whatever data came with
    them; ``errors`` the upstream's error objects (for logs, not for clients)."""

    def __init__(self, upstream: str, data: Any, errors: list[Any]) -> None:
        super().__init__(upstream, f"{upstream} answered with GraphQL errors")
        self.data = data
        self.errors = errors


class _UpstreamTransport(HTTPXAsyncTransport):
    """gql's httpx transport, sending through the upstream instead of a client of its own."""

    def __init__(self, upstream: GraphQLUpstream) -> None:
        super().__init__(url="")
        self._upstream = upstream

    async def connect(self) -> None:
        self.client = self._upstream.client

    async def close(self) -> None:
        self.client = None  # the upstream owns the client and closes it

    async def execute(self, request: GraphQLRequest, **_: Any) -> ExecutionResult:
        post_args = self._prepare_request(request)
        # The configured URL exactly: as a base URL httpx would add a trailing slash to it.
        http_request = self._upstream.client.build_request(
            "POST", self._upstream.config.url, **post_args
        )
        response = await self._upstream.send(http_request)
        result: ExecutionResult = self._prepare_result(response)
        return result


class GraphQLUpstream(Upstream):
    """A GraphQL API. ``await upstream.execute(document, variables)`` returns ``data``.

    A document given as a string is parsed once and kept; an answer that carries ``errors``
    raises ``UpstreamGraphQLErrors`` (with the partial data attached).
    """

    kind = "graphql"

    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(name, config, transport=transport)
        self._gql = Client(
            transport=_UpstreamTransport(self),
            fetch_schema_from_transport=False,
            execute_timeout=None,  # timeouts belong to the upstream's policy, not to gql
        )
        self._session: Any = None
        self._connecting = asyncio.Lock()
        self._documents: dict[str, DocumentNode] = {}

    def document(self, source: str) -> DocumentNode:
        parsed = self._documents.get(source)
        if parsed is None:
            parsed = GraphQLRequest(source).document
            self._documents[source] = parsed
        return parsed

    async def _connected(self) -> Any:
        if self._session is None:
            async with self._connecting:
                if self._session is None:
                    self._session = await self._gql.connect_async(  # type: ignore[no-untyped-call]
                        reconnecting=False
                    )
        return self._session

    async def execute_result(
        self,
        document: str | DocumentNode,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> ExecutionResult:
        """Send one operation; returns the upstream's ``ExecutionResult`` as it answered."""
        node = self.document(document) if isinstance(document, str) else document
        session = await self._connected()
        request = GraphQLRequest(node, variable_values=variables, operation_name=operation_name)
        try:
            result: ExecutionResult = await session.execute(request, get_execution_result=True)
        except TransportQueryError as exc:  # gql raises for `errors` even when asked for results
            return ExecutionResult(data=exc.data, errors=exc.errors)
        except TransportError as exc:  # a 2xx answer that is not a GraphQL response
            raise UpstreamBadResponse(
                self.name, f"{self.name} did not answer with a GraphQL response"
            ) from exc
        return result

    async def execute(
        self,
        document: str | DocumentNode,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> Any:
        result = await self.execute_result(document, variables, operation_name)
        if result.errors:
            raise UpstreamGraphQLErrors(self.name, result.data, list(result.errors))
        return result.data

    async def aclose(self) -> None:
        if self._session is not None:
            await self._gql.close_async()  # type: ignore[no-untyped-call]
            self._session = None
        await super().aclose()
