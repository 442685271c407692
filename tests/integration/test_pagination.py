"""REST pagination as Relay connections, through a real upstream for each of the four styles:
forward paging to the end, signed cursors, and the cap on "all items"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import strawberry

from graftql import Context, GatewaySchema
from graftql.resolvers.pagination import (
    Connection,
    CursorParam,
    LinkHeader,
    OffsetLimit,
    PageNumber,
    RestPages,
)
from graftql.testing import ChaosUpstream
from graftql.testing._http import ReceivedRequest
from graftql.testing.behaviours import Call, Respond
from integration.helpers import graphql, serve

ITEMS = [{"id": f"i{n}", "n": n} for n in range(1, 24)]  # 23 items


def _query(request: ReceivedRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.query).items()}


def _by_page(request: ReceivedRequest) -> Respond:
    q = _query(request)
    page, size = int(q["page"]), int(q["per_page"])
    rows = ITEMS[(page - 1) * size : page * size]
    return Respond(200, json={"data": rows, "total_pages": -(-len(ITEMS) // size)})


def _by_offset(request: ReceivedRequest) -> Respond:
    q = _query(request)
    offset, limit = int(q["offset"]), int(q["limit"])
    return Respond(200, json={"data": ITEMS[offset : offset + limit], "total": len(ITEMS)})


def _by_cursor(request: ReceivedRequest) -> Respond:
    q = _query(request)
    limit = int(q["limit"])
    start = 0
    if "starting_after" in q:
        start = next(i for i, row in enumerate(ITEMS) if row["id"] == q["starting_after"]) + 1
    rows = ITEMS[start : start + limit]
    return Respond(200, json={"data": rows, "has_more": start + limit < len(ITEMS)})


def _by_link(request: ReceivedRequest) -> Respond:
    q = _query(request)
    page, size = int(q.get("page", "1")), int(q["per_page"])
    rows = ITEMS[(page - 1) * size : page * size]
    headers = []
    if page * size < len(ITEMS):
        link = f'</api/link?page={page + 1}&per_page={size}>; rel="next", </api/link>; rel="first"'
        headers.append(("link", link))
    return Respond(200, json=rows, headers=headers)


STYLES: dict[str, RestPages] = {
    "page": RestPages("up", "/page", PageNumber(), max_page_size=20),
    "offset": RestPages("up", "/offset", OffsetLimit(), max_page_size=20),
    "cursor": RestPages("up", "/cursor", CursorParam(), max_page_size=20),
    "link": RestPages("up", "/link", LinkHeader(), max_page_size=20),
}


@strawberry.type
class Item:
    id: strawberry.ID
    n: int

    @classmethod
    def build(cls, raw: dict[str, Any]) -> Item:
        return cls(id=raw["id"], n=raw["n"])


@strawberry.type
class Query:
    @strawberry.field
    async def items(
        self,
        info: strawberry.Info[Context, None],
        style: str,
        first: int = 5,
        after: str | None = None,
    ) -> Connection[Item]:
        return await STYLES[style].connection(info.context, first, after, build=Item.build)

    @strawberry.field
    async def all_items(
        self, info: strawberry.Info[Context, None], style: str, max_pages: int
    ) -> list[Item]:
        rows = await STYLES[style].all(info.context, max_pages=max_pages, page_size=10)
        return [Item.build(row) for row in rows]


SCHEMA = GatewaySchema(query=Query)
QUERY = """query ($style: String!, $first: Int!, $after: String) {
  items(style: $style, first: $first, after: $after) {
    edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }"""


@pytest.fixture
def gateway(chaos: ChaosUpstream) -> Iterator[str]:
    chaos.route("GET /api/page").always(Call(_by_page))
    chaos.route("GET /api/offset").always(Call(_by_offset))
    chaos.route("GET /api/cursor").always(Call(_by_cursor))
    chaos.route("GET /api/link").always(Call(_by_link))
    upstream = {"kind": "rest", "url": f"{chaos.url}/api?key=k3y"}
    with serve(SCHEMA, upstreams={"up": upstream}) as server:
        yield server.url


def _walk(gateway: str, style: str, firsts: list[int]) -> tuple[list[str], int]:
    seen: list[str] = []
    after = None
    for pages, first in enumerate(firsts, start=1):
        body = graphql(gateway, QUERY, style=style, first=first, after=after)
        connection = body["data"]["items"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        assert connection["pageInfo"]["endCursor"] == (
            connection["edges"][-1]["cursor"] if connection["edges"] else None
        )
        if not connection["pageInfo"]["hasNextPage"]:
            return seen, pages
        after = connection["pageInfo"]["endCursor"]
    raise AssertionError("still more pages")


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
def test_forward_paging_reaches_the_end_one_call_per_page(
    style: str, gateway: str, chaos: ChaosUpstream
) -> None:
    seen, pages = _walk(gateway, style, [5] * 10)
    assert seen == [row["id"] for row in ITEMS]
    assert pages == 5
    assert chaos.count(f"GET /api/{style}") == 5  # one upstream call per page, no refetching
    for request in chaos.requests:
        assert parse_qs(request.query)["key"] == ["k3y"]  # the configured query on every page


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
def test_changing_page_sizes_lose_and_repeat_nothing(style: str, gateway: str) -> None:
    seen, _ = _walk(gateway, style, [4, 7, 3, 20, 20])
    assert seen == [row["id"] for row in ITEMS]


def test_cursors_are_opaque_and_hold_no_configured_secret(gateway: str) -> None:
    body = graphql(gateway, QUERY, style="link", first=5)
    cursor = body["data"]["items"]["pageInfo"]["endCursor"]
    import base64

    payload = base64.urlsafe_b64decode(cursor.split(".")[0] + "==")
    assert b"k3y" not in payload and b"127.0.0.1" not in payload


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # the tag
        lambda c: "eyJyIjp7Im8iOjB9LCJrIjowLCJuIjo1fQ." + c.split(".")[1],  # the state
        lambda c: "not-a-cursor",
        lambda c: "x" * 5000,
    ],
)
def test_tampered_cursor_is_bad_user_input(tamper: Any, gateway: str) -> None:
    body = graphql(gateway, QUERY, style="offset", first=5)
    cursor = body["data"]["items"]["pageInfo"]["endCursor"]
    refused = graphql(gateway, QUERY, style="offset", first=5, after=tamper(cursor))
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_cursor_of_another_list_is_refused(gateway: str) -> None:
    body = graphql(gateway, QUERY, style="offset", first=5)
    cursor = body["data"]["items"]["pageInfo"]["endCursor"]
    refused = graphql(gateway, QUERY, style="page", first=5, after=cursor)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_first_out_of_range_is_bad_user_input(gateway: str) -> None:
    body = graphql(gateway, QUERY, style="page", first=21)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


ALL = "query ($style: String!, $max: Int!) { allItems(style: $style, maxPages: $max) { id } }"


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
def test_all_items_within_the_cap(style: str, gateway: str, chaos: ChaosUpstream) -> None:
    body = graphql(gateway, ALL, style=style, max=3)
    assert [row["id"] for row in body["data"]["allItems"]] == [row["id"] for row in ITEMS]
    assert chaos.count(f"GET /api/{style}") == 3


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
def test_all_items_past_the_cap_is_a_coded_error(
    style: str, gateway: str, chaos: ChaosUpstream
) -> None:
    body = graphql(gateway, ALL, style=style, max=2)
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "PAGE_LIMIT_EXCEEDED", "upstream": "up"}
    assert chaos.count(f"GET /api/{style}") == 2  # stopped at the cap


def test_link_to_another_origin_is_not_followed(chaos: ChaosUpstream) -> None:
    elsewhere = '<http://127.0.0.2:1/steal?page=2>; rel="next"'
    chaos.route("GET /api/link").always(
        Respond(200, json=ITEMS[:10], headers=[("link", elsewhere)])
    )
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": f"{chaos.url}/api"}}) as server:
        body = graphql(server.url, ALL, style="link", max=3)
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert chaos.count() == 1


def test_link_outside_the_base_path_is_not_followed(chaos: ChaosUpstream) -> None:
    outside = '</admin/link?page=2>; rel="next"'
    chaos.route("GET /api/link").always(Respond(200, json=ITEMS[:10], headers=[("link", outside)]))
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": f"{chaos.url}/api"}}) as server:
        body = graphql(server.url, ALL, style="link", max=3)
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
    assert chaos.count() == 1


def test_malformed_page_is_a_bad_response(chaos: ChaosUpstream) -> None:
    chaos.route("GET /api/cursor").always(Respond(200, json={"data": ITEMS[:5], "has_more": "yes"}))
    with serve(SCHEMA, upstreams={"up": {"kind": "rest", "url": f"{chaos.url}/api"}}) as server:
        body = graphql(server.url, QUERY, style="cursor", first=5)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_BAD_RESPONSE"
