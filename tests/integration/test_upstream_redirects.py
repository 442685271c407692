"""Redirects from real upstreams: not followed by default, followed within the origin when
asked, and never to another origin — which then receives nothing, no credential of any kind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from graftql.config import UpstreamConfig
from graftql.errors import UpstreamBadResponse
from graftql.testing import ChaosUpstream, Respond
from graftql.upstreams import RestUpstream

CREDENTIALS = [
    {"type": "api_key", "header": "X-Api-Key", "value": "${K}"},
    {"type": "api_key", "query": "api_key", "value": "${K}"},
    {"type": "bearer", "token": "${K}"},
    {"type": "basic", "username": "gw", "password": "${K}"},
]
SECRET = "k3y-that-must-not-leak"


@pytest.fixture
def elsewhere() -> Iterator[ChaosUpstream]:
    """Another origin (same host, another port) that records anything that reaches it."""
    with ChaosUpstream().running() as other:
        other.route("/**", Respond(json={"stolen": True}))
        yield other


def upstream(url: str, auth: dict[str, Any], **config: Any) -> RestUpstream:
    data = {"kind": "rest", "url": url, "auth": auth, "headers": {"X-Token": "${K}"}, **config}
    return RestUpstream(
        "svc", UpstreamConfig.model_validate(data, context={"environ": {"K": SECRET}})
    )


def redirect(location: str, status: int = 302) -> Respond:
    return Respond(status, json={}, headers={"location": location})


@pytest.mark.parametrize(
    "auth", CREDENTIALS, ids=lambda a: a.get("header") or a.get("query") or a["type"]
)
@pytest.mark.parametrize("follow", ["never", "same_origin"])
async def test_cross_origin_redirect_is_not_followed_and_leaks_nothing(
    chaos: ChaosUpstream, elsewhere: ChaosUpstream, auth: dict[str, Any], follow: str
) -> None:
    chaos.route("GET /items").queue(redirect(f"{elsewhere.url}/steal?x=1"))
    svc = upstream(chaos.url, auth, follow_redirects=follow)
    with pytest.raises(UpstreamBadResponse) as caught:
        await svc.get("/items")
    await svc.aclose()
    assert caught.value.code == "UPSTREAM_BAD_RESPONSE" and caught.value.status == 302
    assert str(caught.value) == (
        "svc answered with a redirect (HTTP 302), which is not followed"
        if follow == "never"
        else "svc redirected to another origin, which is never followed"
    )
    assert elsewhere.requests == []  # the other origin never saw a request at all
    [sent] = chaos.requests  # and the configured one got exactly the one call
    assert SECRET in str(sent.header_list) + sent.query


async def test_another_host_name_on_the_same_port_is_another_origin(chaos: ChaosUpstream) -> None:
    chaos.route("GET /items").queue(redirect(f"http://localhost:{chaos.port}/steal"))
    svc = upstream(chaos.url, CREDENTIALS[0], follow_redirects="same_origin")
    with pytest.raises(UpstreamBadResponse, match="another origin"):
        await svc.get("/items")
    await svc.aclose()
    assert [r.path for r in chaos.requests] == ["/items"]


@pytest.mark.parametrize("auth", CREDENTIALS[:2], ids=["header", "query"])
async def test_same_origin_redirect_is_followed_with_credentials(
    chaos: ChaosUpstream, auth: dict[str, Any]
) -> None:
    chaos.route("GET /items").queue(redirect("/v2/items?page=2", 301))
    chaos.route("GET /v2/items", Respond(json={"moved": True}))
    svc = upstream(chaos.url, auth, follow_redirects="same_origin")
    assert await svc.get("/items") == {"moved": True}
    await svc.aclose()
    first, second = chaos.requests
    assert second.path == "/v2/items"
    if "header" in auth:
        assert first.headers["x-api-key"] == second.headers["x-api-key"] == SECRET
        assert parse_qs(second.query) == {"page": ["2"]}
    else:
        assert parse_qs(second.query) == {"page": ["2"], "api_key": [SECRET]}


@pytest.mark.parametrize(
    ("status", "method", "body"), [(307, "POST", b'{"a":1}'), (303, "GET", b"")]
)
async def test_method_and_body_after_a_redirect(
    chaos: ChaosUpstream, status: int, method: str, body: bytes
) -> None:
    chaos.route("POST /orders").queue(redirect("/orders/new", status))
    chaos.route("/orders/new", Respond(json={"done": True}))
    svc = upstream(chaos.url, CREDENTIALS[0], follow_redirects="same_origin")
    assert await svc.request("POST", "/orders", json_body={"a": 1}) == {"done": True}
    await svc.aclose()
    followed = chaos.requests[1]
    assert (followed.method, followed.body) == (method, body)
    assert ("content-type" in followed.headers) == bool(body)


async def test_redirect_loop_stops(chaos: ChaosUpstream) -> None:
    chaos.route("GET /loop", redirect("/loop"))
    svc = upstream(chaos.url, CREDENTIALS[0], follow_redirects="same_origin")
    with pytest.raises(UpstreamBadResponse, match="redirected more than 5 times"):
        await svc.get("/loop")
    await svc.aclose()
    assert chaos.count("GET /loop") == 6
