"""Upstream credentials against real services: OAuth2 client credentials, HMAC, keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from graftql.config import RetryConfig, UpstreamConfig
from graftql.demo.servers import ServerThread
from graftql.demo.services import payments, shipping
from graftql.errors import UpstreamAuthError, UpstreamBadResponse
from graftql.testing import ChaosUpstream, Respond
from graftql.upstreams import RestUpstream, events
from graftql.upstreams.auth import HmacSigner, OAuth2ClientCredentialsAuth


class FakeClock:
    def __init__(self, now: float = 1_000.0, step: float = 0.0) -> None:
        self.now = now
        self.step = step  # added on every reading: a clock that races ahead

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def upstream_config(data: dict[str, Any], **environ: str) -> UpstreamConfig:
    return UpstreamConfig.model_validate(data, context={"environ": environ})


@pytest.fixture
def payments_service() -> Iterator[tuple[str, FakeClock]]:
    clock = FakeClock()
    app = payments.create_app(client_id="gw", client_secret="s3cret", token_ttl=60, clock=clock)
    with ServerThread(app) as server:
        yield server.url, clock


def oauth2_config(url: str, secret: str, **auth: Any) -> UpstreamConfig:
    """A REST upstream at ``url`` whose token endpoint is ``url/oauth/token``."""
    settings = {
        "type": "oauth2_client_credentials",
        "token_url": f"{url}/oauth/token",
        "client_id": "gw",
        "client_secret": "${PAY_SECRET}",
        **auth,
    }
    return upstream_config({"kind": "rest", "url": url, "auth": settings}, PAY_SECRET=secret)


def payments_upstream(url: str, clock: FakeClock, secret: str = "s3cret") -> RestUpstream:
    config = oauth2_config(
        url, secret, scopes=["payments.read", "payments.refund"], refresh_leeway=10
    )
    upstream = RestUpstream("payments", config)
    assert config.auth is not None and config.auth.type == "oauth2_client_credentials"
    upstream.auth = OAuth2ClientCredentialsAuth("payments", config.auth, clock=clock)
    return upstream


@pytest.fixture
async def oauth(
    payments_service: tuple[str, FakeClock],
) -> AsyncIterator[tuple[RestUpstream, FakeClock, FakeClock, str]]:
    url, server_clock = payments_service
    gateway_clock = FakeClock()
    upstream = payments_upstream(url, gateway_clock)
    yield upstream, gateway_clock, server_clock, url
    await upstream.aclose()


def counts(url: str) -> dict[str, int]:
    requests: dict[str, int] = httpx.get(f"{url}/__stats").json()["requests"]
    return requests


def received(url: str) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = httpx.get(f"{url}/__requests").json()["requests"]
    return log


async def test_token_is_fetched_once_and_reused(
    oauth: tuple[RestUpstream, FakeClock, FakeClock, str],
) -> None:
    upstream, _, _, url = oauth
    first = await upstream.get("/v1/payments", params={"order_ids": "o1"})
    second = await upstream.get("/v1/payments", params={"order_ids": "o1"})
    assert first == second and first["data"][0]["order_id"] == "o1"
    assert counts(url) == {"POST /oauth/token": 1, "GET /v1/payments": 2}
    token_request, *api_requests = received(url)
    basic = base64.b64encode(b"gw:s3cret").decode()
    assert token_request["headers"]["authorization"] == f"Basic {basic}"
    bearer = {r["headers"]["authorization"] for r in api_requests}
    assert len(bearer) == 1 and next(iter(bearer)).startswith("Bearer ")


async def test_token_is_refreshed_before_it_expires(
    oauth: tuple[RestUpstream, FakeClock, FakeClock, str],
) -> None:
    upstream, gateway_clock, server_clock, url = oauth
    await upstream.get("/v1/payments")
    gateway_clock.now += 51  # 60 s token, 10 s leeway: due for refresh
    server_clock.now += 51  # still valid upstream, so no 401 is involved
    await upstream.get("/v1/payments")
    assert counts(url) == {"POST /oauth/token": 2, "GET /v1/payments": 2}


async def test_token_rejected_upstream_is_replaced_and_the_request_sent_once_more(
    oauth: tuple[RestUpstream, FakeClock, FakeClock, str],
) -> None:
    upstream, _, server_clock, url = oauth
    await upstream.get("/v1/payments")
    server_clock.now += 61  # upstream expired the token although our clock says it is fresh
    body = await upstream.get("/v1/payments", params={"order_ids": "o2"})
    assert body["data"][0]["order_id"] == "o2"
    assert counts(url) == {"POST /oauth/token": 2, "GET /v1/payments": 3}


async def test_second_401_is_an_auth_error_not_a_loop() -> None:
    server_clock = FakeClock(step=100.0)  # every token has expired by the time it is checked
    app = payments.create_app(
        client_id="gw", client_secret="s3cret", token_ttl=60, clock=server_clock
    )
    with ServerThread(app) as server:
        upstream = payments_upstream(server.url, FakeClock())
        with pytest.raises(UpstreamAuthError) as caught:
            await upstream.get("/v1/payments")
        await upstream.aclose()
        assert caught.value.status == 401 and caught.value.code == "UPSTREAM_AUTH_FAILED"
        assert counts(server.url) == {"POST /oauth/token": 2, "GET /v1/payments": 2}


async def test_concurrent_requests_share_one_token_fetch(
    oauth: tuple[RestUpstream, FakeClock, FakeClock, str],
) -> None:
    upstream, _, _, url = oauth
    # Different parameters, so the calls are not shared in flight: only the token fetch is.
    await asyncio.gather(*(upstream.get("/v1/payments", params={"limit": i}) for i in range(1, 21)))
    assert counts(url) == {"POST /oauth/token": 1, "GET /v1/payments": 20}


async def test_refused_client_credentials_never_reach_the_api(
    payments_service: tuple[str, FakeClock],
) -> None:
    url, _ = payments_service
    upstream = payments_upstream(url, FakeClock(), secret="not-the-secret")
    with pytest.raises(UpstreamAuthError) as caught:
        await upstream.get("/v1/payments")
    await upstream.aclose()
    assert str(caught.value) == (
        "payments token endpoint refused the gateway's client credentials (HTTP 401)"
    )
    assert caught.value.extensions == {"code": "UPSTREAM_AUTH_FAILED", "upstream": "payments"}
    assert "not-the-secret" not in str(caught.value)
    assert counts(url) == {"POST /oauth/token": 1}


def test_hmac_signature_matches_the_documented_canonical_string() -> None:
    config = upstream_config(
        {
            "kind": "rest",
            "url": "http://127.0.0.1:9/api",
            "auth": {"type": "hmac", "key_id": "k1", "secret": "${S}"},
        },
        S="topsecret",
    )
    assert config.auth is not None and config.auth.type == "hmac"
    signer = HmacSigner(config.auth, clock=lambda: 1_700_000_000.9)
    request = httpx.Request(
        "POST", "http://127.0.0.1:9/api/shipments/a%2Fb?ids=o1%2Co2", content=b'{"x":1}'
    )
    signed = next(signer.auth_flow(request))
    canonical = "\n".join(
        [
            "1700000000",
            "POST",
            "/api/shipments/a%2Fb",
            "ids=o1%2Co2",
            hashlib.sha256(b'{"x":1}').hexdigest(),
        ]
    )
    expected = hmac.new(b"topsecret", canonical.encode(), hashlib.sha256).hexdigest()
    assert signed.headers["x-key-id"] == "k1"
    assert signed.headers["x-timestamp"] == "1700000000"
    assert signed.headers["x-signature"] == expected


@pytest.mark.parametrize(
    ("skew", "accepted"), [(0, True), (-299, True), (-301, False), (301, False)]
)
async def test_hmac_timestamp_tolerance_at_the_upstream(skew: int, accepted: bool) -> None:
    app = shipping.create_app(key_id="k1", secret="topsecret")
    with ServerThread(app) as server:
        config = upstream_config(
            {
                "kind": "rest",
                "url": server.url,
                "xml": {"force_list": ["shipment"]},
                "auth": {"type": "hmac", "key_id": "k1", "secret": "${S}"},
            },
            S="topsecret",
        )
        upstream = RestUpstream("shipping", config)
        assert config.auth is not None and config.auth.type == "hmac"
        upstream.auth = HmacSigner(config.auth, clock=lambda: time.time() + skew)
        try:
            if accepted:
                body = await upstream.get("/shipments", params={"order_ids": "o1,o4"})
                ids = [s["order_id"] for s in body["shipments"]["shipment"]]
                assert ids == ["o1", "o4"]
            else:
                with pytest.raises(UpstreamAuthError):
                    await upstream.get("/shipments", params={"order_ids": "o1"})
        finally:
            await upstream.aclose()


@pytest.mark.parametrize(
    ("auth", "where", "expected"),
    [
        ({"type": "bearer", "token": "${V}"}, "header", ("authorization", "Bearer v4lue")),
        (
            {"type": "api_key", "header": "X-Api-Key", "value": "${V}"},
            "header",
            ("x-api-key", "v4lue"),
        ),
        ({"type": "api_key", "query": "api_key", "value": "${V}"}, "query", ("api_key", "v4lue")),
        (
            {"type": "basic", "username": "gw", "password": "${V}"},
            "header",
            ("authorization", "Basic " + base64.b64encode(b"gw:v4lue").decode()),
        ),
    ],
)
async def test_static_credentials_are_sent_where_configured(
    chaos: ChaosUpstream,
    auth: dict[str, Any],
    where: str,
    expected: tuple[str, str],
) -> None:
    chaos.route("GET /items/1", Respond(json={}))
    upstream = RestUpstream(
        "svc", upstream_config({"kind": "rest", "url": chaos.url, "auth": auth}, V="v4lue")
    )
    await upstream.get("/items/{id}", id="1", params={"page": 2})
    await upstream.aclose()
    [request] = chaos.requests
    name, value = expected
    if where == "header":
        assert request.headers[name] == value
        assert parse_qs(request.query) == {"page": ["2"]}
    else:
        assert parse_qs(request.query) == {"page": ["2"], name: [value]}
        assert "authorization" not in request.headers


async def test_static_headers_are_sent_and_redirects_are_not_followed(
    chaos: ChaosUpstream,
) -> None:
    redirect = Respond(302, json={}, headers={"location": "http://127.0.0.2:9/steal"})
    chaos.route("GET /items").queue(redirect)
    config = upstream_config(
        {"kind": "rest", "url": chaos.url, "headers": {"X-Tenant": "acme", "X-Token": "${V}"}},
        V="t0k",
    )
    upstream = RestUpstream("svc", config)
    with pytest.raises(UpstreamBadResponse, match=r"svc answered with a redirect \(HTTP 302\)"):
        await upstream.get("/items")
    await upstream.aclose()
    [request] = chaos.requests
    assert request.headers["x-tenant"] == "acme" and request.headers["x-token"] == "t0k"


async def test_client_credentials_are_form_encoded_before_basic() -> None:
    # RFC 6749 2.3.1: a secret with reserved characters must still authenticate.
    secret = "a+b%20c:d/é"
    app = payments.create_app(client_id="gw:1", client_secret=secret, token_ttl=60)
    with ServerThread(app) as server:
        upstream = RestUpstream("payments", oauth2_config(server.url, secret, client_id="gw:1"))
        body = await upstream.get("/v1/payments", params={"order_ids": "o1"})
        await upstream.aclose()
    assert body["data"][0]["order_id"] == "o1"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (503, "payments token endpoint failed (HTTP 503)"),
        (404, "payments token endpoint failed (HTTP 404)"),
        (400, "payments token endpoint refused the gateway's client credentials (HTTP 400)"),
    ],
)
async def test_token_endpoint_failures_are_told_apart(
    chaos: ChaosUpstream, status: int, message: str
) -> None:
    chaos.route("POST /oauth/token").queue(Respond(status, json={"error": "whatever"}), times=3)
    config = oauth2_config(chaos.url, "s", extra_params={"resource": "api://payments"})
    upstream = RestUpstream("payments", config)
    with pytest.raises(UpstreamAuthError) as caught:
        await upstream.get("/v1/payments")
    await upstream.aclose()
    assert str(caught.value) == message
    # Only the token endpoint was called (the API never was); an unavailable one was retried.
    assert [r.path for r in chaos.requests] == ["/oauth/token"] * (3 if status == 503 else 1)
    form = parse_qs(chaos.requests[0].body.decode())
    assert form == {"grant_type": ["client_credentials"], "resource": ["api://payments"]}


async def test_twenty_concurrent_requests_with_an_expired_token_share_one_refresh(
    oauth: tuple[RestUpstream, FakeClock, FakeClock, str],
) -> None:
    upstream, gateway_clock, server_clock, url = oauth
    await upstream.get("/v1/payments")
    gateway_clock.now += 61  # the cached token has expired by the gateway's clock
    server_clock.now += 61  # and by the upstream's
    results = await asyncio.gather(
        *(upstream.get("/v1/payments", params={"limit": i}) for i in range(1, 21))
    )
    assert all(body["data"] for body in results)
    assert counts(url) == {"POST /oauth/token": 2, "GET /v1/payments": 21}  # 1 + one refresh


async def test_twenty_concurrent_requests_with_a_revoked_token_share_one_refresh(
    oauth: tuple[RestUpstream, FakeClock, FakeClock, str],
) -> None:
    upstream, _, server_clock, url = oauth
    await upstream.get("/v1/payments")
    server_clock.now += 61  # revoked upstream; the gateway still thinks the token is fresh
    results = await asyncio.gather(
        *(upstream.get("/v1/payments", params={"limit": i}) for i in range(1, 21))
    )
    assert all(body["data"] for body in results)
    # Every request was refused once and sent once more; the refused token was replaced once.
    assert counts(url) == {"POST /oauth/token": 2, "GET /v1/payments": 1 + 20 * 2}


async def test_token_endpoint_outage_is_retried_with_backoff_then_auth_failed(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("POST /oauth/token", Respond(503, json={}))
    config = oauth2_config(chaos.url, "s").model_copy(
        update={"retry": RetryConfig(attempts=3, base_delay=0.01)}
    )
    upstream = RestUpstream("payments", config)
    seen: list[tuple[str, dict[str, Any]]] = []

    def listener(event: str, name: str, fields: dict[str, Any]) -> None:
        if event in ("retry", "token"):
            seen.append((event, fields))

    events.listen(listener)
    try:
        with pytest.raises(UpstreamAuthError) as caught:
            await upstream.get("/v1/payments")
    finally:
        events.unlisten(listener)
        await upstream.aclose()
    assert caught.value.extensions == {"code": "UPSTREAM_AUTH_FAILED", "upstream": "payments"}
    assert chaos.count("POST /oauth/token") == 3 and chaos.count("GET /v1/payments") == 0
    retries = [fields for event, fields in seen if event == "retry"]
    assert [(r["attempt"], r["reason"]) for r in retries] == [
        (1, "UPSTREAM_AUTH_FAILED"),
        (2, "UPSTREAM_AUTH_FAILED"),
    ]
    tokens = [fields["outcome"] for event, fields in seen if event == "token"]
    assert tokens == ["failed"] * 3
