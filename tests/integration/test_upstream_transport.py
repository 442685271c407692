"""What goes over the wire to a REST upstream, seen from the upstream's side."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from graftql.config import UpstreamConfig
from graftql.testing import ChaosUpstream, Respond
from graftql.upstreams import RestUpstream


@pytest.mark.parametrize(
    ("value", "raw_path"),
    [
        ("../admin", "/api/v1/items/..%2Fadmin"),
        ("a/b", "/api/v1/items/a%2Fb"),
        ("a?x=1", "/api/v1/items/a%3Fx%3D1"),
        ("%2e%2e%2f", "/api/v1/items/%252e%252e%252f"),
        ("..", "/api/v1/items/%2E%2E"),
        (".", "/api/v1/items/%2E"),
        ("#frag", "/api/v1/items/%23frag"),
        ("https://127.0.0.2/x", "/api/v1/items/https%3A%2F%2F127.0.0.2%2Fx"),
        ("~user", "/api/v1/items/~user"),
    ],
)
async def test_arguments_arrive_as_one_segment_under_the_base_path(
    chaos: ChaosUpstream, value: str, raw_path: str
) -> None:
    chaos.route("/**", Respond(json={}))  # any path: the test checks which one arrived
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=f"{chaos.url}/api/v1"))
    await upstream.get("/items/{id}", id=value, params={"q": "a,b c&d"})
    await upstream.aclose()
    [request] = chaos.requests
    assert request.path == raw_path
    assert parse_qs(request.query) == {"q": ["a,b c&d"]}


async def test_base_url_query_is_kept(chaos: ChaosUpstream) -> None:
    chaos.route("/**", Respond(json={}))
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=f"{chaos.url}/api?version=2"))
    await upstream.get("/items", params={"page": 3})
    await upstream.aclose()
    [request] = chaos.requests
    assert request.path == "/api/items"
    assert parse_qs(request.query) == {"version": ["2"], "page": ["3"]}


async def test_cookies_set_by_an_upstream_are_never_sent_back(chaos: ChaosUpstream) -> None:
    # A cookie from one user's call must not ride along on the next call, whoever makes it.
    cookie = {"set-cookie": "session=user-a-secret; Path=/"}
    chaos.route("GET /*").queue(Respond(json={}, headers=cookie)).always(Respond(json={}))
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=chaos.url))
    await upstream.get("/a")
    await upstream.get("/b")
    await upstream.aclose()
    assert [r.headers.get("cookie") for r in chaos.requests] == [None, None]


async def test_connections_are_kept_alive(chaos: ChaosUpstream) -> None:
    chaos.route("GET /a", Respond(json={}))
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=chaos.url))
    for _ in range(5):
        await upstream.get("/a")
    await upstream.aclose()
    assert len({r.peer for r in chaos.requests}) == 1  # one TCP peer: one connection
