"""Logs: one line per operation (JSON or text), request ids, and secrets that never get out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import strawberry

from graftql import Context, GatewaySchema
from graftql.config import GatewayConfig, parse_config
from graftql.demo.servers import ServerThread
from graftql.server import create_app
from graftql.server.logs import RedactSecrets, configure_logging
from graftql.testing import Call, ChaosUpstream, ReceivedRequest, Respond
from integration.helpers import GRAFTQL, free_port_block, wait_until_up, ws_connected

TOKEN = "tok-3f9a0c7e51d24b"  # the bearer token of the upstream, a Secret in the config
CLIENT_SECRET = "cs-77aa01bb9e"  # an OAuth2 client secret, never used in a request here
ENVIRON = {"LOGS_TEST_TOKEN": TOKEN, "LOGS_TEST_CLIENT_SECRET": CLIENT_SECRET}


@strawberry.type
class Query:
    @strawberry.field
    async def item(self, info: strawberry.Info[Context, None]) -> str | None:
        return str(await info.context.upstreams.rest("crm").get("/item"))

    @strawberry.field
    def hello(self) -> str:
        return "hello"


SCHEMA = GatewaySchema(query=Query)


def config_for(url: str, **server: Any) -> GatewayConfig:
    return parse_config(
        {
            "schema": "tests:unused",
            "server": server,
            "upstreams": {
                "crm": {
                    "kind": "rest",
                    "url": url,
                    "retry": {"attempts": 2, "base_delay": 0.01},
                    "auth": {"type": "bearer", "token": "${LOGS_TEST_TOKEN}"},
                },
                "payments": {
                    "kind": "rest",
                    "url": url,
                    "auth": {
                        "type": "oauth2_client_credentials",
                        "token_url": f"{url}/oauth/token",
                        "client_id": "gw",
                        "client_secret": "${LOGS_TEST_CLIENT_SECRET}",
                    },
                },
            },
        },
        environ=ENVIRON,
    )


def leak_authorization(request: ReceivedRequest) -> Respond:
    """A badly behaved upstream: its error page repeats the credentials it was sent."""
    return Respond(500, json={"error": "boom", "you_sent": request.headers["authorization"]})


def test_one_json_line_per_operation_with_request_id_and_upstream_summary(
    chaos: ChaosUpstream, restore_logging: None
) -> None:
    chaos.route("GET /item").queue(Respond(503, json={})).always(Respond(json={"ok": 1}))
    stream = io.StringIO()
    config = config_for(chaos.url, log_format="json")
    configure_logging(config, "info", stream=stream)
    with ServerThread(create_app(config, SCHEMA)) as server:
        response = httpx.post(
            f"{server.url}/graphql",
            json={"query": "query Order { item hello }"},
            headers={"x-request-id": "req-42.a:b"},
        )
    assert response.headers["x-request-id"] == "req-42.a:b"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [operation] = [line for line in lines if line["logger"] == "graftql.operations"]
    assert operation.pop("time").endswith("+00:00")
    assert 0 < operation.pop("duration_ms") < 5000
    assert operation == {
        "level": "info",
        "logger": "graftql.operations",
        "message": operation["message"],
        "request_id": "req-42.a:b",
        "operation": "Order",
        "type": "query",
        "outcome": "ok",
        "upstreams": {"crm": {"calls": 2, "errors": 1}},
    }
    assert operation["message"].startswith("query Order ok ")


def test_request_ids_that_are_not_sane_tokens_are_replaced(chaos: ChaosUpstream) -> None:
    with ServerThread(create_app(config_for(chaos.url), SCHEMA)) as server:
        url = f"{server.url}/graphql"
        query = {"query": "{ hello }"}
        generated = httpx.post(url, json=query).headers["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0
        for bad in ("has space", "x" * 129, "a\tb", 'quote"d', "é"):
            given = bad.encode("utf-8")  # headers go out as bytes: non-ASCII too
            returned = httpx.post(url, json=query, headers=[(b"x-request-id", given)])
            assert returned.headers["x-request-id"] not in (bad, generated)
            assert len(returned.headers["x-request-id"]) == 32
        # Every route answers with one, not only /graphql.
        assert httpx.get(f"{server.url}/healthz").headers["x-request-id"]


def test_websocket_operations_log_the_connections_request_id(
    chaos: ChaosUpstream, restore_logging: None
) -> None:
    stream = io.StringIO()
    config = config_for(chaos.url, log_format="json")
    configure_logging(config, "info", stream=stream)

    async def two_queries(url: str) -> str:
        headers = {"x-request-id": "ws-7"}
        async with ws_connected(url, additional_headers=headers) as ws:
            for op in ("1", "2"):
                payload = {"query": "query Hi { hello }"}
                await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))
                assert json.loads(await ws.recv())["type"] == "next"
                assert json.loads(await ws.recv()) == {"id": op, "type": "complete"}
            assert ws.response is not None
            returned: str = ws.response.headers["x-request-id"]
            return returned

    with ServerThread(create_app(config, SCHEMA)) as server:
        assert asyncio.run(two_queries(server.url)) == "ws-7"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    operations = [line for line in lines if line["logger"] == "graftql.operations"]
    assert [(line["request_id"], line["operation"]) for line in operations] == [
        ("ws-7", "Hi"),
        ("ws-7", "Hi"),
    ]


def test_text_lines_for_a_person_in_development(
    chaos: ChaosUpstream, restore_logging: None
) -> None:
    stream = io.StringIO()
    config = config_for(chaos.url)  # development: text unless log_format says otherwise
    assert not config.server.json_logs
    configure_logging(config, "info", stream=stream)
    with ServerThread(create_app(config, SCHEMA)) as server:
        httpx.post(
            f"{server.url}/graphql", json={"query": "{ hello }"}, headers={"x-request-id": "r1"}
        )
    [line] = [line for line in stream.getvalue().splitlines() if "graftql.operations" in line]
    head, _, tail = line.partition(" INFO graftql.operations: query - ok ")
    assert head and tail.endswith(" ms upstreams={} request_id=r1"), line


def test_secrets_and_bearer_tokens_never_reach_the_log(
    chaos: ChaosUpstream, restore_logging: None
) -> None:
    """Whatever logs them, however: graftql's upstream error line with the upstream's echo of
    the Authorization header, and code that logs secrets outright."""
    chaos.route("GET /item", Call(leak_authorization))
    stream = io.StringIO()
    config = config_for(chaos.url, log_format="json")
    configure_logging(config, "debug", stream=stream)
    with ServerThread(create_app(config, SCHEMA)) as server:
        answer = httpx.post(f"{server.url}/graphql", json={"query": "{ item }"}).json()
    assert answer["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert chaos.requests[0].headers["authorization"] == f"Bearer {TOKEN}"  # it was sent

    careless = logging.getLogger("someone.else")
    careless.info("token is %s and the client secret %s", TOKEN, CLIENT_SECRET)
    careless.warning("sent %s", {"Authorization": "Bearer eyJhbGciOi.J9.sig-nature", "x": 1})
    careless.warning("Cookie: session=abc123def456; theme=dark")
    careless.info("GET https://api.example.com/v1?api_key=k-998877&page=2")
    careless.info("redis at redis://:hunter2secret@127.0.0.1:6379/0")
    careless.info('token answer {"access_token": "at-5566", "token_type": "bearer"}')
    try:
        raise RuntimeError(f"the upstream refused {TOKEN}")
    except RuntimeError:
        careless.exception("with a traceback")
    careless.info("fields", extra={"graftql": {"operation": TOKEN}})
    careless.info("a stack", stack_info=True)

    output = stream.getvalue()
    for secret in (TOKEN, CLIENT_SECRET, "eyJhbGciOi", "abc123def456", "k-998877"):
        assert secret not in output
    for secret in ("hunter2secret", "at-5566"):
        assert secret not in output
    lines = [json.loads(line) for line in output.splitlines()]
    [upstream_said] = [line for line in lines if "upstream said" in line["message"]]
    assert "Bearer ***" in upstream_said["message"]
    messages = [line["message"] for line in lines if line["logger"] == "someone.else"]
    assert messages[:6] == [
        "token is *** and the client secret ***",
        "sent {'Authorization': '***', 'x': 1}",
        "Cookie: ***",
        "GET https://api.example.com/v1?api_key=***&page=2",
        "redis at redis://:***@127.0.0.1:6379/0",
        'token answer {"access_token": "***", "token_type": "bearer"}',
    ]
    [traceback] = [line for line in lines if line["message"] == "with a traceback"]
    assert "RuntimeError: the upstream refused ***" in traceback["exception"]
    [fields] = [line for line in lines if line["message"] == "fields"]
    assert fields["operation"] == "***"


def test_the_filter_masks_short_secrets_only_from_four_characters() -> None:
    redact = RedactSecrets(["abc", "abcd"]).redact
    assert redact("abc abcd abcde") == "abc *** ***e"


def test_serve_writes_json_lines_and_uvicorns_records_go_through_the_filter(
    tmp_path: Path, chaos: ChaosUpstream
) -> None:
    """`graftql serve --env production`: every line on stderr is JSON (uvicorn's access log
    too, with the request id), and a secret in the query string of an access log line is
    masked."""
    port = free_port_block(1)
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "schema: graftql.demo.schema:schema\n"
        f"upstreams: {{svc: {{kind: rest, url: '{chaos.url}', "
        "auth: {type: bearer, token: '${LOGS_TEST_TOKEN}'}}}\n"
    )
    process = subprocess.Popen(
        [*GRAFTQL, "serve", "--config", str(path), "--port", str(port), "--env", "production"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENVIRON},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", process)
        response = httpx.get(
            f"{base}/graphql",
            params={"query": "{ __typename }", "token": TOKEN},
            headers={"x-request-id": "serve-1"},
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    assert stdout == ""
    assert TOKEN not in stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert "Application shutdown complete." in [line["message"] for line in lines]
    [operation] = [line for line in lines if line["logger"] == "graftql.operations"]
    assert operation["request_id"] == "serve-1" and operation["outcome"] == "ok"
    [access] = [
        line
        for line in lines
        if line["logger"] == "uvicorn.access" and "/graphql" in line["message"]
    ]
    assert access["request_id"] == "serve-1"
    assert "token=***" in access["message"] and '" 200' in access["message"]
