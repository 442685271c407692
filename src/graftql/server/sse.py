"""GraphQL over Server-Sent Events: the ``graphql-sse`` protocol, distinct connections mode.

https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md. A request is a GraphQL over
HTTP request (POST with a JSON body, or GET with the query string) whose ``Accept`` asks for
``text/event-stream``, on ``/graphql`` or ``/graphql/stream``; one request is one operation.

- **Accepted stream.** ``200 text/event-stream``; each result is a ``next`` event whose data
  is the ExecutionResult's JSON; the end is a ``complete`` event. Queries and mutations (POST)
  stream one result, subscriptions as many as happen; GET runs queries and subscriptions.
- **Errors before execution** (the document does not parse or validate, a limit is exceeded,
  the client is over ``server.rate_limit``, introspection is off) are reported as the
  protocol requires: a ``next`` event holding the errors, then ``complete``. A browser's
  ``EventSource`` would otherwise see a failed connection and nothing else.
- **Bad requests** — not GraphQL over HTTP at all: a body that is not JSON, a missing
  ``query``, a batch, the wrong content type, a body over ``server.max_request_bytes`` — are
  4xx with a JSON body naming the reason, as on plain HTTP (``GraphQLHTTP.stream_request``).
  More streams open than ``server.sse.max_streams`` is 503 with ``Retry-After``.
- **Keep-alive.** A comment line (``:``) every ``server.sse.keep_alive`` seconds of quiet,
  so proxies and load balancers do not close an idle stream.
- **Client gone.** When the client closes the connection, the operation is cancelled at
  once: the subscription's source is closed (its ``finally`` runs), whatever it was waiting
  for.

The operation runs in one task of its own (``_pump``) for its whole life, so context
variables that the schema's extensions set when it starts (the caller, for upstream calls)
hold for every event; the response reads its results through a small queue, which also
means a client that reads slowly slows its own subscription, not the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import orjson
import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.aio import aclosing

from graftql.config import SseConfig
from graftql.schema.subscriptions import delivery
from graftql.server.http import JSON, GraphQLHTTP

__all__ = ["EVENT_STREAM", "GraphQLSSE", "wants_event_stream"]

logger = logging.getLogger("graftql.server")

EVENT_STREAM = "text/event-stream"
_QUEUE = 16  # results buffered per stream before the operation waits for the client
_COMPLETE = b"event: complete\ndata:\n\n"
_KEEP_ALIVE = b":\n\n"


def _qualities(accept: str) -> dict[str, float]:
    """Each media range of an ``Accept`` header with its quality (0 when unreadable)."""
    found: dict[str, float] = {}
    for entry in accept.split(","):
        media, _, parameters = entry.partition(";")
        q = 1.0
        for part in parameters.split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        found[media] = max(found.get(media, 0.0), q)
    return found


def wants_event_stream(accept: str | None) -> bool:
    """The ``Accept`` header lists ``text/event-stream`` at least as high as any JSON type."""
    qualities = _qualities(accept or "")
    stream = qualities.get(EVENT_STREAM, 0.0)
    json = max(qualities.get(JSON, 0.0), qualities.get("application/graphql-response+json", 0.0))
    return stream > 0 and stream >= json


def _allows_event_stream(accept: str) -> bool:
    qualities = _qualities(accept)
    return any(qualities.get(media, 0.0) > 0 for media in (EVENT_STREAM, "text/*", "*/*"))


def _event(result: ExecutionResult) -> bytes:
    body: dict[str, Any] = {}
    if not (result.data is None and result.errors and all(e.path is None for e in result.errors)):
        body["data"] = result.data
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return b"event: next\ndata: " + orjson.dumps(body) + b"\n\n"


def _refused(status: int, code: str, message: str, headers: dict[str, str]) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(
        orjson.dumps(body), status, headers=headers, media_type=f"{JSON}; charset=utf-8"
    )


class GraphQLSSE:
    """The graphql-sse endpoint (distinct connections mode)."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        http: GraphQLHTTP,
        settings: SseConfig,
    ) -> None:
        self.schema = schema
        self._http = http
        self._settings = settings
        self.open_streams = 0

    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint (``/graphql/stream``, and ``/graphql`` when the client's
        ``Accept`` asks for an event stream)."""
        if request.method not in ("GET", "POST"):
            return _refused(405, "METHOD_NOT_ALLOWED", "use GET or POST", {"allow": "GET, POST"})
        accept = request.headers.get("accept")
        if accept is not None and accept.strip() and not _allows_event_stream(accept):
            return _refused(406, "NOT_ACCEPTABLE", f"this endpoint answers {EVENT_STREAM} only", {})
        if self.open_streams >= self._settings.max_streams:
            return _refused(
                503,
                "TOO_MANY_STREAMS",
                "the gateway has too many open event streams; retry later",
                {"retry-after": "5"},
            )
        prepared = await self._http.stream_request(request)
        if isinstance(prepared, Response):
            return prepared
        params, context = prepared
        allowed = (
            (OperationType.QUERY, OperationType.SUBSCRIPTION)
            if request.method == "GET"
            else (OperationType.QUERY, OperationType.MUTATION, OperationType.SUBSCRIPTION)
        )
        try:
            query = self._http.resolve_query(params)
        except GraphQLError as error:
            source: AsyncIterator[Any] = _single(ExecutionResult(data=None, errors=[error]))
        else:
            source = await self.schema.stream(
                query,
                variable_values=params.variables,
                context_value=context,
                operation_name=params.operation_name,
                operation_extensions=params.extensions,
                allowed_operation_types=allowed,
            )
        headers = {
            "cache-control": "no-cache",
            "x-accel-buffering": "no",  # nginx: pass events through as they come
        }
        self.open_streams += 1
        return _EventStream(self._events(source), self._release, headers)

    def _release(self) -> None:
        self.open_streams -= 1

    async def _events(self, source: AsyncIterator[Any]) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE)
        stream = _Delivery()
        pump = asyncio.create_task(_pump(source, queue, stream))
        interval = self._settings.keep_alive
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), interval)
                except TimeoutError:
                    yield _KEEP_ALIVE
                    continue
                if item is None:
                    break
                yield item
                # Resumed: Starlette has sent the event. Counted if a subscription's.
                if stream.delivered is not None:
                    stream.delivered()
            yield _COMPLETE
        finally:
            # Also when the client went away: Starlette cancels this generator then.
            pump.cancel()
            with suppress(asyncio.CancelledError):
                await pump


class _EventStream(StreamingResponse):
    """The stream's slot is given back when the response is over, also when the client left
    before its first byte (the body generator never started, so its ``finally`` cannot)."""

    def __init__(
        self, events: AsyncIterator[bytes], release: Callable[[], None], headers: dict[str, str]
    ) -> None:
        super().__init__(events, media_type=f"{EVENT_STREAM}; charset=utf-8", headers=headers)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class _Delivery:
    """What counts a sent event of the stream's subscription (``schema/subscriptions.py``):
    the pump's task learns it, the response's task calls it."""

    __slots__ = ("delivered",)

    def __init__(self) -> None:
        self.delivered: Callable[[], None] | None = None


async def _pump(
    source: AsyncIterator[Any], queue: asyncio.Queue[bytes | None], stream: _Delivery
) -> None:
    try:
        async with aclosing(source):
            async for result in source:
                if stream.delivered is None:
                    stream.delivered = delivery()  # set in this task once execution began
                if not isinstance(result, ExecutionResult):  # @defer/@stream frames
                    error = GraphQLError("incremental delivery is not supported over SSE")
                    await queue.put(_event(ExecutionResult(data=None, errors=[error])))
                    break
                await queue.put(_event(result))
    except Exception:
        logger.exception("an event stream failed")
        error = GraphQLError("Internal server error", extensions={"code": "INTERNAL_SERVER_ERROR"})
        await queue.put(_event(ExecutionResult(data=None, errors=[error])))
    await queue.put(None)


async def _single(result: ExecutionResult) -> AsyncIterator[ExecutionResult]:
    yield result
