"""Declarative loaders against real upstreams on loopback: results matched by key whatever
order the upstream answers in, missing keys, batch sizes, fan-out concurrency, and the
GraphQL shapes against the demo catalog service."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import pytest
import strawberry

from graftql import (
    Context,
    GatewaySchema,
    GraphQLAliases,
    GraphQLBatch,
    LoaderRegistry,
    RestBatch,
    RestEach,
)
from graftql.demo.services import DemoCredentials
from graftql.testing import ChaosUpstream
from graftql.testing._http import ReceivedRequest
from graftql.testing.behaviours import Call, Respond
from integration.helpers import graphql, reset, serve, stats

PEOPLE = {str(i): {"id": str(i), "name": f"person {i}"} for i in range(1, 10)}


@strawberry.type
class Person:
    id: strawberry.ID
    name: str

    @classmethod
    def build(cls, raw: dict[str, Any]) -> Person:
        return cls(id=raw["id"], name=raw["name"])


loaders = LoaderRegistry()
loaders.add("joined", RestBatch("up", "/people", key="id", build=Person.build), max_batch_size=3)
loaders.add(
    "repeated",
    RestBatch("up", "/people", param="id", style="repeated", key="id", build=Person.build),
)
loaders.add("posted", RestBatch("up", "/lookup", body="ids", key="id", build=Person.build))
loaders.add("strict", RestBatch("up", "/people", key="id", build=Person.build, missing="error"))
loaders.add("each", RestEach("up", "/people/{id}", concurrency=2, build=Person.build))
loaders.add(
    "products",
    GraphQLBatch("catalog", "products", "name", build=Person.build),
)
loaders.add(
    "product",
    GraphQLAliases("catalog", "product", "id name", build=Person.build),
)


def _field(loader: str) -> Any:
    async def resolve(info: strawberry.Info[Context, None], id: strawberry.ID) -> Person | None:
        person: Person | None = await getattr(info.context.loaders, loader).load(id)
        return person

    return strawberry.field(resolver=resolve)


@strawberry.type
class Query:
    joined: Person | None = _field("joined")
    repeated: Person | None = _field("repeated")
    posted: Person | None = _field("posted")
    strict: Person | None = _field("strict")
    each: Person | None = _field("each")
    products: Person | None = _field("products")
    product: Person | None = _field("product")


SCHEMA = GatewaySchema(query=Query, loaders=loaders)


def _out_of_order(ids: list[str]) -> Respond:
    """The answer of a batch endpoint that reverses the order and leaves unknown ids out."""
    found = [PEOPLE[i] for i in reversed(ids) if i in PEOPLE]
    return Respond(200, json={"data": found})


def _batch(request: ReceivedRequest) -> Respond:
    query = parse_qs(request.query)
    ids = query["ids"][0].split(",") if "ids" in query else query["id"]
    return _out_of_order(ids)


def _aliases(*pairs: tuple[str, str], field: str = "joined") -> str:
    return (
        "{ " + " ".join(f'{alias}: {field}(id: "{id}") {{ id name }}' for alias, id in pairs) + " }"
    )


@pytest.fixture
def people(chaos: ChaosUpstream) -> ChaosUpstream:
    chaos.route("GET /people").always(Call(_batch))
    chaos.route("POST /lookup").always(Call(lambda r: _out_of_order(r.json()["ids"])))
    return chaos


def test_batch_answer_out_of_order_with_gaps_is_matched_by_key(people: ChaosUpstream) -> None:
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": people.url}}) as gateway:
        body = graphql(gateway.url, _aliases(("a", "2"), ("b", "404"), ("c", "1")))
    assert body == {
        "data": {
            "a": {"id": "2", "name": "person 2"},
            "b": None,
            "c": {"id": "1", "name": "person 1"},
        }
    }
    (request,) = people.requests
    assert parse_qs(request.query) == {"ids": ["2,404,1"]}


def test_batches_respect_the_max_batch_size(people: ChaosUpstream) -> None:
    pairs = [(f"p{i}", str(i)) for i in range(1, 8)]
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": people.url}}) as gateway:
        body = graphql(gateway.url, _aliases(*pairs))
    assert [body["data"][f"p{i}"]["id"] for i in range(1, 8)] == [str(i) for i in range(1, 8)]
    sizes = [len(parse_qs(r.query)["ids"][0].split(",")) for r in people.requests]
    assert sorted(sizes) == [1, 3, 3]  # max_batch_size=3: 7 keys in three calls


def test_repeated_parameter_and_post_body_styles(people: ChaosUpstream) -> None:
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": people.url}}) as gateway:
        repeated = graphql(gateway.url, _aliases(("a", "3"), ("b", "4"), field="repeated"))
        posted = graphql(gateway.url, _aliases(("a", "5"), ("b", "6"), field="posted"))
    assert repeated["data"] == {
        "a": {"id": "3", "name": "person 3"},
        "b": {"id": "4", "name": "person 4"},
    }
    assert posted["data"] == {
        "a": {"id": "5", "name": "person 5"},
        "b": {"id": "6", "name": "person 6"},
    }
    get, post = people.requests
    assert parse_qs(get.query) == {"id": ["3", "4"]}
    assert post.method == "POST" and post.json() == {"ids": ["5", "6"]}


def test_missing_key_as_error_fails_only_that_key(people: ChaosUpstream) -> None:
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": people.url}}) as gateway:
        body = graphql(gateway.url, _aliases(("a", "1"), ("b", "nope"), field="strict"))
    assert body["data"] == {"a": {"id": "1", "name": "person 1"}, "b": None}
    (error,) = body["errors"]
    assert error["path"] == ["b"]
    assert error["extensions"] == {"code": "NOT_FOUND", "upstream": "up"}


def test_malformed_items_are_bad_responses_on_their_keys(chaos: ChaosUpstream) -> None:
    chaos.route("GET /people").always(
        Respond(200, json={"data": [{"id": "1", "name": "ok"}, {"id": "2"}]})
    )
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = graphql(gateway.url, _aliases(("a", "1"), ("b", "2")))
        no_list = None
        chaos.route("GET /people").always(Respond(200, json={"data": "surprise"}))
        no_list = graphql(gateway.url, _aliases(("a", "1")))
    assert body["data"] == {"a": {"id": "1", "name": "ok"}, "b": None}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["b"], "UPSTREAM_BAD_RESPONSE")
    ]
    assert no_list["data"] == {"a": None}
    assert no_list["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"


def test_fan_out_is_capped_and_404_is_null(chaos: ChaosUpstream) -> None:
    in_flight = [0]
    peak = [0]

    async def one(request: ReceivedRequest) -> Respond:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.05)
        in_flight[0] -= 1
        person = PEOPLE.get(request.path.rsplit("/", 1)[1])
        return Respond(200, json=person) if person else Respond(404, json={"error": "no"})

    chaos.route("GET /people/*").always(Call(one))
    pairs = [(f"p{i}", str(i)) for i in range(1, 7)] + [("missing", "77")]
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = graphql(gateway.url, _aliases(*pairs, field="each"))
    assert body["data"]["missing"] is None and "errors" not in body
    assert [body["data"][f"p{i}"]["name"] for i in range(1, 7)] == [
        f"person {i}" for i in range(1, 7)
    ]
    assert len(chaos.requests) == 7
    assert peak[0] == 2  # concurrency=2


@pytest.fixture
def catalog(
    demo_services: Mapping[str, str],
    demo_credentials: DemoCredentials,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    monkeypatch.setenv("TEST_CATALOG_TOKEN", demo_credentials.catalog_token)
    reset(demo_services)
    return {
        "kind": "graphql",
        "url": f"{demo_services['catalog']}/graphql",
        "auth": {"type": "bearer", "token": "${TEST_CATALOG_TOKEN}"},
    }


@pytest.mark.parametrize("field", ["products", "product"])
def test_graphql_shapes_batch_into_one_document(
    field: str, catalog: dict[str, Any], demo_services: Mapping[str, str]
) -> None:
    with serve(SCHEMA, upstreams={"catalog": catalog}) as gateway:
        body = graphql(gateway.url, _aliases(("a", "p2"), ("b", "p404"), ("c", "p1"), field=field))
    assert body == {
        "data": {
            "a": {"id": "p2", "name": "Wireless Mouse"},
            "b": None,
            "c": {"id": "p1", "name": "Mechanical Keyboard"},
        }
    }
    assert stats({"catalog": demo_services["catalog"]}) == {"catalog": {"POST /graphql": 1}}


def test_graphql_alias_errors_fail_only_their_keys(chaos: ChaosUpstream) -> None:
    answer = {
        "data": {"k0": {"id": "p1", "name": "one"}, "k1": None},
        "errors": [{"message": "boom", "path": ["k1"]}],
    }
    chaos.route("POST /graphql").always(Respond(200, json=answer))
    upstreams = {"catalog": {"kind": "graphql", "url": f"{chaos.url}/graphql"}}
    with serve(SCHEMA, upstreams=upstreams) as gateway:
        body = graphql(gateway.url, _aliases(("a", "p1"), ("b", "p2"), field="product"))
    assert body["data"] == {"a": {"id": "p1", "name": "one"}, "b": None}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["b"], "UPSTREAM_BAD_RESPONSE")
    ]
    assert "boom" not in str(body)  # the upstream's messages stay in the log
    (request,) = chaos.requests
    sent = request.json()
    assert sent["variables"] == {"k0": "p1", "k1": "p2"}
    assert "k0: product(id: $k0)" in sent["query"] and "k1: product(id: $k1)" in sent["query"]
