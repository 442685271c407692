"""Upstreams that answer badly at the HTTP level, and the reachability probe."""

from __future__ import annotations

import pytest

from graftql.config import UpstreamConfig
from graftql.errors import UpstreamBadResponse, UpstreamUnavailable
from graftql.testing import (
    Behaviour,
    ChaosUpstream,
    Disconnect,
    Latency,
    Malformed,
    Respond,
    Truncated,
)
from graftql.upstreams import GraphQLUpstream, RestUpstream, UpstreamGraphQLErrors


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        # Not HTTP at all, then the connection closes.
        (Malformed(b"SMTP READY\r\n\r\n"), UpstreamBadResponse, "svc answered with malformed HTTP"),
        # The request was read, then the connection closed without a word.
        (Disconnect(), UpstreamUnavailable, "the connection to svc was lost"),
        # A Content-Length of 100 and one byte of body, then the connection closes.
        (
            Truncated(200, b"{" + b" " * 99, content_type="application/json", sent=1),
            UpstreamBadResponse,
            "svc answered with malformed HTTP",
        ),
    ],
    ids=["garbage", "hang_up", "truncated"],
)
async def test_broken_http_answers(
    chaos: ChaosUpstream, answer: Behaviour, error: type[Exception], message: str
) -> None:
    chaos.route("GET /items", answer)  # every attempt alike, as from a broken server
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=chaos.url))
    with pytest.raises(error) as caught:
        await upstream.get("/items")
    await upstream.aclose()
    assert str(caught.value) == message and type(caught.value) is error


async def test_graphql_validation_errors_over_400_keep_the_upstream_words(
    chaos: ChaosUpstream,
) -> None:
    errors = [{"message": "Cannot query field 'nope' on 'Query'."}]
    chaos.route("POST /graphql").queue(Respond(400, json={"errors": errors}))
    upstream = GraphQLUpstream("cat", UpstreamConfig(kind="graphql", url=f"{chaos.url}/graphql"))
    with pytest.raises(UpstreamGraphQLErrors) as caught:
        await upstream.execute("{ nope }")
    await upstream.aclose()
    assert caught.value.status == 400
    assert caught.value.errors == [{"message": "Cannot query field 'nope' on 'Query'."}]
    assert caught.value.detail == "Cannot query field 'nope' on 'Query'."
    assert str(caught.value) == "cat answered with GraphQL errors"  # what a client sees


async def test_probe_uses_the_origin_health_path_and_sends_no_secret(
    chaos: ChaosUpstream,
) -> None:
    chaos.route("/**", Respond(json={}))  # any path: the test checks which one was asked
    config = UpstreamConfig.model_validate(
        {
            "kind": "rest",
            "url": f"{chaos.url}/api/v1?version=2",
            "health_path": "/healthz",
            "headers": {"X-Tenant": "acme", "X-Token": "${T}"},
            "auth": {"type": "bearer", "token": "${T}"},
        },
        context={"environ": {"T": "s3cr3t"}},
    )
    upstream = RestUpstream("svc", config)
    probe = await upstream.probe()
    await upstream.aclose()
    assert (probe.status, probe.detail) == ("up", "HTTP 200")
    [request] = chaos.requests
    assert (request.path, request.query) == ("/healthz", "")
    assert request.headers["x-tenant"] == "acme"
    assert "s3cr3t" not in str(request.headers)


async def test_probe_reports_5xx_and_silence_as_down(chaos: ChaosUpstream) -> None:
    origin = chaos.route("GET /").queue(Respond(503, json={}))
    upstream = RestUpstream("svc", UpstreamConfig(kind="rest", url=chaos.url))
    assert (await upstream.probe()).detail == "HTTP 503"
    origin.queue(Latency(3) + Respond(json={}))
    slow = await upstream.probe()
    await upstream.aclose()
    assert (slow.status, slow.detail) == ("down", "no answer within 2s")
