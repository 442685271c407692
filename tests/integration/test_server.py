"""The gateway's HTTP and WebSocket surface, in development and production mode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import strawberry
import websockets
from graphql import GraphQLError

from graftql import Context, GatewaySchema, LoaderRegistry
from graftql.demo.servers import ServerThread
from graftql.testing import Behaviour, ChaosUpstream, Respond
from integration.helpers import graphql, serve, ws_url

loaders = LoaderRegistry()
BATCHES: list[list[str]] = []


@loaders.loader("counted")
async def load_counted(ctx: Context, keys: list[str]) -> list[str]:
    BATCHES.append(keys)
    return [f"value of {k}" for k in keys]


@strawberry.type
class Query:
    @strawberry.field
    async def counted(self, info: strawberry.Info[Context, None]) -> str:
        value: str = await info.context.loaders["counted"].load("k")
        return value

    @strawberry.field
    async def echo(self, info: strawberry.Info[Context, None]) -> str | None:
        data = await info.context.upstreams.graphql("remote").execute(
            "query Echo($text: String!) { echo(text: $text) }", {"text": "hi"}
        )
        result: str = data["echo"]
        return result

    @strawberry.field
    def boom(self) -> str | None:
        raise RuntimeError("internal detail: password hunter2 at 10.0.0.5")

    @strawberry.field
    def hello(self) -> str:
        return "world"

    @strawberry.field
    def refused(self) -> str | None:
        raise GraphQLError("you may not see this order", extensions={"code": "FORBIDDEN"})


SCHEMA = GatewaySchema(query=Query, loaders=loaders)


def start(url: str, env: str) -> ServerThread:
    remote = {"kind": "graphql", "url": f"{url}/graphql", "timeout": 2}
    return serve(SCHEMA, upstreams={"remote": remote}, env=env).start()


@pytest.fixture
def dev(chaos: ChaosUpstream) -> Iterator[str]:
    server = start(chaos.url, "development")
    yield server.url
    server.stop()


@pytest.fixture
def prod(chaos: ChaosUpstream) -> Iterator[str]:
    server = start(chaos.url, "production")
    yield server.url
    server.stop()


def test_graphql_upstream_receives_the_document_at_its_exact_url(
    dev: str, chaos: ChaosUpstream
) -> None:
    # Any method and path get the answer: the test checks which ones arrived.
    chaos.route("/**").queue(Respond(json={"data": {"echo": "hi back"}}))
    assert graphql(dev, "{ echo }") == {"data": {"echo": "hi back"}}
    [request] = chaos.requests
    assert (request.method, request.path) == ("POST", "/graphql")
    sent = json.loads(request.body)
    assert sent["variables"] == {"text": "hi"}
    assert "echo(text: $text)" in sent["query"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            Respond(json={"errors": [{"message": "db at 10.1.1.1 down"}], "data": None}),
            "remote answered with GraphQL errors",
        ),
        (Respond(200, b"<html>gateway error</html>", content_type="text/html"), None),
        (Respond(json={"unexpected": True}), "remote did not answer with a GraphQL response"),
    ],
    ids=["graphql-errors", "html", "not-graphql"],
)
def test_graphql_upstream_bad_answers(
    dev: str, chaos: ChaosUpstream, answer: Behaviour, message: str | None
) -> None:
    chaos.route("POST /graphql").queue(answer)
    body = graphql(dev, "{ echo hello }")
    assert body["data"] == {"echo": None, "hello": "world"}
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UPSTREAM_BAD_RESPONSE", "upstream": "remote"}
    if message:
        assert error["message"] == message
    assert "10.1.1.1" not in json.dumps(body)


def test_get_queries_work_and_graphiql_is_served_in_development(dev: str) -> None:
    response = httpx.get(f"{dev}/graphql", params={"query": "{ hello }"})
    assert response.status_code == 200 and response.json() == {"data": {"hello": "world"}}
    page = httpx.get(f"{dev}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_introspection_is_on_in_development(dev: str) -> None:
    body = graphql(dev, "{ __schema { queryType { name } } }")
    assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


def test_production_has_no_graphiql_and_no_introspection(prod: str) -> None:
    page = httpx.get(f"{prod}/graphql", headers={"accept": "text/html"})
    assert "graphiql" not in page.text.lower()
    assert page.status_code == 404
    response = httpx.post(f"{prod}/graphql", json={"query": "{ __schema { types { name } } }"})
    body = response.json()
    assert body.get("data") is None
    assert "introspection" in body["errors"][0]["message"].lower()
    # The plain fields still work.
    assert graphql(prod, "{ hello }") == {"data": {"hello": "world"}}


async def test_production_introspection_is_off_over_every_transport(prod: str) -> None:
    schema_query = "{ __schema { types { name } } }"
    refused = (
        "GraphQL introspection has been disabled, but the requested query contained the field "
        "'__schema'."
    )
    async with httpx.AsyncClient() as client:
        by_get = (await client.get(f"{prod}/graphql", params={"query": schema_query})).json()
        by_post = (await client.post(f"{prod}/graphql", json={"query": schema_query})).json()
        type_query = "query ($n: String!) { __type(name: $n) { name fields { name } } }"
        hidden = [
            (
                await client.post(
                    f"{prod}/graphql", json={"query": type_query, "variables": {"n": n}}
                )
            ).json()
            for n in ("Query", "NoSuchType")
        ]
    for body in (by_get, by_post):
        assert "data" not in body and body["errors"][0]["message"] == refused
    url = ws_url(prod)
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": schema_query}})
        )
        message = json.loads(await ws.recv())
    assert message["type"] == "error" and message["payload"][0]["message"] == refused
    # __type answers null for every name, existing or not: it tells nothing about the schema.
    assert hidden == [{"data": {"__type": None}}] * 2


def test_production_masks_unexpected_errors_but_not_upstream_errors(
    prod: str, chaos: ChaosUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # The body byte for byte as the log line below quotes it (json= would drop the space).
    maintenance = Respond(503, b'{"error": "maintenance"}', content_type="application/json")
    chaos.route("POST /graphql").queue(maintenance, times=3)  # the first try and two retries
    body = graphql(prod, "{ boom echo hello }")
    assert body["data"] == {"boom": None, "echo": None, "hello": "world"}
    by_field = {e["path"][0]: e for e in body["errors"]}
    assert by_field["boom"]["message"] == "Unexpected error."
    assert by_field["echo"]["message"] == "remote is unavailable (HTTP 503)"
    assert by_field["echo"]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "upstream": "remote"}
    assert "hunter2" not in json.dumps(body)
    # The upstream failure is one warning line; the bug keeps its traceback for the operator.
    [upstream_log] = [r for r in caplog.records if r.name == "graftql.errors"]
    assert upstream_log.levelname == "WARNING" and upstream_log.exc_info is None
    assert upstream_log.getMessage() == (
        "UPSTREAM_UNAVAILABLE at echo: remote is unavailable (HTTP 503); "
        'upstream said: {"error": "maintenance"}'
    )
    [bug_log] = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert bug_log.exc_info is not None


def test_production_keeps_errors_a_resolver_raises_on_purpose(prod: str) -> None:
    body = graphql(prod, "{ refused }")
    assert body["errors"][0]["message"] == "you may not see this order"
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


def test_development_shows_the_unexpected_error(dev: str) -> None:
    body = graphql(dev, "{ boom }")
    assert "hunter2" in body["errors"][0]["message"]


def test_health_endpoints(dev: str) -> None:
    assert httpx.get(f"{dev}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{dev}/readyz")
    assert ready.status_code == 200
    remote = ready.json()["upstreams"]["remote"]
    assert remote["status"] == "up" and remote["kind"] == "graphql" and remote["required"]


async def test_websocket_route_speaks_graphql_transport_ws(dev: str) -> None:
    url = ws_url(dev)
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ hello }"}})
        )
        assert json.loads(await ws.recv()) == {
            "id": "1",
            "type": "next",
            "payload": {"data": {"hello": "world"}},
        }
        assert json.loads(await ws.recv()) == {"id": "1", "type": "complete"}


async def test_each_websocket_operation_gets_its_own_loaders(dev: str) -> None:
    url = ws_url(dev)
    BATCHES.clear()
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        for op in ("1", "2"):
            subscribe = {"id": op, "type": "subscribe", "payload": {"query": "{ counted }"}}
            await ws.send(json.dumps(subscribe))
            assert json.loads(await ws.recv())["payload"] == {"data": {"counted": "value of k"}}
            assert json.loads(await ws.recv()) == {"id": op, "type": "complete"}
    # One batch per operation: the second operation did not reuse the first one's cache.
    assert BATCHES == [["k"], ["k"]]
