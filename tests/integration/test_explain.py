"""Explain: ``extensions.graftql.upstreamCalls`` lists the operation's upstream calls, for
whom it may, and for nobody else."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
import strawberry

from graftql import Context, GatewaySchema, LoaderRegistry, RestBatch
from graftql.testing import ChaosUpstream
from graftql.testing.behaviours import Latency, Respond
from graftql.upstreams import events
from integration.helpers import demo_token, reset, serve

loaders = LoaderRegistry()
loaders.add("people", RestBatch("up", "/people", key="id"))


@strawberry.type
class Query:
    @strawberry.field
    async def name(self, info: strawberry.Info[Context, None], id: str) -> str | None:
        person = await info.context.loaders.people.load(id)
        return person["name"] if person else None

    @strawberry.field
    async def cached(self, info: strawberry.Info[Context, None]) -> int:
        # What the response cache reports (its own branch emits these events): a hit makes
        # no call; a miss is followed by the call it made.
        events.emit("cache", "up", outcome="hit", method="GET", target="/hit?token=x")
        events.emit("cache", "up", outcome="miss", method="GET", target="/slow")
        await info.context.upstreams.rest("up").get("/slow")
        return 1

    @strawberry.field
    async def twice(self, info: strawberry.Info[Context, None]) -> int:
        rest = info.context.upstreams.rest("up")
        # Two identical calls at once: the second joins the first (in-flight dedup).
        await asyncio.gather(rest.get("/slow"), rest.get("/slow"))
        return 2


SCHEMA = GatewaySchema(query=Query, loaders=loaders)
PEOPLE = {"data": [{"id": "1", "name": "Ada"}, {"id": "2", "name": "Alan"}]}


def _post(url: str, query: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = body["extensions"]["graftql"]["upstreamCalls"]
    for call in calls:
        assert call.pop("durationMs") >= 0
    return calls


def test_development_lists_calls_when_asked(chaos: ChaosUpstream) -> None:
    chaos.route("GET /people").always(Respond(200, json=PEOPLE))
    upstream = {"kind": "rest", "url": f"{chaos.url}/?api_key=hunter2"}
    with serve(SCHEMA, upstreams={"up": upstream}) as gateway:
        plain = _post(gateway.url, '{ a: name(id: "1") b: name(id: "2") }')
        explained = _post(
            gateway.url, '{ a: name(id: "1") b: name(id: "2") }', {"graftql-explain": "1"}
        )
    assert "extensions" not in plain  # only when asked: answers stay what clients expect
    assert explained["data"] == {"a": "Ada", "b": "Alan"}
    assert _calls(explained) == [
        {
            "upstream": "up",
            "method": "GET",
            "target": "/people",  # the path only: the query carries a credential
            "loader": "people",
            "batchSize": 2,
            "dedup": "own",
            "attempts": 1,
            "outcome": "ok",
        }
    ]
    assert "hunter2" not in str(explained)


def test_retries_and_joined_calls_are_told_apart(chaos: ChaosUpstream) -> None:
    chaos.route("GET /slow").queue(Respond(503, json={})).always(
        Latency(0.2) + Respond(200, json={})
    )
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = _post(gateway.url, "{ twice }", {"graftql-explain": "1"})
    assert body["data"] == {"twice": 2}
    calls = sorted(_calls(body), key=lambda c: c["dedup"])
    assert [(c["dedup"], c["attempts"], c["outcome"]) for c in calls] == [
        ("joined", 2, "ok"),
        ("own", 2, "ok"),
    ]
    assert chaos.count("GET /slow") == 2  # one call, retried once; the other joined it


def test_failed_call_is_listed_with_its_code(chaos: ChaosUpstream) -> None:
    chaos.route("GET /people").always(Respond(404, json={}))
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = _post(gateway.url, '{ name(id: "1") }', {"graftql-explain": "1"})
    (call,) = _calls(body)
    assert (call["outcome"], call["attempts"]) == ("NOT_FOUND", 1)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_EXPLAIN_SECRET", "s3cret-explain")
    return "s3cret-explain"


def test_production_never_explains_by_default(chaos: ChaosUpstream) -> None:
    chaos.route("GET /people").always(Respond(200, json=PEOPLE))
    upstreams = {"up": {"kind": "rest", "url": chaos.url}}
    with serve(SCHEMA, upstreams=upstreams, env="production") as gateway:
        body = _post(gateway.url, '{ name(id: "1") }', {"graftql-explain": "1"})
    assert body == {"data": {"name": "Ada"}}


def test_production_explains_only_to_the_secret_holder(chaos: ChaosUpstream, secret: str) -> None:
    chaos.route("GET /people").always(Respond(200, json=PEOPLE))
    upstreams = {"up": {"kind": "rest", "url": chaos.url}}
    server = {
        "env": "production",
        "explain": "trusted",
        "explain_secret": "${TEST_EXPLAIN_SECRET}",
    }
    with serve(SCHEMA, upstreams=upstreams, **server) as gateway:
        none = _post(gateway.url, '{ name(id: "1") }')
        wrong = _post(gateway.url, '{ name(id: "1") }', {"graftql-explain": "guess"})
        right = _post(gateway.url, '{ name(id: "1") }', {"graftql-explain": secret})
    assert none == wrong == {"data": {"name": "Ada"}}
    assert [c["target"] for c in _calls(right)] == ["/people"]


def test_trusted_without_a_secret_is_a_config_error() -> None:
    from graftql.config import parse_config
    from graftql.errors import ConfigError

    with pytest.raises(ConfigError, match="explain_secret"):
        parse_config({"schema": "x:y", "server": {"explain": "trusted"}})


def test_demo_storefront_explained(gateway: str, demo_services: Mapping[str, str]) -> None:
    reset(demo_services)
    query = '{ customer(id: "c1") { name orders(first: 3) { edges { node { id } } } } }'
    staff = f"Bearer {demo_token('staff')}"  # the demo's orders are not for anonymous callers
    body = _post(gateway, query, {"graftql-explain": "yes", "authorization": staff})
    calls = _calls(body)
    assert {(c["upstream"], c["target"]) for c in calls} == {
        ("crm", "/customers"),
        ("crm", "/customers/c1/orders"),
    }


def test_cache_outcomes_are_listed_when_the_cache_reports_them(chaos: ChaosUpstream) -> None:
    chaos.route("GET /slow").always(Respond(200, json={}))
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = _post(gateway.url, "{ cached }", {"graftql-explain": "1"})
    hit, miss = sorted(_calls(body), key=lambda c: str(c["target"]))
    assert hit == {
        "upstream": "up",
        "method": "GET",
        "target": "/hit",  # a query in an event's target is dropped too
        "cache": "hit",
        "attempts": 0,
        "outcome": "ok",
    }
    assert (miss["target"], miss["cache"], miss["attempts"]) == ("/slow", "miss", 1)
