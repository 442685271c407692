"""The ``server.tracing:`` block: OpenTelemetry traces (the optional ``otel`` extra)."""

from __future__ import annotations

from pydantic import Field

from graftql.config._base import _Model


class TracingConfig(_Model):
    """OpenTelemetry tracing: a server span per GraphQL operation and a client span per
    upstream attempt, ``traceparent`` honoured and sent on. Where the spans go is set by the
    standard ``OTEL_*`` environment variables (``OTEL_TRACES_EXPORTER``,
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_SAMPLER``, ...); docs/operations.md."""

    enabled: bool = Field(
        False,
        description="trace operations and upstream calls; needs `pip install 'graftql[otel]'`",
    )
    service_name: str = Field(
        "graftql",
        min_length=1,
        description="the `service.name` of the spans, unless `OTEL_SERVICE_NAME` is set",
    )
