"""OpenTelemetry tracing over real connections: one trace per operation, the server span, a
client span per upstream attempt, ``traceparent`` received by the upstream, and the trace id in
the JSON log line. Spans go to the SDK's in-memory exporter."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
import yaml

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from graftql import Context, GatewaySchema
from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from graftql.errors import ConfigError
from graftql.server import create_app
from graftql.server.logs import configure_logging
from graftql.testing import ChaosUpstream, Respond
from integration.helpers import GRAFTQL, free_port_block, wait_until_up

# A client's trace context (W3C): the gateway's server span must continue this trace.
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("crm").get("/item"))

    @strawberry.field
    async def other(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("shop").get("/other"))


SCHEMA = GatewaySchema(query=Query)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def traced_gateway(
    chaos: ChaosUpstream, exporter: InMemorySpanExporter, **crm: Any
) -> tuple[ServerThread, Any]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    upstream = {"kind": "rest", "url": chaos.url, "retry": {"base_delay": 0.01}}
    config = parse_config(
        {
            "schema": "tests:unused",
            "server": {"tracing": {"enabled": True}, "log_format": "json"},
            "upstreams": {"crm": {**upstream, **crm}, "shop": upstream},
        }
    )
    return ServerThread(create_app(config, SCHEMA, tracer_provider=provider)), config


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return sorted(
        (span for span in spans if span.kind == kind), key=lambda span: span.start_time or 0
    )


def test_one_trace_server_span_and_a_client_span_per_attempt_with_traceparent_sent(
    chaos: ChaosUpstream, exporter: InMemorySpanExporter, restore_logging: None
) -> None:
    chaos.route("GET /item").queue(Respond(503, json={})).always(Respond(json={"ok": 1}))
    chaos.route("GET /other", Respond(json={"ok": 2}))
    server, config = traced_gateway(chaos, exporter, retry={"attempts": 3, "base_delay": 0.01})
    stream = io.StringIO()
    configure_logging(config, "info", stream=stream)
    with server:
        response = httpx.post(
            f"{server.url}/graphql",
            json={"query": "query Order { item other }"},
            headers={"traceparent": TRACEPARENT},
        )
    assert response.json() == {"data": {"item": "{'ok': 1}", "other": "{'ok': 2}"}}
    spans = exporter.get_finished_spans()
    [operation] = by_kind(spans, SpanKind.SERVER)
    clients = by_kind(spans, SpanKind.CLIENT)
    # One trace: the client's, continued by every span.
    assert {format(span.context.trace_id, "032x") for span in spans} == {CLIENT_TRACE}
    assert operation.parent is not None and format(operation.parent.span_id, "016x") == CLIENT_SPAN
    assert operation.name == "query Order"
    assert operation.attributes is not None
    assert dict(operation.attributes) == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Order",
        "graftql.outcome": "ok",
    }
    assert operation.status.status_code == StatusCode.UNSET
    # Two attempts at crm (a 503, then success) and one at shop, each a child of the operation.
    attempts = [
        (
            span.name,
            span.attributes and span.attributes["graftql.upstream"],
            span.attributes and span.attributes["graftql.attempt"],
            span.attributes and span.attributes["graftql.outcome"],
            span.attributes and span.attributes["http.response.status_code"],
            span.status.status_code,
        )
        for span in clients
    ]
    assert sorted(attempts, key=str) == sorted(
        [
            ("GET crm", "crm", 1, "UPSTREAM_UNAVAILABLE", 503, StatusCode.ERROR),
            ("GET crm", "crm", 2, "ok", 200, StatusCode.UNSET),
            ("GET shop", "shop", 1, "ok", 200, StatusCode.UNSET),
        ],
        key=str,
    )
    for span in clients:
        assert span.parent is not None and span.parent.span_id == operation.context.span_id
    # Each upstream request carried its own span as the parent: W3C traceparent.
    sent = sorted(
        request.headers["traceparent"] for request in chaos.requests if request.path != "/__"
    )
    expected = sorted(
        f"00-{CLIENT_TRACE}-{format(span.context.span_id, '016x')}-01" for span in clients
    )
    assert sent == expected
    # The operation's JSON log line carries the trace id.
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [logged] = [line for line in lines if line["logger"] == "graftql.operations"]
    assert logged["trace_id"] == CLIENT_TRACE
    assert logged["span_id"] == format(operation.context.span_id, "016x")


def test_without_traceparent_a_new_trace_and_a_refused_attempt_still_has_a_span(
    chaos: ChaosUpstream, exporter: InMemorySpanExporter
) -> None:
    chaos.route("GET /item", Respond(503, json={}))
    breaker = {"minimum_calls": 1, "failure_rate": 0.5, "open_for": 60}
    server, _ = traced_gateway(chaos, exporter, retry={"attempts": 1}, breaker=breaker)
    with server:
        first = httpx.post(f"{server.url}/graphql", json={"query": "{ item }"}).json()
        second = httpx.post(f"{server.url}/graphql", json={"query": "{ item }"}).json()
    assert first["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert second["errors"][0]["extensions"]["code"] == "CIRCUIT_OPEN"
    assert chaos.count("GET /item") == 1  # the breaker kept the second call home
    spans = exporter.get_finished_spans()
    operations = by_kind(spans, SpanKind.SERVER)
    assert [span.name for span in operations] == ["query", "query"]
    assert all(span.parent is None for span in operations)  # new traces
    assert operations[0].context.trace_id != operations[1].context.trace_id
    assert [span.status.status_code for span in operations] == [StatusCode.ERROR] * 2
    clients = by_kind(spans, SpanKind.CLIENT)
    assert [
        (span.context.trace_id, span.attributes and span.attributes["graftql.outcome"])
        for span in clients
    ] == [
        (operations[0].context.trace_id, "UPSTREAM_UNAVAILABLE"),
        (operations[1].context.trace_id, "CIRCUIT_OPEN"),
    ]


def test_readiness_probes_are_not_traced_and_tracing_off_sends_no_traceparent(
    chaos: ChaosUpstream, exporter: InMemorySpanExporter
) -> None:
    chaos.route("GET /", Respond(json={}))
    chaos.route("GET /item", Respond(json={"ok": 1}))
    server, _ = traced_gateway(chaos, exporter)
    with server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert exporter.get_finished_spans() == ()
    assert all("traceparent" not in request.headers for request in chaos.requests)
    config = parse_config(
        {"schema": "tests:unused", "upstreams": {"crm": {"kind": "rest", "url": chaos.url}}}
    )
    with ServerThread(create_app(config, SCHEMA)) as plain:
        httpx.post(
            f"{plain.url}/graphql", json={"query": "{ item }"}, headers={"traceparent": TRACEPARENT}
        )
    assert chaos.count("GET /item") == 1
    assert all("traceparent" not in request.headers for request in chaos.requests)


def test_an_unknown_exporter_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "carrier_pigeon")
    config = parse_config({"schema": "tests:unused", "server": {"tracing": {"enabled": True}}})
    with pytest.raises(ConfigError) as raised:
        create_app(config, SCHEMA)
    [(path, reason)] = raised.value.errors
    assert path == "OTEL_TRACES_EXPORTER"
    assert reason.startswith("no trace exporter 'carrier_pigeon' is installed (installed: ")


def test_otel_sdk_disabled_turns_tracing_off(
    chaos: ChaosUpstream, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    chaos.route("GET /item", Respond(json={"ok": 1}))
    server, _ = traced_gateway(chaos, exporter)
    with server:
        httpx.post(f"{server.url}/graphql", json={"query": "{ item }"})
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in chaos.requests[0].headers


def test_tracing_without_the_otel_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the extra were not installed: importing OpenTelemetry fails.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "graftql.server.tracing", raising=False)
    config = parse_config({"schema": "tests:unused", "server": {"tracing": {"enabled": True}}})
    with pytest.raises(ConfigError) as raised:
        create_app(config, SCHEMA)
    assert raised.value.errors == [
        (
            "server.tracing.enabled",
            "needs OpenTelemetry: pip install 'graftql[otel]' (opentelemetry is missing)",
        )
    ]


def test_serve_exports_spans_where_the_otel_variables_say(
    tmp_path: Path, chaos: ChaosUpstream
) -> None:
    """`graftql serve` with tracing on and OTEL_TRACES_EXPORTER=console: the spans come out on
    stdout (flushed at shutdown), with the service name from OTEL_SERVICE_NAME."""
    chaos.route("GET /item", Respond(json={"ok": 1}))
    (tmp_path / "traced_schema.py").write_text(
        "from integration.test_tracing import SCHEMA as schema\n"
    )
    port = free_port_block(1)
    (tmp_path / "gateway.yaml").write_text(
        yaml.safe_dump(
            {
                "schema": "traced_schema:schema",
                "server": {"port": port, "tracing": {"enabled": True}},
                "upstreams": {"crm": {"kind": "rest", "url": chaos.url}},
            }
        )
    )
    tests = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(tests)]),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "shop-gateway",
    }
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--config", "gateway.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)  # type: ignore[arg-type]
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "query Order { item }"},
            headers={"traceparent": TRACEPARENT},
        )
        assert answer.json() == {"data": {"item": "{'ok': 1}"}}
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    text = out.decode()
    assert '"name": "query Order"' in text and '"name": "GET crm"' in text
    assert f'"trace_id": "0x{CLIENT_TRACE}"' in text
    assert '"service.name": "shop-gateway"' in text
    assert chaos.requests[0].headers["traceparent"].startswith(f"00-{CLIENT_TRACE}-")
