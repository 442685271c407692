"""server.limits against a real gateway: every attack is refused over HTTP and WebSocket alike,
before any resolver runs, and production errors say nothing a client should not see.

HTTP requests ask for ``application/json``, under which every well-formed GraphQL request is
200 with the errors in the body (GraphQL over HTTP's ``application/graphql-response+json`` would
make request errors 400).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import strawberry

from graftql import GatewaySchema
from graftql.demo.servers import ServerThread
from integration.helpers import serve, ws_connected

RESOLVED: list[str] = []


@strawberry.type
class Item:
    id: strawberry.ID

    @strawberry.field
    def children(self, first: int | None = None) -> list[Item]:
        RESOLVED.append("children")
        return []


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        RESOLVED.append("hello")
        return "world"

    @strawberry.field
    def node(self) -> Query:
        RESOLVED.append("node")
        return Query()

    @strawberry.field
    def items(self, first: int | None = None) -> list[Item]:
        RESOLVED.append("items")
        return []

    @strawberry.field
    def boom(self) -> str | None:
        RESOLVED.append("boom")
        raise RuntimeError("internal detail: password hunter2 at 10.0.0.5")


def start(env: str) -> ServerThread:
    return serve(GatewaySchema(query=Query), env=env).start()


@pytest.fixture(scope="module")
def dev() -> Iterator[str]:
    server = start("development")
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def prod() -> Iterator[str]:
    server = start("production")
    yield server.url
    server.stop()


@pytest.fixture(autouse=True)
def nothing_resolved_yet() -> None:
    RESOLVED.clear()


def post(base_url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": variables or None},
        headers={"accept": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def over_websocket(base_url: str, query: str) -> dict[str, Any]:
    """The first message graphql-transport-ws answers a subscribe with."""
    async with ws_connected(base_url) as ws:
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


def limits_of(errors: list[dict[str, Any]]) -> list[str]:
    assert all(e["extensions"]["code"] == "OPERATION_LIMIT_EXCEEDED" for e in errors), errors
    return [e["extensions"]["limit"] for e in errors]


def exponential_expansion() -> str:
    fragments = "".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(50)
    )
    return "{ ...F0 }\n" + fragments + "fragment F50 on Query { hello }"


def aliases_in_a_fragment_spread_five_times() -> str:
    aliases = " ".join(f"a{i}: hello" for i in range(40))
    return "{ ...A ...A ...A ...A ...A } " + f"fragment A on Query {{ {aliases} }}"


ATTACKS: dict[str, tuple[str, str]] = {
    # name: (document, the limit that must refuse it)
    "exponential fragment expansion": (exponential_expansion(), "max_fields"),
    "40 aliases in a fragment spread five times": (
        aliases_in_a_fragment_spread_five_times(),
        "max_aliases",
    ),
    "15k tokens": ("{ " + "hello " * 15_000 + "}", "max_tokens"),
    "1,000 directives": ("{ hello " + "@d " * 1_000 + "}", "max_directives"),
    "40 KB of nesting": ("{" + "node{" * 8_000 + "hello" + "}" * 8_001, "max_depth"),
    "nesting 40 deep": ("{" + "node{" * 39 + "hello" + "}" * 40, "max_depth"),
    "150 KB of document": ("{ hello } # " + "x" * 150_000, "max_document_bytes"),
    "a list of lists": ("{ items(first: 1000) { children(first: 1000) { id } } }", "max_cost"),
    "30 root fields": ("{ " + "hello " * 30 + "}", "max_root_fields"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_each_attack_is_refused_over_http_before_anything_runs(dev: str, attack: str) -> None:
    document, limit = ATTACKS[attack]
    started = time.perf_counter()
    body = post(dev, document)
    assert time.perf_counter() - started < 1
    assert "data" not in body or body["data"] is None
    assert limit in limits_of(body["errors"])
    refusal = next(e for e in body["errors"] if e["extensions"]["limit"] == limit)
    assert isinstance(refusal["extensions"]["max"], int)
    assert RESOLVED == []


@pytest.mark.parametrize(
    "attack",
    [
        "exponential fragment expansion",
        "40 aliases in a fragment spread five times",
        "15k tokens",
        "1,000 directives",
        "40 KB of nesting",
    ],
)
async def test_websocket_operations_get_the_same_refusals(dev: str, attack: str) -> None:
    document, limit = ATTACKS[attack]
    message = await over_websocket(dev, document)
    assert message["type"] == "error" and message["id"] == "1"
    assert limit in limits_of(message["payload"])
    assert RESOLVED == []


def test_the_refusal_says_what_was_measured(dev: str) -> None:
    [error] = post(dev, ATTACKS["nesting 40 deep"][0])["errors"]
    assert error == {
        "message": "the operation's depth 40 exceeds the limit of 15",
        "extensions": {
            "code": "OPERATION_LIMIT_EXCEEDED",
            "limit": "max_depth",
            "max": 15,
            "measured": 40,
        },
    }


def test_a_get_request_is_checked_the_same(dev: str) -> None:
    response = httpx.get(
        f"{dev}/graphql",
        params={"query": ATTACKS["nesting 40 deep"][0]},
        headers={"accept": "application/json"},
    )
    assert response.status_code == 200
    assert limits_of(response.json()["errors"]) == ["max_depth"]
    assert RESOLVED == []


async def test_a_fragment_cycle_is_a_quick_validation_error(dev: str) -> None:
    cycle = "{ ...A } fragment A on Query { ...B hello } fragment B on Query { ...C hello } "
    cycle += "fragment C on Query { ...A ...B hello }"
    started = time.perf_counter()
    body = post(dev, cycle)
    assert time.perf_counter() - started < 1
    assert body["errors"][0]["message"] == "Cannot spread fragment 'A' within itself via 'B', 'C'."
    assert "extensions" not in body["errors"][0]
    message = await over_websocket(dev, cycle)
    assert message["type"] == "error"
    assert message["payload"][0]["message"].startswith("Cannot spread fragment 'A' within itself")
    assert RESOLVED == []


async def test_an_operation_within_the_limits_runs_on_both_transports(dev: str) -> None:
    query = "{ node { node { hello } } items(first: 5) { id } }"
    expected = {"node": {"node": {"hello": "world"}}, "items": []}
    assert post(dev, query) == {"data": expected}
    message = await over_websocket(dev, query)
    assert message == {"id": "1", "type": "next", "payload": {"data": expected}}


def test_production_masks_a_bug_and_logs_it_under_the_same_id(
    prod: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="strawberry.execution"):
        body = post(prod, "{ boom hello }")
    assert body["data"] == {"boom": None, "hello": "world"}
    [error] = body["errors"]
    correlation_id = error["extensions"]["correlation_id"]
    assert error == {
        "message": "Unexpected error.",
        "locations": [{"line": 1, "column": 3}],
        "path": ["boom"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR", "correlation_id": correlation_id},
    }
    assert "hunter2" not in json.dumps(body)
    [record] = [r for r in caplog.records if correlation_id in r.getMessage()]
    assert record.name == "strawberry.execution" and record.exc_info is not None


async def test_production_masks_over_websocket_too(prod: str) -> None:
    message = await over_websocket(prod, "{ boom }")
    [error] = message["payload"]["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert len(error["extensions"]["correlation_id"]) == 16


def test_production_suggests_no_field_names(dev: str, prod: str) -> None:
    [suggested] = post(dev, "{ helo }")["errors"]
    assert (
        suggested["message"] == "Cannot query field 'helo' on type 'Query'. Did you mean 'hello'?"
    )
    [plain] = post(prod, "{ helo }")["errors"]
    assert plain["message"] == "Cannot query field 'helo' on type 'Query'."
    # The limits and validation messages stay readable in production.
    assert limits_of(post(prod, ATTACKS["nesting 40 deep"][0])["errors"]) == ["max_depth"]
