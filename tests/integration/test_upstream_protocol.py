"""Upstreams that answer badly at the HTTP level, and the reachability probe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from graftql.config import UpstreamConfig
from graftql.errors import UpstreamBadResponse, UpstreamUnavailable
from graftql.upstreams import GraphQLUpstream, RestUpstream, UpstreamGraphQLErrors
from integration.scripted import ScriptedUpstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SMTP READY\r\n\r\n")
    await writer.drain()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def _truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"
    )
    await writer.drain()
    writer.close()


@pytest.fixture
async def raw_server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    handler: Handler = request.param
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("raw_server", "error", "message"),
    [
        (_garbage, UpstreamBadResponse, "svc answered with malformed HTTP"),
        (_hang_up, UpstreamUnavailable, "the connection to svc was lost"),
        (_truncated, UpstreamBadResponse, "svc answered with malformed HTTP"),
    ],
    indirect=["raw_server"],
)
async def test_broken_http_answers(raw_server: str, error: type[Exception], message: str) -> None:
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=raw_server))
    with pytest.raises(error) as caught:
        await upstream.get("/items")
    await upstream.aclose()
    assert str(caught.value) == message and type(caught.value) is error


async def test_graphql_validation_errors_over_400_keep_the_upstream_words(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    double.answer(400, json_body={"errors": [{"message": "Cannot query field 'nope' on 'Query'."}]})
    upstream = GraphQLUpstream("cat", UpstreamConfig(kind="graphql", url=f"{url}/graphql"))
    with pytest.raises(UpstreamGraphQLErrors) as caught:
        await upstream.execute("{ nope }")
    await upstream.aclose()
    assert caught.value.status == 400
    assert caught.value.errors == [{"message": "Cannot query field 'nope' on 'Query'."}]
    assert caught.value.detail == "Cannot query field 'nope' on 'Query'."
    assert str(caught.value) == "cat answered with GraphQL errors"  # what a client sees


async def test_probe_uses_the_origin_health_path_and_sends_no_secret(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    config = UpstreamConfig.model_validate(
        {
            "kind": "rest",
            "url": f"{url}/api/v1?version=2",
            "health_path": "/healthz",
            "headers": {"X-Tenant": "acme", "X-Token": "${T}"},
            "auth": {"type": "bearer", "token": "${T}"},
        },
        context={"environ": {"T": "s3cr3t"}},
    )
    upstream = RestUpstream("svc", config)
    probe = await upstream.probe()
    await upstream.aclose()
    assert (probe.status, probe.detail) == ("up", "HTTP 200")
    [request] = double.received
    assert (request.raw_path, request.query) == ("/healthz", "")
    assert request.headers["x-tenant"] == "acme"
    assert "s3cr3t" not in str(request.headers)


async def test_probe_reports_5xx_and_silence_as_down(
    scripted: tuple[ScriptedUpstream, str],
) -> None:
    double, url = scripted
    double.answer(503)
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=url))
    assert (await upstream.probe()).detail == "HTTP 503"
    double.answer(200, delay=3)
    slow = await upstream.probe()
    await upstream.aclose()
    assert (slow.status, slow.detail) == ("down", "no answer within 2s")
