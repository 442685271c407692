"""GraphQL over HTTP, as the GraphQL-over-HTTP specification has it.

What a client gets, and why:

- **Media types.** ``application/graphql-response+json`` when the client asks for it, else
  ``application/json`` (also for ``*/*``, ``application/*`` and a missing ``Accept``), always in
  UTF-8; an ``Accept`` that allows neither is 406.
- **Status codes.** Under ``application/graphql-response+json``, a request error (the document
  does not parse or validate, the variables do not coerce) is 400 and the body has no ``data``;
  an executed operation is 200 even with field errors. Under ``application/json`` every
  well-formed request is 200, as legacy clients expect.
- **Requests.** POST with ``Content-Type: application/json`` (UTF-8), or GET with the
  parameters in the query string. Anything else a browser can send without a CORS preflight
  (``text/plain``, form and multipart bodies) is 415: that is the CSRF defence, since a page on
  another origin cannot send ``application/json`` without a preflight. GET runs queries only: a
  mutation over GET is 405 with ``Allow: POST`` and nothing is executed. ``query``,
  ``variables``, ``operationName`` and ``extensions`` must have their types (a wrong one is 400,
  naming the parameter). A body over ``server.max_request_bytes`` — counted after ``gzip`` or
  ``deflate`` decoding, so a compression bomb stops at the limit — is 413.
- **Batches** (a JSON array of requests) are refused unless ``server.max_batch_operations`` is
  set; then each entry is run and answered in order, and a longer batch is 413.
- **Inbound auth** (``server.auth``, ``server/identity.py``): checked before the body is read;
  a missing (when required), malformed, invalid or expired token is 401 with
  ``WWW-Authenticate: Bearer``, and 503 when the identity provider's keys cannot be had.
- **Rate limits** (``server.rate_limit``, counted per operation by a schema extension): an
  operation over the client's limit is 429 with ``Retry-After`` (whole seconds) and code
  ``RATE_LIMITED``. In a batch the operations after a refused one are refused too; the batch
  is 429 when its first one was, else 200 with ``Retry-After`` and the refused entries'
  errors.

Every refusal is a GraphQL-shaped body (``{"errors": [{"message", "extensions": {"code"}}]}``)
with a status that says what was wrong; nothing here raises to the ASGI server.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from graftql.resolvers import Context
from graftql.schema.ratelimit import OperationRateLimited
from graftql.server.graphiql import GraphiQLPage
from graftql.server.identity import InboundAuth, TokenRejected
from graftql.server.persisted import PersistedOperations

__all__ = ["GRAPHQL_RESPONSE", "JSON", "GraphQLHTTP", "HttpSettings", "negotiate"]

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

ContextFactory = Callable[[Request, Response], Awaitable[Context]]


@dataclass(frozen=True, slots=True)
class HttpSettings:
    max_request_bytes: int = 1024 * 1024
    max_batch: int = 0  # operations per batched request; 0: batches are refused
    graphiql: bool = False


class _Refused(Exception):
    """The request is refused before any execution: ``status`` and a client-safe message."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class _Params:
    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: str | None = None


class GraphQLHTTP:
    """The ``/graphql`` endpoint for GET and POST (WebSocket is strawberry's, see graphql.py)."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        context: ContextFactory,
        settings: HttpSettings,
        persisted: PersistedOperations,
        identity: InboundAuth | None = None,
        graphiql: GraphiQLPage | None = None,
    ) -> None:
        """``graphiql`` is the page a browser gets when ``settings.graphiql`` is on
        (default: strawberry's, its files from a CDN)."""
        self.schema = schema
        self._graphiql = graphiql
        self._context = context
        self._settings = settings
        self._persisted = persisted
        self._identity = identity

    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint."""
        try:
            return await self._handle(request)
        except _Refused as refused:
            return _refusal(refused)

    async def _handle(self, request: Request) -> Response:
        method = request.method
        if method not in ("GET", "POST"):
            raise _Refused(405, "METHOD_NOT_ALLOWED", "use GET or POST", {"allow": "GET, POST"})
        headers = request.headers
        if method == "GET" and _is_page_request(request) and _wants_html(headers):
            if self._settings.graphiql:
                if self._graphiql is None:
                    self._graphiql = GraphiQLPage.cdn()
                return self._graphiql.response()
            raise _Refused(404, "NOT_FOUND", "not found")
        principal = await self._authenticate(request)  # before the body is read
        media = negotiate(headers.get("accept"))
        if media is None:
            raise _Refused(
                406,
                "NOT_ACCEPTABLE",
                f"the response is {GRAPHQL_RESPONSE} or {JSON}; the Accept header allows neither",
            )
        if method == "GET":
            params = _params(_query_string(request))
            allowed = {OperationType.QUERY}
            batch = None
        else:
            payload = await self._read_json(request)
            allowed = {OperationType.QUERY, OperationType.MUTATION}
            if isinstance(payload, list):
                batch = self._batch(payload)
                params = None
            else:
                batch = None
                params = _params(payload)
        response = Response()
        context = await self._context(request, response)
        context.principal = principal
        extra: dict[str, str] = {}
        if batch is not None:
            results: list[ExecutionResult] = []
            for item in batch:
                # In order: once an operation is over the rate limit, none after it runs.
                if results and _rate_limited(results[-1]) is not None:
                    results.append(results[-1])
                else:
                    results.append(await self._run(item, context.for_operation(), allowed))
            _refuse_if_rate_limited(results[0])  # nothing ran: 429 for the whole batch
            if (limited := _rate_limited(results[-1])) is not None:
                extra["retry-after"] = str(limited.retry_after)
            body = orjson.dumps([_body(result) for result in results])
            status = 200
        else:
            assert params is not None
            result = await self._run(params, context, allowed)
            _refuse_if_rate_limited(result)
            body = orjson.dumps(_body(result))
            status = 400 if media == GRAPHQL_RESPONSE and _is_request_error(result) else 200
        final = Response(
            body, status_code=status, media_type=f"{media}; charset=utf-8", headers=extra
        )
        for key, value in response.headers.items():  # what resolvers set (cookies, caching)
            if key not in ("content-length", "content-type"):
                final.headers.append(key, value)
        return final

    async def _authenticate(self, request: Request) -> dict[str, Any]:
        """The client's claims (``server.auth``); {} when anonymous or auth is off."""
        if self._identity is None:
            return {}
        try:
            return await self._identity.authenticate(request.headers.get("authorization"))
        except TokenRejected as refused:
            raise _Refused(refused.status, refused.code, refused.message, refused.headers) from None

    async def stream_request(self, request: Request) -> tuple[_Params, Context] | Response:
        """For the Server-Sent Events transport (``server/sse.py``): one operation's
        parameters from a GET (query string) or POST (JSON body) request and the context it
        runs in (with the caller's principal), with every check a request gets here; or the
        refusal to send (400, 401, 413, 415, 503)."""
        try:
            principal = await self._authenticate(request)  # as for HTTP: before the body
            if request.method == "GET":
                params = _params(_query_string(request))
            else:
                payload = await self._read_json(request)
                if isinstance(payload, list):
                    raise _Refused(
                        400, "BAD_REQUEST", "a batch cannot be streamed; send one operation"
                    )
                params = _params(payload)
        except _Refused as refused:
            return _refusal(refused)
        context = await self._context(request, Response())
        context.principal = principal
        return params, context

    def resolve_query(self, params: _Params) -> str | None:
        """The document's text: the query, or the persisted operation its hash names (raises
        ``GraphQLError`` when the hash is unknown or untrusted)."""
        return self._persisted.resolve(params.query, params.extensions, params.document_id)

    async def _run(
        self, params: _Params, context: Context, allowed: set[OperationType]
    ) -> ExecutionResult:
        try:
            query = self._persisted.resolve(params.query, params.extensions, params.document_id)
        except GraphQLError as error:
            return PreExecutionError(data=None, errors=[error])
        try:
            return await self.schema.execute(
                query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=params.extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                # Not a method problem: plain HTTP has no stream to deliver events on.
                message = (
                    "subscriptions are served over WebSocket (graphql-transport-ws) or "
                    "Server-Sent Events (Accept: text/event-stream)"
                )
                failure = GraphQLError(message, extensions={"code": "BAD_REQUEST"})
                return PreExecutionError(data=None, errors=[failure])
            raise _Refused(
                405,
                "METHOD_NOT_ALLOWED",
                f"{error.as_http_error_reason('GET')}; use POST",
                {"allow": "POST"},
            ) from None
        except MissingQueryError:
            raise _Refused(400, "BAD_REQUEST", "the 'query' parameter is required") from None
        except CannotGetOperationTypeError as error:  # no operation by that name, or several
            reason = error.as_http_error_reason()
            return PreExecutionError(data=None, errors=[GraphQLError(reason)])

    def _batch(self, payload: list[Any]) -> list[_Params]:
        limit = self._settings.max_batch
        if limit <= 0:
            raise _Refused(400, "BATCH_NOT_ALLOWED", "batched requests are not enabled")
        if not payload:
            raise _Refused(400, "BAD_REQUEST", "a batch must hold at least one operation")
        if len(payload) > limit:
            raise _Refused(
                413,
                "BATCH_TOO_LARGE",
                f"a batch may hold at most {limit} operations; this one holds {len(payload)}",
            )
        return [_params(item) for item in payload]

    async def _read_json(self, request: Request) -> Any:
        headers = request.headers
        content_type = headers.get("content-type")
        if content_type is None:
            raise _Refused(415, "UNSUPPORTED_MEDIA_TYPE", f"send the body as {JSON}")
        media, _, parameters = content_type.partition(";")
        if media.strip().lower() != JSON:
            # text/plain, forms and multipart are what a cross-site page can send without a
            # preflight; refusing them is the CSRF defence.
            raise _Refused(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"send the body as {JSON}; {media.strip() or 'no media type'} is not accepted",
            )
        charset = _parameter(parameters, "charset")
        if charset is not None and charset.lower() not in ("utf-8", "utf8"):
            raise _Refused(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be UTF-8")
        raw = await self._read_body(request)
        if not raw:
            raise _Refused(400, "BAD_REQUEST", "the request body is empty")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Refused(400, "BAD_REQUEST", "the request body is not valid JSON") from None

    async def _read_body(self, request: Request) -> bytes:
        """The body, decoded from ``gzip``/``deflate``; never more than the limit in memory."""
        limit = self._settings.max_request_bytes
        too_large = _Refused(
            413, "REQUEST_TOO_LARGE", f"the request body is larger than {limit} bytes"
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            raise _Refused(
                415, "UNSUPPORTED_MEDIA_TYPE", f"content-encoding {encoding!r} is not supported"
            )
        decoder = None if encoding == "identity" else zlib.decompressobj(wbits=47)  # gzip+zlib
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                if decoder is not None:
                    # At most what is left of the limit (plus one byte to notice the excess).
                    chunk = decoder.decompress(chunk, limit - size + 1)
                    if decoder.unconsumed_tail:
                        raise too_large
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
            if decoder is not None:
                tail = decoder.flush()
                size += len(tail)
                if size > limit:
                    raise too_large
                chunks.append(tail)
        except zlib.error:
            raise _Refused(400, "BAD_REQUEST", f"the body is not valid {encoding}") from None
        except ClientDisconnect:
            raise _Refused(400, "BAD_REQUEST", "the client went away mid-request") from None
        return b"".join(chunks)


def negotiate(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header, or None (406).

    An explicit ``application/graphql-response+json`` or ``application/json`` wins by its
    quality, the new type on a tie; a wildcard alone means ``application/json``, as a missing
    header does (legacy clients send ``*/*`` and expect 200 for request errors)."""
    if accept is None or not accept.strip():
        return JSON
    best: str | None = None
    best_q = 0.0
    for entry in accept.split(","):
        media, _, parameters = entry.partition(";")
        media = media.strip().lower()
        quality = _parameter(parameters, "q")
        try:
            q = float(quality) if quality is not None else 1.0
        except ValueError:
            q = 0.0
        if q <= 0:
            continue
        if media in (GRAPHQL_RESPONSE, JSON):
            if q > best_q or (q == best_q and media == GRAPHQL_RESPONSE):
                best, best_q = media, q
        elif media in ("*/*", "application/*") and q > best_q:
            best, best_q = JSON, q
    return best


def _parameter(parameters: str, name: str) -> str | None:
    for part in parameters.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None


def _is_page_request(request: Request) -> bool:
    """A browser opening the page: no operation in the query string. GraphiQL keeps its own
    state there (``?q=...&headers=...``), so those parameters still open the page."""
    return not any(key in request.query_params for key in ("query", "documentId", "extensions"))


def _wants_html(headers: Headers) -> bool:
    accept = headers.get("accept", "")
    return "text/html" in accept


def _query_string(request: Request) -> dict[str, Any]:
    """GET parameters; ``variables`` and ``extensions`` arrive as JSON text."""
    params: dict[str, Any] = {}
    for key in ("query", "operationName", "variables", "extensions", "documentId"):
        values = request.query_params.getlist(key)
        if len(values) > 1:
            raise _Refused(400, "BAD_REQUEST", f"the '{key}' parameter is given more than once")
        if not values:
            continue
        value: Any = values[0]
        if key in ("variables", "extensions") and value != "":
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise _Refused(
                    400, "BAD_REQUEST", f"the '{key}' parameter is not valid JSON"
                ) from None
        params[key] = value
    return params


# Each parameter with the type it must have when given (null is always allowed).
_PARAMETERS: tuple[tuple[str, type, str], ...] = (
    ("query", str, "a string"),
    ("variables", dict, "an object"),
    ("operationName", str, "a string"),
    ("extensions", dict, "an object"),
    ("documentId", str, "a string"),
)


def _params(payload: Any) -> _Params:
    if not isinstance(payload, dict):
        raise _Refused(400, "BAD_REQUEST", "the request must be a JSON object")
    for key, kind, described in _PARAMETERS:
        value = payload.get(key)
        if value is not None and not isinstance(value, kind):
            raise _Refused(400, "BAD_REQUEST", f"the '{key}' parameter must be {described}")
    query, extensions, document_id = (
        payload.get("query"),
        payload.get("extensions"),
        payload.get("documentId"),
    )
    if query is None and document_id is None and "persistedQuery" not in (extensions or {}):
        raise _Refused(400, "BAD_REQUEST", "the 'query' parameter is required")
    name = payload.get("operationName")
    return _Params(query, payload.get("variables"), name or None, extensions, document_id)


def _rate_limited(result: ExecutionResult) -> OperationRateLimited | None:
    """The refusal, when ``server.rate_limit`` refused the operation (it did not run)."""
    if result.data is None:
        for error in result.errors or ():
            if isinstance(error.original_error, OperationRateLimited):
                return error.original_error
    return None


def _refuse_if_rate_limited(result: ExecutionResult) -> None:
    limited = _rate_limited(result)
    if limited is not None:
        raise _Refused(
            429, limited.code, limited.message, {"retry-after": str(limited.retry_after)}
        )


def _is_request_error(result: ExecutionResult) -> bool:
    """No execution happened: the document did not parse or validate, or the variables did
    not coerce (errors without a path, and no data)."""
    if isinstance(result, PreExecutionError):
        return True
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


def _body(result: ExecutionResult) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if not _is_request_error(result):
        body["data"] = result.data
    if result.errors:
        body["errors"] = [_formatted(error) for error in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return body


def _formatted(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = error.formatted  # type: ignore[assignment]
    return formatted


def _refusal(refused: _Refused) -> Response:
    body = {"errors": [{"message": refused.message, "extensions": {"code": refused.code}}]}
    return Response(
        orjson.dumps(body),
        status_code=refused.status,
        media_type=f"{JSON}; charset=utf-8",
        headers=refused.headers,
    )
