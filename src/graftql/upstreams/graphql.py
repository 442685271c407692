"""GraphQL upstreams through gql's httpx transport, over the upstream's pooled connections.

gql builds the request payload and reads the ``{data, errors}`` answer; the HTTP exchange goes
through ``Upstream.send`` like every other upstream call, so the same error mapping (and, in
time, the same policies) apply. No schema is fetched from the upstream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson
from gql import GraphQLRequest
from gql.transport.exceptions import TransportError
from gql.transport.httpx import HTTPXAsyncTransport
from graphql import DocumentNode, ExecutionResult, OperationType, get_operation_ast, print_ast

from graftql.config import UpstreamConfig, UpstreamSubscriptionsConfig
from graftql.errors import UpstreamBadResponse
from graftql.upstreams.base import Upstream
from graftql.upstreams.shared import SharedState
from graftql.upstreams.subscriptions import UpstreamSubscriptions

__all__ = ["GraphQLUpstream", "UpstreamGraphQLErrors"]

_MAX_PREPARED = 1024


class UpstreamGraphQLErrors(UpstreamBadResponse):
    """The upstream answered with GraphQL ``errors``. ``data`` holds whatever data came with
    them; ``errors`` the upstream's error objects (for logs, not for clients)."""

    def __init__(
        self, upstream: str, data: Any, errors: list[Any], *, status: int | None = None
    ) -> None:
        messages = [e.get("message") if isinstance(e, dict) else str(e) for e in errors[:3]]
        super().__init__(
            upstream,
            f"{upstream} answered with GraphQL errors",
            status=status,
            detail="; ".join(str(m)[:200] for m in messages),
        )
        self.data = data
        self.errors = errors


class _UpstreamTransport(HTTPXAsyncTransport):
    """gql's httpx transport, sending through the upstream instead of a client of its own."""

    def __init__(self, upstream: GraphQLUpstream) -> None:
        super().__init__(url="", json_deserialize=orjson.loads)
        self._upstream = upstream

    async def connect(self) -> None:
        pass  # the upstream owns the connection pool

    async def close(self) -> None:
        pass

    async def execute(self, request: GraphQLRequest, **_: Any) -> ExecutionResult:
        upstream = self._upstream
        is_query = upstream.is_query(request)
        policy = None
        if upstream.has_endpoints:
            operation = get_operation_ast(request.document, request.operation_name)
            name = operation.name.value if operation is not None and operation.name else ""
            policy = upstream.policy_for(f"{'query' if is_query else 'mutation'} {name}")
        http_request = upstream.prepare(
            "POST", upstream.url, json_body=upstream.payload(request), policy=policy
        )
        try:
            response = await upstream.send(http_request, idempotent=is_query)
        except UpstreamBadResponse as exc:
            # GraphQL over HTTP answers a document the server cannot run with 4xx and errors.
            errors = _graphql_errors(exc.response) if exc.status in (400, 422) else None
            if errors is None:
                raise
            error = UpstreamGraphQLErrors(upstream.name, None, errors, status=exc.status)
            error.response = exc.response
            raise error from exc
        result: ExecutionResult = self._prepare_result(response)
        return result


def _graphql_errors(response: httpx.Response | None) -> list[Any] | None:
    try:
        body = orjson.loads(response.content) if response is not None else None
    except orjson.JSONDecodeError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    return errors if isinstance(errors, list) and errors else None


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
        shared: SharedState | None = None,
    ) -> None:
        super().__init__(name, config, transport=transport, shared=shared)
        # gql's transport builds the payload and reads the answer. gql's Client session adds
        # nothing we use (no schema, no local validation) and costs a cancel scope per call.
        self._gql = _UpstreamTransport(self)
        # Documents come from code (a few constants), so these stay small; the bound only guards
        # against a caller that builds document text per request.
        self._documents: dict[str, DocumentNode] = {}
        self._sources: dict[int, tuple[DocumentNode, str]] = {}
        self._kinds: dict[int, tuple[DocumentNode, bool]] = {}
        self.subscriptions = UpstreamSubscriptions(
            self, config.subscriptions or UpstreamSubscriptionsConfig()
        )

    def document(self, source: str) -> DocumentNode:
        """Parse ``source`` once; later calls with the same text reuse the document."""
        parsed = self._documents.get(source)
        if parsed is None:
            parsed = GraphQLRequest(source).document
            if len(self._documents) < _MAX_PREPARED:
                self._documents[source] = parsed
                self._sources[id(parsed)] = (parsed, source)
        return parsed

    def is_query(self, request: GraphQLRequest) -> bool:
        """Queries are idempotent (they may be shared or retried); mutations never are."""
        document = request.document
        known = self._kinds.get(id(document))
        if known is not None and known[0] is document and request.operation_name is None:
            return known[1]
        operation = get_operation_ast(document, request.operation_name)
        is_query = operation is not None and operation.operation is OperationType.QUERY
        if request.operation_name is None and len(self._kinds) < _MAX_PREPARED:
            self._kinds[id(document)] = (document, is_query)
        return is_query

    def payload(self, request: GraphQLRequest) -> dict[str, Any]:
        """The JSON body for ``request``: a prepared document is sent as the text it was
        parsed from, so it is never printed again."""
        document = request.document
        prepared = self._sources.get(id(document))
        query = prepared[1] if prepared and prepared[0] is document else print_ast(document)
        body: dict[str, Any] = {"query": query}
        if request.variable_values is not None:
            body["variables"] = request.variable_values
        if request.operation_name:
            body["operationName"] = request.operation_name
        return body

    async def execute_result(
        self,
        document: str | DocumentNode,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> ExecutionResult:
        """Send one operation; returns the upstream's ``ExecutionResult`` as it answered."""
        node = self.document(document) if isinstance(document, str) else document
        request = GraphQLRequest(node, variable_values=variables, operation_name=operation_name)
        try:
            result = await self._gql.execute(request)
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

    def subscribe(
        self, document: str, variables: dict[str, Any] | None = None
    ) -> AsyncGenerator[Any, None]:
        """Subscribe over WebSocket (``subscriptions:`` in the upstream's config); yields each
        event's ``data``. Clients subscribing alike share one upstream subscription."""
        return self.subscriptions.subscribe(self.document(document), document, variables)

    def static_headers(self) -> dict[str, str]:
        """The configured ``headers:``, secrets revealed (for the WebSocket handshake)."""
        return {
            key: value if isinstance(value, str) else value.reveal()
            for key, value in self.config.headers.items()
        }

    def graphql_errors(self, data: Any, errors: list[Any]) -> UpstreamGraphQLErrors:
        return UpstreamGraphQLErrors(self.name, data, [_plain(e) for e in errors])

    async def aclose(self) -> None:
        await self.subscriptions.aclose()
        await super().aclose()


def _plain(error: Any) -> Any:
    formatted = getattr(error, "formatted", None)
    return formatted if formatted is not None else error
