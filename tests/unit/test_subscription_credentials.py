"""Upstream subscriptions, pure logic: the reconnect backoff (seeded), the WebSocket address,
and the handshake credentials each auth scheme produces (the OAuth2 token endpoint is an
httpx.MockTransport: what is tested is which request the flow makes and what it puts on the
handshake, not the network)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from graftql.config import parse_config
from graftql.upstreams import GraphQLUpstream
from graftql.upstreams.subscriptions import backoff_delay, init_payload, websocket_url


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    rng = random.Random(7)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (60, 30.0)]:
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.9  # the whole range is used


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("http://h:1/graphql", None, "ws://h:1/graphql"),
        ("https://h/graphql", None, "wss://h/graphql"),
        ("https://h/graphql", "wss://other/subscriptions", "wss://other/subscriptions"),
    ],
)
def test_the_websocket_address(url: str, configured: str | None, expected: str) -> None:
    assert str(websocket_url(httpx.URL(url), configured)) == expected


def upstream(
    auth: dict[str, Any], transport: httpx.AsyncBaseTransport | None = None, **extra: Any
) -> GraphQLUpstream:
    config = parse_config(
        {
            "schema": "x:y",
            "upstreams": {
                "api": {"kind": "graphql", "url": "https://api.test/graphql", "auth": auth, **extra}
            },
        },
        environ={"SECRET": "s3cr3t"},
    )
    return GraphQLUpstream("api", config.upstreams["api"], transport=transport)


async def test_bearer_and_static_headers_go_in_the_handshake() -> None:
    api = upstream({"type": "bearer", "token": "${SECRET}"}, headers={"X-Tenant": "acme"})
    headers, url = await api.subscriptions._credentials()
    assert headers == {"authorization": "Bearer s3cr3t", "x-tenant": "acme"}
    assert str(url) == "wss://api.test/graphql"


async def test_an_api_key_in_the_query_stays_in_the_websocket_url() -> None:
    api = upstream({"type": "api_key", "query": "key", "value": "${SECRET}"})
    headers, url = await api.subscriptions._credentials()
    assert headers == {}
    assert str(url) == "wss://api.test/graphql?key=s3cr3t"


async def test_oauth2_fetches_a_token_once_and_reuses_it() -> None:
    fetched: list[httpx.Request] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        fetched.append(request)
        return httpx.Response(200, json={"access_token": "tok-1", "expires_in": 3600})

    auth = {
        "type": "oauth2_client_credentials",
        "token_url": "https://auth.test/token",
        "client_id": "gateway",
        "client_secret": "${SECRET}",
    }
    api = upstream(auth, httpx.MockTransport(token_endpoint))
    for _ in range(2):
        headers, _url = await api.subscriptions._credentials()
        assert headers == {"authorization": "Bearer tok-1"}
    assert [str(r.url) for r in fetched] == ["https://auth.test/token"]


def test_credentials_in_the_connection_init_payload() -> None:
    headers = {"authorization": "Bearer t"}
    assert init_payload(headers, "flat") == {"authorization": "Bearer t"}
    assert init_payload(headers, "headers") == {"headers": {"authorization": "Bearer t"}}
    assert init_payload(headers, "none") == {}


async def test_a_shared_upstream_subscription_never_runs_as_the_client_that_opened_it() -> None:
    """The feed task starts from an empty context: the opening client's ``upstreams.caller``
    (whose headers a forwarding auth would send) is not there."""
    from graftql.upstreams import caller

    seen: list[object] = []

    class Spy(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Any:
            seen.append(caller.current())
            raise RuntimeError("stop here")  # the spy has seen what it needed
            yield request

    api = upstream({"type": "bearer", "token": "${SECRET}"})
    api.auth = Spy()
    token = caller.start(caller.Caller(headers={"authorization": "Bearer client"}))
    try:
        events = api.subscribe("subscription { x }")
        with pytest.raises(Exception, match="subscription failed"):
            await anext(events)
    finally:
        caller.reset(token)
        await api.aclose()
    assert seen == [None]
