"""Interop with real-time clients nobody at graftql wrote, subscribing through a live gateway:
the reference ``graphql-ws`` client (npm, over WebSocket with graphql-transport-ws), the
``graphql-sse`` client (npm, distinct connections mode) and gql's websockets transport (both
subprotocols). The JavaScript clients are pinned in tests/interop/package-lock.json and run on
Node 20 by tests/interop/subscribe.mjs; ``npm ci`` runs here when node_modules is missing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport

from graftql.config import parse_config
from graftql.demo.servers import ServerThread
from graftql.errors import ConnectionRejected
from graftql.resolvers import Context
from graftql.server import create_app
from integration.helpers import ws_url
from integration.node_packages import node_with_packages
from integration.realtime_schema import realtime_schema

INTEROP = Path(__file__).resolve().parents[1] / "interop"
COUNT = "subscription { count(to: 3) }"
RESULTS = [{"data": {"count": n}} for n in (1, 2, 3)]


async def _needs_token(context: Context) -> Mapping[str, object] | None:
    if (context.connection_params or {}).get("token") != "letmein":
        raise ConnectionRejected("wrong token")
    return None


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages(INTEROP, "the real-time interop tests")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    config = parse_config({"schema": "tests:unused", "server": {}})
    app = create_app(config, realtime_schema(), authenticate=_needs_token)
    with ServerThread(app) as server:
        yield server.url


def run_client(node: str, *args: str) -> list[dict[str, Any]]:
    run = subprocess.run(
        [node, "subscribe.mjs", *args],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    return [json.loads(line) for line in run.stdout.splitlines()]


def test_the_graphql_ws_reference_client_subscribes(node: str, url: str) -> None:
    ws = ws_url(url)
    token = json.dumps({"token": "letmein"})
    assert run_client(node, "ws", ws, COUNT, token) == [*RESULTS, {"complete": True}]
    # Refused at connection_init: the client reports the close code the protocol names.
    [refused] = run_client(node, "ws", ws, COUNT, json.dumps({"token": "guess"}))
    assert refused == {"error": {"code": 4403, "reason": "Forbidden"}}


@pytest.mark.parametrize("path", ["/graphql", "/graphql/stream"])
def test_the_graphql_sse_client_subscribes(node: str, url: str, path: str) -> None:
    assert run_client(node, "sse", url + path, COUNT) == [*RESULTS, {"complete": True}]


def test_the_graphql_sse_client_gets_validation_errors_as_a_result(node: str, url: str) -> None:
    [result, end] = run_client(node, "sse", url + "/graphql/stream", "subscription { nope }")
    assert "Cannot query field 'nope'" in result["errors"][0]["message"]
    assert end == {"complete": True}


@pytest.mark.parametrize(
    "subprotocol",
    [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL],
)
async def test_gql_websockets_transport_subscribes(url: str, subprotocol: str) -> None:
    transport = WebsocketsTransport(
        url=ws_url(url),
        subprotocols=[subprotocol],
        init_payload={"token": "letmein"},
    )
    async with Client(transport=transport) as session:
        received = [result async for result in session.subscribe(gql(COUNT))]
        assert received == [{"count": 1}, {"count": 2}, {"count": 3}]
        # A query over the same socket (the legacy protocol too).
        assert await session.execute(gql('{ hello(name: "gql") }')) == {"hello": "hello gql"}
