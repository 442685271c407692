"""OpenTelemetry tracing, the optional ``otel`` extra (``pip install 'graftql[otel]'``).

On when ``server.tracing.enabled`` is true (and ``OTEL_SDK_DISABLED`` is not ``true``); where
the spans go is the standard ``OTEL_*`` environment variables' business: the exporter
(``OTEL_TRACES_EXPORTER``, default ``otlp``, with ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the
rest read by the exporter itself), the sampler (``OTEL_TRACES_SAMPLER``), the resource
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``). A tracer provider installed globally
beforehand (``opentelemetry-instrument``) is used instead of building one.

What is traced, without any OpenTelemetry import below the server layer:

- every GraphQL operation, over every transport, is a SERVER span named ``query Name`` (or
  the type alone), a child of the client's ``traceparent`` when it sent one: an outermost
  schema extension (``server`` passes it to ``GatewaySchema.build``);
- every upstream attempt is a CLIENT span below it: each upstream's transport is wrapped, so
  the span starts when the request leaves and its ``traceparent`` goes with it; the attempt
  event (``upstreams/events.py``) then adds the attempt number and outcome and ends it. An
  attempt refused before anything was sent (breaker open, bulkhead full, rate limit) still
  gets a span, drawn from the event's timing. A ``cache`` event becomes a span event;
- log records written while a span is current carry its ``trace_id`` and ``span_id``
  (``TraceIdFilter``, added by ``configure_logging``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from strawberry.extensions import SchemaExtension

from graftql.config import TracingConfig
from graftql.errors import ConfigError
from graftql.schema.observe import operation_name, operation_outcome, operation_type
from graftql.upstreams import Upstreams, events

__all__ = ["GatewayTracing", "TraceIdFilter", "exporters_from_env"]

logger = logging.getLogger("graftql.tracing")

# The tracing of the operation running in this context (set by its server span).
_active: ContextVar[GatewayTracing | None] = ContextVar("graftql_tracing", default=None)
# The span of the attempt whose request just left, ended by the attempt event that follows it
# in the same task. (Owner, span): two traced gateways in one process never mix their spans.
_pending: ContextVar[tuple[GatewayTracing, Span] | None] = ContextVar(
    "graftql_attempt_span", default=None
)


def _disabled_by_env() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def exporters_from_env() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (comma-separated; default ``otlp``;
    ``none`` for none), each built from its entry point as the OpenTelemetry SDK does.
    ``otlp`` is OTLP over HTTP/protobuf unless ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` is
    ``grpc`` (then ``opentelemetry-exporter-otlp-proto-grpc`` must be installed)."""
    names = [
        name.strip()
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip()
    ]
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    available = {point.name: point for point in entry_points(group="opentelemetry_traces_exporter")}
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        wanted = name
        if name == "otlp":
            wanted = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
        point = available.get(wanted)
        if point is None:
            raise ConfigError.at(
                "OTEL_TRACES_EXPORTER",
                f"no trace exporter {name!r} is installed "
                f"(installed: {', '.join(sorted(available)) or 'none'})",
            )
        exporters.append(point.load()())
    return exporters


def _provider(config: TracingConfig) -> TracerProvider:
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: config.service_name}
    provider = TracerProvider(resource=Resource.create(attributes))  # sampler: OTEL_TRACES_*
    for exporter in exporters_from_env():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class GatewayTracing:
    """The tracing of one gateway (one ``create_app``).

    ``from_config`` returns None when tracing is off. ``provider`` (tests: an SDK provider
    with an in-memory exporter) replaces the one built from the environment.
    """

    def __init__(
        self, upstreams: Upstreams, tracer: trace.Tracer, *, owned: TracerProvider | None = None
    ) -> None:
        self._names = frozenset(upstreams)
        self._tracer = tracer
        self._owned = owned  # a provider we built, flushed and shut down at stop()
        for name, upstream in upstreams.items():
            upstream.transport = TracingTransport(upstream.transport, name, self)

    @classmethod
    def from_config(
        cls,
        config: TracingConfig,
        upstreams: Upstreams,
        *,
        provider: trace.TracerProvider | None = None,
    ) -> GatewayTracing | None:
        if not config.enabled or _disabled_by_env():
            return None
        owned: TracerProvider | None = None
        if provider is None:
            provider = trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider):  # nobody installed one
                provider = owned = _provider(config)
        from graftql._version import __version__

        return cls(upstreams, provider.get_tracer("graftql", __version__), owned=owned)

    def extension(self) -> SchemaExtension:
        """A fresh server-span extension (strawberry makes extensions per operation)."""
        return _OperationSpan(self)

    def start(self) -> None:
        events.listen(self._on_event)

    def stop(self) -> None:
        events.unlisten(self._on_event)
        if self._owned is not None:
            self._owned.shutdown()  # exports what is still queued

    # -- spans ----------------------------------------------------------------------------

    def start_operation(self, headers: Any) -> tuple[Span, Callable[[], None]]:
        parent = propagate.extract(headers) if headers is not None else None
        span = self._tracer.start_span("graphql", context=parent, kind=SpanKind.SERVER)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        active = _active.set(self)

        def leave() -> None:
            try:
                _active.reset(active)
                otel_context.detach(token)
            except ValueError:  # a subscription closed from another context (at shutdown)
                pass

        return span, leave

    def start_request(self, request: httpx.Request, upstream: str) -> Span | None:
        """The span of one request that leaves for ``upstream``, its ``traceparent`` set; None
        for requests outside any operation (readiness probes)."""
        attempt = "graftql.policy" in request.extensions
        if not attempt and _active.get() is not self:
            return None
        span = self._tracer.start_span(
            f"{request.method} {upstream}",
            kind=SpanKind.CLIENT,
            attributes={
                "graftql.upstream": upstream,
                "http.request.method": request.method,
                "server.address": request.url.host,
                "server.port": request.url.port or (443 if request.url.scheme == "https" else 80),
                "url.path": request.url.path,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        for key, value in carrier.items():
            request.headers[key] = value
        return span

    def finish_request(self, request: httpx.Request, span: Span) -> None:
        if "graftql.policy" not in request.extensions:  # a token fetch: no attempt event
            span.end()
            return
        earlier = _pending.get()
        if earlier is not None and earlier[0] is self:
            earlier[1].end()  # the same attempt sent again (an auth flow's retry after a 401)
        _pending.set((self, span))

    def _on_event(self, event: str, upstream: str, fields: dict[str, Any]) -> None:
        if upstream not in self._names:
            return
        if event == "attempt":
            self._attempted(upstream, fields)
        elif event == "cache" and _active.get() is self:
            trace.get_current_span().add_event(
                "graftql.cache",
                {"graftql.upstream": upstream, "graftql.cache.outcome": str(fields.get("outcome"))},
            )

    def _attempted(self, upstream: str, fields: dict[str, Any]) -> None:
        pending = _pending.get()
        method = str(fields.get("method"))
        if pending is not None and pending[0] is self:
            _pending.set(None)
            span = pending[1]
        elif _active.get() is self:
            # Refused before anything was sent: a span for the attempt all the same.
            seconds = float(fields.get("seconds") or 0.0)
            span = self._tracer.start_span(
                f"{method} {upstream}",
                kind=SpanKind.CLIENT,
                start_time=time.time_ns() - int(seconds * 1e9),
                attributes={"graftql.upstream": upstream, "http.request.method": method},
            )
        else:
            return
        outcome = str(fields.get("outcome"))
        span.set_attribute("graftql.attempt", int(fields.get("attempt") or 1))
        span.set_attribute("graftql.outcome", outcome)
        status = fields.get("status")
        if status is not None:
            span.set_attribute("http.response.status_code", int(status))
        if outcome != "ok":
            span.set_attribute("error.type", outcome)
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()


class TracingTransport(httpx.AsyncBaseTransport):
    """An upstream's transport with a span around each request that leaves through it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, upstream: str, tracing: GatewayTracing):
        self.inner = inner
        self._upstream = upstream
        self._tracing = tracing

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        span = self._tracing.start_request(request, self._upstream)
        if span is None:
            return await self.inner.handle_async_request(request)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:  # a timeout cancels us: the attempt event says which
            span.set_attribute("error.type", type(exc).__name__)
            self._tracing.finish_request(request, span)
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        self._tracing.finish_request(request, span)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _OperationSpan(SchemaExtension):
    """The SERVER span of one operation, current while it runs (and while it is logged)."""

    def __init__(self, tracing: GatewayTracing) -> None:
        self._tracing = tracing

    def on_operation(self) -> Iterator[None]:
        request = getattr(self.execution_context.context, "request", None)
        span, leave = self._tracing.start_operation(getattr(request, "headers", None))
        failed = False
        try:
            yield
        except (GeneratorExit, Exception) as exc:
            failed = not isinstance(exc, GeneratorExit)
            raise
        finally:
            context = self.execution_context
            kind, name = operation_type(context), operation_name(context)
            span.update_name(f"{kind} {name}" if name else kind)
            span.set_attribute("graphql.operation.type", kind)
            if name:
                span.set_attribute("graphql.operation.name", name)
            outcome = "request_error" if failed else operation_outcome(context)
            span.set_attribute("graftql.outcome", outcome)
            if outcome != "ok":
                span.set_status(Status(StatusCode.ERROR, outcome))
            leave()
            span.end()


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex) to records written while a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True
