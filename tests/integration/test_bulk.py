"""Bulk mutation: one upstream call per item with a concurrency cap, per-item results and
errors, through a real upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry

from graftql import Context, GatewaySchema
from graftql.resolvers.bulk import BulkResult, run_bulk
from graftql.testing import ChaosUpstream
from graftql.testing._http import ReceivedRequest
from graftql.testing.behaviours import Call, Respond
from integration.helpers import graphql, serve


@strawberry.type
class Person:
    id: strawberry.ID
    name: str


@strawberry.input
class PersonInput:
    id: strawberry.ID
    name: str


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def rename_people(
        self, info: strawberry.Info[Context, None], items: list[PersonInput]
    ) -> list[BulkResult[Person]]:
        rest = info.context.upstreams.rest("up")

        async def one(item: PersonInput) -> Person:
            raw = await rest.request(
                "PATCH", "/people/{id}", {"id": item.id}, json_body={"name": item.name}
            )
            if item.name == "boom":
                raise RuntimeError("a bug in the resolver")
            return Person(id=raw["id"], name=raw["name"])

        return await run_bulk(items, one, concurrency=3, max_items=10)


SCHEMA = GatewaySchema(query=Query, mutation=Mutation)
MUTATION = """mutation ($items: [PersonInput!]!) { renamePeople(items: $items) {
  index ok value { id name } error { code message } } }"""
FAILURES = {"bad": 422, "gone": 404, "down": 503}


def test_per_item_results_and_errors_with_a_cap(chaos: ChaosUpstream) -> None:
    in_flight = [0]
    peak = [0]

    async def patch(request: ReceivedRequest) -> Respond:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0.03)
        in_flight[0] -= 1
        person_id = request.path.rsplit("/", 1)[1]
        if person_id in FAILURES:
            return Respond(FAILURES[person_id], json={"error": "no"})
        return Respond(200, json={"id": person_id, **request.json()})

    chaos.route("PATCH /people/*").always(Call(patch))
    ids = ["p1", "bad", "p2", "gone", "p3", "down", "p4", "p5"]
    items: list[dict[str, Any]] = [{"id": i, "name": f"name {i}"} for i in ids]
    items.append({"id": "p6", "name": "boom"})
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = graphql(gateway.url, MUTATION, items=items)
    results = body["data"]["renamePeople"]
    assert "errors" not in body
    assert [r["index"] for r in results] == list(range(9))
    ok = {r["value"]["id"]: r["value"]["name"] for r in results if r["ok"]}
    assert ok == {i: f"name {i}" for i in ["p1", "p2", "p3", "p4", "p5"]}
    errors = {
        ids[r["index"]] if r["index"] < 8 else "p6": r["error"] for r in results if not r["ok"]
    }
    assert {k: e["code"] for k, e in errors.items()} == {
        "bad": "UPSTREAM_BAD_RESPONSE",
        "gone": "NOT_FOUND",
        "down": "UPSTREAM_UNAVAILABLE",
        "p6": "INTERNAL_SERVER_ERROR",
    }
    assert "a bug" not in errors["p6"]["message"]  # unexpected errors are not shown
    assert peak[0] == 3  # concurrency=3
    # A PATCH is not idempotent: a 503 is not retried, each item is sent exactly once.
    assert sorted(r.path for r in chaos.requests) == sorted(f"/people/{i}" for i in [*ids, "p6"])


def test_too_many_items_is_refused_before_any_call(chaos: ChaosUpstream) -> None:
    items = [{"id": f"p{i}", "name": "x"} for i in range(11)]
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": chaos.url}}) as gateway:
        body = graphql(gateway.url, MUTATION, items=items)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert chaos.requests == []
