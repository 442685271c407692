"""What of the client's request reaches which upstream: forwarded credentials go to the
upstream configured for them only, allow-listed headers only where listed, hop-by-hop and
identity headers never — asserted on what the upstreams received over real connections."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import strawberry
from strawberry.types import Info

from graftql import GatewaySchema
from graftql.config import UpstreamConfig
from graftql.resolvers import Context
from graftql.testing import ChaosUpstream, Latency, Respond
from graftql.upstreams import RestUpstream, caller
from integration.helpers import serve


@strawberry.type
class Query:
    @strawberry.field
    async def both(self, info: Info[Context, None]) -> str:
        await info.context.upstreams.rest("a").get("/a")
        await info.context.upstreams.rest("b").get("/b")
        return "ok"


SCHEMA = GatewaySchema(query=Query)

CLIENT_HEADERS = {
    "Authorization": "Bearer user-1",
    "Accept-Language": "de",
    "X-Tenant": "t1",
    "X-User-Id": "admin",
    "X-User-Roles": "admin",
    "Proxy-Authorization": "Basic cHJveHk6cHc=",
    "TE": "trailers",
    "Keep-Alive": "timeout=5",
    "Trailer": "x-checksum",
    "Cookie": "session=abc",
}
NEVER = {"x-user-id", "x-user-roles", "proxy-authorization", "te", "keep-alive", "trailer"}


def test_client_credential_reaches_only_the_forwarding_upstream() -> None:
    with ChaosUpstream().running() as a, ChaosUpstream().running() as b:
        a.route("GET /a", Respond(json={}))
        b.route("GET /b", Respond(json={}))
        upstreams = {
            "a": {
                "kind": "rest",
                "url": a.url,
                "auth": {"type": "forward"},
                "forward_headers": ["accept-language", "X-Tenant"],
            },
            "b": {"kind": "rest", "url": b.url, "forward_headers": ["x-tenant"]},
        }
        with serve(SCHEMA, upstreams=upstreams) as gateway:
            response = httpx.post(
                f"{gateway.url}/graphql", json={"query": "{ both }"}, headers=CLIENT_HEADERS
            )
        assert response.json() == {"data": {"both": "ok"}}
        [to_a], [to_b] = a.requests, b.requests
    assert to_a.headers["authorization"] == "Bearer user-1"
    assert to_a.headers["accept-language"] == "de" and to_a.headers["x-tenant"] == "t1"
    assert to_b.headers["x-tenant"] == "t1"
    # B never gets A's credential, nor anything it did not list.
    assert "authorization" not in to_b.headers and "accept-language" not in to_b.headers
    for received in (to_a, to_b):
        assert NEVER.isdisjoint(received.headers), received.headers
        assert "cookie" not in received.headers  # listed nowhere: not forwarded
    assert "user-1" not in str(to_b.header_list) + to_b.query


def test_nothing_is_forwarded_by_default(chaos: ChaosUpstream) -> None:
    chaos.route("GET /a", Respond(json={}))
    chaos.route("GET /b", Respond(json={}))
    upstreams = {name: {"kind": "rest", "url": chaos.url} for name in ("a", "b")}
    with serve(SCHEMA, upstreams=upstreams) as gateway:
        httpx.post(f"{gateway.url}/graphql", json={"query": "{ both }"}, headers=CLIENT_HEADERS)
    assert len(chaos.requests) == 2
    for received in chaos.requests:
        names = {name for name, _ in received.header_list}
        assert names <= {"host", "user-agent", "content-length"}, names


async def test_calls_for_different_users_are_never_shared(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items", Latency(0.3) + Respond(json={"ok": True}))
    config = UpstreamConfig(kind="rest", url=chaos.url, auth={"type": "forward"})  # type: ignore[arg-type]
    upstream = RestUpstream("a", config)

    async def as_user(token: str) -> Any:
        caller.start(caller.Caller(headers={"authorization": f"Bearer {token}"}))
        return await upstream.get("/items", params={"q": 1})

    # Two users at once, then the same user twice at once.
    await asyncio.gather(as_user("alice"), as_user("bob"))
    await asyncio.gather(as_user("carol"), as_user("carol"))
    await upstream.aclose()
    sent = sorted(r.headers["authorization"] for r in chaos.requests)
    assert sent == ["Bearer alice", "Bearer bob", "Bearer carol"]
    assert upstream.flights.joined == 1


def test_forwarded_credential_is_named_on_the_prepared_request() -> None:
    config = UpstreamConfig(
        kind="rest",
        url="http://127.0.0.1:9",
        auth={"type": "forward", "headers": ["authorization", "x-session"]},  # type: ignore[arg-type]
        forward_headers=["accept-language"],
    )
    upstream = RestUpstream("a", config)
    token = caller.start(
        caller.Caller(headers={"x-session": "s1", "accept-language": "fr", "x-user-id": "u"})
    )
    try:
        request = upstream.build_request("GET", "/x")
        explicit = upstream.build_request("GET", "/x", headers={"accept-language": "en"})
    finally:
        caller.reset(token)
    assert request.headers["x-session"] == "s1" and "authorization" not in request.headers
    assert request.extensions["graftql.forwarded_credentials"] == ("x-session",)
    assert "x-user-id" not in request.headers
    assert explicit.headers["accept-language"] == "en"  # the gateway's own value wins
    token = caller.start(
        caller.Caller(
            headers={"accept-language": "fr", "connection": "keep-alive, Accept-Language"}
        )
    )
    try:
        named = upstream.build_request("GET", "/x")
    finally:
        caller.reset(token)
    assert "accept-language" not in named.headers  # made hop-by-hop by the client's Connection
    outside = upstream.build_request("GET", "/x")  # no operation: nobody's headers
    assert "x-session" not in outside.headers
    assert outside.extensions["graftql.forwarded_credentials"] == ()
